"""The optimizers' one-pass Numba loops against their NumPy formulas (lstmzoo.optim._adam_numpy, _sgd_numpy): the
same bits, step after step, in float32 and float64 (the loops make the formulas' float operations in the same order,
so a zoo figure or a resumed run does not move by a rounding)."""

import numpy as np
import pytest

from lstmzoo import optim


class FlatModel:
    """The least a model must be for the optimizers: ``flatten()`` -> (params, grads)."""

    def __init__(self, params):
        self.flat = (params, np.zeros_like(params))

    def flatten(self):
        return self.flat


def random_gradients(rng, size, dtype, steps):
    """Gradients over 10 orders of magnitude, with exact zeros (Adam's first step divides each by its own size)."""
    grads = []
    for _ in range(steps):
        g = rng.standard_normal(size) * 10.0 ** rng.uniform(-8, 2, size)
        g[rng.random(size) < 0.05] = 0.0
        grads.append(g.astype(dtype))
    return grads


def numpy_steps(cls, kwargs, params, grads):
    """The NumPy formulas, step by step, on copies: (params, state arrays)."""
    opt = cls(FlatModel(params.copy()), **kwargs)
    params = opt.params
    state = {}
    for step, g in enumerate(grads, 1):
        if cls is optim.SGD:
            if opt.momentum and not state:
                state["momentum_buffer"] = np.zeros_like(params)
            optim._sgd_numpy(params, g, state.get("momentum_buffer"), opt.lr, opt.momentum, opt.weight_decay,
                             opt.nesterov)
        else:
            if not state:
                state = {"exp_avg": np.zeros_like(params), "exp_avg_sq": np.zeros_like(params)}
            optim._adam_numpy(params, g, state["exp_avg"], state["exp_avg_sq"], opt.lr, opt.betas, opt.eps,
                              opt.weight_decay, opt.decoupled_weight_decay, step)
    return params, state


def optimizer_steps(cls, kwargs, params, grads):
    """The optimizer's own step() (the one-pass loop on NumPy float32/float64 buffers)."""
    model = FlatModel(params.copy())
    opt = cls(model, **kwargs)
    for g in grads:
        opt.zero_grad()
        opt.grads += g
        opt.step()
    return opt.params, opt.state


CASES = [
    (optim.Adam, dict(lr=3e-3)),
    (optim.Adam, dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    (optim.AdamW, dict(lr=3e-3)),                       # weight decay 0.01
    (optim.AdamW, dict(lr=1e-2, weight_decay=0.3)),
    (optim.AdamW, dict(lr=1e-3, weight_decay=0.0)),
    (optim.SGD, dict(lr=0.1)),
    (optim.SGD, dict(lr=0.1, weight_decay=0.01)),
    (optim.SGD, dict(lr=0.1, momentum=0.9)),
    (optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
]


def bits(array):
    return array.view(np.uint32 if array.dtype == np.float32 else np.uint64)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cls, kwargs", CASES, ids=[f"{c.__name__}-{i}" for i, (c, _) in enumerate(CASES)])
def test_one_pass_loop_gives_the_numpy_formulas_bits(cls, kwargs, dtype):
    rng = np.random.default_rng(16)
    size = 10_007       # not a multiple of any vector width: the loops' remainders run too
    params = (rng.standard_normal(size) * 10.0 ** rng.uniform(-3, 1, size)).astype(dtype)
    grads = random_gradients(rng, size, dtype, steps=6)
    assert optim._fusable(params, params.copy())
    expected, expected_state = numpy_steps(cls, kwargs, params, grads)
    got, got_state = optimizer_steps(cls, kwargs, params, grads)
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(bits(got), bits(expected))
    assert sorted(got_state) == sorted(expected_state)
    for name in expected_state:
        np.testing.assert_array_equal(bits(got_state[name]), bits(expected_state[name]), err_msg=name)
    assert not np.array_equal(got, params)      # the steps did move the weights


def test_bitwise_comparison_sees_a_reordered_formula():
    """The comparison above can fail: (1 - beta2) * (g * g) instead of ((1 - beta2) * g) * g already changes
    float32 bits, so the loops must keep NumPy's order exactly."""
    rng = np.random.default_rng(0)
    g = (rng.standard_normal(10_000) * 10.0 ** rng.uniform(-4, 2, 10_000)).astype(np.float32)
    c = np.float32(1 - 0.999)
    assert not np.array_equal(c * g * g, c * (g * g))


def test_scalars_are_cast_like_numpy_casts_a_python_float():
    """NEP 50: float32 array * Python float is computed in float32, the scalar rounded to float32 first, which is
    what the loops get (params.dtype.type(value))."""
    x = np.float32(3.0) + np.zeros(1, dtype=np.float32)
    value = 1 / 3
    assert (x * value).dtype == np.float32
    assert (x * value)[0] == np.float32(3.0) * np.float32(value)


def test_other_arrays_take_the_numpy_formulas():
    """float16, or state arrays that are not contiguous, are not the loops': the NumPy formulas run (same
    results as always)."""
    rng = np.random.default_rng(1)
    params = rng.standard_normal(64).astype(np.float16)
    assert not optim._fusable(params, params.copy())
    assert not optim._fusable(params.astype(np.float32), np.zeros(128, dtype=np.float32)[::2])
    assert not optim._fusable(params.astype(np.float32), np.zeros(64, dtype=np.float64))
    grads = random_gradients(rng, 64, np.float16, steps=3)
    expected, _ = numpy_steps(optim.Adam, dict(lr=1e-2, eps=1e-3), params, grads)
    got, _ = optimizer_steps(optim.Adam, dict(lr=1e-2, eps=1e-3), params, grads)
    assert got.dtype == np.float16 and np.isfinite(got).all()
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_adam_loop_against_the_torch_formula_in_float64(dtype):
    """The loop in float64 against Adam as written in PyTorch's documentation (bias-corrected moments), to
    1e-10 (float64) or 1e-5 (float32) relative: the formulas themselves are Adam's."""
    rng = np.random.default_rng(2)
    size = 1000
    params = rng.standard_normal(size).astype(dtype)
    grads = [rng.standard_normal(size).astype(dtype) for _ in range(5)]
    got, _ = optimizer_steps(optim.Adam, dict(lr=1e-2, weight_decay=0.05), params, grads)
    p, m, v = params.astype(np.float64), np.zeros(size), np.zeros(size)
    beta1, beta2, eps, lr, wd = 0.9, 0.999, 1e-8, 1e-2, 0.05
    for t, g in enumerate(grads, 1):
        g = g.astype(np.float64) + wd * p
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        p = p - lr * (m / (1 - beta1**t)) / (np.sqrt(v / (1 - beta2**t)) + eps)
    tolerance = 1e-10 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(got, p, rtol=tolerance, atol=tolerance)
