"""A base for recipes that classify variable-length sequences: the zoo's (pendigits, spoken digits, sentence
polarity) and a plugin's. ``lstmzoo train sequence-classification`` reads a user's file; a recipe of this base
brings its own dataset, loader and defaults, and inherits the rest.

A subclass names its ``class_names``, implements ``load_data`` (returning ``SequenceClassificationData``: three
``LabelledSequences`` splits of variable-length ``[T_i, F]`` sequences, or ``[T_i]`` token indices, with integer
labels), ``input_size`` (features per step) and ``predict`` (``classify`` scores one sequence); it may override
``build_model`` (the default is ``lstmzoo.tasks.models.SequenceModel``: LSTM, bidirectional by default, last
hidden states -> dropout -> Linear -> class scores), ``augment`` (a per-batch transformation of the training
sequences), ``pad_value`` (what fills a batch past each sequence's end) and ``baseline``. The base provides:

- batches: training sequences bucketed by length (``lstmzoo.batching.bucket_by_length``), padded and passed to
  the model with their ``lengths`` (``lstmzoo.tasks.reports.padded_batch``), so padding never changes a result;
  scoring runs ``reports.EVAL_BATCH`` sequences at a time in order of length, as every task does;
- training: softmax cross-entropy; the best epoch is the one with the highest validation accuracy (``keep =
  "last"`` keeps the last epoch's weights instead: a learning-rate schedule that fixes the length of training);
- metrics: accuracy, macro-averaged F1 (``lstmzoo.metrics``), the test loss and the number of errors; the
  confusion matrix as CSV and drawn as a PNG (with the plot extra), and a per-class table next to the checkpoint.

State a recipe fits on its training split (a vocabulary, scalers) belongs in ``data.fitted`` (plain JSON values):
``config.json`` records it, so a recipe instance keeps nothing between calls.

The hyperparameters the base reads: ``hidden_size``, ``num_layers``, ``bidirectional``, ``dropout``,
``batch_size`` (``classification_hyperparameters`` declares them, with ``epochs``, ``lr``, ``patience`` and
``clip_norm``, with a recipe's defaults); ``lr`` is the default Adam optimizer's learning rate.
"""

import dataclasses

import numpy as np

from lstmzoo.recipe import Hyperparameter, Recipe

from .reports import classification_metrics, outputs_by_length, padded_batch, softmax


def classification_hyperparameters(*, hidden_size, epochs, lr, batch_size, patience, num_layers=1,
                                   bidirectional=True, dropout=0.0, clip_norm=1.0):
    """The hyperparameters every sequence-classification recipe has, with that recipe's defaults."""
    return {
        "hidden_size": Hyperparameter(hidden_size, "LSTM hidden units per direction"),
        "num_layers": Hyperparameter(num_layers, "stacked LSTM layers"),
        "bidirectional": Hyperparameter(bidirectional, "read each sequence in both directions"),
        "dropout": Hyperparameter(dropout, "dropout between LSTM layers and before the output layer"),
        "epochs": Hyperparameter(epochs, "maximum passes over the training sequences"),
        "lr": Hyperparameter(lr, "Adam learning rate"),
        "batch_size": Hyperparameter(batch_size, "sequences per training step"),
        "patience": Hyperparameter(patience, "epochs without a better validation accuracy before stopping "
                                             "(0 = never)"),
        "clip_norm": Hyperparameter(clip_norm, "global gradient-norm clipping (0 = off)"),
    }


@dataclasses.dataclass
class LabelledSequences:
    """Variable-length sequences (``[T_i, F]`` arrays, or ``[T_i]`` token indices) and their class labels."""
    sequences: list
    labels: np.ndarray      # int64 [N], indices into the recipe's class_names

    def __post_init__(self):
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if len(self.sequences) != len(self.labels):
            raise ValueError(f"{len(self.sequences)} sequences but {len(self.labels)} labels")

    def __len__(self):
        return len(self.labels)

    @property
    def lengths(self):
        return np.array([len(s) for s in self.sequences], dtype=np.int64)

    def subset(self, indices):
        return LabelledSequences([self.sequences[i] for i in indices],
                                 self.labels[np.asarray(indices, dtype=np.int64)])


@dataclasses.dataclass
class SequenceClassificationData:
    """What ``load_data`` returns: the three splits, and what was fitted on the training split (plain JSON values,
    recorded in ``config.json``; None when nothing was)."""
    train: LabelledSequences
    val: LabelledSequences
    test: LabelledSequences
    fitted: dict | None = None


class SequenceClassificationRecipe(Recipe):
    """The base of a recipe that classifies variable-length sequences (see the module docstring)."""
    class_names: tuple = ()         # one display name per class, in label order
    monitor = "val_accuracy"
    mode = "max"
    pad_value = 0                   # what fills a batch past each sequence's end (the model never reads it)

    def input_size(self, hp):
        """Features per time step of the sequences ``load_data`` gives."""
        raise NotImplementedError

    def build_model(self, hp):
        from .models import SequenceModel
        return SequenceModel(self.input_size(hp), hp["hidden_size"], len(self.class_names),
                             num_layers=hp["num_layers"], bidirectional=hp["bidirectional"],
                             dropout=hp["dropout"], device=hp["device"])

    def augment(self, sequences, hp, rng):
        """The training ``sequences`` of one batch, transformed with the NumPy Generator ``rng`` (default:
        unchanged). Called for every batch of every epoch, so each epoch sees fresh variations."""
        return sequences

    def run_config(self, hp, data=None):
        fitted = getattr(data, "fitted", None)
        return {**super().run_config(hp), **({"fitted": fitted} if fitted is not None else {})}

    def recorded_fitted(self, run_dir):
        """What ``load_data`` fitted on the training split (``data.fitted``) as the run in ``run_dir`` recorded it
        in config.json: what ``predict`` (which gets the run folder, not the data) reads. CheckpointError when the
        run recorded nothing."""
        from lstmzoo.checkpoint import CheckpointError, read_config
        fitted = read_config(run_dir, self.name, of_recipe=True).get("fitted")
        if not isinstance(fitted, dict):
            raise CheckpointError(f"{run_dir}'s config.json records nothing fitted on the training split: it is "
                                  f"not a finished run of {self.name}")
        return fitted

    # ------------------------------------------------------------------------------------ training
    def make_batches(self, data, hp, rng):
        """``(inputs, lengths, labels)`` batches of training sequences of similar lengths, augmented."""
        from lstmzoo.batching import bucket_by_length
        train = data.train
        batches = []
        for indices in bucket_by_length(train.lengths, hp["batch_size"], rng):
            sequences = self.augment([train.sequences[i] for i in indices], hp, rng)
            batches.append((*padded_batch(sequences, hp["device"], self.pad_value), train.labels[indices]))
        return batches

    def train_step(self, model, batch, hp):
        from lstmzoo.array import device_module
        from lstmzoo.nn import CrossEntropyLoss
        inputs, lengths, labels = batch
        loss = CrossEntropyLoss()
        value = loss(model(inputs, lengths=lengths), device_module(hp["device"]).asarray(labels))
        model.backward(loss.backward())
        return value, len(labels)

    def probabilities(self, model, sequences, hp):
        """Class probabilities ``[N, C]`` (NumPy float64) of ``sequences``; the model must be in eval mode."""
        lengths = np.array([len(s) for s in sequences], dtype=np.int64)
        return softmax(outputs_by_length(
            model, lengths, lambda index: padded_batch([sequences[i] for i in index], hp["device"], self.pad_value),
            len(self.class_names)))

    def scores(self, model, split, hp):
        """``(loss, predicted labels)`` of the model on ``LabelledSequences``."""
        probabilities = self.probabilities(model, split.sequences, hp)
        rows = np.arange(len(split))
        loss = float(-np.mean(np.log(np.maximum(probabilities[rows, split.labels], 1e-300))))
        return loss, probabilities.argmax(axis=1)

    def validate(self, model, data, hp):
        from lstmzoo.metrics import accuracy
        loss, predicted = self.scores(model, data.val, hp)
        return {"val_loss": loss, "val_accuracy": accuracy(data.val.labels, predicted)}

    # ---------------------------------------------------------------------------------- evaluation
    def evaluate(self, model, data, hp, out_dir=None):
        """Test accuracy, macro F1 (``lstmzoo.metrics``), loss and errors; the confusion matrix goes to
        ``out_dir/confusion-matrix.csv`` (and ``.png``) and each class's precision, recall and F1 to
        ``out_dir/per-class.csv``."""
        # The model fit() hands back is in training mode (dropout on): `lstmzoo train` and benchmarks/zoo.py
        # pass it straight here.
        model.eval()
        loss, predicted = self.scores(model, data.test, hp)
        metrics = classification_metrics(self.name, data.test.labels, predicted, self.class_names, out_dir)
        return {**metrics, "loss": loss, "errors": int(np.sum(predicted != data.test.labels))}

    def classify(self, model, sequence, hp):
        """The prediction for one sequence: label, its probability, and every class's probability."""
        probabilities = self.probabilities(model, [sequence], hp)[0]
        best = int(probabilities.argmax())
        return {"label": self.class_names[best], "probability": float(probabilities[best]),
                "probabilities": {name: float(p) for name, p in zip(self.class_names, probabilities)}}

    def format_prediction(self, result):
        return f"{result['label']} (probability {result['probability']:.3f})"
