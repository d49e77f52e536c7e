"""BCEWithLogitsLoss: against a plain NumPy formula and PyTorch, finite differences, extreme logits."""

import numpy as np
import pytest
from helpers import numeric_gradient

from lstmzoo.nn import BCEWithLogitsLoss


def reference(logits, target, reduction):
    """The textbook formula through the sigmoid, in float64 (fine for moderate logits)."""
    p = 1 / (1 + np.exp(-logits.astype(np.float64)))
    losses = -(target * np.log(p) + (1 - target) * np.log(1 - p))
    grad = p - target
    if reduction == "mean":
        return losses.mean(), grad / losses.size
    return losses.sum(), grad


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_the_formula_and_torch(reduction, dtype):
    rng = np.random.default_rng(1)
    logits = (3 * rng.standard_normal((4, 3, 5))).astype(dtype)
    target = rng.random((4, 3, 5)).astype(dtype)      # soft targets, like pixel values in [0, 1]
    target[0] = rng.integers(0, 2, (3, 5))
    loss = BCEWithLogitsLoss(reduction)
    value = loss(logits, target)
    grad = loss.backward()
    expected, expected_grad = reference(logits, target, reduction)
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    assert value == pytest.approx(expected, rel=tolerance)
    assert grad.dtype == dtype and grad.shape == logits.shape
    np.testing.assert_allclose(grad, expected_grad, rtol=tolerance, atol=tolerance * 1e-3)

    torch = pytest.importorskip("torch")
    z = torch.tensor(logits, requires_grad=True)
    torch_loss = torch.nn.functional.binary_cross_entropy_with_logits(z, torch.tensor(target), reduction=reduction)
    torch_loss.backward()
    assert value == pytest.approx(torch_loss.item(), rel=tolerance)
    np.testing.assert_allclose(grad, z.grad.numpy(), rtol=tolerance, atol=tolerance * 1e-3)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_gradient_matches_finite_differences(reduction):
    rng = np.random.default_rng(2)
    logits = 2 * rng.standard_normal((3, 4))
    target = rng.random((3, 4))
    loss = BCEWithLogitsLoss(reduction)
    loss(logits, target)
    analytic = loss.backward()
    numeric = numeric_gradient(lambda: BCEWithLogitsLoss(reduction)(logits, target), logits)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_extreme_logits_stay_finite(dtype):
    logits = np.array([-1e4, -800.0, -50.0, 0.0, 50.0, 800.0, 1e4], dtype=dtype)
    loss = BCEWithLogitsLoss("sum")
    with np.errstate(over="raise", invalid="raise", divide="raise"):     # underflow to 0 is harmless
        right = loss(logits, (logits > 0).astype(dtype))
        right_grad = loss.backward()
        wrong = loss(logits, (logits <= 0).astype(dtype))
        wrong_grad = loss.backward()
    # Confidently right costs about nothing; confidently wrong costs |z| (and 0.69 at z = 0 either way).
    assert right == pytest.approx(np.log(2), rel=1e-6)
    assert wrong == pytest.approx(np.abs(logits).sum() + np.log(2), rel=1e-6)
    assert np.isfinite(right_grad).all() and np.isfinite(wrong_grad).all()
    np.testing.assert_allclose(np.abs(wrong_grad)[[0, 1, 5, 6]], 1, rtol=1e-6)
    assert wrong_grad[3] == pytest.approx(-0.5)


def test_refuses_a_target_of_another_shape():
    with pytest.raises(ValueError, match="no broadcasting"):
        BCEWithLogitsLoss()(np.zeros((2, 3)), np.zeros(3))
    with pytest.raises(ValueError, match="reduction"):
        BCEWithLogitsLoss("none")
