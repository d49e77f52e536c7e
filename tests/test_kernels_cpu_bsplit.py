"""The backward's hidden-unit split (kernels/cpu.py, ``_backward_units``: all rows in every thread, each thread the
cell backward of its units and its units' columns of dh_{t-1} = da_t W_hh, one barrier per step) against the row
split's backward on one thread (bitwise), the NumPy reference and float64 finite differences; ``plan``'s choice for
a backward."""

import numpy as np
import pytest
from helpers import numeric_gradient
from lstmzoo.kernels import cpu, reference
from test_kernels_cpu import CELLS, assert_close, backward, forward, make_inputs
from test_kernels_cpu_split import KINDS, inputs


@pytest.fixture
def pin_threads(monkeypatch):
    """``pin_threads(n)``: the kernels plan for ``n`` threads (as in test_kernels_cpu.py)."""
    import numba

    def pin(n):
        monkeypatch.setattr(numba, "get_num_threads", lambda: n)
    return pin


@pytest.fixture
def units_everywhere(monkeypatch):
    """The unit split, forward and backward, for every shape it can run (from 1 row and 1 step, any H with 16
    units per thread), so that the tests' small shapes take it."""
    monkeypatch.setattr(cpu, "_MIN_ROWS_UNIT_SPLIT", 1)
    monkeypatch.setattr(cpu, "_MIN_UNIT_WEIGHTS", 0)
    monkeypatch.setattr(cpu, "_MIN_UNIT_WEIGHTS_TRAINING", 0)
    monkeypatch.setattr(cpu, "_MIN_STEPS_UNITS", 1)
    monkeypatch.setattr(cpu, "_MIN_STEPS_UNITS_ONE_ROW", 1)
    monkeypatch.setattr(cpu, "_MIN_ROW_STEPS_UNITS_SMALL", 1)
    monkeypatch.setattr(cpu, "_MIN_STEPS_UNITS_TRAINING", 1)
    monkeypatch.setattr(cpu, "_MIN_STEPS_UNITS_TRAINING_ONE_ROW", 1)
    monkeypatch.setattr(cpu, "_MIN_STEPS_UNITS_TRAINING_LARGE", 1)
    monkeypatch.setattr(cpu, "_MIN_UNIT_WEIGHTS_BACKWARD", 0)


def gradients(cell, cache, dy, dh_n, dc_n, threads, pin_threads):
    pin_threads(threads)
    return backward(cpu, cell, cache, dy, dh_n, dc_n if cell == "lstm" else None)


@pytest.mark.parametrize("B, threads, kind, H, projected, step", [
    (4, 1, cpu.LSTM, 512, False, "packed"),  # one thread: rows
    (4, 2, None, None, False, "packed"),  # no cell given: rows
    (4, 2, cpu.LSTM, 512, True, "packed"),  # the LSTM with a projection keeps the row split
    (4, 2, cpu.LSTM, 512, False, "units"),
    (2, 2, cpu.GRU, 1024, False, "units"),
    (7, 2, cpu.RNN_TANH, 1024, False, "units"),
    (1, 2, cpu.LSTM, 1024, False, "gemv"),
    (8, 2, cpu.LSTM, 512, False, "packed"),
    (8, 2, cpu.LSTM, 1024, False, "units"),  # W_hh >= 2^22 elements: units up to 12 rows
    (12, 2, cpu.LSTM, 1024, False, "units"),
    (13, 2, cpu.LSTM, 1024, False, "packed"),
    (4, 2, cpu.LSTM, 256, False, "units"),  # from 2^18 elements of W_hh (the forward in inference: 2^17)
    (6, 2, cpu.GRU, 296, False, "units"),
    (6, 2, cpu.GRU, 288, False, "packed"),
    (4, 2, cpu.RNN_TANH, 512, False, "units"),
    (4, 2, cpu.LSTM, 240, False, "packed"),
])
def test_plan_for_a_backward(B, threads, kind, H, projected, step):
    blocks = cpu.plan(B, threads, kind=kind, hidden=H, projected=projected, backward=True).blocks
    assert blocks[0].step == step
    if step == "units":
        assert blocks == [cpu.Block(0, B, "units", cpu._unit_parts(H, threads))]


@pytest.mark.parametrize("B, H, forward", [(4, 255, "packed"), (4, 256, "units"), (4, 512, "units"),
                                           (2, 1024, "units")])
def test_plan_for_a_training_forward(B, H, forward):
    """A forward in training splits the units from 2^18 elements of W_hh, as the backward does."""
    assert cpu.plan(B, 2, kind=cpu.LSTM, hidden=H, training=True).blocks[0].step == forward
    assert cpu.plan(B, 2, kind=cpu.LSTM, hidden=H, backward=True).blocks[0].step == forward


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("B, H, threads", [(2, 37, 2), (5, 64, 2), (7, 45, 3), (4, 100, 3), (3, 100, 2)])
def test_backward_unit_split_is_bitwise_the_row_split_and_matches_reference(cell, dtype, B, H, threads, pin_threads,
                                                                            units_everywhere):
    """One forward cache (one thread), its backward on ``threads`` threads (the unit split) and on one (the row
    split, micro-kernel from 2 rows): every gradient bitwise equal, with lengths, dh_n and dc_n; odd H and H below
    threads x the panel width; and within tolerance of the reference."""
    kind = KINDS[cell]
    assert len(cpu.plan(B, threads, kind=kind, hidden=H, backward=True).blocks[0].units) == min(threads, H // 16)
    assert cpu.plan(B, 1, kind=kind, hidden=H, backward=True).blocks[0].step == "packed"
    rng = np.random.default_rng(B * H + 1)
    T = 9
    p = inputs(rng, cell, T, B, 6, H, dtype)
    lengths = rng.integers(1, T + 1, B)
    lengths[0] = T
    pin_threads(1)
    _, cache = forward(cpu, cell, p, lengths)
    _, want_cache = forward(reference, cell, p, lengths)
    dy = rng.standard_normal((T, B, H)).astype(dtype)
    for dh_n, dc_n in ((None, None), (rng.standard_normal((B, H)).astype(dtype),
                                      rng.standard_normal((B, H)).astype(dtype))):
        got = gradients(cell, cache, dy, dh_n, dc_n, threads, pin_threads)
        one = gradients(cell, cache, dy, dh_n, dc_n, 1, pin_threads)
        want = backward(reference, cell, want_cache, dy, dh_n, dc_n if cell == "lstm" else None)
        for a, b, c in zip(got, one, want):
            np.testing.assert_array_equal(a, b)
            assert_close(a, c, dtype)


@pytest.mark.parametrize("cell", CELLS)
def test_finite_difference_gradients_through_the_unit_split(cell, pin_threads, units_everywhere):
    """Central differences of L = sum(y R1) + sum(h_n R2) [+ sum(c_n R3)] against the backward that runs the unit
    split (float64, 2 threads, lengths)."""
    pin_threads(2)
    rng = np.random.default_rng(5)
    T, B, n_in, H = 4, 3, 3, 33
    p = make_inputs(rng, cell, T, B, n_in, H, np.float64)
    p["w_hh"] *= 2 / np.sqrt(H)
    if cell == "rnn_relu":  # keep pre-activations away from the kink at 0
        p["b_ih"] += 0.5
    lengths = np.array([4, 2, 3])
    assert cpu.plan(B, kind=KINDS[cell], hidden=H, backward=True).blocks[0].step == "units"
    weights = [rng.standard_normal(o.shape) for o in forward(cpu, cell, p, lengths)[0]]

    def loss():
        return sum(float(np.sum(o * w)) for o, w in zip(forward(cpu, cell, p, lengths)[0], weights))

    _, cache = forward(cpu, cell, p, lengths)
    grads = backward(cpu, cell, cache, weights[0], weights[1], weights[2] if cell == "lstm" else None)
    names = ["x", "h0", "c0", "w_ih", "w_hh", "b_ih", "b_hh"] if cell == "lstm" else [
        "x", "h0", "w_ih", "w_hh", "b_ih", "b_hh"]
    for name, grad in zip(names, grads):
        if cell != "lstm" and name == "c0":
            continue
        numeric = numeric_gradient(loss, p[name])
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-7, err_msg=name)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
def test_many_steps_on_the_backward_unit_split(cell, pin_threads, units_everywhere):
    """400 backward steps of 2 threads meeting at the barrier: a thread that ran ahead would read a half-written
    da_t and dh_{t-1} would differ from the one-thread result (checked to fail with the barrier's wait removed)."""
    B, H, T = 4, 64, 400
    rng = np.random.default_rng(8)
    p = inputs(rng, cell, T, B, 8, H, np.float32)
    pin_threads(1)
    _, cache = forward(cpu, cell, p, None)
    dy = rng.standard_normal((T, B, H)).astype(np.float32)
    got = gradients(cell, cache, dy, None, None, 2, pin_threads)
    one = gradients(cell, cache, dy, None, None, 1, pin_threads)
    for a, b in zip(got, one):
        np.testing.assert_array_equal(a, b)


def test_projection_backward_keeps_the_row_split(pin_threads, units_everywhere):
    """The LSTM with a projection (w_hr) at B < 8 on 2 threads: the backward's row split, against the reference."""
    pin_threads(2)
    rng = np.random.default_rng(9)
    B, H, P, T = 4, 40, 24, 6
    p = make_inputs(rng, "lstm", T, B, 5, H, np.float64)
    p["h0"] = p["h0"][:, :P]
    p["w_hh"] = p["w_hh"][:, :P].copy()
    w_hr = (0.3 * rng.standard_normal((P, H))).astype(np.float64)
    assert cpu.plan(B, kind=cpu.LSTM, hidden=H, projected=True, backward=True).blocks[0].step == "packed"
    *_, cache = cpu.lstm_forward(**p, w_hr=w_hr)
    *_, want_cache = reference.lstm_forward(**p, w_hr=w_hr)
    dy = rng.standard_normal((T, B, P))
    for a, b in zip(cpu.lstm_backward(dy, None, None, cache), reference.lstm_backward(dy, None, None, want_cache)):
        assert_close(a, b, np.float64)


@pytest.mark.parametrize("failing", [0, 1])
def test_a_failing_backward_thread_does_not_hang_the_others(failing, pin_threads, monkeypatch, units_everywhere):
    """When one thread of the backward's unit split fails, the other is released from the barrier and the error
    reaches the caller; nothing waits forever."""
    real = cpu._unit_backward_sequence

    def fail_second(state, kind, k, *args):  # thread 0 runs on the calling thread, 1 on the crew's
        if k == failing:
            raise RuntimeError(f"thread {k} failed")
        return real(state, kind, k, *args)
    pin_threads(1)
    rng = np.random.default_rng(1)
    p = inputs(rng, "lstm", 50, 4, 8, 64, np.float32)
    _, cache = forward(cpu, "lstm", p, None)
    monkeypatch.setattr(cpu, "_unit_backward_sequence", fail_second)
    pin_threads(2)
    with pytest.raises(RuntimeError, match=f"thread {failing} failed"):
        backward(cpu, "lstm", cache, np.ones((50, 4, 64), np.float32), None, None)
