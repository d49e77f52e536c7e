"""Sequence classification and regression on a user's own file: ``lstmzoo train sequence-classification --data
X.ts`` (or ``.npz``, or a long ``.csv``; see ``lstmzoo.tasks.readers``), ``sequence-regression`` likewise.

- splits: without ``--test-data`` a test part (``test_fraction``, stratified by class) is held out with a fixed
  seed, so every training seed is scored on the same cases; a validation part (``val_fraction``, stratified) of
  the rest picks the best epoch and stops training early;
- preprocessing, fitted on the training part: each channel standardised; regression targets standardised;
  class weights (inversely proportional to the class counts) when the largest class is more than 1.5 times the
  smallest; all of it is recorded in ``config.json`` with the label names, so ``predict`` needs nothing else;
- the model: a bidirectional LSTM over each case's own length (the kernels receive ``lengths``: padding never
  enters the maths), its final states -> dropout -> Linear; sizes chosen from the data when left at 0
  (``automatic_hidden_size``, ``automatic_batch_size``), from N (the cases in ``--data``, before the test and
  validation parts are taken out), C (values per time step), the classes and T (the longest case):
  hidden size 32 below 500 cases, 64 below 5,000, else 128, raised to the next power of two at or above C and
  the number of classes (a state narrower than one time step's input or than the choice it must carry is a
  bottleneck), at most 256 from that raise; batch size a 20th of N, 8 to 64, and at most 65,536 time steps a
  batch (``BATCH_STEPS``: training keeps every step's activations for the backward pass, so memory grows with
  batch x T; 64 cases fit up to T = 1,024, longer cases take fewer a batch). T does not enter the hidden size:
  how much a state must remember is the problem's, not the length's, and no simple rule of T is better than
  early stopping on the validation part;
- metrics: ``accuracy`` and ``macro_f1`` with the majority class's and 1-NN's accuracy beside them, a confusion
  matrix (CSV, and a PNG with the plot extra) and a per-class table in the run folder; ``rmse``, ``mae`` and ``r2`` with
  ``mean_rmse`` (predicting the training mean).
"""

import dataclasses
from pathlib import Path
from typing import ClassVar

import numpy as np

from lstmzoo.errors import UserError
from lstmzoo.recipe import Hyperparameter

from .base import Task
from .readers import MISSING_FILLS, read_sequences
from .reports import (
    batch_weight,
    check_parts,
    classification_metrics,
    nearest,
    outputs_by_length,
    resampled,
    softmax,
    split_indices,
)

SPLIT_SEED = 20261202       # the held-out parts do not move with the training seed
BATCH_STEPS = 65_536        # time steps (cases x their longest length) in one automatic training batch, at most
AUTOMATIC_HIDDEN_MAX = 256  # the most hidden units the raise for wide inputs or many classes asks for


def automatic_hidden_size(n, width=1):
    """The hidden size that ``hidden_size=0`` stands for: from the number of cases ``n`` (32 below 500, 64 below
    5,000, else 128), raised to the next power of two at or above ``width`` (the largest of the values per time
    step and the number of classes), that raise at most ``AUTOMATIC_HIDDEN_MAX``."""
    by_cases = 32 if n < 500 else 64 if n < 5000 else 128
    by_width = 1 << max(int(width) - 1, 0).bit_length()
    return max(by_cases, min(by_width, AUTOMATIC_HIDDEN_MAX))


def automatic_batch_size(n, longest, most=64):
    """The batch size that ``batch_size=0`` stands for: a 20th of the ``n`` cases, between 8 and ``most``, and
    at most ``BATCH_STEPS`` time steps a batch of cases ``longest`` steps long (never below 1)."""
    return int(max(1, min(int(np.clip(n // 20, 8, most)), BATCH_STEPS // max(int(longest), 1))))


@dataclasses.dataclass
class Split:
    X: np.ndarray           # float32 [N, T, C], standardised, zero past each length
    lengths: np.ndarray     # int64 [N]
    y: np.ndarray | None    # int64 class indices [N] or float64 targets [N] (original scale); None: unknown

    def __len__(self):
        return len(self.lengths)


@dataclasses.dataclass
class SequenceData:
    train: Split
    val: Split
    test: Split
    fitted: dict            # the preprocessing, as config.json records it (see ``fit_preprocessing``)


class SequenceTask(Task):
    """What classification and regression share; ``kind`` is ``"classification"`` or ``"regression"``."""
    kind = ""
    application = "sequence-classification"
    predict_input = ("a .ts, .npz or long .csv file of cases, with or without labels (labels, if present, are "
                     "ignored: a .ts without them, an .npz with X alone, a CSV without the label column); writes id "
                     "and the prediction per case")
    hyperparameters: ClassVar[dict] = {
        "data": Hyperparameter("", "the training file: .ts, .npz or a long .csv (set by --data)"),
        "test_data": Hyperparameter("", "a file of test cases in a format of --data (set by --test-data; default: "
                                        "test_fraction of --data held out)"),
        "id_column": Hyperparameter("id", "long CSV: the column naming each case"),
        "label_column": Hyperparameter("label", "long CSV: the column of the label or target"),
        "missing": Hyperparameter("refuse", "what to do with a missing value", choices=("refuse", *MISSING_FILLS)),
        "test_fraction": Hyperparameter(0.2, "fraction held out as the test part without --test-data", low=0.05,
                                        high=0.5),
        "val_fraction": Hyperparameter(0.1, "fraction of the training part held out for early stopping"),
        "hidden_size": Hyperparameter(0, "LSTM hidden units per direction (0 = from the data: 32 below 500 cases, "
                                         "64 below 5,000, else 128; at least the next power of two at or above "
                                         "the values per time step and the classes, up to 256)", low=0,
                                      high=16_384),
        "num_layers": Hyperparameter(1, "stacked LSTM layers"),
        "bidirectional": Hyperparameter(True, "read each sequence in both directions"),
        "dropout": Hyperparameter(0.2, "dropout between LSTM layers and before the output layer"),
        "epochs": Hyperparameter(100, "maximum passes over the training cases"),
        "batch_size": Hyperparameter(0, "cases per training step (0 = a 20th of the cases, 8 to 64; fewer where "
                                        "that many of the longest case pass 65,536 time steps)", low=0,
                                     high=65_536),
        "lr": Hyperparameter(0.002, "Adam learning rate"),
        "patience": Hyperparameter(15, "epochs without a better validation score before stopping (0 = never)"),
        "clip_norm": Hyperparameter(1.0, "global gradient-norm clipping (0 = off)"),
        "input_size": Hyperparameter(0, "values per time step (set from the data)", low=0, high=1_000_000),
        "output_size": Hyperparameter(0, "classes, or 1 for regression (set from the data)", low=0, high=1_000_000),
    }

    # ------------------------------------------------------------------------------------------ settling
    def settle(self, hp, cases=None):
        """``hp`` with the sizes left at 0 chosen from the cases (``cases``, a ``readers.SequenceSet``; default:
        the file ``hp["data"]``) and the input and output sizes they need."""
        if cases is None and hp["input_size"] and hp["output_size"]:    # settled already (by the CLI)
            return hp
        if cases is None:
            if not hp["data"]:
                raise UserError(f"the {self.name} task trains on your file: give it with --data PATH")
            cases = self._read(hp, hp["data"])
            # The parts and the test file checked here, before the CLI makes the run folder: a refusal leaves
            # nothing behind.
            test_set = self._read(hp, hp["test_data"], training=False) if hp["test_data"] else None
            train, _, _ = self._parts(cases, hp, test_set)
            if test_set is not None:
                seen = {"classes": np.unique(cases.y[train]).tolist()} if self.kind == "classification" else {}
                self._check_test(seen, test_set, cases)
        # N counts every case of --data (the test and validation parts not yet taken out); see the module docstring.
        n, channels = len(cases), cases.X.shape[2]
        outputs = len(cases.classes) if self.kind == "classification" else 1
        return {**hp, "input_size": channels, "output_size": outputs,
                "hidden_size": hp["hidden_size"] or automatic_hidden_size(n, max(channels, outputs)),
                "batch_size": hp["batch_size"] or automatic_batch_size(n, cases.lengths.max(initial=1))}

    def _read(self, hp, path, training=True, **options):
        return read_sequences(path, task=self.kind, missing=None if hp["missing"] == "refuse" else hp["missing"],
                              id_column=hp["id_column"], label_column=hp["label_column"], training=training,
                              **options)

    # ---------------------------------------------------------------------------------------------- data
    def load_data(self, hp):
        test_set = self._read(hp, hp["test_data"], training=False) if hp["test_data"] else None
        return self.prepare(self._read(hp, hp["data"]), hp, test_set=test_set)

    def prepare(self, whole, hp, test_set=None, hold_out_test=True):
        """``SequenceData`` from the cases ``whole`` (a ``readers.SequenceSet``): the test part is ``test_set``
        when given, else held out of ``whole`` (``test_fraction``, stratified, fixed seed), or with
        ``hold_out_test=False`` none (an empty test part: every case trains or validates); the validation part
        is ``val_fraction`` of the rest; the preprocessing is fitted on the training part."""
        targets = whole.y
        train, val, test = self._parts(whole, hp, test_set, hold_out_test)
        fitted = {**self.fit_preprocessing(whole.X[train], whole.lengths[train], targets[train]),
                  "feature_names": list(whole.feature_names)}
        if test_set is not None:
            self._check_test(fitted, test_set, whole)
            test_split = self._prepared(fitted, test_set.X, test_set.lengths, test_set.y)
        else:
            test_split = self._prepared(fitted, whole.X[test], whole.lengths[test], targets[test])
        return SequenceData(self._prepared(fitted, whole.X[train], whole.lengths[train], targets[train]),
                            self._prepared(fitted, whole.X[val], whole.lengths[val], targets[val]),
                            test_split, fitted)

    def _parts(self, whole, hp, test_set=None, hold_out_test=True):
        """``(train, val, test)`` index arrays of the cases ``whole`` (see ``prepare``); UserError when one that
        is needed is empty."""
        rng = np.random.default_rng(SPLIT_SEED)
        targets = whole.y
        stratify = self.kind == "classification"
        held_out = test_set is None and hold_out_test
        if not held_out:
            rest, test = np.arange(len(whole)), np.arange(0)
        else:
            rest, test = split_indices(len(whole), hp["test_fraction"], rng, targets if stratify else None)
        train, val = split_indices(len(rest), hp["val_fraction"], rng, targets[rest] if stratify else None)
        train, val = rest[train], rest[val]
        hint = f" (at least {3 if held_out else 2} of each class)" if stratify else ""
        check_parts(whole.path, "cases", hint, training=train, validation=val, **({"test": test} if held_out else {}))
        return train, val, test

    def fit_preprocessing(self, X, lengths, y):
        """The channel means and standard deviations over the training cases' real steps, and the label names
        and class weights (classification) or the target's mean and deviation (regression), as plain lists."""
        valid = np.arange(X.shape[1])[None, :] < lengths[:, None]
        steps = X[valid]
        std = steps.std(axis=0)
        fitted = {"feature_mean": steps.mean(axis=0).tolist(),
                  "feature_std": np.where(std > 0, std, 1.0).tolist()}
        if self.kind == "classification":
            classes, counts = np.unique(y, return_counts=True)
            weights = len(y) / (len(classes) * counts)
            fitted.update(classes=classes.tolist(),
                          class_weight=weights.tolist() if counts.max() > 1.5 * counts.min() else None)
        else:
            fitted.update(target_mean=float(np.mean(y)), target_std=float(np.std(y)) or 1.0)
        return fitted

    def _prepared(self, fitted, X, lengths, y):
        mean, std = np.asarray(fitted["feature_mean"]), np.asarray(fitted["feature_std"])
        valid = np.arange(X.shape[1])[None, :, None] < lengths[:, None, None]
        scaled = np.where(valid, (X - mean) / std, 0.0).astype(np.float32)
        if y is not None and self.kind == "classification":
            index = {name: k for k, name in enumerate(fitted["classes"])}
            y = np.array([index[label] for label in y], dtype=np.int64)
        return Split(scaled, lengths.astype(np.int64), y)

    def _check_test(self, fitted, test_set, whole):
        if test_set.X.shape[2] != whole.X.shape[2]:
            raise UserError(f"{test_set.path} has {test_set.X.shape[2]} values per time step, {whole.path} has "
                            f"{whole.X.shape[2]}")
        if self.kind == "classification":
            unseen = sorted(set(test_set.y) - set(fitted["classes"]))
            if unseen:
                raise UserError(f"{test_set.path} has the label {str(unseen[0])!r}, which the training cases in "
                                f"{whole.path} never have")

    # ------------------------------------------------------------------------------------------ training
    def build_model(self, hp):
        from .models import SequenceModel
        if not hp["input_size"]:
            raise ValueError("build_model needs settled hyperparameters: call settle(hp) first")
        return SequenceModel(hp["input_size"], hp["hidden_size"], hp["output_size"], num_layers=hp["num_layers"],
                             bidirectional=hp["bidirectional"], dropout=hp["dropout"], device=hp["device"])

    def make_batches(self, data, hp, rng):
        """``(inputs, lengths, targets, class_weight)`` batches of cases of similar lengths."""
        from lstmzoo.batching import bucket_by_length
        weight = data.fitted.get("class_weight")
        weight = None if weight is None else np.asarray(weight, dtype=np.float32)
        return [(*self._batch(data.train, index, hp, data.fitted), weight)
                for index in bucket_by_length(data.train.lengths, hp["batch_size"], rng)]

    def _batch(self, split, index, hp, fitted=None):
        """``(inputs [T, B, C], lengths, targets)`` of the cases ``index``, cut at their longest length."""
        from lstmzoo.array import device_module
        xp = device_module(hp["device"])
        lengths = split.lengths[index]
        inputs = xp.asarray(np.ascontiguousarray(split.X[index, :lengths.max()].transpose(1, 0, 2)))
        if split.y is None:
            return inputs, lengths, None
        y = split.y[index]
        if self.kind == "regression" and fitted is not None:
            y = ((y - fitted["target_mean"]) / fitted["target_std"]).astype(np.float32)[:, None]
        return inputs, lengths, xp.asarray(y)

    def train_step(self, model, batch, hp):
        inputs, lengths, targets, weight = batch
        loss = self._loss(weight)
        value = loss(model(inputs, lengths=lengths), targets)
        model.backward(loss.backward())
        return value, batch_weight(weight, targets)

    def _outputs(self, model, split, hp):
        """The model's raw outputs ``[N, output_size]`` in the split's order."""
        return outputs_by_length(model, split.lengths, lambda index: self._batch(split, index, hp)[:2],
                                 hp["output_size"])

    # ------------------------------------------------------------------------------------------- predict
    def predict(self, model, hp, out_dir, *, input=None, output=None):
        """A row per case of ``input`` (default: the test file, else the training file), in file order: its
        position (``id``, from 0) and the prediction; written to ``output`` as CSV when given. The
        preprocessing comes from the run's config.json, so the training file is not needed. The cases need no
        labels (see ``readers``: unlabelled cases); a long CSV's feature columns are found by the names of the
        training CSV's."""
        fitted = self.recorded_preprocessing(out_dir)
        source = Path(input or hp["test_data"] or hp["data"])
        tables = (".csv", ".tsv")
        names = fitted.get("feature_names") if source.suffix.lower() in tables and \
            Path(hp["data"]).suffix.lower() in tables else None
        cases = self.read_input(lambda: self._read(hp, source, training=False, labelled=False,
                                                   dimensions=hp["input_size"], feature_columns=names))
        if cases.X.shape[2] != hp["input_size"]:
            raise UserError(f"{cases.path} has {cases.X.shape[2]} values per time step; the model reads "
                            f"{hp['input_size']}")
        rows = self.prediction_rows(model, self._prepared(fitted, cases.X, cases.lengths, None), hp, fitted)
        return self.prediction(rows, output)


class SequenceClassificationTask(SequenceTask):
    name = "sequence-classification"
    kind = "classification"
    summary = "classify your own sequences: a .ts (UEA/UCR), .npz or long .csv file -> one label per sequence"
    formats = ("the UEA/UCR .ts format (multivariate, variable lengths, string labels), an .npz with X [N, T, C] "
               "or [N, T], y [N] and optional lengths [N], or a long .csv (or .tsv), one row per time step: id, "
               "feature columns, label, rows in time order within an id (other names: id_column=, label_column=)")
    monitor = "val_accuracy"
    mode = "max"

    def _loss(self, weight):
        from lstmzoo.nn import CrossEntropyLoss
        return CrossEntropyLoss(weight=weight)

    def probabilities(self, model, split, hp):
        return softmax(self._outputs(model, split, hp))

    def prediction_rows(self, model, split, hp, fitted):
        probabilities = self.probabilities(model, split, hp)
        classes = fitted["classes"]
        return {"id": np.arange(len(split)), "label": np.asarray(classes)[probabilities.argmax(axis=1)],
                **{f"p_{name}": probabilities[:, k] for k, name in enumerate(classes)}}

    def validate(self, model, data, hp):
        from lstmzoo.metrics import accuracy
        predicted = self.probabilities(model, data.val, hp).argmax(axis=1)
        return {"val_accuracy": accuracy(data.val.y, predicted)}

    def evaluate(self, model, data, hp, out_dir=None):
        predicted = self.probabilities(model, data.test, hp).argmax(axis=1)
        metrics = classification_metrics(self.name, data.test.y, predicted, data.fitted["classes"], out_dir)
        return {**metrics, **self.baseline(data, hp)}

    def baseline(self, data, hp):
        """The majority class's accuracy and 1-NN's (Euclidean, each case resampled to a common length)."""
        from lstmzoo.metrics import accuracy
        majority = np.bincount(data.train.y, minlength=hp["output_size"]).argmax()
        train_x, test_x = resampled(data.train), resampled(data.test)
        closest = nearest(train_x, test_x)
        return {"majority_accuracy": accuracy(data.test.y, np.full(len(data.test), majority)),
                "knn1_accuracy": accuracy(data.test.y, data.train.y[closest])}

    def target(self, metrics):
        return ("accuracy above the majority class's and 1-NN's",
                metrics["accuracy"] > max(metrics["majority_accuracy"], metrics["knn1_accuracy"]))


class SequenceRegressionTask(SequenceTask):
    name = "sequence-regression"
    kind = "regression"
    application = "sequence-regression"
    summary = "predict a number from each of your sequences: a .ts (@targetLabel), .npz or long .csv file"
    formats = ("the UEA/UCR .ts regression format (@targetLabel true), an .npz with X [N, T, C] or [N, T], y [N] "
               "(numbers) and optional lengths [N], or a long .csv (or .tsv), one row per time step: id, feature "
               "columns, label (the number), rows in time order within an id (other names: id_column=, "
               "label_column=)")
    monitor = "val_rmse"
    mode = "min"

    def _loss(self, weight):
        from lstmzoo.nn import MSELoss
        return MSELoss()

    def predictions(self, model, split, hp, fitted):
        return self._outputs(model, split, hp)[:, 0] * fitted["target_std"] + fitted["target_mean"]

    def prediction_rows(self, model, split, hp, fitted):
        return {"id": np.arange(len(split)), "prediction": self.predictions(model, split, hp, fitted)}

    def validate(self, model, data, hp):
        from lstmzoo.metrics import rmse
        return {"val_rmse": rmse(data.val.y, self.predictions(model, data.val, hp, data.fitted))}

    def evaluate(self, model, data, hp, out_dir=None):
        from lstmzoo.metrics import mae, r2, rmse
        predicted = self.predictions(model, data.test, hp, data.fitted)
        return {"rmse": rmse(data.test.y, predicted), "mae": mae(data.test.y, predicted),
                "r2": r2(data.test.y, predicted), **self.baseline(data, hp)}

    def baseline(self, data, hp):
        from lstmzoo.metrics import rmse
        return {"mean_rmse": rmse(data.test.y, np.full(len(data.test), data.fitted["target_mean"]))}

    def target(self, metrics):
        return ("rmse below the training mean's", metrics["rmse"] < metrics["mean_rmse"])
