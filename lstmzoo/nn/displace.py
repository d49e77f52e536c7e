"""Per-sample displacement kernels: every image moved by its own weighted mix of small shifts.

This is the transformation of Finn et al. 2016's CDNA video predictor: a network predicts, for each image, an
``S x S`` kernel of weights (a softmax, so the weights are positive and sum to one), and the image is moved
by every shift ``(dy, dx)`` with ``|dy|, |dx| <= S // 2`` at once, each copy weighted by the kernel's entry:

    y[n, i, j] = sum over a, b of kernels[n, a, b] * x[n, i - (a - r), j - (b - r)],   r = S // 2,

with zeros outside the image, so ``kernels[n, r + dy, r + dx]`` is the weight of moving the content ``dy``
rows down and ``dx`` columns right. A one-hot kernel moves the image exactly; a spread one blurs it.

``displace_reference`` and ``displace_backward_reference`` are the plain array specification (NumPy, or CuPy
on a GPU); ``displace`` and ``displace_backward`` run the Numba twin in ``lstmzoo.kernels.displace`` on NumPy
arrays (the tests hold them together, and the backward to finite differences).
"""

from ..array import array_module


def _check(x, kernels):
    if x.ndim != 3 or kernels.ndim != 3 or kernels.shape[0] != x.shape[0] or kernels.shape[1] != kernels.shape[2] \
            or kernels.shape[1] % 2 == 0 or 0 in x.shape[1:]:
        raise ValueError(f"displace needs images [N, H, W] (H, W >= 1) and square kernels [N, S, S] with S odd, "
                         f"got {tuple(x.shape)} and {tuple(kernels.shape)}")
    if kernels.dtype != x.dtype:
        raise ValueError(f"images are {x.dtype} but kernels are {kernels.dtype}")


def _spans(size, shift):
    """The output rows (or columns) ``[lo, hi)`` whose source ``index - shift`` lies inside ``[0, size)``."""
    return max(0, shift), min(size, size + shift)


def displace_reference(x, kernels):
    """``y [N, H, W]``: each image ``x[n]`` moved by its kernel ``kernels[n]`` (see the module docstring)."""
    _check(x, kernels)
    xp = array_module(x)
    _, height, width = x.shape
    r = kernels.shape[1] // 2
    y = xp.zeros_like(x)
    for a in range(kernels.shape[1]):
        for b in range(kernels.shape[2]):
            dy, dx = a - r, b - r
            (i0, i1), (j0, j1) = _spans(height, dy), _spans(width, dx)
            y[:, i0:i1, j0:j1] += kernels[:, a, b, None, None] * x[:, i0 - dy:i1 - dy, j0 - dx:j1 - dx]
    return y


def displace_backward_reference(x, kernels, dy_out):
    """``(dx, dkernels)``: the gradients of ``sum(dy_out * displace(x, kernels))`` with respect to ``x`` and
    ``kernels``. Moving the gradient back is the same transform with the shifts reversed."""
    _check(x, kernels)
    xp = array_module(x)
    _, height, width = x.shape
    r = kernels.shape[1] // 2
    dx_in = xp.zeros_like(x)
    dkernels = xp.zeros_like(kernels)
    for a in range(kernels.shape[1]):
        for b in range(kernels.shape[2]):
            dy, dx = a - r, b - r
            (i0, i1), (j0, j1) = _spans(height, dy), _spans(width, dx)
            out = dy_out[:, i0:i1, j0:j1]
            dx_in[:, i0 - dy:i1 - dy, j0 - dx:j1 - dx] += kernels[:, a, b, None, None] * out
            dkernels[:, a, b] = (out * x[:, i0 - dy:i1 - dy, j0 - dx:j1 - dx]).sum(axis=(1, 2))
    return dx_in, dkernels


def displace(x, kernels):
    """``displace_reference``, by the Numba kernel for NumPy arrays."""
    if array_module(x) is not array_module(kernels):
        raise ValueError("images and kernels must both be NumPy or both CuPy arrays")
    if array_module(x).__name__ != "numpy":
        return displace_reference(x, kernels)
    from ..kernels import displace as kernel  # imports Numba, so only when a displacement is computed
    _check(x, kernels)
    return kernel.displace(x, kernels)


def displace_backward(x, kernels, dy_out):
    """``displace_backward_reference``, by the Numba kernel for NumPy arrays."""
    if array_module(x).__name__ != "numpy":
        return displace_backward_reference(x, kernels, dy_out)
    from ..kernels import displace as kernel
    _check(x, kernels)
    if dy_out.shape != x.shape:
        raise ValueError(f"the output gradient has shape {tuple(dy_out.shape)}, the images {tuple(x.shape)}")
    return kernel.displace_backward(x, kernels, dy_out)
