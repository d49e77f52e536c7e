"""The CPU backward's GEMMs after the time loop (kernels/cpu.py ``_weight_gradients``, ``_big_matmul``, on
``microkernel.gemm_packed``): against NumPy, at shapes with several K and row blocks, on several threads, and
bitwise the same on any thread count."""

import numpy as np
import pytest
from lstmzoo.kernels import cpu, microkernel, reference
from test_kernels_cpu import CELLS, assert_close, backward, forward, make_inputs

BITS = [256, 512]
TOLERANCE = {np.float32: 1e-5, np.float64: 1e-10}


@pytest.fixture
def pin_threads(monkeypatch):
    """``pin_threads(n)``: the kernels plan for ``n`` threads (as in test_kernels_cpu.py)."""
    import numba

    def pin(n):
        monkeypatch.setattr(numba, "get_num_threads", lambda: n)
    return pin


def check_gemm(a, b, bits, mc, kc):
    dtype = a.dtype.type
    out = np.full((a.shape[0], b.shape[1]), np.nan, a.dtype)
    microkernel.gemm_packed(a, microkernel.pack(b, bits), out, mc, kc)
    expected = a.astype(np.float64) @ b.astype(np.float64)
    scale = max(np.abs(expected).max(initial=0.0), 1e-30)
    assert np.abs(out - expected).max(initial=0.0) / scale <= TOLERANCE[dtype]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("layout", ["rows", "transposed"])
@pytest.mark.parametrize("M, K, N, mc, kc", [
    (1, 1, 1, 128, 256), (3, 5, 7, 128, 256), (37, 600, 50, 16, 64),     # several K blocks that add, partial tiles
    (130, 300, 97, 32, 128), (9, 1, 49, 8, 1), (200, 64, 48, 128, 256),  # a partial panel; kc = 1; whole panels
])
def test_gemm_packed_matches_numpy(M, K, N, mc, kc, layout, bits, dtype):
    """C-ordered ``a`` and a transposed view (``da.T``: unit stride along its columns) give ``a @ b`` for every
    block size: the first K block stores, the others add, the last partial panel goes through a scratch tile."""
    rng = np.random.default_rng(M * 1000 + K)
    a = rng.standard_normal((M, K)).astype(dtype)
    if layout == "transposed":
        a = np.ascontiguousarray(a.T).T
        assert a.strides[0] == a.itemsize
    check_gemm(a, rng.standard_normal((K, N)).astype(dtype), bits, mc, kc)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pack_a_copies_blocks_of_transposed_views(dtype):
    """``_pack_a`` (read through ``_span`` with unsigned indices, ``_PACK_A_KS`` k a tile at a time) against the
    definition ``block[t, k, i] = a[m0 + t*mr + i, k0 + k]``: the whole da^T, a block of gate rows of part of its
    steps (the part gradients' ``da[r0:r1].T[m0:m1]``, rows a longer row apart), blocks whose last tile is partial,
    K blocks after the first and of lengths that are no multiple of ``_PACK_A_KS``. Nothing outside the copied
    tiles is written."""
    rng = np.random.default_rng(3)
    da = rng.standard_normal((90, 75)).astype(dtype)
    mr = 8
    for a in (da.T, da[7:83].T[5:70], da[:, 3:].T):
        for m0, m1, k0, kc in ((0, len(a), 0, a.shape[1]), (8, 29, 3, 17), (16, len(a), 40, 1),
                               (len(a) - 3, len(a), 9, 33)):
            tiles = -(-(m1 - m0) // mr)
            block = np.full((tiles + 1, kc + 2, mr), np.nan, dtype)
            microkernel._pack_a(a, m0, m1, k0, kc, block)
            want = np.full_like(block, np.nan)
            for t in range(tiles):
                rows = min(mr, m1 - m0 - t * mr)
                want[t, :kc, :rows] = a[m0 + t * mr:m0 + t * mr + rows, k0:k0 + kc].T
            np.testing.assert_array_equal(block, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mr", [4, 8])
def test_pack_a_rows_copies_blocks_of_transposed_views(dtype, mr):
    """``_pack_a_rows`` (whole squares of one vector transposed in registers, the rest one value at a time) against
    the definition ``block[t, i, k] = a[m0 + t*mr + i, k0 + k]``, on the views and blocks of the test above: ones
    with whole squares and remainders in both directions, a partial last tile, K blocks after the first. Nothing
    outside the copied rows is written."""
    rng = np.random.default_rng(5)
    da = rng.standard_normal((90, 75)).astype(dtype)
    for a in (da.T, da[7:83].T[5:70], da[:, 3:].T):
        for m0, m1, k0, kc in ((0, len(a), 0, a.shape[1]), (8, 29, 3, 17), (16, len(a), 40, 1),
                               (len(a) - 3, len(a), 9, 33), (0, 48, 16, 32)):
            tiles = -(-(m1 - m0) // mr)
            block = np.full((tiles + 1, mr, kc + 2), np.nan, dtype)
            microkernel._pack_a_rows(a, m0, m1, k0, kc, block)
            want = np.full_like(block, np.nan)
            for t in range(tiles):
                rows = min(mr, m1 - m0 - t * mr)
                want[t, :rows, :kc] = a[m0 + t * mr:m0 + t * mr + rows, k0:k0 + kc]
            np.testing.assert_array_equal(block, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_packed_of_transposed_views_that_are_not_packed(dtype):
    """A transposed ``a`` whose k go backwards in memory (negative column stride) is read in place (``_pack_a``
    needs a positive stride): the same bits as the packed path. Strides of part of an element (a field of a
    record array) are refused: the tiles step through ``a`` and ``out`` in whole elements."""
    rng = np.random.default_rng(4)
    da = rng.standard_normal((300, 130)).astype(dtype)
    b = rng.standard_normal((300, 5 * microkernel.panel_width(dtype))).astype(dtype)
    packed = microkernel.pack(b)
    assert len(packed) >= microkernel._PACK_A_PANELS
    want = np.empty((130, b.shape[1]), dtype)
    microkernel.gemm_packed(da.T, packed, want, 64, 128, False)
    np.testing.assert_allclose(want, da.T.astype(np.float64) @ b, rtol=TOLERANCE[dtype] * 10,
                               atol=TOLERANCE[dtype] * 10 * np.abs(da.T @ b).max())
    backwards = np.ascontiguousarray(da[::-1])[::-1]  # the same rows, laid out last first
    assert backwards.T.strides[1] < 0
    got = np.empty_like(want)
    microkernel.gemm_packed(backwards.T, packed, got, 64, 128, False)
    np.testing.assert_array_equal(got, want)
    record = np.zeros(300, [("da", dtype, 130), ("pad", np.uint8, 3)])  # rows 3 bytes past whole elements apart
    record["da"] = da
    odd = record["da"].T
    assert odd.strides[0] == odd.itemsize and odd.strides[1] % odd.itemsize
    with pytest.raises(ValueError, match="whole elements"):
        microkernel.gemm_packed(odd, packed, got, 64, 128, False)
    with pytest.raises(ValueError, match="whole elements"):
        odd_out = np.zeros(130, [("out", dtype, b.shape[1]), ("pad", np.uint8, 3)])["out"]
        microkernel.gemm_packed(np.ascontiguousarray(da.T), packed, odd_out, 64, 128, False)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bits", BITS)
def test_gemm_packed_any_is_one_compiled_form_with_the_same_bits(bits, dtype):
    """``gemm_packed_any``: a C-ordered ``a``, a transposed one (its blocks packed and not), a column slice of
    ``out`` and ``add``, each bitwise what the dispatcher's own form for that layout gives; every entry point it
    made is the layout-"A" form, and no other form of ``gemm_packed`` was added by its calls. Shape and layout
    errors are the dispatcher's."""
    rng = np.random.default_rng(5)
    pw = bits // (8 * np.dtype(dtype).itemsize) * 4
    da = rng.standard_normal((300, 130)).astype(dtype)
    b = rng.standard_normal((300, 5 * pw - 3)).astype(dtype)
    packed = microkernel.pack(b, bits)
    c = np.ascontiguousarray(da.T)
    start = rng.standard_normal((130, 5 * pw + 4)).astype(dtype)
    cases = [(c, lambda: np.empty((130, b.shape[1]), dtype), False),         # C-ordered a
             (da.T, lambda: np.empty((130, b.shape[1]), dtype), False),      # transposed, packed in blocks
             (da.T, lambda: np.empty((130, b.shape[1]), dtype), True),
             (c[:, ::1], lambda: start.copy()[:, 2:2 + b.shape[1]], True)]   # out a column slice, sums added
    before = set(microkernel.gemm_packed.signatures)
    for a, fresh, add in cases:
        want, got = fresh(), fresh()
        if add:
            got[:] = want[:] = rng.standard_normal(want.shape).astype(dtype)
        microkernel.gemm_packed(a, packed, want, 64, 128, add)
        added = set(microkernel.gemm_packed.signatures) - before
        microkernel.gemm_packed_any(a, packed, got, 64, 128, add)
        np.testing.assert_array_equal(got, want)
        before |= added  # the dispatcher's own forms, made for the comparison
    made = set(microkernel.gemm_packed.signatures) - before
    assert all(signature[0].layout == "A" and signature[2].layout == "A" for signature in made)
    assert all(entry is not None for entry in microkernel._ANY_LAYOUT.values())
    with pytest.raises(ValueError, match="do not match"):
        microkernel.gemm_packed_any(c, packed, np.empty((129, b.shape[1]), dtype), 64, 128, False)
    with pytest.raises(ValueError, match="2-D"):
        microkernel.gemm_packed_any(c[None], packed, np.empty((130, b.shape[1]), dtype), 64, 128, False)


@pytest.mark.parametrize("bits", BITS)
def test_gemm_packed_empty_and_refused(bits):
    out = np.full((3, 5), np.nan, np.float32)
    microkernel.gemm_packed(np.empty((3, 0), np.float32), microkernel.pack(np.empty((0, 5), np.float32), bits), out)
    assert (out == 0).all()
    microkernel.gemm_packed(np.empty((0, 4), np.float32), microkernel.pack(np.ones((4, 5), np.float32), bits),
                            np.empty((0, 5), np.float32))
    with pytest.raises(ValueError):  # neither rows nor columns with unit stride
        microkernel.gemm_packed(np.ones((6, 8), np.float32)[::2, ::2], microkernel.pack(np.ones((4, 5), np.float32)),
                                np.empty((3, 5), np.float32))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("widths", [(3,), (48,), (47, 1), (48, 48), (48, 47), (100, 200), (1, 1), (0, 5), (5, 0),
                                    (0,), (0, 0)])
def test_pack_panels_packs_each_matrix_from_a_panel_of_its_own(widths, dtype):
    """``_pack_panels(b1, b2)`` is ``pack(b1)`` followed by ``pack(b2)`` (a matrix without columns takes no
    panel)."""
    rng = np.random.default_rng(sum(widths))
    matrices = [rng.standard_normal((9, n)).astype(dtype) for n in widths]
    panels = [microkernel.pack(m) for m in matrices if m.shape[1]] or [microkernel.pack(matrices[0])]
    np.testing.assert_array_equal(cpu._pack_panels(*matrices), np.concatenate(panels))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("layout", ["transposed", "c"])
@pytest.mark.parametrize("shape", [(70, 300, 200), (37, 5, 530), (16, 48, 1), (9, 0, 40), (9, 7, 0), (1, 3, 20)])
def test_gemm_packed_sums_are_a_column_of_ones_bit_for_bit(shape, layout, bits, dtype):
    """``gemm_packed(..., sums=s)``: ``s`` the sums of ``a``'s rows, bitwise the last column of the same GEMM against
    ``[b | 1]`` (each an addition in k's order), for a transposed ``a`` (its blocks packed where ``b`` has enough
    panels) and a C-ordered one, several K blocks (kc = 64), with ``add`` (onto the values there) and without, and
    where ``b`` has no columns (the sums alone)."""
    M, N, K = shape
    rng = np.random.default_rng(M + N + K)
    a = rng.standard_normal((K, M)).astype(dtype).T if layout == "transposed" else rng.standard_normal((M, K)).astype(
        dtype)
    b = rng.standard_normal((K, N)).astype(dtype)
    start = rng.standard_normal((M, N + 1)).astype(dtype)
    for add in (False, True):
        whole = start.copy()
        microkernel.gemm_packed(a, microkernel.pack(np.concatenate([b, np.ones((K, 1), dtype)], axis=1), bits), whole,
                                microkernel.GEMM_MC, 64, add)
        out, sums = start[:, :N].copy(), start[:, N].copy()
        packed = microkernel.pack(b, bits) if N else microkernel.pack(np.ones((K, 1), dtype), bits)[:0]
        microkernel.gemm_packed(a, packed, out, microkernel.GEMM_MC, 64, add, None, None, sums)
        np.testing.assert_array_equal(out, whole[:, :N])
        np.testing.assert_array_equal(sums, whole[:, N])
        np.testing.assert_allclose(sums, (start[:, N] if add else 0) + a.astype(np.float64).sum(1),
                                   rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype] * K)
    with pytest.raises(ValueError, match="sums needs one value"):
        microkernel.gemm_packed(a, microkernel.pack(b, bits), start[:, :N].copy(), microkernel.GEMM_MC, 64, False,
                                None, None, np.empty(M + 1, dtype))


def one_gemm_with_ones(a, b1, b2, bits=None, kc=None):
    """The weight gradients as sessions 8-31 computed them: one ``gemm_packed`` of ``a^T`` against
    ``[b1 | b2 | 1]`` packed whole (the bias gradients its last column)."""
    whole = np.concatenate([b1, b2, np.ones((len(a), 1), a.dtype)], axis=1)
    out = np.full((a.shape[1], whole.shape[1]), np.nan, a.dtype)
    microkernel.gemm_packed(a.T, microkernel.pack(whole, bits), out, microkernel.GEMM_MC,
                            cpu._gemm_kc() if kc is None else kc, False)
    n1, n2 = b1.shape[1], b2.shape[1]
    return out[:, :n1], out[:, n1:n1 + n2], out[:, -1]


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_weight_gradients_and_dx_match_numpy(threads):
    rng = np.random.default_rng(threads)
    da, x, h = rng.standard_normal((700, 160)), rng.standard_normal((700, 30)), rng.standard_normal((700, 40))
    w = rng.standard_normal((160, 30))
    g_x, g_h, sums = cpu._weight_gradients(da, x, h, True, threads)
    for got, want in ((g_x, da.T @ x), (g_h, da.T @ h), (sums, da.sum(0))):
        assert got.flags.c_contiguous
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    g_x, none, no_sums = cpu._weight_gradients(da, x, None, False, threads)
    assert none is None and no_sums is None
    np.testing.assert_allclose(g_x, da.T @ x, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(cpu._big_matmul(da, w, threads), da @ w, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threads", [1, 2])
def test_weight_gradients_in_packed_blocks_of_gemm_mc_packed_rows(threads, dtype):
    """4H = 1030 rows of da^T (blocks of ``GEMM_MC_PACKED`` = 512 rows, the last tile of 6), I + H = 200 columns
    (5 panels or more: each block of da^T is packed, ``_pack_a``) and T*B = 1100 (past the largest K block, so
    several that add): close to NumPy, and bitwise what one GEMM against [x | h | 1] packed whole gave before
    (sessions 8-31), weights and bias sums alike: [x] and [h] packed apart change no sum, and the column sums
    are the ones column's additions in the same order."""
    rng = np.random.default_rng(11)
    da, x, h = (rng.standard_normal(shape).astype(dtype) for shape in ((1100, 1030), (1100, 100), (1100, 100)))
    assert len(cpu._pack_panels(x, h)) >= microkernel._PACK_A_PANELS and len(da) > cpu._gemm_kc()
    got = cpu._weight_gradients(da, x, h, True, threads)
    for g, want in zip(got, one_gemm_with_ones(da, x, h)):
        np.testing.assert_array_equal(g, want)
    exact = [da.T.astype(np.float64) @ x, da.T.astype(np.float64) @ h, da.astype(np.float64).sum(0)]
    for g, want in zip(got, exact):
        assert np.abs(g - want).max() / np.abs(want).max() <= TOLERANCE[dtype]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("widths", [(100, 70), (16, 33, 1), (1, 5), (0, 20, 1), (20, 0), (96, 96, 1), (5, 0, 40)])
@pytest.mark.parametrize("add", [False, True])
def test_gemm_packed_out2_and_out3_are_gemms_of_their_own(widths, add, bits, dtype):
    """``gemm_packed(a, pack(b1) + pack(b2) [+ pack(b3)], out, ..., out2 [, out3])``: ``out (+)= a @ b1``,
    ``out2 (+)= a @ b2`` and ``out3 (+)= a @ b3``, bit for bit the GEMMs one at a time (a transposed ``a``, packed
    in blocks where the panels are many; K in 3 blocks), through the dispatcher and through ``gemm_packed_any``;
    results that do not fit the panels are refused."""
    rng = np.random.default_rng(sum(widths))
    da = rng.standard_normal((300, 70)).astype(dtype)
    bs = [rng.standard_normal((300, n)).astype(dtype) for n in widths]
    starts = [rng.standard_normal((70, n)).astype(dtype) for n in widths]
    packed = np.concatenate([microkernel.pack(b, bits) for b in bs if b.shape[1]])
    wants = [start.copy() for start in starts]
    for b, want in zip(bs, wants):
        if b.shape[1]:
            microkernel.gemm_packed(da.T, microkernel.pack(b, bits), want, 64, 128, add)
    for call in (microkernel.gemm_packed, microkernel.gemm_packed_any):
        gots = [start.copy() for start in starts]
        call(da.T, packed, gots[0], 64, 128, add, *gots[1:])
        for got, want in zip(gots, wants):
            np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="do not match"):
        microkernel.gemm_packed(da.T, packed, starts[0], 64, 128, add, np.empty((70, widths[1] + 200), dtype))
    with pytest.raises(ValueError, match="out3 needs out2"):
        microkernel.gemm_packed(da.T, packed, starts[0], 64, 128, add, None, starts[1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threads", [1, 2])
def test_backward_over_several_gemm_blocks_matches_reference(threads, dtype, pin_threads):
    """T*B = 390 rows (two K blocks of the weight-gradient GEMM) and 4H = 168 (two row blocks), with lengths."""
    pin_threads(threads)
    rng = np.random.default_rng(7)
    for cell in CELLS:
        p = make_inputs(rng, cell, 30, 13, 19, 42, dtype)
        for name in ("w_ih", "w_hh"):
            p[name] *= 0.3
        lengths = rng.integers(1, 31, size=13)
        got, got_cache = forward(cpu, cell, p, lengths)
        want, want_cache = forward(reference, cell, p, lengths)
        dy = rng.standard_normal(got[0].shape).astype(dtype)
        for a, b in zip(backward(cpu, cell, got_cache, dy, None, None),
                        backward(reference, cell, want_cache, dy, None, None)):
            assert_close(a, b, dtype)


@pytest.mark.parametrize("cell", CELLS)
def test_backward_is_bitwise_the_same_on_any_thread_count(cell, pin_threads):
    """Exact resume of training relies on it: the same cache and gradients give the same bits on 1, 2 or 3 threads
    (each output element is one sum in one order however the rows are split), and twice on the same count. B = 26:
    the time loop splits (for B < 8 on several threads the GEMMs after the loop are OpenBLAS's, whose sums
    depend on its thread count)."""
    rng = np.random.default_rng(8)
    p = make_inputs(rng, cell, 12, 26, 17, 36, np.float32)
    _, cache = forward(cpu, cell, p, rng.integers(1, 13, size=26))
    dy = rng.standard_normal((12, 26, 36)).astype(np.float32)
    results = []
    for threads in (1, 2, 3, 2):
        pin_threads(threads)
        results.append(backward(cpu, cell, cache, dy, None, None))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            if a is not None:
                np.testing.assert_array_equal(a, b)
