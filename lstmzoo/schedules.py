"""Learning-rate schedules: call ``step(metric=None)`` once per epoch (or per step, consistently); each sets
``optimizer.lr``. Values match torch.optim.lr_scheduler (StepLR, CosineAnnealingLR, LinearLR followed by
another schedule as in SequentialLR, ReduceLROnPlateau).

Like PyTorch, the first schedule attached to an optimizer records its starting learning rate as
``optimizer.initial_lr``; every schedule computes from that base, so a warm-up wrapper and the schedule it
hands over to agree on it whichever was built first. ``state_dict()`` / ``load_state_dict()`` are plain
JSON-able dicts.
"""

import math


class Schedule:
    """Base: ``current_lr()`` is the rate for the epoch count reached; closed-form schedules define
    ``lr_at(epoch)``."""

    def __init__(self, optimizer):
        self.optimizer = optimizer
        if not hasattr(optimizer, "initial_lr"):
            optimizer.initial_lr = optimizer.lr
        self.base_lr = optimizer.initial_lr
        self.epoch = 0
        optimizer.lr = self.current_lr()

    def lr_at(self, epoch):
        raise NotImplementedError

    def current_lr(self):
        return self.lr_at(self.epoch)

    def step(self, metric=None):
        self.epoch += 1
        self.optimizer.lr = self.current_lr()

    def state_dict(self):
        """Every attribute but the optimizer; a schedule held inside (a warm-up's successor) nested."""
        state = {"type": type(self).__name__}
        for name, value in vars(self).items():
            if name != "optimizer":
                state[name] = value.state_dict() if isinstance(value, Schedule) else value
        return state

    def load_state_dict(self, state):
        if not isinstance(state, dict) or state.get("type") != type(self).__name__:
            found = state.get("type") if isinstance(state, dict) else state
            raise ValueError(f"the state is from a {found} schedule, not {type(self).__name__}")
        for name, value in state.items():
            current = getattr(self, name, None)
            if isinstance(current, Schedule):
                current.load_state_dict(value)
            elif isinstance(value, dict):
                raise ValueError(
                    f"the state has a {value.get('type')} schedule as {name!r}, this one has none"
                )
            elif name != "type":
                setattr(self, name, value)
        self.optimizer.lr = self.current_lr()


class StepLR(Schedule):
    """``base_lr * gamma ** (epoch // step_size)``."""

    def __init__(self, optimizer, step_size, gamma=0.1):
        self.step_size, self.gamma = int(step_size), float(gamma)
        super().__init__(optimizer)

    def lr_at(self, epoch):
        return self.base_lr * self.gamma ** (epoch // self.step_size)


class CosineLR(Schedule):
    """Half a cosine from ``base_lr`` down to ``min_lr`` over ``total_epochs``, then ``min_lr``
    (PyTorch's CosineAnnealingLR would climb back up after ``T_max``)."""

    def __init__(self, optimizer, total_epochs, min_lr=0.0):
        self.total_epochs, self.min_lr = int(total_epochs), float(min_lr)
        super().__init__(optimizer)

    def lr_at(self, epoch):
        progress = min(epoch, self.total_epochs) / self.total_epochs
        return self.min_lr + (self.base_lr - self.min_lr) * (1 + math.cos(math.pi * progress)) / 2


class WarmupLR(Schedule):
    """Linear warm-up from ``start_factor * base_lr`` to ``base_lr`` over ``warmup_epochs`` steps, then
    ``after`` (any schedule on the same optimizer, or None for a constant ``base_lr``) takes over, counting
    its own epochs from the hand-over (PyTorch: SequentialLR([LinearLR, after], milestones=[warmup_epochs])).
    """

    def __init__(self, optimizer, warmup_epochs, after=None, start_factor=0.1):
        if warmup_epochs < 1:
            raise ValueError(f"warmup_epochs must be >= 1, got {warmup_epochs}")
        self.warmup_epochs, self.start_factor, self.after = int(warmup_epochs), float(start_factor), after
        super().__init__(optimizer)

    def lr_at(self, epoch):
        if epoch >= self.warmup_epochs:
            return self.base_lr
        return self.base_lr * (self.start_factor + (1 - self.start_factor) * epoch / self.warmup_epochs)

    def current_lr(self):
        if self.epoch > self.warmup_epochs and self.after is not None:
            return self.after.current_lr()
        return self.lr_at(self.epoch)

    def step(self, metric=None):
        self.epoch += 1
        if self.epoch > self.warmup_epochs and self.after is not None:
            self.after.step(metric)
        else:
            self.optimizer.lr = self.current_lr()


class ReduceLROnPlateau(Schedule):
    """Multiply the learning rate by ``factor`` (not below ``min_lr``) once ``metric`` has not improved by
    more than ``threshold`` (relative, PyTorch's default mode) for more than ``patience`` epochs; then wait
    ``cooldown`` epochs. ``mode="max"`` for metrics that should grow."""

    def __init__(
        self, optimizer, mode="min", factor=0.1, patience=10, min_lr=0.0, threshold=1e-4, cooldown=0
    ):
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if not 0 < factor < 1:
            raise ValueError(f"factor must be in (0, 1), got {factor}")
        self.mode, self.factor, self.patience, self.min_lr = mode, float(factor), int(patience), float(min_lr)
        self.threshold, self.cooldown = float(threshold), int(cooldown)
        self.best = None  # None until the first metric (JSON has no infinity)
        self.bad_epochs = self.cooldown_left = 0
        self.lr = optimizer.lr
        super().__init__(optimizer)

    def current_lr(self):
        return self.lr

    def _improved(self, metric):
        if self.best is None:
            return True
        if self.mode == "min":
            return metric < self.best * (1 - self.threshold)
        return metric > self.best * (1 + self.threshold)

    def step(self, metric=None):
        if metric is None:
            raise ValueError("ReduceLROnPlateau.step needs the metric it watches")
        metric = float(metric)
        self.epoch += 1
        if self._improved(metric):
            self.best, self.bad_epochs = metric, 0
        else:
            self.bad_epochs += 1
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            self.bad_epochs = 0
        if self.bad_epochs > self.patience:
            reduced = max(self.optimizer.lr * self.factor, self.min_lr)
            if self.optimizer.lr - reduced > 1e-8:  # PyTorch's eps: ignore negligible changes
                self.optimizer.lr = reduced
            self.cooldown_left, self.bad_epochs = self.cooldown, 0
        self.lr = self.optimizer.lr
