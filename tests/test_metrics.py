"""lstmzoo.metrics against hand-worked values and, where installed, scikit-learn's definitions."""

import importlib.util

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lstmzoo import metrics


def test_classification_by_hand():
    labels, predicted = np.array([0, 0, 1, 2, 2, 2]), np.array([0, 1, 1, 2, 2, 0])
    assert metrics.accuracy(labels, predicted) == pytest.approx(4 / 6)
    assert metrics.confusion_matrix(labels, predicted, 3).tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    # F1: class 0: 2*1/(2+2) = 0.5; class 1: 2*1/(2+1) = 2/3; class 2: 2*2/(3+2) = 0.8
    assert metrics.macro_f1(labels, predicted) == pytest.approx((0.5 + 2 / 3 + 0.8) / 3)
    assert metrics.macro_f1(np.array(["a", "b"]), np.array(["a", "b"])) == 1.0   # string labels


def test_regression_and_forecasting_by_hand():
    actual, predicted = np.array([1.0, 2.0, 4.0]), np.array([1.0, 3.0, 2.0])
    assert metrics.rmse(actual, predicted) == pytest.approx(np.sqrt(5 / 3))
    assert metrics.mae(actual, predicted) == pytest.approx(1.0)
    assert metrics.r2(actual, predicted) == pytest.approx(1 - 5 / (14 / 3))
    assert metrics.r2(np.ones(3), np.ones(3)) == 1.0 and metrics.r2(np.ones(3), np.zeros(3)) == 0.0
    history = np.array([1.0, 2.0, 3.0, 5.0, 4.0, 6.0])            # season 2: |3-1|,|5-2|,|4-3|,|6-5| -> 7/4
    assert metrics.mase(np.array([6.0, 8.0]), np.array([7.0, 8.0]), history, 2) == pytest.approx(0.5 / 1.75)
    assert metrics.smape(np.array([100.0, 0.0]), np.array([110.0, 0.0])) == pytest.approx(100 * 10 / 210)
    assert metrics.mase(np.ones(2), np.ones(2), np.ones(5), 1) == 0.0
    with pytest.raises(ValueError, match="needs more than 12 past values"):
        metrics.mase(np.ones(2), np.ones(2), np.ones(12), 12)
    with pytest.raises(ValueError, match="differ in shape"):
        metrics.rmse(np.ones(2), np.ones(3))



@pytest.mark.skipif(importlib.util.find_spec("sklearn") is None,
                    reason="scikit-learn is not installed (pip install 'lstmzoo[sklearn]')")
@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=1, max_size=40),
       st.lists(st.floats(-1e3, 1e3), min_size=2, max_size=40))
def test_agrees_with_scikit_learn(pairs, values):
    import sklearn.metrics as sk
    labels, predicted = np.array(pairs).T
    assert metrics.macro_f1(labels, predicted) == pytest.approx(sk.f1_score(labels, predicted, average="macro"))
    assert metrics.accuracy(labels, predicted) == pytest.approx(sk.accuracy_score(labels, predicted))
    actual = np.array(values)
    guess = actual[::-1] * 0.5
    assert metrics.r2(actual, guess) == pytest.approx(sk.r2_score(actual, guess), abs=1e-9)
    assert metrics.mae(actual, guess) == pytest.approx(sk.mean_absolute_error(actual, guess))
