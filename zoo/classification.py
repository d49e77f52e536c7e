"""Sequence classification: the base of the classification recipes (pendigits, spoken digits, sentences).

A subclass loads its data as ``ClassificationData`` (three ``SequenceSet`` splits of variable-length
``[T_i, F]`` sequences with integer labels), names its ``class_names`` and implements ``load_data`` and
``predict``; it may override ``build_model`` (the default is ``SequenceModel``: LSTM, bidirectional by
default, last hidden states -> dropout -> Linear -> class scores) and ``augment`` (a per-batch transformation
of the training sequences). Everything else is here:

- batches: training sequences bucketed by length (``bucket_by_length``), padded (``pad_sequences``) and passed
  to the model with their ``lengths``, so padding never changes a result;
- training: softmax cross-entropy; the best epoch is the one with the highest validation accuracy;
- metrics: accuracy and macro-averaged F1 (``lstmzoo.metrics``), the confusion matrix drawn as a PNG and a
  per-class table next to the checkpoint (``lstmzoo.tasks.reports``).

The hyperparameters the base reads: ``hidden_size``, ``num_layers``, ``bidirectional``, ``dropout``,
``batch_size`` (``classification_hyperparameters`` declares them with a recipe's defaults).
"""

import dataclasses

import numpy as np

from lstmzoo.recipe import Hyperparameter, Recipe
from lstmzoo.tasks.sequences import CONFUSION_MATRIX, PER_CLASS


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
class SequenceSet:
    """Variable-length sequences (``[T_i, F]`` arrays, or ``[T_i]`` token indices) and their class labels."""
    sequences: list
    labels: np.ndarray      # int64 [N]

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
        return SequenceSet([self.sequences[i] for i in indices], self.labels[np.asarray(indices, dtype=np.int64)])


@dataclasses.dataclass
class ClassificationData:
    train: SequenceSet
    val: SequenceSet
    test: SequenceSet


# ------------------------------------------------------------------------------------------------ recipe
class ClassificationRecipe(Recipe):
    class_names: tuple = ()         # one display name per class, in label order
    monitor = "val_accuracy"
    mode = "max"
    eval_batch_size = 256           # sequences per forward pass when scoring (no gradients kept)

    # ------------------------------------------------------------------------------------ training
    def input_size(self, hp):
        """Features per time step of the sequences ``load_data`` gives."""
        raise NotImplementedError

    def build_model(self, hp):
        from lstmzoo.tasks.models import SequenceModel
        return SequenceModel(self.input_size(hp), hp["hidden_size"], len(self.class_names),
                             num_layers=hp["num_layers"], bidirectional=hp["bidirectional"],
                             dropout=hp["dropout"], device=hp["device"])

    def augment(self, sequences, hp, rng):
        """The training ``sequences`` of one batch, transformed with the NumPy Generator ``rng`` (default:
        unchanged). Called for every batch of every epoch, so each epoch sees fresh variations."""
        return sequences

    def _padded(self, sequences, hp):
        from lstmzoo.array import device_module
        from lstmzoo.batching import pad_sequences
        padded, lengths = pad_sequences(sequences)
        return device_module(hp["device"]).asarray(padded), lengths

    def make_batches(self, data, hp, rng):
        from lstmzoo.batching import bucket_by_length
        train = data.train
        batches = []
        for indices in bucket_by_length(train.lengths, hp["batch_size"], rng):
            sequences = self.augment([train.sequences[i] for i in indices], hp, rng)
            inputs, lengths = self._padded(sequences, hp)
            batches.append((inputs, lengths, train.labels[indices]))
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
        """Class probabilities ``[N, C]`` (NumPy float64) of ``sequences``, scored in batches of similar
        length; the model must be in eval mode."""
        from lstmzoo.array import to_numpy
        order = np.argsort([len(s) for s in sequences], kind="stable")
        result = np.empty((len(sequences), len(self.class_names)))
        for start in range(0, len(order), self.eval_batch_size):
            chosen = order[start:start + self.eval_batch_size]
            inputs, lengths = self._padded([sequences[i] for i in chosen], hp)
            logits = to_numpy(model(inputs, lengths=lengths)).astype(np.float64)
            logits -= logits.max(axis=1, keepdims=True)
            probabilities = np.exp(logits)
            result[chosen] = probabilities / probabilities.sum(axis=1, keepdims=True)
        return result

    def scores(self, model, split, hp):
        """``(loss, predicted labels)`` of the model on a ``SequenceSet``."""
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
        """Test accuracy, macro F1 (``lstmzoo.metrics``) and loss; the confusion matrix goes to
        ``out_dir/confusion-matrix.png`` and each class's precision, recall and F1 to ``out_dir/per-class.csv``."""
        from pathlib import Path

        from lstmzoo.metrics import accuracy, confusion_matrix, macro_f1
        from lstmzoo.tasks.reports import draw_confusion_matrix, write_per_class
        # The model fit() hands back is in training mode (dropout on): `lstmzoo train` and benchmarks/zoo.py
        # pass it straight here.
        model.eval()
        loss, predicted = self.scores(model, data.test, hp)
        test_accuracy = accuracy(data.test.labels, predicted)
        if out_dir is not None:
            matrix = confusion_matrix(data.test.labels, predicted, len(self.class_names))
            write_per_class(Path(out_dir) / PER_CLASS, self.class_names, matrix)
            draw_confusion_matrix(Path(out_dir) / CONFUSION_MATRIX, matrix, self.class_names,
                                  f"{self.name}: test accuracy {test_accuracy:.2%} ({len(data.test)} items)")
        return {"accuracy": test_accuracy, "macro_f1": macro_f1(data.test.labels, predicted), "loss": loss,
                "errors": int(np.sum(predicted != data.test.labels))}

    def classify(self, model, sequence, hp):
        """The prediction for one sequence: label, its probability, and every class's probability."""
        probabilities = self.probabilities(model, [sequence], hp)[0]
        best = int(probabilities.argmax())
        return {"label": self.class_names[best], "probability": float(probabilities[best]),
                "probabilities": {name: float(p) for name, p in zip(self.class_names, probabilities)}}

    def format_prediction(self, result):
        return f"{result['label']} (probability {result['probability']:.3f})"
