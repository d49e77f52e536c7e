"""Losses: ``forward(pred, target) -> float``, then ``backward() -> dpred`` (gradient of that float).

Unlike PyTorch, ``CrossEntropyLoss`` takes the classes in the **last** dimension (``logits [..., C]``,
``target [...]``), which is how sequence models produce them (``[B, T, C]``); PyTorch wants ``[B, C, T]``.
"""

import numpy as np

from ..array import array_module

_REDUCTIONS = ("mean", "sum")
_EXACT_COUNT = 2**24    # float32 sums of ones are exact up to here


def _check_reduction(reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    return reduction


class _Loss:
    def __init__(self, reduction):
        self.reduction = _check_reduction(reduction)
        self._grad = None

    def __call__(self, pred, target):
        return self.forward(pred, target)

    def backward(self):
        if self._grad is None:
            raise RuntimeError(f"{type(self).__name__}.backward needs a forward first")
        grad, self._grad = self._grad, None
        return grad


class MSELoss(_Loss):
    """Mean (or sum) of squared differences; ``target`` must have exactly ``pred``'s shape."""

    def __init__(self, reduction="mean"):
        super().__init__(reduction)

    def forward(self, pred, target):
        xp = array_module(pred)
        if tuple(target.shape) != tuple(pred.shape):
            raise ValueError(
                f"target has shape {tuple(target.shape)}, expected pred's shape {tuple(pred.shape)} "
                f"(no broadcasting)"
            )
        diff = pred - xp.asarray(target, dtype=pred.dtype)
        scale = 1.0 / diff.size if self.reduction == "mean" else 1.0
        self._grad = diff * pred.dtype.type(2.0 * scale)
        return float((diff * diff).sum()) * scale


class CrossEntropyLoss(_Loss):
    """Softmax cross-entropy from logits ``[..., C]`` (classes last) against integer targets ``[...]``.

    ``weight`` ``[C]`` rescales each class; targets equal to ``ignore_index`` contribute nothing. With
    ``reduction="mean"`` the sum is divided by the summed weights of the non-ignored targets, exactly like
    PyTorch (so the loss is NaN when every target is ignored; the gradient is then zero).
    """

    def __init__(self, weight=None, ignore_index=-100, reduction="mean"):
        super().__init__(reduction)
        self.weight = None if weight is None else np.asarray(weight)
        if self.weight is not None and self.weight.ndim != 1:
            raise ValueError(f"weight must be 1-D [C], got shape {self.weight.shape}")
        self.ignore_index = int(ignore_index)

    def forward(self, logits, target):
        xp = array_module(logits)
        if logits.ndim < 1 or tuple(target.shape) != tuple(logits.shape[:-1]):
            raise ValueError(
                f"target has shape {tuple(target.shape)}, expected {tuple(logits.shape[:-1])} "
                f"(logits {tuple(logits.shape)} with classes in the last dimension)"
            )
        if target.dtype.kind not in "iu" and (target.dtype == bool or not np.issubdtype(target.dtype, np.integer)):
            raise ValueError(f"target must hold integer class indices, got dtype {target.dtype}")
        classes = logits.shape[-1]
        if self.weight is not None and self.weight.shape != (classes,):
            raise ValueError(f"weight has shape {self.weight.shape}, expected ({classes},)")
        z = logits.reshape(-1, classes)
        t = xp.asarray(target).reshape(-1)
        if self.weight is None and 0 < t.size <= _EXACT_COUNT:
            low, high = int(t.min()), int(t.max())
            if 0 <= low and high < classes and not low <= self.ignore_index <= high:
                return self._every_target_counts(z, t, logits.shape)
        valid = t != self.ignore_index
        if bool(((t[valid] < 0) | (t[valid] >= classes)).any()):
            raise ValueError(f"target values must be in 0..{classes - 1} or ignore_index={self.ignore_index}")
        t = xp.where(valid, t, 0)

        shifted = z - z.max(axis=1, keepdims=True)  # log-sum-exp without overflow
        log_probs = shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
        rows = xp.arange(z.shape[0])
        weights = valid.astype(z.dtype)
        if self.weight is not None:
            weights = weights * xp.asarray(self.weight, dtype=z.dtype)[t]
        total = -(weights * log_probs[rows, t]).sum()
        denominator = float(weights.sum()) if self.reduction == "mean" else 1.0

        grad = xp.exp(log_probs) * weights[:, None]
        grad[rows, t] -= weights
        scale = 1.0 / denominator if denominator else 0.0
        self._grad = (grad * z.dtype.type(scale)).reshape(logits.shape)
        return float(total) / denominator if denominator else float("nan")

    def _every_target_counts(self, z, t, shape):
        """``forward`` when there is no class weight and every target is a class (none is ``ignore_index``): every
        weight above is 1, so the same float operations less the multiplications by 1 (which change nothing) and
        the count ``len(t)`` (exact: the sum of that many ones is, up to 2^24) as the denominator."""
        xp = array_module(z)
        shifted = z - z.max(axis=1, keepdims=True)  # log-sum-exp without overflow
        log_probs = shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
        rows = xp.arange(z.shape[0])
        total = -log_probs[rows, t].sum()
        denominator = float(len(t)) if self.reduction == "mean" else 1.0
        grad = xp.exp(log_probs)
        grad[rows, t] -= 1
        self._grad = (grad * z.dtype.type(1.0 / denominator)).reshape(shape)
        return float(total) / denominator


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy of ``sigmoid(logits)`` against ``target`` probabilities in [0, 1] (same shape, no
    broadcasting): ``max(z, 0) - z t + log(1 + exp(-|z|))`` per element, which never overflows, averaged
    (``"mean"``) or summed (``"sum"``). The gradient is ``sigmoid(z) - t``, scaled like the loss."""

    def __init__(self, reduction="mean"):
        super().__init__(reduction)

    def forward(self, logits, target):
        xp = array_module(logits)
        if tuple(target.shape) != tuple(logits.shape):
            raise ValueError(
                f"target has shape {tuple(target.shape)}, expected logits' shape {tuple(logits.shape)} "
                f"(no broadcasting)"
            )
        t = xp.asarray(target, dtype=logits.dtype)
        decay = xp.exp(-xp.abs(logits))      # in (0, 1]: the only exponential, so nothing overflows
        losses = xp.maximum(logits, 0) - logits * t + xp.log1p(decay)
        # sigmoid(z) from the same exp(-|z|): 1 / (1 + e) for z >= 0, e / (1 + e) for z < 0.
        sigmoid = xp.where(logits >= 0, 1, decay) / (1 + decay)
        scale = 1.0 / logits.size if self.reduction == "mean" else 1.0
        self._grad = ((sigmoid - t) * logits.dtype.type(scale)).astype(logits.dtype, copy=False)
        return float(losses.sum()) * scale
