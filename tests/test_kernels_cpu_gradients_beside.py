"""The backward's dx and weight gradients on a second thread beside the row split's one time loop (kernels/cpu.py,
``_backward_beside``, ``_gradients_behind``, ``_gradients_tail``): which shapes take it, its results against the
NumPy reference and one thread's, their bits independent of which thread computed which part, failing threads,
and ``microkernel.gemm_packed``'s ``add``."""

import threading
import time

import numpy as np
import pytest
from helpers import count_calls
from lstmzoo.kernels import cpu, microkernel, reference
from test_kernels_cpu import CELLS, assert_close, backward, forward
from test_kernels_cpu_split import inputs


@pytest.fixture
def pin_threads(monkeypatch):
    """``pin_threads(n)``: the kernels plan for ``n`` threads (as in test_kernels_cpu_split.py)."""
    import numba
    return lambda n: monkeypatch.setattr(numba, "get_num_threads", lambda: n)


@pytest.mark.parametrize("B, threads, cell, T, n_in, H, projected, beside", [
    (4, 2, cpu.LSTM, 100, 128, 128, False, True), (4, 2, cpu.GRU, 100, 32, 128, False, True),
    (7, 3, cpu.RNN_TANH, 100, 256, 256, False, True),    # one block, a free thread
    (4, 1, cpu.LSTM, 100, 128, 128, False, False),      # one thread: nobody to compute beside the loop
    (1, 2, cpu.LSTM, 100, 128, 128, False, False),      # one row: OpenBLAS's GEMV, on its threads
    (8, 2, cpu.LSTM, 100, 128, 128, False, False),      # two blocks: both threads run a loop
    (4, 2, cpu.LSTM, 100, 128, 512, False, False),      # the backward splits the units (plan)
    (4, 2, cpu.LSTM, 100, 128, 128, True, False),       # a projection (dW_hr): after the loop
    (4, 2, cpu.LSTM, 1, 1024, 128, False, False),       # one step: nothing to overlap
    (2, 2, cpu.RNN_TANH, 100, 32, 128, False, False),   # 2^22.2 multiply-adds: below the threshold
    (4, 2, cpu.GRU, 100, 256, 256, False, False),       # dW_ih, dW_hh: 1.6 MB, more than the L2 (1 MB here)
    (4, 2, cpu.GRU, 100, 64, 256, False, True),         # 0.99 MB
])
def test_which_backwards_compute_gradients_beside(B, threads, cell, T, n_in, H, projected, beside, monkeypatch):
    monkeypatch.setattr(cpu, "_l2_bytes", lambda: 1 << 20)
    for itemsize in (4, 8):  # float64's gradients take twice the L2
        how = cpu.plan(B, threads, cell, H, projected, backward=True, itemsize=itemsize, inputs=n_in, steps=T)
        assert how.beside is (beside and (itemsize == 4 or cpu._GATES[cell] * H * (n_in + H + 2) * 8 <= 1 << 20))


def test_the_l2_size_is_read_or_assumed():
    assert 256 << 10 <= cpu._l2_bytes() <= 64 << 20


@pytest.mark.parametrize("l2, kc", [(256 << 10, 256), (512 << 10, 256), (1 << 20, 512), (1280 << 10, 512),
                                    (2 << 20, 1024), (32 << 20, 1024)])
def test_the_gemms_k_block_follows_the_l2(monkeypatch, l2, kc):
    """A block of GEMM_MC rows and kc columns of float32 in at most a quarter of an L2, kc from 256 to 1024."""
    monkeypatch.setattr(cpu, "_l2_bytes", lambda: l2)
    assert cpu._gemm_kc.__wrapped__() == kc


@pytest.fixture
def beside_at_any_size(monkeypatch):
    """The gradients beside the loop for the tests' small shapes too."""
    monkeypatch.setattr(cpu, "_MIN_GRADIENTS_BESIDE_MACS", 0)
    monkeypatch.setattr(cpu, "_l2_bytes", lambda: 1 << 40)


@pytest.fixture
def spy(monkeypatch):
    """Counts the threads started to compute the gradients beside the loop."""
    return count_calls(monkeypatch, cpu, "_gradients_thread")


def _problem(cell, dtype, B, T, seed):
    rng = np.random.default_rng(seed)
    p = inputs(rng, cell, T, B, 13, 40, dtype)
    lengths = rng.integers(1, T + 1, B)
    lengths[0] = T
    dy = rng.standard_normal((T, B, 40)).astype(dtype)
    dh_n = rng.standard_normal((B, 40)).astype(dtype)
    dc_n = rng.standard_normal((B, 40)).astype(dtype) if cell == "lstm" else None
    return p, lengths, dy, dh_n, dc_n


def _gradients(module, cell, p, lengths, dy, dh_n, dc_n):
    _, cache = forward(module, cell, p, lengths)
    return [g for g in backward(module, cell, cache, dy, dh_n, dc_n) if g is not None]


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("B, T", [(2, 5), (5, 40), (7, 30), (3, 64)])
def test_the_gradients_beside_the_loop_match_the_reference_and_one_thread(cell, dtype, B, T, pin_threads, spy,
                                                                          beside_at_any_size):
    """Lengths, dh_n and dc_n; T covers one part (fewer steps than a part's), several, and a last part cut short
    (parts of 64 // B steps). Against the reference and one thread's path (which sums the steps forwards, in one
    GEMM: the same within the tolerance, not bitwise); two calls give the same bits."""
    p, lengths, dy, dh_n, dc_n = _problem(cell, dtype, B, T, B * T)
    want = _gradients(reference, cell, p, lengths, dy, dh_n, dc_n)
    pin_threads(1)
    one = _gradients(cpu, cell, p, lengths, dy, dh_n, dc_n)
    assert not spy
    pin_threads(2)
    got = _gradients(cpu, cell, p, lengths, dy, dh_n, dc_n)
    assert len(spy) == 1  # the path under test ran
    again = _gradients(cpu, cell, p, lengths, dy, dh_n, dc_n)
    assert len(want) == len(got) == len(one)
    for a, b, c, d in zip(got, one, want, again):
        assert_close(a, c, dtype)
        assert_close(a, b, dtype)
        np.testing.assert_array_equal(a, d)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_the_bits_do_not_depend_on_which_thread_computed_which_part(cell, pin_threads, monkeypatch,
                                                                    beside_at_any_size):
    """The parts' hand-over point depends on timing: the second thread starting only once the loop's thread has
    taken over (it then takes every part: their dx rows and half of their gate rows), or the loop's thread waiting
    after the loop until the second thread has claimed every part, must give the bits of an undisturbed call."""
    p, lengths, dy, dh_n, dc_n = _problem(cell, np.float32, 4, 50, 7)
    parts = -(-50 // (cpu._GRADIENT_PART_ROWS // 4))
    pin_threads(2)
    undisturbed = _gradients(cpu, cell, p, lengths, dy, dh_n, dc_n)
    real_behind, real_tail = cpu._gradients_behind, cpu._gradients_tail
    seen = {}

    def until(condition):
        deadline = time.monotonic() + 30
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.001)

    def late_behind(ready, claims, *args):
        until(lambda: claims[0] >= cpu._HANDED_OVER)
        seen["behind"] = int(claims[0])
        return real_behind(ready, claims, *args)

    def late_tail(claims, *args):
        until(lambda: claims[0] > parts)
        seen["tail"] = int(claims[0])
        return real_tail(claims, *args)
    for name, late in (("_gradients_behind", late_behind), ("_gradients_tail", late_tail)):
        with monkeypatch.context() as patch:
            patch.setattr(cpu, name, late)
            got = _gradients(cpu, cell, p, lengths, dy, dh_n, dc_n)
        for a, b in zip(got, undisturbed):
            np.testing.assert_array_equal(a, b)
    assert seen == {"behind": cpu._HANDED_OVER, "tail": parts + 1}  # each scenario happened as intended


@pytest.mark.parametrize("failing", ["_gradients_behind", "_backward_sequence"])
def test_a_failing_thread_releases_the_other(failing, pin_threads, monkeypatch, beside_at_any_size):
    """If the thread computing the gradients fails, the loop's thread (which waits for its parts after the loop)
    is released; if the loop fails, the gradients' thread (which waits for the loop's steps) is; the error reaches
    the caller either way."""
    def fails(*args):
        raise RuntimeError(f"{failing} failed")
    monkeypatch.setattr(cpu, failing, fails)
    p, lengths, dy, dh_n, dc_n = _problem("lstm", np.float32, 3, 20, 0)
    _, cache = forward(cpu, "lstm", p, lengths)
    pin_threads(2)
    result = []

    def call():
        try:
            backward(cpu, "lstm", cache, dy, dh_n, dc_n)
        except RuntimeError as error:
            result.append(str(error))
    caller = threading.Thread(target=call)
    caller.start()
    caller.join(60)
    assert not caller.is_alive() and result == [f"{failing} failed"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_packed_adds(dtype):
    """``add=True``: out += a @ b (a C-ordered or a transposed view, a partial last panel); K cut at multiples of
    ``kc`` and added part by part in order onto zeros gives the bits of one call."""
    rng = np.random.default_rng(3)
    M, K, N, kc = 37, 300, 45, 64
    a = rng.standard_normal((K, M)).astype(dtype).T     # a transposed view, as da^T
    b = rng.standard_normal((K, N)).astype(dtype)
    start = rng.standard_normal((M, N)).astype(dtype)
    packed = microkernel.pack(b)
    out = start.copy()
    microkernel.gemm_packed(a, packed, out, microkernel.GEMM_MC, kc, True)
    tolerance = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, start + a.astype(np.float64) @ b, rtol=tolerance, atol=tolerance)
    one = np.empty((M, N), dtype)
    microkernel.gemm_packed(a, packed, one, microkernel.GEMM_MC, kc, False)
    parts = np.zeros((M, N), dtype)
    for k0 in range(0, K, 2 * kc):
        microkernel.gemm_packed(a[:, k0:k0 + 2 * kc], microkernel.pack(b[k0:k0 + 2 * kc]), parts,
                                microkernel.GEMM_MC, kc, True)
    np.testing.assert_array_equal(parts, one)
    c = np.ascontiguousarray(a)     # C-ordered a; K = 0 leaves out as it was
    out = start.copy()
    microkernel.gemm_packed(c[:, :0], microkernel.pack(b[:0]), out, microkernel.GEMM_MC, kc, True)
    np.testing.assert_array_equal(out, start)
    microkernel.gemm_packed(c, packed, out, microkernel.GEMM_MC, kc, True)
    np.testing.assert_allclose(out, start + c.astype(np.float64) @ b, rtol=tolerance, atol=tolerance)
