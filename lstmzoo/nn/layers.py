"""Feed-forward layers with explicit backward: Linear, Embedding, Dropout, ReLU, Tanh, Unfold and Sequential.

Names, shapes and initialisation follow PyTorch (``weight`` ``[out, in]``, ``bias``). Every layer keeps what
its backward needs only when it runs in train mode; ``backward`` after an eval-mode forward raises.
``backward(dout)`` returns the gradient with respect to the input and accumulates (``+=``) parameter
gradients into ``grads()``.
"""

import math

import numpy as np

from .. import random as lz_random
from ..array import array_module, device_module
from ..errors import NonFiniteError  # noqa: F401 - raised by check_array, importable from here too
from .module import Module


def require_cache(module):
    """What ``module``'s last train-mode forward saved for backward, or a clear error."""
    if module._cache is None:
        raise RuntimeError(
            f"{type(module).__name__}.backward needs a forward pass in train mode first: the last "
            f"forward ran in eval mode, or its backward already ran (call .train() and forward again)"
        )
    return module._cache


def check_array(name, value, dtype, xp, shape=None, finite=False):
    """Raise ValueError unless ``value`` is an ``xp`` array of ``dtype`` (and ``shape``, and finite)."""
    if not hasattr(value, "shape") or not hasattr(value, "dtype"):
        raise ValueError(f"{name} must be an array, got {type(value).__name__}")
    if array_module(value) is not xp:
        raise ValueError(
            f"{name} is a {type(value).__module__} array but the layer works on {xp.__name__} arrays"
        )
    if value.dtype != dtype:
        raise ValueError(
            f"{name} has dtype {value.dtype} but the layer is {dtype}; layers do not cast, "
            f"convert with .astype({str(dtype)!r})"
        )
    if shape is not None and value.shape != shape and tuple(value.shape) != tuple(shape):
        raise ValueError(f"{name} has shape {tuple(value.shape)}, expected {tuple(shape)}")
    if finite and not bool(xp.isfinite(value).all()):
        raise NonFiniteError(f"{name} contains NaN or inf")


def check_dtype(dtype):
    if str(np.dtype(dtype)) not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return np.dtype(dtype)


def softmax(z, axis=-1):
    """``exp(z) / sum(exp(z))`` along ``axis``, shifted by the maximum so nothing overflows."""
    xp = array_module(z)
    e = xp.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def softmax_backward(p, dp, axis=-1):
    """The gradient with respect to the scores of a softmax ``p`` along ``axis``, given ``dp`` for ``p``."""
    return p * (dp - (dp * p).sum(axis=axis, keepdims=True))


def dropout_mask(generator, shape, p, dtype, xp, batch_axis=None):
    """Inverted-dropout mask: 0 with probability ``p``, else ``1 / (1 - p)`` (all zeros when p == 1).

    The batch runs along ``batch_axis``; by default axis 1 of a time-major 3-D ``shape`` ``[T, B, F]`` and axis 0
    otherwise (``[B, F]``): under data-parallel training the mask is drawn for the global batch and sliced
    (``lstmzoo.random.random_for_batch``)."""
    if batch_axis is None:
        batch_axis = 1 if len(shape) >= 3 else 0
    mask = (lz_random.random_for_batch(generator, shape, batch_axis=batch_axis) >= p).astype(dtype)
    mask *= np.asarray(0.0 if p >= 1 else 1.0 / (1.0 - p), dtype=dtype)   # in place: one array fewer
    return xp.asarray(mask)


class DeviceModule(Module):
    """A module whose parameters have one dtype and live on one device ("cpu" or "cuda").

    ``xp`` (NumPy or CuPy) is looked up rather than stored so that modules stay deep-copyable.
    """

    def __init__(self, dtype, device):
        super().__init__()
        self.dtype = check_dtype(dtype)
        self.device = device
        device_module(device)  # fail now, in one sentence, when the device is unusable

    @property
    def xp(self):
        return device_module(self.device)


class Linear(DeviceModule):
    """``y = x W^T + b`` over the last dimension; any leading dimensions."""

    def __init__(self, in_features, out_features, bias=True, dtype="float32", device="cpu", rng=None):
        super().__init__(dtype, device)
        self.in_features, self.out_features = int(in_features), int(out_features)
        generator = rng if rng is not None else lz_random.rng()
        # PyTorch's kaiming_uniform_(a=sqrt(5)) for the weight reduces to the same bound as the bias.
        bound = 1.0 / math.sqrt(self.in_features) if self.in_features else 0.0
        self.add_parameter(
            "weight",
            self.xp.asarray(
                generator.uniform(-bound, bound, (self.out_features, self.in_features)).astype(self.dtype)
            ),
        )
        if bias:
            self.add_parameter(
                "bias",
                self.xp.asarray(generator.uniform(-bound, bound, self.out_features).astype(self.dtype)),
            )
        self._cache = None

    def forward(self, x):
        check_array("x", x, self.dtype, self.xp)
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"x has shape {tuple(x.shape)}, expected [..., {self.in_features}] (in_features last)"
            )
        self._cache = x if self.training else None
        # One 2-D GEMM: NumPy multiplies an N-D array by a matrix one small slice at a time, up to 5x slower.
        flat, weight, bias = x.reshape(-1, self.in_features), self._params["weight"], self._params.get("bias")
        if self.xp is np:  # on the kernels' threads where large (kernels.cpu.dense_forward says why)
            from ..kernels.cpu import dense_forward
            return dense_forward(flat, weight, bias).reshape(x.shape[:-1] + (self.out_features,))
        y = (flat @ weight.T).reshape(x.shape[:-1] + (self.out_features,))
        return y if bias is None else y + bias

    def backward(self, dout):
        x = require_cache(self)
        check_array("dout", dout, self.dtype, self.xp, x.shape[:-1] + (self.out_features,))
        flat_x, flat_d = x.reshape(-1, self.in_features), dout.reshape(-1, self.out_features)
        self._cache = None
        if self.xp is np:
            from ..kernels.cpu import dense_backward
            dx, dweight, dbias = dense_backward(flat_d, flat_x, self._params["weight"], "bias" in self._grads)
            self._grads["weight"] += dweight
            if dbias is not None:
                self._grads["bias"] += dbias
            return dx.reshape(x.shape)
        self._grads["weight"] += flat_d.T @ flat_x
        if "bias" in self._grads:
            self._grads["bias"] += flat_d.sum(axis=0)
        return (flat_d @ self._params["weight"]).reshape(x.shape)

    def extra_repr(self):
        return f"{self.in_features}, {self.out_features}, bias={'bias' in self._params}"


class Embedding(DeviceModule):
    """Rows of ``weight`` ``[num_embeddings, embedding_dim]`` picked by integer indices of any shape.

    Initialised N(0, 1) like PyTorch; the ``padding_idx`` row (negative counts from the end) starts at zero
    and never receives a gradient. ``backward`` returns None: integer indices have no gradient.
    """

    def __init__(
        self, num_embeddings, embedding_dim, padding_idx=None, dtype="float32", device="cpu", rng=None
    ):
        super().__init__(dtype, device)
        self.num_embeddings, self.embedding_dim = int(num_embeddings), int(embedding_dim)
        if padding_idx is not None:
            if not -self.num_embeddings <= padding_idx < self.num_embeddings:
                raise ValueError(
                    f"padding_idx must be in [-{num_embeddings}, {num_embeddings}), got {padding_idx}"
                )
            padding_idx %= self.num_embeddings
        self.padding_idx = padding_idx
        generator = rng if rng is not None else lz_random.rng()
        weight = generator.standard_normal((self.num_embeddings, self.embedding_dim)).astype(self.dtype)
        if padding_idx is not None:
            weight[padding_idx] = 0
        self.add_parameter("weight", self.xp.asarray(weight))
        self._cache = None

    def forward(self, indices):
        if (
            not hasattr(indices, "dtype")
            or indices.dtype == bool
            or not np.issubdtype(indices.dtype, np.integer)
        ):
            raise ValueError(
                f"indices must be an integer array, got {getattr(indices, 'dtype', type(indices))}"
            )
        if indices.size and (int(indices.min()) < 0 or int(indices.max()) >= self.num_embeddings):
            raise ValueError(
                f"indices must be in 0..{self.num_embeddings - 1}, got values from "
                f"{int(indices.min())} to {int(indices.max())}"
            )
        indices = self.xp.asarray(indices)
        self._cache = indices if self.training else None
        return self._params["weight"][indices]

    def backward(self, dout):
        indices = require_cache(self)
        check_array("dout", dout, self.dtype, self.xp, indices.shape + (self.embedding_dim,))
        rows, grads = indices.reshape(-1), dout.reshape(-1, self.embedding_dim)
        if self.padding_idx is not None:
            keep = rows != self.padding_idx
            rows, grads = rows[keep], grads[keep]
        self.xp.add.at(self._grads["weight"], rows, grads)  # repeated indices must add up
        self._cache = None
        return None

    def extra_repr(self):
        return f"{self.num_embeddings}, {self.embedding_dim}, padding_idx={self.padding_idx}"


class Dropout(Module):
    """Inverted dropout: in train mode zero each element with probability ``p`` and scale the rest by
    ``1 / (1 - p)``; identity in eval mode. Draws from ``lstmzoo.random.rng()`` unless ``rng`` is given.
    ``batch_axis`` is the input's axis over the batch's items (default: 1 of a 3-D input, 0 otherwise)."""

    def __init__(self, p=0.5, rng=None, batch_axis=None):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p!r}")
        self.p, self._rng, self._cache, self.batch_axis = float(p), rng, None, batch_axis

    def forward(self, x):
        if not self.training:
            self._cache = None
            return x
        generator = self._rng if self._rng is not None else lz_random.rng()
        mask = (dropout_mask(generator, x.shape, self.p, x.dtype, array_module(x), self.batch_axis) if self.p > 0
                else None)
        self._cache = (mask,)
        return x if mask is None else x * mask

    def backward(self, dout):
        (mask,) = require_cache(self)
        self._cache = None
        if mask is None:
            return dout
        check_array("dout", dout, mask.dtype, array_module(mask), mask.shape)
        return dout * mask

    def extra_repr(self):
        return f"p={self.p}"


class _Activation(Module):
    """Elementwise function whose derivative is a function of its output (so only the output is kept)."""

    def __init__(self):
        super().__init__()
        self._cache = None

    def forward(self, x):
        y = self.function(x)
        self._cache = y if self.training else None
        return y

    def backward(self, dout):
        y = require_cache(self)
        if tuple(dout.shape) != tuple(y.shape):
            raise ValueError(f"dout has shape {tuple(dout.shape)}, expected {tuple(y.shape)}")
        self._cache = None
        return dout * self.derivative_from_output(y)


class ReLU(_Activation):
    @staticmethod
    def function(x):
        return array_module(x).maximum(x, 0)

    @staticmethod
    def derivative_from_output(y):
        return (y > 0).astype(y.dtype)


class Tanh(_Activation):
    @staticmethod
    def function(x):
        return array_module(x).tanh(x)

    @staticmethod
    def derivative_from_output(y):
        return 1 - y * y


class Unfold(Module):
    """Im2col on channels-last images: ``[..., H, W, C] -> [..., H', W', kh * kw * C]``, every ``kh`` x ``kw``
    window ``stride`` pixels apart (no padding, so ``H' = (H - kh) // stride + 1``), flattened in
    (row, column, channel) order. ``Unfold`` then ``Linear`` is a convolution; unlike PyTorch's ``nn.Unfold``
    the channels stay last, where ``Linear`` reads them."""

    def __init__(self, kernel_size, stride=1):
        super().__init__()
        kernel = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        if len(kernel) != 2 or min(kernel) < 1 or int(stride) < 1:
            raise ValueError(f"kernel_size must be one or two positive integers and stride positive, got "
                             f"{kernel_size!r} and {stride!r}")
        self.kernel_size, self.stride = tuple(int(k) for k in kernel), int(stride)
        self._cache = None

    def _windows(self, shape):
        """The output's ``(rows, columns)`` and, per kernel offset, the input slice it reads."""
        (kh, kw), s = self.kernel_size, self.stride
        height, width = shape[-3], shape[-2]
        rows, columns = (height - kh) // s + 1, (width - kw) // s + 1
        return (rows, columns), [(Ellipsis, slice(i, i + s * (rows - 1) + 1, s),
                                  slice(j, j + s * (columns - 1) + 1, s), slice(None))
                                 for i in range(kh) for j in range(kw)]

    def forward(self, x):
        if x.ndim < 3 or x.shape[-3] < self.kernel_size[0] or x.shape[-2] < self.kernel_size[1]:
            raise ValueError(f"x has shape {tuple(x.shape)}, expected [..., H, W, C] with H, W at least "
                             f"{self.kernel_size}")
        (rows, columns), windows = self._windows(x.shape)
        self._cache = x.shape if self.training else None
        cols = array_module(x).stack([x[window] for window in windows], axis=-2)
        return cols.reshape(x.shape[:-3] + (rows, columns, len(windows) * x.shape[-1]))

    def backward(self, dout):
        shape = require_cache(self)
        (rows, columns), windows = self._windows(shape)
        expected = tuple(shape[:-3]) + (rows, columns, len(windows) * shape[-1])
        if tuple(dout.shape) != expected:
            raise ValueError(f"dout has shape {tuple(dout.shape)}, expected {expected}")
        self._cache = None
        dcols = dout.reshape(expected[:-1] + (len(windows), shape[-1]))
        dx = array_module(dout).zeros(shape, dtype=dout.dtype)
        # Overlapping windows read the same pixel, so their gradients add up.
        for index, window in enumerate(windows):
            dx[window] += dcols[..., index, :]
        return dx

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}"


class Sequential(Module):
    """Chains single-input, single-output modules; children are named "0", "1", ... like PyTorch's."""

    def __init__(self, *modules):
        super().__init__()
        for index, module in enumerate(modules):
            if not isinstance(module, Module):
                raise ValueError(f"Sequential takes Modules, got {type(module).__name__} at position {index}")
            self.add_module(str(index), module)

    def __len__(self):
        return len(self._modules)

    def __getitem__(self, index):
        return list(self._modules.values())[index]

    def forward(self, x):
        for module in self._modules.values():
            x = module.forward(x)
        return x

    def backward(self, dout):
        for module in reversed(list(self._modules.values())):
            dout = module.backward(dout)
        return dout
