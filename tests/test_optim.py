"""Optimizers, gradient clipping and learning-rate schedules against torch.optim on the same gradients."""

import json

import numpy as np
import pytest

from lstmzoo.nn import LSTM, Linear, Sequential
from lstmzoo.optim import SGD, Adam, AdamW, clip_grad_norm
from lstmzoo.schedules import CosineLR, ReduceLROnPlateau, StepLR, WarmupLR


def small_model(seed=0):
    rng = np.random.default_rng(seed)
    return Sequential(Linear(3, 4, dtype="float64", rng=rng), Linear(4, 2, dtype="float64", rng=rng))


def gradient_sequence(model, steps, seed=1):
    rng = np.random.default_rng(seed)
    return [
        {name: rng.standard_normal(p.shape) for name, p in model.parameters().items()} for _ in range(steps)
    ]


OPTIMIZERS = [
    (SGD, dict(lr=0.1)),
    (SGD, dict(lr=0.1, momentum=0.9)),
    (SGD, dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    (Adam, dict(lr=0.01)),
    (Adam, dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    (AdamW, dict(lr=0.01)),
    (AdamW, dict(lr=0.01, weight_decay=0.3)),
]


def run_ours(optimizer, model, grads):
    for step_grads in grads:
        optimizer.zero_grad()
        for name, g in model.grads().items():
            g += step_grads[name]
        optimizer.step()


@pytest.mark.parametrize(
    "cls, kwargs", OPTIMIZERS, ids=[f"{c.__name__}-{i}" for i, (c, _) in enumerate(OPTIMIZERS)]
)
def test_optimizer_matches_pytorch(cls, kwargs):
    torch = pytest.importorskip("torch")
    model = small_model()
    torch_params = {
        name: torch.tensor(p.copy(), requires_grad=True) for name, p in model.parameters().items()
    }
    torch_opt = getattr(torch.optim, cls.__name__)(list(torch_params.values()), **kwargs)
    grads = gradient_sequence(model, 6)
    run_ours(cls(model, **kwargs), model, grads)
    for step_grads in grads:
        for name, p in torch_params.items():
            p.grad = torch.tensor(step_grads[name])
        torch_opt.step()
    for name, p in model.parameters().items():
        np.testing.assert_allclose(
            p, torch_params[name].detach().numpy(), rtol=1e-12, atol=1e-14, err_msg=name
        )


@pytest.mark.parametrize(
    "cls, kwargs", OPTIMIZERS, ids=[f"{c.__name__}-{i}" for i, (c, _) in enumerate(OPTIMIZERS)]
)
def test_state_dict_round_trip_continues_identically(cls, kwargs):
    grads = gradient_sequence(small_model(), 8)
    straight = small_model()
    run_ours(cls(straight, **kwargs), straight, grads)

    first = small_model()
    optimizer = cls(first, **kwargs)
    run_ours(optimizer, first, grads[:4])
    arrays, scalars = optimizer.state_dict()
    scalars = json.loads(json.dumps(scalars))
    resumed = small_model()
    resumed.load_parameters(first.parameters())
    other = cls(resumed, lr=123.0)  # hyperparameters come from the state, as in PyTorch
    other.load_state_dict(arrays, scalars)
    run_ours(other, resumed, grads[4:])
    for name, p in straight.parameters().items():
        np.testing.assert_array_equal(resumed.parameters()[name], p)


def test_load_state_dict_rejects_mismatches():
    model = small_model()
    adam = Adam(model)
    adam.step()
    arrays, scalars = adam.state_dict()
    with pytest.raises(ValueError, match="Adam optimizer, not SGD"):
        SGD(small_model(), lr=0.1).load_state_dict(arrays, scalars)
    bigger = Sequential(Linear(3, 5), Linear(5, 2))
    with pytest.raises(ValueError, match="parameter count"):
        Adam(bigger).load_state_dict(arrays, scalars)


def test_optimizer_works_on_float32_lstm_and_lr_is_settable():
    model = LSTM(2, 3)
    optimizer = SGD(model, lr=0.5)
    x = np.ones((4, 2, 2), np.float32)
    y, _ = model.forward(x)
    model.backward(np.ones_like(y))
    before = {k: v.copy() for k, v in model.parameters().items()}
    optimizer.lr = 0.25
    optimizer.step()
    for name, p in model.parameters().items():
        assert p.dtype == np.float32
        np.testing.assert_allclose(p, before[name] - 0.25 * model.grads()[name], rtol=1e-6)
    optimizer.zero_grad()
    assert not any(g.any() for g in model.grads().values())


@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clip_grad_norm_matches_pytorch(max_norm):
    torch = pytest.importorskip("torch")
    model = small_model()
    grads = gradient_sequence(model, 1)[0]
    for name, g in model.grads().items():
        g += grads[name]
    torch_params = [torch.zeros(g.shape, dtype=torch.float64) for g in grads.values()]
    for p, g in zip(torch_params, grads.values()):
        p.grad = torch.tensor(g)
    expected = torch.nn.utils.clip_grad_norm_(torch_params, max_norm)
    assert clip_grad_norm(model, max_norm) == pytest.approx(expected.item(), rel=1e-12)
    for p, g in zip(torch_params, model.grads().values()):
        np.testing.assert_allclose(g, p.grad.numpy(), rtol=1e-12)


# --------------------------------------------------------------------------------------- schedules


def schedule_pairs(torch):
    """(name, our factory, torch factory, metrics) with optimizers at lr 0.1."""
    lr = torch.optim.lr_scheduler
    plateau_metrics = [5, 4, 4, 4, 4, 3.9999, 4, 4, 4, 4, 4, 2, 2, 2, 2, 2, 2, 2]
    return [
        ("step", lambda o: StepLR(o, 3, gamma=0.5), lambda o: lr.StepLR(o, 3, gamma=0.5), None),
        (
            "cosine",
            lambda o: CosineLR(o, 10, min_lr=0.01),
            lambda o: lr.CosineAnnealingLR(o, 10, eta_min=0.01),
            None,
        ),
        (
            "warmup",
            lambda o: WarmupLR(o, 4, start_factor=0.25),
            lambda o: lr.LinearLR(o, start_factor=0.25, total_iters=4),
            None,
        ),
        (
            "warmup+cosine",
            lambda o: WarmupLR(o, 3, after=CosineLR(o, 7), start_factor=0.1),
            lambda o: lr.SequentialLR(
                o, [lr.LinearLR(o, 0.1, total_iters=3), lr.CosineAnnealingLR(o, 7)], milestones=[3]
            ),
            None,
        ),
        (
            "plateau-min",
            lambda o: ReduceLROnPlateau(o, patience=2, factor=0.5, min_lr=0.02),
            lambda o: lr.ReduceLROnPlateau(o, patience=2, factor=0.5, min_lr=0.02),
            plateau_metrics,
        ),
        (
            "plateau-max-cooldown",
            lambda o: ReduceLROnPlateau(o, mode="max", patience=1, cooldown=2),
            lambda o: lr.ReduceLROnPlateau(o, mode="max", patience=1, cooldown=2),
            [-x for x in plateau_metrics],
        ),
    ]


def torch_schedule_values(torch, factory, metrics, epochs):
    import warnings

    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    schedule = factory(optimizer)
    values = [optimizer.param_groups[0]["lr"]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "step() before optimizer.step()": irrelevant here
        for epoch in range(epochs):
            schedule.step(*([metrics[epoch]] if metrics else []))
            values.append(optimizer.param_groups[0]["lr"])
    return values


def our_schedule_values(factory, metrics, epochs, resume_at=None):
    optimizer = SGD(small_model(), lr=0.1)
    schedule = factory(optimizer)
    values = [optimizer.lr]
    for epoch in range(epochs):
        if epoch == resume_at:  # a fresh optimizer and schedule restored from the JSON state
            state = json.loads(json.dumps(schedule.state_dict()))
            optimizer = SGD(small_model(), lr=0.1)
            schedule = factory(optimizer)
            schedule.load_state_dict(state)
            assert optimizer.lr == values[-1]
        schedule.step(metrics[epoch] if metrics else None)
        values.append(optimizer.lr)
    return values


def test_schedules_match_pytorch():
    torch = pytest.importorskip("torch")
    for name, ours, theirs, metrics in schedule_pairs(torch):
        epochs = len(metrics) if metrics else 10
        expected = torch_schedule_values(torch, theirs, metrics, epochs)
        np.testing.assert_allclose(
            our_schedule_values(ours, metrics, epochs), expected, rtol=1e-12, err_msg=name
        )


@pytest.mark.parametrize("resume_at", [2, 5])
def test_schedule_state_round_trip_continues_identically(resume_at):
    plateau_metrics = [5, 4, 4, 4, 4, 3, 3, 3, 3, 3]
    factories = [
        (lambda o: StepLR(o, 3, gamma=0.5), None),
        (lambda o: WarmupLR(o, 3, after=CosineLR(o, 7)), None),
        (lambda o: WarmupLR(o, 3, after=ReduceLROnPlateau(o, patience=1)), plateau_metrics),
        (lambda o: ReduceLROnPlateau(o, patience=1, factor=0.5), plateau_metrics),
    ]
    for factory, metrics in factories:
        assert our_schedule_values(factory, metrics, 10, resume_at) == our_schedule_values(
            factory, metrics, 10
        )


def test_cosine_stays_at_min_lr_and_plateau_needs_metric():
    optimizer = SGD(small_model(), lr=1.0)
    cosine = CosineLR(optimizer, 4, min_lr=0.1)
    for _ in range(6):
        cosine.step()
    assert optimizer.lr == pytest.approx(0.1)
    plateau = ReduceLROnPlateau(SGD(small_model(), lr=1.0))
    with pytest.raises(ValueError, match="metric"):
        plateau.step()
    with pytest.raises(ValueError, match="StepLR schedule, not CosineLR"):
        CosineLR(SGD(small_model(), lr=1.0), 3).load_state_dict(StepLR(optimizer, 2).state_dict())
