"""The fused Numba kernels (kernels/cpu.py) against the NumPy reference, and their own gradients."""

import itertools
import os
import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest
from helpers import numeric_gradient
from hypothesis import given, settings
from hypothesis import strategies as st
from lstmzoo.kernels import cpu, reference

CELLS = ["lstm", "gru", "rnn_tanh", "rnn_relu"]
TOLERANCE = {np.float32: 1e-5, np.float64: 1e-10}
GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}


def make_inputs(rng, cell, T, B, I, H, dtype):
    """Random parameters and state at a scale that keeps the gates out of saturation."""
    G = GATES[cell]

    def normal(*shape, scale=1.0):
        return (scale * rng.standard_normal(shape)).astype(dtype)

    return {"x": normal(T, B, I), "h0": normal(B, H, scale=0.5), "c0": normal(B, H, scale=0.5),
                "w_ih": normal(G * H, I, scale=0.5), "w_hh": normal(G * H, H, scale=0.5),
                "b_ih": normal(G * H, scale=0.3), "b_hh": normal(G * H, scale=0.3)}


def forward(module, cell, p, lengths=None, training=True):
    """(outputs, cache): outputs is (y, h_n, c_n) for the LSTM, (y, h_n) otherwise."""
    if cell == "lstm":
        y, h_n, c_n, cache = module.lstm_forward(**p, lengths=lengths, training=training)
        return (y, h_n, c_n), cache
    args = {k: v for k, v in p.items() if k != "c0"}
    if cell == "gru":
        y, h_n, cache = module.gru_forward(**args, lengths=lengths, training=training)
    else:
        y, h_n, cache = module.rnn_forward(**args, lengths=lengths, training=training,
                                           nonlinearity=cell.split("_")[1])
    return (y, h_n), cache


def backward(module, cell, cache, dy, dh_n, dc_n):
    if cell == "lstm":
        return module.lstm_backward(dy, dh_n, dc_n, cache)
    return getattr(module, cell.split("_")[0] + "_backward")(dy, dh_n, cache)


def assert_close(actual, expected, dtype):
    assert actual.dtype == expected.dtype == dtype
    assert actual.shape == expected.shape
    if dtype == np.float64:
        np.testing.assert_allclose(actual, expected, rtol=1e-10, atol=1e-12)
    else:
        scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5 * scale)


@st.composite
def problems(draw):
    T = draw(st.integers(1, 7))
    B = draw(st.integers(1, 5))
    use_lengths = draw(st.booleans())
    lengths = np.array(draw(st.lists(st.integers(1, T), min_size=B, max_size=B))) if use_lengths else None
    return {"cell": draw(st.sampled_from(CELLS)), "T": T, "B": B, "I": draw(st.integers(1, 6)),
                "H": draw(st.integers(1, 7)), "dtype": draw(st.sampled_from([np.float32, np.float64])),
                "lengths": lengths, "seed": draw(st.integers(0, 2**31 - 1)),
                "with_dh_n": draw(st.booleans()), "with_dc_n": draw(st.booleans())}


@settings(max_examples=120, deadline=None)
@given(problems())
def test_matches_reference(problem):
    cell, dtype, lengths = problem["cell"], problem["dtype"], problem["lengths"]
    T, B, H = problem["T"], problem["B"], problem["H"]
    rng = np.random.default_rng(problem["seed"])
    p = make_inputs(rng, cell, T, B, problem["I"], H, dtype)
    dy = rng.standard_normal((T, B, H)).astype(dtype)
    dh_n = rng.standard_normal((B, H)).astype(dtype) if problem["with_dh_n"] else None
    dc_n = rng.standard_normal((B, H)).astype(dtype) if problem["with_dc_n"] else None

    got, got_cache = forward(cpu, cell, p, lengths)
    want, want_cache = forward(reference, cell, p, lengths)
    for a, b in zip(got, want):
        assert_close(a, b, dtype)

    got_grads = backward(cpu, cell, got_cache, dy, dh_n, dc_n)
    want_grads = backward(reference, cell, want_cache, dy, dh_n, dc_n)
    assert len(got_grads) == len(want_grads)
    for a, b in zip(got_grads, want_grads):
        assert_close(a, b, dtype)


@pytest.mark.parametrize("cell", CELLS)
def test_non_contiguous_inputs(cell):
    """Transposed / strided views are accepted and give the same result as their contiguous copies."""
    rng = np.random.default_rng(1)
    p = make_inputs(rng, cell, 4, 3, 5, 6, np.float64)
    views = dict(p)
    views["x"] = np.ascontiguousarray(p["x"].transpose(1, 0, 2)).transpose(1, 0, 2)
    views["w_ih"] = np.asfortranarray(p["w_ih"])
    views["w_hh"] = np.asfortranarray(p["w_hh"])
    views["h0"] = np.repeat(p["h0"], 2, axis=1)[:, ::2]
    for a, b in zip(forward(cpu, cell, views)[0], forward(reference, cell, p)[0]):
        assert_close(a, b, np.float64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cell", CELLS)
def test_inference_matches_training(cell, dtype):
    rng = np.random.default_rng(2)
    p = make_inputs(rng, cell, 6, 4, 3, 5, dtype)
    lengths = np.array([6, 2, 4, 1])
    trained, cache = forward(cpu, cell, p, lengths, training=True)
    inferred, no_cache = forward(cpu, cell, p, lengths, training=False)
    assert cache is not None and no_cache is None
    for a, b in zip(trained, inferred):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cell", CELLS)
def test_finite_difference_gradients(cell):
    """Central differences of L = sum(y R1) + sum(h_n R2) [+ sum(c_n R3)] through the fused kernels."""
    rng = np.random.default_rng(3)
    T, B, I, H = 4, 3, 3, 4
    p = make_inputs(rng, cell, T, B, I, H, np.float64)
    if cell == "rnn_relu":  # keep pre-activations away from the kink at 0, where the loss is not smooth
        p["b_ih"] += 0.5
    lengths = np.array([4, 2, 3])
    weights = [rng.standard_normal(o.shape) for o in forward(cpu, cell, p, lengths)[0]]

    def loss(params):
        return sum(float(np.sum(o * w)) for o, w in zip(forward(cpu, cell, params, lengths)[0], weights))

    _, cache = forward(cpu, cell, p, lengths)
    dc_n = weights[2] if cell == "lstm" else None
    grads = backward(cpu, cell, cache, weights[0], weights[1], dc_n)
    if cell == "lstm":
        dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh = grads
        analytic = {"x": dx, "h0": dh0, "c0": dc0, "w_ih": dw_ih, "w_hh": dw_hh, "b_ih": db_ih, "b_hh": db_hh}
    else:
        dx, dh0, dw_ih, dw_hh, db_ih, db_hh = grads
        analytic = {"x": dx, "h0": dh0, "w_ih": dw_ih, "w_hh": dw_hh, "b_ih": db_ih, "b_hh": db_hh}
    for name, grad in analytic.items():
        numeric = numeric_gradient(lambda: loss(p), p[name])
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-7, err_msg=name)


@pytest.mark.parametrize("threads, steps", [(1, ["packed"]), (2, ["packed", "packed"])])
def test_larger_float32_shapes_match_reference(threads, steps, pin_threads):
    """A shape big enough that the vectorised loops run full SIMD widths plus remainders: B = 37 on one thread
    is one block whose per-step GEMM is the micro-kernel (four whole row tiles and a partial one, a partial
    panel: 4H = 180 columns), on two threads two blocks of 18 and 19 rows."""
    pin_threads(threads)
    assert [block.step for block in cpu.plan(37).blocks] == steps
    rng = np.random.default_rng(4)
    for cell in CELLS:
        p = make_inputs(rng, cell, 9, 37, 21, 45, np.float32)
        for name in ("w_ih", "w_hh"):
            p[name] *= 0.3
        lengths = rng.integers(1, 10, size=37)
        got, got_cache = forward(cpu, cell, p, lengths)
        want, want_cache = forward(reference, cell, p, lengths)
        for a, b in zip(got, want):
            assert_close(a, b, np.float32)
        dy = rng.standard_normal(got[0].shape).astype(np.float32)
        for a, b in zip(backward(cpu, cell, got_cache, dy, None, None),
                        backward(reference, cell, want_cache, dy, None, None)):
            assert_close(a, b, np.float32)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_small_batch_matmul_matches_numpy(dtype):
    """The per-step kernel for B = 2..32 (blocks of eight rows, then four, the last zero-padded, two weight rows at a
    time) at every row count, odd and even widths, against the exact (float64) product.

    The kernel sums in whatever order the compiler vectorises it (fastmath reassociation: 8 float32 lanes with
    AVX2, 16 with AVX-512), so the tolerance is the bound that holds for every order: a sum of K rounded products
    is off by at most K * eps * sum_k |a_k w_k| (Higham, Accuracy and Stability, section 3.1). Against float32
    NumPy with rtol 1e-5 it used half its tolerance, with an order of its own."""
    from lstmzoo.kernels.cpu import _rows_matmul_t
    rng = np.random.default_rng(5)
    for rows in range(1, 34):
        for N, K in [(1, 3), (7, 5), (8, 33), (64, 128)]:
            a = rng.standard_normal((rows, K)).astype(dtype)
            w = rng.standard_normal((N, K)).astype(dtype)
            out = np.full((rows, N), np.nan, dtype)
            _rows_matmul_t(a, w, out, np.empty((4, K), dtype))
            a64, w64 = a.astype(np.float64), w.astype(np.float64)
            bound = K * np.finfo(dtype).eps * (np.abs(a64) @ np.abs(w64).T)
            assert (np.abs(out - a64 @ w64.T) <= bound).all(), (rows, N, K)


@pytest.mark.parametrize("B", [6, 8, 13, 27])
def test_small_batches_above_four_match_reference(B, pin_threads):
    """B = 5..32 on one thread runs the micro-kernel over several row tiles, the last one partial, forward
    and backward."""
    pin_threads(1)
    assert cpu.plan(B).blocks == [cpu.Block(0, B, "packed")]
    rng = np.random.default_rng(B)
    for cell in CELLS:
        p = make_inputs(rng, cell, 5, B, 7, 13, np.float64)
        lengths = rng.integers(1, 6, size=B)
        got, got_cache = forward(cpu, cell, p, lengths)
        want, want_cache = forward(reference, cell, p, lengths)
        for a, b in zip(got, want):
            assert_close(a, b, np.float64)
        dy = rng.standard_normal(got[0].shape)
        for a, b in zip(backward(cpu, cell, got_cache, dy, None, None),
                        backward(reference, cell, want_cache, dy, None, None)):
            assert_close(a, b, np.float64)


@pytest.fixture
def pin_threads(monkeypatch):
    """``pin_threads(n)``: the kernels plan for ``n`` threads, whatever the machine has; undone after the test.

    The kernels read Numba's thread count only to plan (``cpu.plan``); they run the blocks on Python threads of
    their own. ``numba.set_num_threads(n)`` refuses an ``n`` above NUMBA_NUM_THREADS (the core count, 1 on a
    1-core machine), so the count is pinned where the plan reads it and every path runs on every machine."""
    import numba

    def pin(n):
        monkeypatch.setattr(numba, "get_num_threads", lambda: n)
    return pin


@pytest.mark.parametrize("B, threads, blocks", [
    (1, 1, [(0, 1, "gemv")]),
    (1, 16, [(0, 1, "gemv")]),
    (2, 16, [(0, 2, "packed")]),
    (7, 2, [(0, 7, "packed")]),  # two blocks would have fewer than 4 rows each
    (8, 2, [(0, 4, "packed"), (4, 8, "packed")]),
    (9, 16, [(0, 4, "packed"), (4, 9, "packed")]),
    (32, 1, [(0, 32, "packed")]),
    (33, 1, [(0, 33, "packed")]),
    (66, 2, [(0, 33, "packed"), (33, 66, "packed")]),
    (14, 3, [(0, 4, "packed"), (4, 9, "packed"), (9, 14, "packed")]),
    (256, 1, [(0, 256, "packed")]),  # no BLAS in the time loop at any batch size above one
    (256, 16, [(16 * i, 16 * i + 16, "packed") for i in range(16)]),
])
def test_plan(B, threads, blocks):
    assert cpu.plan(B, threads).blocks == [cpu.Block(*block) for block in blocks]


@pytest.mark.parametrize("B, threads", [(1, 2), (7, 2), (8, 2), (13, 2), (14, 3), (100, 2), (9, 16), (1000, 7)])
def test_plan_covers_the_batch(B, threads):
    blocks = cpu.plan(B, threads).blocks
    assert blocks[0].start == 0 and blocks[-1].end == B
    assert all(a.end == b.start for a, b in itertools.pairwise(blocks))
    assert len(blocks) <= threads
    sizes = [block.end - block.start for block in blocks]
    assert len(blocks) == 1 or min(sizes) >= cpu._MIN_ROWS_PER_THREAD
    assert max(sizes) - min(sizes) <= 1


@pytest.mark.parametrize("B, threads, H, cells", [
    (1, 1, 128, []), (4, 1, 128, []), (7, 1, 128, []),       # below 8 rows: the projection before the loop
    (8, 1, 128, ["lstm", "rnn_tanh", "rnn_relu"]),           # from 8 rows: in the step's GEMM, but the GRU's
    (256, 1, 128, ["lstm", "rnn_tanh", "rnn_relu"]),
    (15, 2, 128, []), (16, 2, 128, ["lstm", "rnn_tanh", "rnn_relu"]),  # two blocks: 7 + 8 rows no, 8 + 8 yes
    (8, 1, 512, ["lstm", "rnn_tanh", "rnn_relu"]),           # LSTM weights 5 MiB: from 8 rows
    (8, 1, 1024, ["rnn_tanh", "rnn_relu"]), (31, 1, 1024, ["rnn_tanh", "rnn_relu"]),  # LSTM 20 MiB: from 32 rows
    (32, 1, 1024, ["lstm", "rnn_tanh", "rnn_relu"]), (63, 2, 1024, ["rnn_tanh", "rnn_relu"]),  # 31 + 32
    (64, 2, 1024, ["lstm", "rnn_tanh", "rnn_relu"]),
])
def test_fuses_input(B, threads, H, cells):
    kinds = {"lstm": cpu.LSTM, "gru": cpu.GRU, "rnn_tanh": cpu.RNN_TANH, "rnn_relu": cpu.RNN_RELU}
    fused = []
    for cell in CELLS:
        if cpu.plan(B, threads, kinds[cell], H, inputs=256, steps=100).fused:
            fused.append(cell)
    assert fused == cells


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("gates, inputs, H", [(4, 1, 1), (4, 3, 17), (4, 33, 100), (4, 64, 256), (3, 7, 40)])
def test_fused_weights_packed_in_two_parts_are_the_packed_concatenation(gates, inputs, H, dtype):
    """``_pack_two`` packs W_ih^T and W_hh^T into their rows of the panels: the same array as packing [W_ih | W_hh]^T
    (the last panel's padding zero in both parts)."""
    rng = np.random.default_rng(inputs * 1000 + H)
    w_ih = rng.standard_normal((gates * H, inputs)).astype(dtype)
    w_hh = rng.standard_normal((gates * H, H)).astype(dtype)
    want = cpu.pack(np.concatenate((w_ih, w_hh), axis=1).T)
    np.testing.assert_array_equal(cpu._pack_two(w_ih, w_hh), want)


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("gates, inputs, H", [(4, 3, 17), (4, 33, 100), (3, 70, 40), (1, 5, 600)])
def test_packing_on_several_threads_is_the_same_array(gates, inputs, H, dtype, threads, pin_threads, monkeypatch):
    """``cpu.pack`` and ``_pack_two`` share the panels out over the threads (here from any size): the arrays of
    ``microkernel.pack``, each thread's panels its own (the last one partial), written in full (H = 600 packs W_hh
    into recycled memory, which the test suite NaN-fills; the smaller arrays come from ``np.empty``)."""
    monkeypatch.setattr(cpu, "_MIN_THREADS_PACK_BYTES", 0)
    pin_threads(threads)
    rng = np.random.default_rng(inputs * 1000 + H)
    w_ih = rng.standard_normal((gates * H, inputs)).astype(dtype)
    w_hh = rng.standard_normal((gates * H, H)).astype(dtype)
    for w in (w_ih, w_hh):
        np.testing.assert_array_equal(cpu.pack(w.T), cpu.microkernel.pack(w.T))
    want = cpu.microkernel.pack(np.concatenate((w_ih, w_hh), axis=1).T)
    np.testing.assert_array_equal(cpu._pack_two(w_ih, w_hh), want)


@settings(max_examples=40, deadline=None)
@given(cell=st.sampled_from(CELLS), T=st.integers(1, 6), B=st.integers(8, 20), inputs=st.integers(1, 40),
       H=st.integers(1, 40), dtype=st.sampled_from([np.float32, np.float64]), threads=st.sampled_from([1, 2]),
       use_lengths=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_fused_input_projection_matches_reference(cell, T, B, inputs, H, dtype, threads, use_lengths, seed):
    """Batches of 8 rows and more per thread (``plan``'s ``fused``: the input projection in each step's GEMM for the
    LSTM and the RNN) against the reference, forward and backward, with and without lengths, on 1 and 2 threads. The
    GRU (never fused) runs the same shapes."""
    import numba
    rng = np.random.default_rng(seed)
    p = make_inputs(rng, cell, T, B, inputs, H, dtype)
    lengths = rng.integers(1, T + 1, B) if use_lengths else None
    get_num_threads = numba.get_num_threads
    numba.get_num_threads = lambda: threads  # not pin_threads: a fixture is not reset between hypothesis examples
    try:
        got, got_cache = forward(cpu, cell, p, lengths)
        inferred, _ = forward(cpu, cell, p, lengths, training=False)
    finally:
        numba.get_num_threads = get_num_threads
    want, want_cache = forward(reference, cell, p, lengths)
    for a, b, c in zip(got, inferred, want):
        assert_close(a, c, dtype)
        np.testing.assert_array_equal(a, b)
    dy = rng.standard_normal(got[0].shape).astype(dtype)
    for a, b in zip(backward(cpu, cell, got_cache, dy, None, None), backward(reference, cell, want_cache, dy, None,
                                                                             None)):
        assert_close(a, b, dtype)


@pytest.mark.parametrize("bits", [256, 512])
@pytest.mark.parametrize("rows, threads", [(1, 1), (37, 1), (300, 1), (300, 2), (1000, 2)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_input_projection_matches_numpy(rows, threads, bits, dtype, pin_threads, monkeypatch):
    """All steps' input projections (the forward's GEMM before the loop where the input is not fused): through the
    micro-kernel in blocks of rows on one or two threads, with either tile (``bits``; both run on any x86-64 CPU)."""
    pin_threads(threads)
    monkeypatch.setattr(cpu.microkernel, "VECTOR_BITS", bits)
    rng = np.random.default_rng(rows)
    x, w_ih = rng.standard_normal((rows, 45)).astype(dtype), rng.standard_normal((180, 45)).astype(dtype)
    got = cpu._input_projection(x, w_ih, cpu.plan(3, threads).blocks)
    want = x.astype(np.float64) @ w_ih.T.astype(np.float64)
    np.testing.assert_allclose(got, want, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype] * np.abs(want).max())


def test_plan_reads_numbas_thread_count(pin_threads):
    pin_threads(3)
    assert len(cpu.plan(14).blocks) == 3


@pytest.mark.parametrize("cell", CELLS)
def test_time_loops_split_over_threads_match_reference(cell, pin_threads):
    """Three threads, each running the whole time loop for its block of rows (4, 5 and 5 of 14; ragged
    lengths), forward and backward, float64 and float32 (each block through the micro-kernel)."""
    pin_threads(3)
    assert [block.step for block in cpu.plan(14).blocks] == ["packed"] * 3
    for dtype in (np.float64, np.float32):
        rng = np.random.default_rng(11)
        p = make_inputs(rng, cell, 6, 14, 5, 9, dtype)
        lengths = rng.integers(1, 7, size=14)
        got, got_cache = forward(cpu, cell, p, lengths)
        want, want_cache = forward(reference, cell, p, lengths)
        for a, b in zip(got, want):
            assert_close(a, b, dtype)
        inference = forward(cpu, cell, p, lengths, training=False)[0]
        for a, b in zip(inference, want):
            assert_close(a, b, dtype)
        dy = rng.standard_normal(got[0].shape).astype(dtype)
        for a, b in zip(backward(cpu, cell, got_cache, dy, None, None),
                        backward(reference, cell, want_cache, dy, None, None)):
            assert_close(a, b, dtype)


@pytest.mark.parametrize("rows", [1, 130, 700, 5000])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_input_projection_bits_do_not_depend_on_the_threads(rows, dtype, monkeypatch):
    """All steps' input projections before the time loop, split over 1..3 threads (through the micro-kernel, by
    rows, or by W_ih^T's column panels where the rows are too few for a part per thread, here at any size): the
    same bits on any number of threads, and close to float64's product."""
    monkeypatch.setattr(cpu, "_MIN_COLUMN_SPLIT_MACS", 0)
    rng = np.random.default_rng(rows)
    # 100 columns: several panels (16..64 wide), a partial last one, split unevenly over 3 threads
    x, w = rng.standard_normal((rows, 24)).astype(dtype), rng.standard_normal((100, 24)).astype(dtype)
    results = []
    for threads in (1, 2, 3):
        monkeypatch.setattr(numba, "get_num_threads", lambda: threads)
        results.append(cpu._input_projection(x, w, [cpu.Block(0, 7, "packed")]))
    for got in results[1:]:
        np.testing.assert_array_equal(got, results[0])
    np.testing.assert_allclose(results[0], x.astype(np.float64) @ w.T.astype(np.float64),
                               rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-4 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("n, B", [(400, 4), (700, 7), (10, 3), (1, 1), (0, 2), (5000, 2), (130, 16), (5000, 200)])
def test_the_projections_ramp_covers_the_rows_once_in_whole_steps(n, B):
    """``_ramp`` (the chunks ``_forward_beside`` projects beside the loop): consecutive row ranges covering
    ``range(n)``, whole steps, 1, 2, 4, ... steps up to 128 rows (at least one step)."""
    chunks = cpu._ramp(n, B)
    assert chunks.shape[1:] == (2,) and (chunks[:, 1] > chunks[:, 0]).all() and (len(chunks) > 0) == (n > 0)
    assert chunks.flatten().tolist() == [0, *np.repeat(chunks[:-1, 1], 2).tolist(), n][:chunks.size]
    assert all(r1 % B == 0 for r1 in chunks[:-1, 1])
    steps = [int(r1 - r0) // B for r0, r1 in chunks[:-1]]
    assert steps == [min(2 ** i, max(1, 128 // B)) for i in range(len(steps))]


def test_cache_is_cold_until_the_time_loops_are_compiled(tmp_path):
    """In a fresh process with an empty NUMBA_CACHE_DIR: cold; after a float32 forward and backward: warm for
    float32, still cold for float64, and warm again for float32 in the next process (read from the cache)."""
    script = textwrap.dedent("""
        import numpy as np
        from lstmzoo.kernels import cpu
        print(cpu.cache_is_cold("float32"), cpu.cache_is_cold("float64"))
        a = lambda *shape: np.ones(shape, np.float32)
        y, _, _, cache = cpu.lstm_forward(a(2, 3, 2), a(3, 2), a(3, 2), a(8, 2), a(8, 2), a(8), a(8))
        cpu.lstm_backward(y, None, None, cache)
        print(cpu.cache_is_cold("float32"), cpu.cache_is_cold("float64"))
    """)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    first = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert first.stdout.split("\n")[:2] == ["True True", "False True"], first.stdout + first.stderr
    again = subprocess.run([sys.executable, "-c", "from lstmzoo.kernels import cpu; print(cpu.cache_is_cold())"],
                           env=env, capture_output=True, text=True, check=True)
    assert again.stdout.strip() == "False"


def test_every_kernel_name_the_readme_uses_exists():
    """The README's paragraph on ``lstmzoo.kernels``: each name it lists is there (``gru_*``: forward and
    backward), the functions are the CPU kernels, and the submodules it names can be reached as attributes."""
    import re
    from pathlib import Path

    from lstmzoo import kernels
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    paragraph = readme[readme.index("`lstmzoo.kernels` exposes"):]
    paragraph = paragraph[:paragraph.index("\n\n")]
    names = [name for name in re.findall(r"`([\w.*]+)`", paragraph) if name != "lstmzoo.kernels"]
    assert "lstm_forward" in names and "kernels.cpu" in names
    for name in names:
        for full in ([name[:-1] + "forward", name[:-1] + "backward"] if name.endswith("_*") else [name]):
            value = kernels
            for part in full.removeprefix("kernels.").split("."):
                value = getattr(value, part)
            if full in kernels.FUNCTIONS:
                assert value is getattr(cpu, full)
