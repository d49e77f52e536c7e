"""Optimizers over a model's flat parameter/gradient buffers, with PyTorch's update formulas.

Each optimizer calls ``model.flatten()`` once and then updates the whole model in one pass per step: on NumPy
float32/float64 buffers a Numba loop (``_adam_loop``, ``_sgd_loop``) that makes, per element, exactly the float
operations of the NumPy formulas (``_adam_numpy``, ``_sgd_numpy``, the reference, also the path for CuPy arrays), in
the same order and in the buffers' dtype (NumPy computes ``array * python_float`` in the array's dtype: NEP 50), so
both give bit-identical weights; the loop only saves the temporaries and the six to ten passes over memory. ``lr``
is a plain attribute (the schedules in ``lstmzoo.schedules`` set it).

``state_dict()`` returns ``(arrays, scalars)``: NumPy arrays named for safetensors and a JSON-able dict
with the hyperparameters, the step count and the optimizer's type; ``load_state_dict(arrays, scalars)``
restores all of it (hyperparameters included, as PyTorch does), so a resumed run continues identically.
"""

import math

import numpy as np

from .array import array_module, to_numpy


class Optimizer:
    hyperparameter_names = ()  # saved in state_dict's scalars besides lr
    state_names = ()  # flat per-parameter state arrays, created on the first step

    def __init__(self, model, lr):
        if lr < 0:
            raise ValueError(f"lr must be >= 0, got {lr}")
        self.model = model
        self.params, self.grads = model.flatten()
        self.lr = float(lr)
        self.step_count = 0
        self.state = {}

    @property
    def xp(self):
        return array_module(self.params)

    def zero_grad(self):
        self.grads[...] = 0

    def step(self):
        if not self.state:
            self.state = {name: self.xp.zeros_like(self.params) for name in self.state_names}
        self.step_count += 1
        self._update()

    def _update(self):
        raise NotImplementedError

    def state_dict(self):
        arrays = {name: to_numpy(value) for name, value in self.state.items()}
        scalars = {
            "type": type(self).__name__,
            "lr": self.lr,
            "step": self.step_count,
            **{name: getattr(self, name) for name in self.hyperparameter_names},
        }
        return arrays, scalars

    def load_state_dict(self, arrays, scalars):
        if scalars.get("type") != type(self).__name__:
            raise ValueError(
                f"the state is from a {scalars.get('type')} optimizer, not {type(self).__name__}"
            )
        for name, value in arrays.items():
            if tuple(value.shape) != tuple(self.params.shape):
                raise ValueError(
                    f"optimizer state {name!r} has shape {tuple(value.shape)}, expected "
                    f"{tuple(self.params.shape)} (the model's parameter count)"
                )
        for name in self.hyperparameter_names:  # first: SGD's state arrays depend on its momentum
            value = scalars[name]
            setattr(self, name, tuple(value) if isinstance(value, list) else value)
        expected = set(self.state_names) if scalars["step"] > 0 else set()
        if set(arrays) != expected:
            raise ValueError(f"optimizer state arrays are {sorted(arrays)}, expected {sorted(expected)}")
        self.state = {name: self.xp.asarray(value, dtype=self.params.dtype) for name, value in arrays.items()}
        self.lr, self.step_count = float(scalars["lr"]), int(scalars["step"])


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum and L2 weight decay (torch.optim.SGD,
    dampening 0)."""

    hyperparameter_names = ("momentum", "weight_decay", "nesterov")

    def __init__(self, model, lr, momentum=0.0, weight_decay=0.0, nesterov=False):
        super().__init__(model, lr)
        if nesterov and momentum <= 0:
            raise ValueError("nesterov=True needs momentum > 0")
        self.momentum, self.weight_decay, self.nesterov = float(momentum), float(weight_decay), bool(nesterov)

    @property
    def state_names(self):
        return ("momentum_buffer",) if self.momentum else ()

    def _update(self):
        buffer = self.state.get("momentum_buffer")
        if _fusable(self.params, self.grads, *self.state.values()):
            cast = self.params.dtype.type
            _kernels()[1](self.params, self.grads, self.params if buffer is None else buffer,
                          bool(self.weight_decay), cast(self.weight_decay), bool(self.momentum), cast(self.momentum),
                          self.nesterov, cast(self.lr))
        else:
            _sgd_numpy(self.params, self.grads, buffer, self.lr, self.momentum, self.weight_decay, self.nesterov)


class Adam(Optimizer):
    """Adam (torch.optim.Adam, no amsgrad): ``weight_decay`` is added to the gradient (L2)."""

    hyperparameter_names = ("betas", "eps", "weight_decay")
    state_names = ("exp_avg", "exp_avg_sq")
    decoupled_weight_decay = False

    def __init__(self, model, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(model, lr)
        self.betas, self.eps, self.weight_decay = (
            (float(betas[0]), float(betas[1])),
            float(eps),
            float(weight_decay),
        )

    def _update(self):
        exp_avg, exp_avg_sq = self.state["exp_avg"], self.state["exp_avg_sq"]
        if not _fusable(self.params, self.grads, exp_avg, exp_avg_sq):
            _adam_numpy(self.params, self.grads, exp_avg, exp_avg_sq, self.lr, self.betas, self.eps,
                        self.weight_decay, self.decoupled_weight_decay, self.step_count)
            return
        # The scalars as the NumPy formulas take them: computed as Python floats, cast to the buffers' dtype.
        beta1, beta2 = self.betas
        decay = 0 if not self.weight_decay else 2 if self.decoupled_weight_decay else 1
        cast = self.params.dtype.type
        _kernels()[0](self.params, self.grads, exp_avg, exp_avg_sq, decay, cast(self.weight_decay),
                      cast(1 - self.lr * self.weight_decay), cast(1 - beta1), cast(beta2), cast(1 - beta2),
                      cast(math.sqrt(1 - beta2**self.step_count)), cast(self.eps),
                      cast(self.lr / (1 - beta1**self.step_count)))


class AdamW(Adam):
    """Adam with decoupled weight decay (torch.optim.AdamW): parameters shrink by ``lr * weight_decay``."""

    decoupled_weight_decay = True

    def __init__(self, model, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(model, lr, betas, eps, weight_decay)


def _adam_numpy(params, grads, exp_avg, exp_avg_sq, lr, betas, eps, weight_decay, decoupled, step):
    """One Adam (``decoupled``: AdamW) step in NumPy (or CuPy) whole-array operations, in place: the reference for
    ``_adam_loop`` and the path for arrays it does not take."""
    xp = array_module(params)
    beta1, beta2 = betas
    grad = grads
    if weight_decay and decoupled:
        params *= 1 - lr * weight_decay
    elif weight_decay:
        grad = grad + weight_decay * params
    exp_avg += (1 - beta1) * (grad - exp_avg)
    exp_avg_sq *= beta2
    exp_avg_sq += (1 - beta2) * grad * grad
    step_size = lr / (1 - beta1**step)
    denom = xp.sqrt(exp_avg_sq) / math.sqrt(1 - beta2**step) + eps
    params -= step_size * (exp_avg / denom)


def _sgd_numpy(params, grads, buffer, lr, momentum, weight_decay, nesterov):
    """One SGD step in whole-array operations, in place (``buffer`` None without momentum): the reference for
    ``_sgd_loop``."""
    grad = grads + weight_decay * params if weight_decay else grads
    if momentum:
        # PyTorch starts the buffer at the first gradient, which is what a zero buffer gives here
        buffer *= momentum
        buffer += grad
        grad = grad + momentum * buffer if nesterov else buffer
    params -= lr * grad


# The one-pass loops. Each line is one of the NumPy formulas' operations on one element, in the same order, on
# scalars of the buffers' dtype (the caller casts them), so the results are the same bits: no fastmath (which
# would allow contracting a * b + c into a fused multiply-add, or reordering). ``decay``: 0 none, 1 L2 (added to
# the gradient), 2 decoupled (AdamW: the parameter shrinks first).
def _adam_loop(params, grads, exp_avg, exp_avg_sq, decay, weight_decay, shrink, one_minus_beta1, beta2,
               one_minus_beta2, bias_correction2_sqrt, eps, step_size):
    for i in range(params.size):
        param, grad = params[i], grads[i]
        if decay == 1:
            grad = grad + weight_decay * param
        elif decay == 2:
            param = param * shrink
        avg = exp_avg[i]
        avg = avg + one_minus_beta1 * (grad - avg)
        avg_sq = exp_avg_sq[i] * beta2
        avg_sq = avg_sq + one_minus_beta2 * grad * grad
        exp_avg[i], exp_avg_sq[i] = avg, avg_sq
        params[i] = param - step_size * (avg / (np.sqrt(avg_sq) / bias_correction2_sqrt + eps))


def _sgd_loop(params, grads, buffer, has_decay, weight_decay, has_momentum, momentum, nesterov, lr):
    for i in range(params.size):
        param, grad = params[i], grads[i]
        if has_decay:
            grad = grad + weight_decay * param
        if has_momentum:
            moved = buffer[i] * momentum
            moved = moved + grad
            buffer[i] = moved
            grad = grad + momentum * moved if nesterov else moved
        params[i] = param - lr * grad


_compiled = None


def _kernels():
    """``(adam, sgd)``: the loops compiled by Numba (imported here, on the first step, not with this module).
    ``error_model="numpy"``: a division by zero gives inf or NaN as in NumPy, without the check for Python's
    ZeroDivisionError that would keep LLVM from vectorising the loop (3.6x slower at 544k parameters)."""
    global _compiled
    if _compiled is None:
        from numba import njit
        _compiled = tuple(njit(cache=True, error_model="numpy")(loop) for loop in (_adam_loop, _sgd_loop))
    return _compiled


def _fusable(params, *others):
    """Whether the one-pass loops take these buffers: NumPy, float32 or float64, one-dimensional and contiguous,
    all of one dtype and size."""
    return (isinstance(params, np.ndarray) and params.dtype in (np.float32, np.float64)
            and all(isinstance(a, np.ndarray) and a.dtype == params.dtype and a.shape == params.shape
                    and a.ndim == 1 and a.flags.c_contiguous for a in (params, *others)))


def clip_grad_norm(model, max_norm):
    """Scale the model's gradients so their global L2 norm is at most ``max_norm`` (PyTorch's
    ``clip_grad_norm_``, same 1e-6 guard); returns the norm before clipping."""
    _, grads = model.flatten()
    total = float(array_module(grads).sqrt((grads * grads).sum()))
    scale = max_norm / (total + 1e-6)
    if scale < 1:
        grads *= scale
    return total
