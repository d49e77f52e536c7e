"""The metrics the tasks report, one definition each (NumPy arrays in, Python floats out).

Classification: ``accuracy``, ``macro_f1`` (scikit-learn's ``f1_score(average="macro")``: the unweighted mean
of each class's F1 over the classes that occur in the labels or the predictions), ``confusion_matrix``.
Regression: ``rmse``, ``mae``, ``r2`` (scikit-learn's ``r2_score``, including its convention for a constant
target). Forecasting, per series, as in the M4 competition (Makridakis et al. 2020): ``mase`` scales the mean
absolute error by the in-sample mean absolute error of the seasonal naive forecast, ``smape`` is
200/h * sum |y - f| / (|y| + |f|) in percent (a term with y = f = 0 counts 0); a task averages them over series.

Which way each metric the tasks and the zoo report improves: ``HIGHER_IS_BETTER`` and ``LOWER_IS_BETTER``, read
by ``higher_is_better`` (the default ``Recipe.target`` compares its anchor's metric the right way with them).
"""

import numpy as np

HIGHER_IS_BETTER = frozenset({"accuracy", "macro_f1", "r2", "bleu", "bleu_cased", "both_right"})
LOWER_IS_BETTER = frozenset({"rmse", "mae", "mase", "smape", "loss", "bce_per_video", "character_error_rate",
                             "digit_error_rate"})


def higher_is_better(name):
    """True for a metric of ``HIGHER_IS_BETTER``, False for one of ``LOWER_IS_BETTER``; ValueError for another
    name (whose direction nobody stated)."""
    if name in HIGHER_IS_BETTER:
        return True
    if name in LOWER_IS_BETTER:
        return False
    raise ValueError(f"lstmzoo.metrics does not say whether a higher or a lower {name!r} is better (it knows "
                     f"{', '.join(sorted(HIGHER_IS_BETTER | LOWER_IS_BETTER))})")


def _pair(actual, predicted):
    actual, predicted = np.asarray(actual), np.asarray(predicted)
    if actual.shape != predicted.shape:
        raise ValueError(f"actual and predicted values differ in shape: {actual.shape} and {predicted.shape}")
    if actual.size == 0:
        raise ValueError("a metric needs at least one value")
    return actual, predicted


# ------------------------------------------------------------------------------------------ classification
def accuracy(labels, predicted):
    labels, predicted = _pair(labels, predicted)
    return float(np.mean(labels == predicted))


def confusion_matrix(labels, predicted, num_classes):
    """``[num_classes, num_classes]`` counts of integer class indices: row = true class, column = predicted."""
    labels, predicted = _pair(labels, predicted)
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels.astype(np.int64), predicted.astype(np.int64)), 1)
    return matrix


def macro_f1(labels, predicted):
    """The mean over the classes present in ``labels`` or ``predicted`` of F1 = 2 TP / (2 TP + FP + FN)."""
    labels, predicted = _pair(labels, predicted)
    classes, indices = np.unique(np.concatenate([labels, predicted]), return_inverse=True)
    matrix = confusion_matrix(indices[:labels.size], indices[labels.size:], len(classes)).astype(np.float64)
    true_positive = np.diag(matrix)
    f1 = 2 * true_positive / (matrix.sum(axis=0) + matrix.sum(axis=1))     # 2 TP + FP + FN > 0 for every class
    return float(f1.mean())


# ---------------------------------------------------------------------------------------------- regression
def rmse(actual, predicted):
    actual, predicted = _pair(actual, predicted)
    return float(np.sqrt(np.mean((np.asarray(actual, np.float64) - predicted) ** 2)))


def mae(actual, predicted):
    actual, predicted = _pair(actual, predicted)
    return float(np.mean(np.abs(np.asarray(actual, np.float64) - predicted)))


def r2(actual, predicted):
    """1 - SS_res / SS_tot; for a constant ``actual``: 1.0 when the prediction is exact, else 0.0."""
    actual, predicted = _pair(actual, predicted)
    actual = np.asarray(actual, np.float64)
    residual = float(np.sum((actual - predicted) ** 2))
    total = float(np.sum((actual - actual.mean()) ** 2))
    if total == 0:
        return 1.0 if residual == 0 else 0.0
    return 1.0 - residual / total


# --------------------------------------------------------------------------------------------- forecasting
def seasonal_naive_scale(history, season):
    """The in-sample mean absolute error of the seasonal naive forecast (``season`` steps back; 1 = naive) on
    ``history``: MASE's denominator. ValueError when the history has no more than ``season`` values."""
    history = np.asarray(history, np.float64)
    if history.size <= season:
        raise ValueError(f"MASE with season {season} needs more than {season} past values, got {history.size}")
    return float(np.mean(np.abs(history[season:] - history[:-season])))


def mase(actual, forecast, history, season):
    """Mean absolute scaled error of one series' ``forecast``: its MAE over ``seasonal_naive_scale(history)``
    (infinite when the history is constant at that lag and the forecast is not exact, as in M4)."""
    actual, forecast = _pair(actual, forecast)
    error = mae(actual, forecast)
    scale = seasonal_naive_scale(history, season)
    if scale == 0:
        return 0.0 if error == 0 else float("inf")
    return error / scale


def smape(actual, forecast):
    """Symmetric mean absolute percentage error of one series' ``forecast``, in percent (0 to 200)."""
    actual, forecast = _pair(actual, forecast)
    actual = np.asarray(actual, np.float64)
    denominator = np.abs(actual) + np.abs(forecast)
    terms = np.divide(np.abs(actual - forecast), denominator, out=np.zeros_like(actual), where=denominator > 0)
    return float(200.0 * terms.mean())
