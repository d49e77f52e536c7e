"""Optimizers over a model's flat parameter/gradient buffers, with PyTorch's update formulas.

Each optimizer calls ``model.flatten()`` once and then updates the whole model with a few vectorised
operations per step. ``lr`` is a plain attribute (the schedules in ``lstmzoo.schedules`` set it).

``state_dict()`` returns ``(arrays, scalars)``: NumPy arrays named for safetensors and a JSON-able dict
with the hyperparameters, the step count and the optimizer's type; ``load_state_dict(arrays, scalars)``
restores all of it (hyperparameters included, as PyTorch does), so a resumed run continues identically.
"""

import math

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
        grad = self.grads + self.weight_decay * self.params if self.weight_decay else self.grads
        if self.momentum:
            # PyTorch starts the buffer at the first gradient, which is what a zero buffer gives here
            buffer = self.state["momentum_buffer"]
            buffer *= self.momentum
            buffer += grad
            grad = grad + self.momentum * buffer if self.nesterov else buffer
        self.params -= self.lr * grad


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
        beta1, beta2 = self.betas
        grad = self.grads
        if self.weight_decay and self.decoupled_weight_decay:
            self.params *= 1 - self.lr * self.weight_decay
        elif self.weight_decay:
            grad = grad + self.weight_decay * self.params
        exp_avg, exp_avg_sq = self.state["exp_avg"], self.state["exp_avg_sq"]
        exp_avg += (1 - beta1) * (grad - exp_avg)
        exp_avg_sq *= beta2
        exp_avg_sq += (1 - beta2) * grad * grad
        step_size = self.lr / (1 - beta1**self.step_count)
        denom = self.xp.sqrt(exp_avg_sq) / math.sqrt(1 - beta2**self.step_count) + self.eps
        self.params -= step_size * (exp_avg / denom)


class AdamW(Adam):
    """Adam with decoupled weight decay (torch.optim.AdamW): parameters shrink by ``lr * weight_decay``."""

    decoupled_weight_decay = True

    def __init__(self, model, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(model, lr, betas, eps, weight_decay)


def clip_grad_norm(model, max_norm):
    """Scale the model's gradients so their global L2 norm is at most ``max_norm`` (PyTorch's
    ``clip_grad_norm_``, same 1e-6 guard); returns the norm before clipping."""
    _, grads = model.flatten()
    total = float(array_module(grads).sqrt((grads * grads).sum()))
    scale = max_norm / (total + 1e-6)
    if scale < 1:
        grads *= scale
    return total
