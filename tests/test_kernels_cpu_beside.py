"""The forward's input projection on a second thread beside the row split's one time loop (kernels/cpu.py,
``_forward_beside``, ``_project_ahead``): which shapes take it, its results against one thread's (bitwise where the
micro-kernel runs the projection) and the NumPy reference, and a failing projection thread."""

import numpy as np
import pytest
from helpers import count_calls
from lstmzoo.kernels import cpu, reference
from test_kernels_cpu import CELLS, assert_close, backward, forward
from test_kernels_cpu_split import assert_same_cache, inputs, run


@pytest.fixture
def pin_threads(monkeypatch):
    """``pin_threads(n)``: the kernels plan for ``n`` threads (as in test_kernels_cpu_split.py)."""
    import numba
    return lambda n: monkeypatch.setattr(numba, "get_num_threads", lambda: n)


@pytest.mark.parametrize("B, threads, T, n_in, H, beside", [
    (2, 2, 100, 128, 128, True), (7, 2, 100, 64, 128, True), (3, 4, 100, 32, 128, True),  # one block, a free thread
    (2, 1, 100, 128, 128, False),   # one thread: nobody to project beside the loop
    (1, 2, 100, 128, 128, False),   # one row: OpenBLAS's GEMV, on its threads
    (8, 2, 100, 128, 128, False),   # two blocks: both threads run a loop
    (7, 2, 1, 2048, 128, False),    # one step: nothing to overlap
    (4, 2, 100, 128, 1024, False),  # the unit split: no idle thread
    (2, 2, 100, 32, 128, False),    # 2^21.6 multiply-adds: the hand-off costs more than it saves
])
def test_which_forwards_project_beside_the_loop(B, threads, T, n_in, H, beside):
    assert cpu.plan(B, threads, cpu.LSTM, H, inputs=n_in, steps=T).beside is beside


@pytest.fixture
def beside_at_any_size(monkeypatch):
    """The projection beside the loop for the tests' small shapes too."""
    monkeypatch.setattr(cpu, "_MIN_BESIDE_MACS", 0)


@pytest.fixture
def spy(monkeypatch):
    """Counts the projection threads started."""
    return count_calls(monkeypatch, cpu, "_projection_thread")


@pytest.mark.parametrize("cell", CELLS + ["lstm-projected"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("B, T", [(2, 1 + 2 + 4 + 3), (5, 40), (7, 3)])
def test_the_projection_beside_the_loop_matches_one_thread_and_reference(cell, dtype, B, T, pin_threads, spy,
                                                                          beside_at_any_size):
    """Lengths, h0/c0, training and inference; T covers the chunks' ramp (1, 2, 4, ... steps) ending mid-chunk.
    The sums are those of one thread's projection-first path, bit for bit: the micro-kernel's do not depend on the
    rows a call takes. The backward reads the cache."""
    projected = cell == "lstm-projected"
    cell = "lstm" if projected else cell
    rng = np.random.default_rng(B * T)
    H = 40
    p = inputs(rng, cell, T, B, 13, H, dtype)
    if projected:
        p["w_hr"] = (rng.standard_normal((24, H)) / np.sqrt(H)).astype(dtype)
        p["h0"] = p["h0"][:, :24].copy()
        p["w_hh"] = p["w_hh"][:, :24].copy()
    lengths = rng.integers(1, T + 1, B)
    lengths[0] = T
    want, want_cache = forward(reference, cell, p, lengths)
    for training in (True, False):
        spy.clear()
        got, got_cache = run(cell, p, lengths, training, 2, pin_threads)
        assert len(spy) == 1  # the path under test ran
        one, one_cache = run(cell, p, lengths, training, 1, pin_threads)
        assert len(spy) == 1
        for a, b, c in zip(got, one, want):
            np.testing.assert_array_equal(a, b)
            assert_close(a, c, dtype)
        if training:
            assert_same_cache(got_cache, one_cache, lengths)
            dy = rng.standard_normal(got[0].shape).astype(dtype)
            for a, b in zip(backward(cpu, cell, got_cache, dy, None, None),
                            backward(reference, cell, want_cache, dy, None, None)):
                assert_close(a, b, dtype)


def test_a_failing_projection_thread_releases_the_loop(pin_threads, monkeypatch, beside_at_any_size):
    """The time loop waits for the projection thread's progress; if that thread fails, the loop is released (not
    left spinning) and the error reaches the caller."""
    def fails(ready, *args):
        raise RuntimeError("projection failed")
    monkeypatch.setattr(cpu, "_project_ahead", fails)
    rng = np.random.default_rng(0)
    p = inputs(rng, "lstm", 6, 3, 5, 16, np.float32)
    pin_threads(2)
    result = []

    def call():
        try:
            forward(cpu, "lstm", p)
        except RuntimeError as error:
            result.append(str(error))
    import threading
    caller = threading.Thread(target=call)
    caller.start()
    caller.join(60)
    assert not caller.is_alive() and result == ["projection failed"]


def test_the_loop_reads_a_step_only_after_it_is_published(pin_threads, monkeypatch, beside_at_any_size):
    """A projection thread that starts late (50 ms after the loop): the loop must wait for each step (it would read
    uninitialised projections otherwise) and the results still equal one thread's."""
    import time
    rng = np.random.default_rng(1)
    p = inputs(rng, "gru", 12, 4, 7, 20, np.float64)
    pin_threads(1)
    one, _ = forward(cpu, "gru", p)
    real_thread = cpu._projection_thread

    def late(ready, *args):
        time.sleep(0.05)
        return real_thread(ready, *args)
    monkeypatch.setattr(cpu, "_projection_thread", late)
    pin_threads(2)
    got, _ = forward(cpu, "gru", p)
    for a, b in zip(got, one):
        np.testing.assert_array_equal(a, b)
