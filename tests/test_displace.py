"""Per-sample displacement (lstmzoo.nn.displace): the Numba kernels against the NumPy reference, the reference
against exact shifts and finite differences, and the errors for bad shapes."""

import numpy as np
import pytest
from helpers import numeric_gradient

from lstmzoo.nn.displace import displace, displace_backward, displace_backward_reference, displace_reference


def _inputs(rng, count, height, width, size, dtype):
    return (rng.random((count, height, width)).astype(dtype), rng.random((count, size, size)).astype(dtype),
            rng.standard_normal((count, height, width)).astype(dtype))


@pytest.mark.parametrize("dtype, tolerance", [(np.float64, 1e-12), (np.float32, 2e-5)])
@pytest.mark.parametrize("shape, size", [((3, 7, 5), 3), ((2, 16, 20), 9), ((1, 4, 4), 5), ((2, 6, 6), 1)])
def test_kernels_match_reference(shape, size, dtype, tolerance):
    x, kernels, dy = _inputs(np.random.default_rng(size), *shape, size, dtype)
    np.testing.assert_allclose(displace(x, kernels), displace_reference(x, kernels), rtol=tolerance, atol=tolerance)
    for fast, slow in zip(displace_backward(x, kernels, dy), displace_backward_reference(x, kernels, dy)):
        assert fast.dtype == dtype
        np.testing.assert_allclose(fast, slow, rtol=tolerance, atol=tolerance * np.abs(slow).max())


@pytest.mark.parametrize("dy, dx", [(0, 0), (2, -1), (-3, 3), (1, 0)])
def test_one_hot_kernel_moves_the_image(dy, dx):
    rng = np.random.default_rng(0)
    x = rng.random((2, 9, 8))
    kernels = np.zeros((2, 7, 7))
    kernels[:, 3 + dy, 3 + dx] = 1
    expected = np.zeros_like(x)
    expected[:, max(dy, 0):9 + min(dy, 0), max(dx, 0):8 + min(dx, 0)] = \
        x[:, max(-dy, 0):9 - max(dy, 0), max(-dx, 0):8 - max(dx, 0)]
    for moved in (displace(x, kernels), displace_reference(x, kernels)):
        np.testing.assert_array_equal(moved, expected)


def test_reference_gradients_match_finite_differences():
    """The loss is linear in x and in the kernels, so central differences have no truncation error at any step;
    what is left is rounding noise, ulp(loss) / step, whose size depends on the CPU's summation order. A step of
    1e-3 keeps it near 1e-12, far below atol (with the default 1e-6 it used 0.74 of the tolerance)."""
    x, kernels, dy = _inputs(np.random.default_rng(5), 2, 5, 6, 3, np.float64)

    def loss():
        return float((dy * displace_reference(x, kernels)).sum())

    dx, dkernels = displace_backward_reference(x, kernels, dy)
    np.testing.assert_allclose(dx, numeric_gradient(loss, x, eps=1e-3), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(dkernels, numeric_gradient(loss, kernels, eps=1e-3), rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("x_shape, kernel_shape", [((2, 5, 5), (2, 4, 4)), ((2, 5, 5), (3, 3, 3)),
                                                   ((5, 5), (1, 3, 3)), ((2, 5, 5), (2, 3, 5)),
                                                   ((2, 0, 5), (2, 3, 3))])
def test_bad_shapes_are_refused(x_shape, kernel_shape):
    with pytest.raises(ValueError, match="displace needs"):
        displace(np.zeros(x_shape), np.zeros(kernel_shape))
    with pytest.raises(ValueError, match="displace needs"):
        displace_reference(np.zeros(x_shape), np.zeros(kernel_shape))


def test_mixed_dtypes_are_refused():
    with pytest.raises(ValueError, match="float32"):
        displace(np.zeros((1, 4, 4)), np.zeros((1, 3, 3), dtype=np.float32))
