"""What the classification and regression tasks share: held-out splits, the 1-NN baseline (through
``baselines``), and the reports (a per-class table, a confusion matrix, CSV text of predictions)."""

import numpy as np

EVAL_BATCH = 256     # cases per forward pass when scoring or predicting, in every task and recipe


def batches_by_length(lengths):
    """Index arrays of the cases ``0..N-1`` in order of length (ties in case order), ``EVAL_BATCH`` at a time:
    how every task and recipe cuts its cases for scoring, so a batch pads little."""
    order = np.argsort(np.asarray(lengths), kind="stable")
    return [order[start:start + EVAL_BATCH] for start in range(0, len(order), EVAL_BATCH)]


def padded_batch(sequences, device="cpu", pad_value=0):
    """``(inputs [T_max, B, ...], lengths)``: the ``[T_i, ...]`` arrays ``sequences`` padded with ``pad_value``
    past each end (``lstmzoo.batching.pad_sequences``) and put on ``device``; ``lengths`` is a NumPy int64 array,
    what a model takes beside its inputs (nothing past a case's length reaches its result)."""
    from lstmzoo.array import device_module
    from lstmzoo.batching import pad_sequences
    padded, lengths = pad_sequences(sequences, pad_value=pad_value)
    return device_module(device).asarray(padded), lengths


def outputs_by_length(model, lengths, batch_of, output_size):
    """The model's outputs ``[N, output_size]`` for cases ``0..N-1``, run in the batches of ``batches_by_length``;
    ``batch_of(index)`` gives the model's ``(inputs, lengths)`` for those cases."""
    from lstmzoo.array import to_numpy
    out = np.empty((len(lengths), output_size))
    for index in batches_by_length(lengths):
        inputs, batch_lengths = batch_of(index)
        out[index] = to_numpy(model(inputs, lengths=batch_lengths))
    return out


def softmax(scores):
    """Class probabilities from scores ``[N, K]`` (rows shifted by their maximum first, so exp never overflows)."""
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def batch_weight(class_weight, targets):
    """What a training batch counts for in the epoch's mean loss and across data-parallel ranks: its number of
    cases, or with class weights the sum of its targets' weights (the weighted cross-entropy's denominator, so
    that ranks' partial means combine into the whole batch's)."""
    if class_weight is None:
        return len(targets)
    from lstmzoo.array import to_numpy
    return float(np.asarray(class_weight)[to_numpy(targets)].sum())


def split_indices(count, fraction, rng, labels=None):
    """(kept, held-out) sorted index arrays of ``range(count)``: ``fraction`` of the cases held out at random,
    of every class when ``labels`` are given (at least one case of each class that has two or more)."""
    if labels is None:
        held = rng.permutation(count)[:max(1, round(fraction * count))]
    else:
        parts = []
        for label in np.unique(labels):
            members = rng.permutation(np.flatnonzero(labels == label))
            parts.append(members[:max(round(fraction * len(members)), 1) if len(members) > 1 else 0])
        held = np.concatenate(parts)
    held = np.sort(held)
    return np.setdiff1d(np.arange(count), held), held


def check_parts(path, noun, hint="", **parts):
    """UserError, one sentence, when splitting ``path``'s ``noun`` (cases, texts) left one of ``parts`` (name ->
    index array, in the order training, validation, test) empty: too few to train, stop early and score."""
    empty = [name for name, index in parts.items() if len(index) == 0]
    if empty:
        from lstmzoo.errors import UserError
        count = sum(len(index) for index in parts.values())
        raise UserError(f"{path} has too few {noun} ({count}) to split into {', '.join(parts)} parts (the "
                        f"{empty[0]} part is empty); give more {noun}{hint}")


def resampled(split, length=64):
    """Each case linearly resampled to ``length`` steps and flattened ``[N, length * C]``: what 1-NN compares."""
    n, _, channels = split.X.shape
    position = np.linspace(0, 1, length)[None, :] * (split.lengths[:, None] - 1)
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, split.lengths[:, None] - 1)
    weight = (position - low)[:, :, None]
    rows = np.arange(n)[:, None]
    return ((1 - weight) * split.X[rows, low] + weight * split.X[rows, high]).reshape(n, length * channels)


def nearest(reference, queries):
    """Index of each query's nearest reference row (Euclidean): the 1-NN of ``baselines.nearest_neighbours``."""
    from .baselines import nearest_neighbours
    return nearest_neighbours(reference, queries, 1)[:, 0]


def write_per_class(path, classes, matrix):
    """A CSV of each class's support, precision, recall and F1 from the confusion matrix."""
    from lstmzoo.checkpoint import atomic_write_bytes
    true_positive = np.diag(matrix).astype(np.float64)
    predicted, actual = matrix.sum(axis=0), matrix.sum(axis=1)
    precision = np.divide(true_positive, predicted, out=np.zeros_like(true_positive), where=predicted > 0)
    recall = np.divide(true_positive, actual, out=np.zeros_like(true_positive), where=actual > 0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(total), where=total > 0)
    lines = ["class,support,precision,recall,f1"] + [
        f"{csv_field(name)},{actual[k]},{precision[k]:.4f},{recall[k]:.4f},{f1[k]:.4f}"
        for k, name in enumerate(classes)]
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode("utf-8"))


def write_confusion_matrix(path, classes, matrix):
    """The confusion matrix as CSV: a row per true class, a column per predicted class (counts), so that the run
    folder holds it without the plot extra too."""
    from lstmzoo.checkpoint import atomic_write_bytes
    lines = [",".join(["true \\ predicted", *map(csv_field, classes)])] + [
        ",".join([csv_field(name), *map(str, row)]) for name, row in zip(classes, np.asarray(matrix).tolist())]
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode("utf-8"))


CONFUSION_MATRIX = "confusion-matrix.png"
CONFUSION_TABLE = "confusion-matrix.csv"
PER_CLASS = "per-class.csv"


def classification_metrics(name, y, predicted, classes, out_dir=None):
    """``accuracy`` and ``macro_f1`` of the predicted class indices against ``y``; with ``out_dir``, the run
    folder also gets the per-class table (``per-class.csv``) and the confusion matrix (``confusion-matrix.csv``,
    and a PNG with the plot extra) - what every classification task reports."""
    from lstmzoo.metrics import accuracy, confusion_matrix, macro_f1
    metrics = {"accuracy": accuracy(y, predicted), "macro_f1": macro_f1(y, predicted)}
    if out_dir is not None:
        from pathlib import Path
        matrix = confusion_matrix(y, predicted, len(classes))
        write_per_class(Path(out_dir) / PER_CLASS, classes, matrix)
        write_confusion_matrix(Path(out_dir) / CONFUSION_TABLE, classes, matrix)
        draw_confusion_matrix(Path(out_dir) / CONFUSION_MATRIX, matrix, classes,
                              f"{name}: test accuracy {metrics['accuracy']:.2%} ({len(y)} items)")
    return metrics


def json_columns(columns):
    """The columns (name -> array) as lists of plain Python values, for ``predict --json``."""
    return {name: np.asarray(values).tolist() for name, values in columns.items()}


def csv_text(columns):
    """CSV text of equal-length columns (a dict of name -> array): a header line, then a row per entry."""
    names = list(columns)
    cells = [[_number(v) if isinstance(v, (float, np.floating)) else csv_field(v) for v in columns[name]]
             for name in names]
    return "\n".join([",".join(map(csv_field, names)), *(",".join(row) for row in zip(*cells))]) + "\n"


def _number(value):
    """A float for the CSV: 6 significant digits, but every digit before the point of a value of a million or more
    (a forecast of sales, 1593312.4, is 1593312 rather than 1.59331e+06, which a spreadsheet reads 12 off)."""
    return f"{value:.6g}" if not abs(value) >= 999_999.5 or not np.isfinite(value) else f"{value:.0f}"


def csv_field(text):
    text = str(text)
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\n') else text


def draw_confusion_matrix(path, matrix, class_names, title):
    from lstmzoo.plots import draw_figure
    size = 2.5 + 0.45 * len(class_names)

    def draw(figure):
        ax = figure.subplots()
        ax.imshow(matrix, cmap="Blues")
        threshold = matrix.max() / 2 if matrix.size else 0
        for (row, column), count in np.ndenumerate(matrix):
            if count:
                ax.text(column, row, str(count), ha="center", va="center", fontsize=8,
                        color="white" if count > threshold else "black")
        ticks = np.arange(len(class_names))
        ax.set_xticks(ticks, class_names, rotation=45, ha="right")
        ax.set_yticks(ticks, class_names)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(title)

    return draw_figure(path, draw, figsize=(size, size))
