"""Unfold (im2col, channels last): against a direct loop, as a convolution, its gradient, and its errors."""

import numpy as np
import pytest
from helpers import numeric_gradient

from lstmzoo.nn import Linear, Unfold


def unfold_loop(x, kh, kw, stride):
    """The reference: every window copied out pixel by pixel."""
    *lead, height, width, channels = x.shape
    rows, columns = (height - kh) // stride + 1, (width - kw) // stride + 1
    out = np.zeros((*lead, rows, columns, kh * kw * channels), dtype=x.dtype)
    for r in range(rows):
        for c in range(columns):
            for i in range(kh):
                for j in range(kw):
                    for k in range(channels):
                        out[..., r, c, (i * kw + j) * channels + k] = x[..., r * stride + i, c * stride + j, k]
    return out


@pytest.mark.parametrize("kernel, stride, shape", [(3, 1, (2, 6, 5, 2)), ((2, 3), 2, (3, 1, 7, 8, 3)),
                                                   (4, 3, (9, 9, 1)), (1, 1, (2, 3, 3, 4))])
def test_unfold_matches_the_loop(kernel, stride, shape):
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    np.testing.assert_array_equal(Unfold(kernel, stride)(x), unfold_loop(x, kh, kw, stride))


def test_unfold_then_linear_is_a_convolution():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 7, 6, 3))
    conv = Linear(2 * 2 * 3, 4, dtype="float64")
    y = conv(Unfold(2, stride=2)(x))
    kernel = conv.parameters()["weight"].reshape(4, 2, 2, 3)
    for r in range(3):
        for c in range(3):
            window = x[:, 2 * r:2 * r + 2, 2 * c:2 * c + 2, :]
            np.testing.assert_allclose(y[:, r, c], np.einsum("bijk,oijk->bo", window, kernel)
                                       + conv.parameters()["bias"])


@pytest.mark.parametrize("kernel, stride", [(3, 1), (2, 2), ((3, 2), 2)])
def test_unfold_gradient_matches_finite_differences(kernel, stride):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 6, 5, 2))
    layer = Unfold(kernel, stride)
    weights = rng.standard_normal(layer(x).shape)

    def loss():
        return float((layer(x) * weights).sum())

    loss()
    dx = layer.backward(weights)
    np.testing.assert_allclose(dx, numeric_gradient(loss, x), rtol=1e-7, atol=1e-9)


def test_unfold_errors():
    with pytest.raises(ValueError, match="kernel_size"):
        Unfold(0)
    with pytest.raises(ValueError, match="kernel_size"):
        Unfold(3, stride=0)
    with pytest.raises(ValueError, match="expected"):
        Unfold(4)(np.zeros((3, 3, 1)))
    layer = Unfold(2)
    layer(np.zeros((3, 3, 1)))
    with pytest.raises(ValueError, match="dout has shape"):
        layer.backward(np.zeros((2, 2, 3)))
    layer.eval()
    layer(np.zeros((3, 3, 1)))
    with pytest.raises(RuntimeError, match="train mode"):
        layer.backward(np.zeros((2, 2, 4)))
