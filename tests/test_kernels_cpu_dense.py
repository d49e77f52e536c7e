"""kernels.cpu.dense_forward / dense_backward (Linear's GEMMs on the CPU) against kernels.reference, on every path:
NumPy's ``@`` below the size rule, NumPy on one OpenBLAS thread for narrow outputs, the micro-kernel split by rows
and by column panels; the same bits on 1 and 2 threads; finite differences in float64 through Linear."""

import numba
import numpy as np
import pytest
from helpers import numeric_gradient
from lstmzoo.kernels import cpu, reference

from lstmzoo.nn import Linear

# (N, I, O): below the rule; narrow (O < 16) and large; row split; column split (few rows, many outputs); ragged
# tiles and panels everywhere; one input; K past one K block (GEMM_KC = 256)
SHAPES = [(3, 5, 7), (700, 650, 3), (1, 300, 2000), (257, 33, 101), (8, 96, 1000), (5, 600, 457), (96, 1, 4099),
          (130, 700, 50), (20, 200, 70)]
# on two threads, for SHAPES[2:]: split by rows (else by column panels: few rows, many panels)
BY_ROWS = [False, True, False, False, True, True, True]


def on_kernels(shape):
    return cpu._dense_on_kernels(*shape)


def test_the_shapes_cover_every_path(monkeypatch):
    assert [on_kernels(s) for s in SHAPES] == [False, False] + [True] * 7
    by_rows = []
    split = cpu._split_gemm_packed
    monkeypatch.setattr(cpu, "_split_gemm_packed", lambda *args: by_rows.append(True) or split(*args))
    monkeypatch.setattr(numba, "get_num_threads", lambda: 2)
    monkeypatch.setattr(cpu, "_MIN_DENSE_SPLIT_MACS", 0)  # split even the small shapes
    for (N, n_in, outputs), rows in zip(SHAPES[2:], BY_ROWS, strict=True):
        by_rows.clear()
        cpu.dense_forward(np.ones((N, n_in), np.float32), np.ones((outputs, n_in), np.float32))
        assert by_rows == [True] * rows, (N, n_in, outputs)


def tolerance(dtype):
    return {"rtol": 1e-5, "atol": 1e-5} if dtype == np.float32 else {"rtol": 1e-10, "atol": 1e-10}


def openblas_controllers():
    """threadpoolctl's view of every OpenBLAS loaded (NumPy's and SciPy's): the tests read the thread counts
    through it, apart from the ctypes functions the kernels set them with."""
    import scipy.linalg.cython_blas  # noqa: F401
    from threadpoolctl import ThreadpoolController
    return ThreadpoolController().select(internal_api="openblas").lib_controllers


@pytest.mark.parametrize("B", [1, 4])
def test_time_loops_run_every_openblas_on_one_thread_from_two_rows(B, monkeypatch):
    """The forward's time loop (B >= 2) holds NumPy's and SciPy's OpenBLAS at one thread and restores them after;
    B = 1 leaves them as they were (its GEMV keeps OpenBLAS's default)."""
    controllers = openblas_controllers()
    if not controllers:
        pytest.skip("no OpenBLAS here")
    before = [c.get_num_threads() for c in controllers]
    during = []
    real = cpu._in_row_blocks

    def spy(*args, **kwargs):
        during.append([c.get_num_threads() for c in controllers])
        return real(*args, **kwargs)
    monkeypatch.setattr(cpu, "_in_row_blocks", spy)
    rng = np.random.default_rng(4)
    H, n_in = 16, 8
    w_ih, w_hh = rng.standard_normal((4 * H, n_in)), rng.standard_normal((4 * H, H))
    b_ih, b_hh = rng.standard_normal(4 * H), rng.standard_normal(4 * H)
    x, h0, c0 = rng.standard_normal((5, B, n_in)), np.zeros((B, H)), np.zeros((B, H))
    try:
        for c in controllers:
            c.set_num_threads(2)
        cpu.lstm_forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh)
        after = [c.get_num_threads() for c in controllers]
    finally:
        for c, threads in zip(controllers, before):
            c.set_num_threads(threads)
    assert during and all(counts == [1 if B > 1 else 2] * len(controllers) for counts in during)
    assert after == [2] * len(controllers)


def test_set_num_threads_sets_every_openblas():
    controllers = openblas_controllers()
    if not controllers:
        pytest.skip("no OpenBLAS here")
    before = [c.get_num_threads() for c in controllers]
    try:
        assert cpu.set_num_threads(3)
        assert [c.get_num_threads() for c in controllers] == [3] * len(controllers)
    finally:
        for c, threads in zip(controllers, before):
            c.set_num_threads(threads)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("bias", [True, False])
def test_matches_the_reference(shape, dtype, bias):
    N, n_in, outputs = shape
    rng = np.random.default_rng(N + n_in + outputs)
    x = rng.standard_normal((N, n_in)).astype(dtype)
    weight = (rng.standard_normal((outputs, n_in)) / np.sqrt(n_in)).astype(dtype)
    b = rng.standard_normal(outputs).astype(dtype) if bias else None
    dout = rng.standard_normal((N, outputs)).astype(dtype)
    y = cpu.dense_forward(x, weight, b)
    assert y.dtype == dtype and y.shape == (N, outputs)
    np.testing.assert_allclose(y, reference.dense_forward(x, weight, b), **tolerance(dtype))
    got, want = cpu.dense_backward(dout, x, weight, bias), reference.dense_backward(dout, x, weight, bias)
    for name, g, w in zip(("dx", "dweight", "dbias"), got, want):
        if w is None:
            assert g is None
            continue
        assert g.dtype == dtype and g.shape == w.shape, name
        # dweight and dbias sum over N rows: scale the tolerance by the rows' magnitude
        np.testing.assert_allclose(g, w, rtol=tolerance(dtype)["rtol"], atol=tolerance(dtype)["atol"] * np.sqrt(N),
                                   err_msg=name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1000, 33, 17), (600, 145, 144), (300, 40, 41), (2100, 20, 16), (257, 64, 300)])
def test_the_weight_gradient_has_the_same_bits_either_way_round(shape, dtype):
    """Fewer outputs than inputs: ``x^T dout`` and the column sums; else ``dout^T [x | 1]``. Each element is the
    same chain of multiply-adds in the same order either way, so a layer whose shape crosses the rule (or a
    change of the rule) changes no result: both checked against each other on shapes of both kinds, K past
    GEMM_KC (256) in blocks."""
    N, n_in, outputs = shape
    rng = np.random.default_rng(N)
    x, dout = rng.standard_normal((N, n_in)).astype(dtype), rng.standard_normal((N, outputs)).astype(dtype)
    _, dweight, dbias = cpu.dense_backward(dout, x, None, True)
    g, _, sums = cpu._weight_gradients(dout, x, None, True, numba.get_num_threads())
    assert np.array_equal(dweight, g) and np.array_equal(dbias, sums)
    transposed = np.empty((n_in, outputs), dtype)
    cpu._split_gemm_packed(x.T, cpu._pack_panels(dout), transposed, 2)
    assert np.array_equal(transposed.T, g) and np.array_equal(cpu._column_sums(dout), sums)


@pytest.mark.parametrize("shape", SHAPES)
def test_only_the_weight_gradient_without_a_weight(shape):
    """An attention's ``W``: ``dense_backward(dout, x, None, False)`` gives ``dout.T @ x`` alone."""
    N, n_in, outputs = shape
    rng = np.random.default_rng(11)
    dout, x = rng.standard_normal((N, outputs)), rng.standard_normal((N, n_in))
    dx, dweight, dbias = cpu.dense_backward(dout, x, None, False)
    assert dx is None and dbias is None
    np.testing.assert_allclose(dweight, reference.dense_backward(dout, x, None, False)[1], rtol=1e-10,
                               atol=1e-10 * np.sqrt(N))


@pytest.mark.parametrize("shape", [s for s in SHAPES if on_kernels(s)])
def test_the_same_bits_on_one_two_and_three_threads(shape, monkeypatch):
    """The parts follow ``numba.get_num_threads()`` (pinned here, so that a one-core machine splits too) and run on
    the kernels' own thread pool: 1, 2 and 3 parts give the same bits."""
    N, n_in, outputs = shape
    rng = np.random.default_rng(7)
    x, dout = rng.standard_normal((N, n_in)).astype(np.float32), rng.standard_normal((N, outputs)).astype(np.float32)
    weight, b = rng.standard_normal((outputs, n_in)).astype(np.float32), rng.standard_normal(outputs).astype(np.float32)
    results, parts = [], []
    real = cpu._in_parallel

    def counted(calls):
        parts.append(len(calls))
        return real(calls)
    monkeypatch.setattr(cpu, "_in_parallel", counted)
    monkeypatch.setattr(cpu, "_MIN_DENSE_SPLIT_MACS", 0)  # split even the small shapes
    for threads in (1, 2, 3):
        monkeypatch.setattr(numba, "get_num_threads", lambda threads=threads: threads)
        parts.clear()
        results.append([cpu.dense_forward(x, weight, b).copy()] + [g.copy() for g in
                                                                 cpu.dense_backward(dout, x, weight, True)])
        assert max(parts) == threads  # split as pinned (every GEMM at most that many parts, some exactly)
    for result in results[1:]:
        for one, other in zip(results[0], result):
            assert np.array_equal(one, other)


@pytest.mark.parametrize("shape, parts", [((140, 128, 100), 1), ((700, 128, 64), 1), ((140, 256, 1000), 2)])
def test_small_gemms_run_in_one_part(shape, parts, monkeypatch):
    """Below ``_MIN_DENSE_SPLIT_MACS`` multiply-adds each GEMM runs on the calling thread (waking a pool thread cost
    more than the second part saved); from it, on the two threads pinned."""
    N, n_in, outputs = shape
    assert on_kernels(shape) and (N * n_in * outputs >= cpu._MIN_DENSE_SPLIT_MACS) == (parts == 2)
    rng = np.random.default_rng(8)
    x, dout = rng.standard_normal((N, n_in)).astype(np.float32), rng.standard_normal((N, outputs)).astype(np.float32)
    weight = rng.standard_normal((outputs, n_in)).astype(np.float32)
    seen = []
    real = cpu._in_parallel
    monkeypatch.setattr(cpu, "_in_parallel", lambda calls: seen.append(len(calls)) or real(calls))
    monkeypatch.setattr(numba, "get_num_threads", lambda: 2)
    cpu.dense_forward(x, weight)
    cpu.dense_backward(dout, x, weight, True)
    assert len(seen) == 3 and set(seen) == {parts}  # forward, weight gradient, dx


def test_narrow_outputs_run_openblas_on_one_thread_and_leave_it_as_it_was():
    controllers = openblas_controllers()
    if not controllers:
        pytest.skip("no OpenBLAS here")
    before = [c.get_num_threads() for c in controllers]
    for c in controllers:
        c.set_num_threads(2)  # as on a 2-core machine, whatever this one has
    rng = np.random.default_rng(3)
    x, weight = rng.standard_normal((700, 650)).astype(np.float32), rng.standard_normal((3, 650)).astype(np.float32)
    during = []
    real = np.ndarray.__matmul__

    class Spy(np.ndarray):
        def __matmul__(self, other):
            during.append([c.get_num_threads() for c in controllers])
            return real(np.asarray(self), other)
    try:
        cpu.dense_forward(x.view(Spy), weight)
        after = [c.get_num_threads() for c in controllers]
    finally:
        for c, threads in zip(controllers, before):
            c.set_num_threads(threads)
    assert during == [[1] * len(controllers)]
    assert after == [2] * len(controllers)


@pytest.mark.parametrize("bias", [True, False])
def test_linear_finite_differences_on_the_kernels_path(bias):
    """Linear(40, 20) on [3, 150, 40] inputs: 180,000 multiply-adds a GEMM... below the rule; [4, 100, 40] x 20
    outputs reach it (320,000)."""
    rng = np.random.default_rng(5)
    layer = Linear(40, 20, bias=bias, dtype="float64", rng=rng)
    x = rng.standard_normal((4, 100, 40))
    assert on_kernels((400, 40, 20))
    w = rng.standard_normal((4, 100, 20))

    def loss():
        return float((layer.forward(x) * w).sum())

    layer.zero_grad()
    layer.forward(x)
    dx = layer.backward(w)
    np.testing.assert_allclose(dx[:, :3], numeric_gradient(loss, x[:, :3]), rtol=1e-6, atol=1e-8)
    for name, p in layer.parameters().items():
        np.testing.assert_allclose(layer.grads()[name], numeric_gradient(loss, p), rtol=1e-6, atol=1e-8,
                                   err_msg=name)
