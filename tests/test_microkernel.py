"""The LLVM-IR outer-product micro-kernel (kernels/microkernel.py) against NumPy's ``a @ w.T``.

Both vector widths run on every machine (``pack(..., bits=)`` picks the tile): on an AVX2-only CPU LLVM splits the
512-bit tile's vectors in two, which is slow but exact, so the AVX-512 path is checked there too, and the AVX2 path
on an AVX-512 CPU."""

import platform
import types

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lstmzoo.kernels import microkernel
from numba import njit

BITS = [256, 512]
TOLERANCE = {np.float32: 1e-5, np.float64: 1e-10}


def check(rows, K, N, dtype, bits, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((rows, K)).astype(dtype)
    w = rng.standard_normal((N, K)).astype(dtype)
    out = np.full((rows, N), np.nan, dtype)
    microkernel.matmul_packed(a, microkernel.pack(w.T, bits), out)
    expected = a.astype(np.float64) @ w.T.astype(np.float64)
    scale = max(np.abs(expected).max(initial=0.0), 1e-30)
    assert np.abs(out - expected).max(initial=0.0) / scale <= TOLERANCE[dtype], (rows, K, N, dtype, bits)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("rows, K, N", [
    (8, 128, 512), (16, 256, 1024), (32, 64, 256), (64, 128, 384),   # whole tiles and panels (float32, 512 bits)
    (1, 1, 1), (3, 5, 7), (7, 33, 47), (9, 17, 49), (13, 77, 101),    # partial row tiles and panels
    (5, 300, 3), (12, 2, 200), (129, 40, 96),
])
def test_matches_numpy(rows, K, N, dtype, bits):
    check(rows, K, N, dtype, bits)


@settings(max_examples=25, deadline=None)
@given(rows=st.integers(1, 40), K=st.integers(1, 160), N=st.integers(1, 200), bits=st.sampled_from(BITS),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**16))
def test_random_shapes(rows, K, N, bits, dtype, seed):
    check(rows, K, N, dtype, bits, seed)


@pytest.mark.parametrize("bits", BITS)
def test_empty_shapes(bits):
    """K = 0 gives zeros; no rows or no columns write nothing."""
    out = np.full((3, 5), np.nan, np.float32)
    microkernel.matmul_packed(np.empty((3, 0), np.float32), microkernel.pack(np.empty((0, 5), np.float32), bits), out)
    assert (out == 0).all()
    microkernel.matmul_packed(np.empty((0, 4), np.float32), microkernel.pack(np.ones((4, 5), np.float32), bits),
                              np.empty((0, 5), np.float32))


@pytest.mark.parametrize("bits", BITS)
def test_rows_of_a_larger_array(bits):
    """``a`` and ``out`` may be row slices of bigger arrays (the time loops pass ``hs[t][b0:b1]``): only their
    rows are read and written."""
    rng = np.random.default_rng(1)
    h = rng.standard_normal((20, 64)).astype(np.float32)
    w = rng.standard_normal((100, 64)).astype(np.float32)
    out = np.full((20, 100), 7.0, np.float32)
    microkernel.matmul_packed(h[5:14], microkernel.pack(w.T, bits), out[5:14])
    np.testing.assert_allclose(out[5:14], h[5:14] @ w.T, rtol=1e-5, atol=1e-5)
    assert (out[:5] == 7).all() and (out[14:] == 7).all()


@pytest.mark.parametrize("layout", ["transposed", "contiguous"])
def test_pack_layout(layout):
    """packed[p, k, j] = b[k, p * PW + j], zero past N; the same for a transposed and a C-contiguous ``b``."""
    rng = np.random.default_rng(2)
    w = rng.standard_normal((50, 37)).astype(np.float32)
    b = w.T if layout == "transposed" else np.ascontiguousarray(w.T)
    packed = microkernel.pack(b, 512)
    PW = microkernel.panel_width(np.float32, 512)
    assert packed.shape == (-(-50 // PW), 37, PW)
    unpacked = packed.transpose(1, 0, 2).reshape(37, -1)
    np.testing.assert_array_equal(unpacked[:, :50], b)
    assert (unpacked[:, 50:] == 0).all()


@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pack_into_an_array_of_packed_shape_that_held_nan(dtype, bits):
    """``pack_into`` fills all of an array of ``packed_shape`` (padding included), as ``cpu.pack`` uses them on
    recycled memory that may hold anything: the array ``pack`` returns."""
    rng = np.random.default_rng(3)
    b = rng.standard_normal((37, 50)).astype(dtype)
    packed = np.full(microkernel.packed_shape(37, 50, dtype, bits), np.nan, dtype)
    assert packed.shape == (-(-50 // microkernel.panel_width(dtype, bits)), 37, microkernel.panel_width(dtype, bits))
    microkernel.pack_into(b, packed)
    np.testing.assert_array_equal(packed, microkernel.pack(b, bits))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("view", ["whole", "columns", "strided"])
@pytest.mark.parametrize("N, K", [(1, 1), (16, 16), (48, 32), (50, 37), (96, 8), (200, 65), (1024, 256), (7, 300)])
def test_pack_of_a_transposed_matrix(N, K, view, bits, dtype):
    """pack(w.T), whose whole tiles are transposed in vector registers (_transpose_tile) and the rest one by one,
    equals the layout built in NumPy, for whole and partial tiles and panels, a view of some of w's columns (rows
    further apart than their length) and a strided view (the element by element path)."""
    rng = np.random.default_rng(N * K)
    base = rng.standard_normal((N, 2 * K + 3)).astype(dtype)
    w = {"whole": np.ascontiguousarray(base[:, :K]), "columns": base[:, 3:K + 3], "strided": base[:, ::2][:, :K]}[view]
    packed = microkernel.pack(w.T, bits)
    PW = microkernel.panel_width(dtype, bits)
    expected = np.zeros((-(-N // PW) * PW, K), dtype)
    expected[:N] = w
    np.testing.assert_array_equal(packed, expected.reshape(-1, PW, K).transpose(0, 2, 1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("view", ["whole", "columns", "reversed", "odd"])
@pytest.mark.parametrize("K, N", [(1, 1), (16, 48), (37, 50), (300, 7), (64, 256), (5, 97)])
def test_pack_of_a_matrix_with_unit_stride_rows(K, N, view, bits, dtype):
    """pack(b) of a C array, of a slice of its columns (the unit split's W_hh[:, u0:u1]: rows with unit stride,
    copied as vectors), of its rows reversed (a negative row stride) and of rows whose stride is not a whole number
    of elements (a structured array's field: both element by element) equals the layout built in NumPy."""
    rng = np.random.default_rng(K * N)
    base = rng.standard_normal((K, 2 * N + 3)).astype(dtype)
    if view == "odd":
        record = np.zeros(K, [("b", dtype, N), ("pad", np.uint8, 3)])
        record["b"] = base[:, :N]
        b = record["b"]
        assert b.strides[0] % b.itemsize
    else:
        b = {"whole": np.ascontiguousarray(base[:, :N]), "columns": base[:, 3:N + 3], "reversed": base[::-1, :N]}[view]
    packed = microkernel.pack(b, bits)
    PW = microkernel.panel_width(dtype, bits)
    expected = np.zeros((K, -(-N // PW) * PW), dtype)
    expected[:, :N] = b
    np.testing.assert_array_equal(packed, expected.reshape(K, -1, PW).transpose(1, 0, 2))


def _gate_rows(G, H, u0, u1):
    """A unit split's thread's gate rows of a [G * H, K] weight, gate-major: runs of u1 - u0 consecutive rows."""
    return np.array([g * H + u for g in range(G) for u in range(u0, u1)], np.int64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("view", ["whole", "columns", "strided"])
@pytest.mark.parametrize("rows, K", [
    (_gate_rows(4, 512, 256, 512), 64),     # the unit split's: runs of 256 from multiples of 16
    (_gate_rows(4, 100, 16, 40), 37),       # runs of 24: tiles that cross from one gate's rows to the next
    (_gate_rows(3, 50, 3, 29), 17),         # runs that start off a tile's boundary, K not a multiple of a vector
    (np.arange(48, dtype=np.int64), 16),    # one whole panel
    (np.array([5, 3, 3, 9], np.int64), 5),  # not increasing, a row twice
    (np.arange(1, 200, 3, dtype=np.int64), 33),
    (np.array([7], np.int64), 1),
])
def test_pack_rows_into_is_pack_into_of_the_gathered_rows(rows, K, view, bits, dtype):
    """``pack_rows_into(w, rows, packed, k0)`` writes what ``pack_into(w[rows].T, ...)`` writes into the panels'
    rows k0..k0 + K (padding included: the arrays start NaN-filled) and nothing else: for runs of consecutive rows
    in and off the tiles' boundaries, any rows, and ``w`` with rows further apart than their length or not
    unit-strided (the element by element path)."""
    rng = np.random.default_rng(len(rows) * K)
    base = rng.standard_normal((int(rows.max()) + 1, 2 * K + 3)).astype(dtype)
    w = {"whole": np.ascontiguousarray(base[:, :K]), "columns": base[:, 3:K + 3], "strided": base[:, ::2][:, :K]}[view]
    expected = microkernel.pack(np.ascontiguousarray(w[rows]).T, bits)
    k0 = 5
    packed = np.full(microkernel.packed_shape(k0 + K + 2, len(rows), dtype, bits), np.nan, dtype)
    microkernel.pack_rows_into(w, rows, packed, k0)
    np.testing.assert_array_equal(packed[:, k0:k0 + K], expected)
    assert np.isnan(packed[:, :k0]).all() and np.isnan(packed[:, k0 + K:]).all()
    alone = np.full(expected.shape, np.nan, dtype)
    microkernel.pack_rows_into(w, rows, alone)  # k0 = 0
    np.testing.assert_array_equal(alone, expected)


def test_panel_widths():
    """The widths that select the tile differ for each dtype (matmul_packed tells the tiles apart by them)."""
    for dtype in (np.float32, np.float64):
        assert microkernel.panel_width(dtype, 256) != microkernel.panel_width(dtype, 512)
    assert microkernel.VECTOR_BITS in BITS


def test_mismatched_shapes_are_refused():
    packed = microkernel.pack(np.ones((4, 5), np.float32), 512)
    with pytest.raises(ValueError):
        microkernel.matmul_packed(np.ones((2, 3), np.float32), packed, np.empty((2, 5), np.float32))
    with pytest.raises(ValueError):
        microkernel.matmul_packed(np.ones((2, 4), np.float32), packed, np.empty((2, 60), np.float32))
    with pytest.raises(ValueError):
        microkernel.pack(np.ones((4, 5), np.int64))
    with pytest.raises(ValueError):
        microkernel.pack(np.ones((4, 5), np.float32), bits=128)


def check2(rows, K1, K2, N, dtype, bits, seed=0):
    """matmul2_packed: bias + a1 @ w1 + a2 @ w2 against float64 NumPy."""
    rng = np.random.default_rng(seed)
    a1, a2 = rng.standard_normal((rows, K1)).astype(dtype), rng.standard_normal((rows, K2)).astype(dtype)
    w1, w2 = rng.standard_normal((K1, N)).astype(dtype), rng.standard_normal((K2, N)).astype(dtype)
    bias = rng.standard_normal(N).astype(dtype)
    out = np.full((rows, N), np.nan, dtype)
    microkernel.matmul2_packed(a1, a2, microkernel.pack(np.vstack([w1, w2]), bits), microkernel.pack_bias(bias, bits),
                               out)
    expected = bias + a1.astype(np.float64) @ w1 + a2.astype(np.float64) @ w2
    scale = max(np.abs(expected).max(initial=0.0), 1e-30)
    assert np.abs(out - expected).max(initial=0.0) / scale <= TOLERANCE[dtype], (rows, K1, K2, N, dtype, bits)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("rows, K1, K2, N", [
    (8, 32, 128, 512), (16, 128, 128, 1024), (64, 256, 64, 384),   # whole tiles and panels (float32, 512 bits)
    (1, 1, 1, 1), (3, 5, 7, 7), (13, 21, 45, 180), (9, 17, 3, 49),  # partial row tiles and panels
    (5, 0, 9, 50), (4, 9, 0, 3), (3, 0, 0, 20),                    # an empty source: bias + the other one
])
def test_two_sources_and_bias_match_numpy(rows, K1, K2, N, dtype, bits):
    check2(rows, K1, K2, N, dtype, bits)


@settings(max_examples=25, deadline=None)
@given(rows=st.integers(1, 40), K1=st.integers(0, 80), K2=st.integers(0, 80), N=st.integers(1, 200),
       bits=st.sampled_from(BITS), dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**16))
def test_two_sources_random_shapes(rows, K1, K2, N, bits, dtype, seed):
    check2(rows, K1, K2, N, dtype, bits, seed)


@pytest.mark.parametrize("bits", BITS)
def test_two_sources_rows_of_larger_arrays(bits):
    """The time loop passes ``x[t][b0:b1]`` and ``hs[t][b0:b1]``: only those rows are read, only out's are written."""
    rng = np.random.default_rng(5)
    x, h = rng.standard_normal((20, 24)).astype(np.float32), rng.standard_normal((20, 40)).astype(np.float32)
    w = rng.standard_normal((64, 100)).astype(np.float32)
    bias = rng.standard_normal(100).astype(np.float32)
    out = np.full((20, 100), 7.0, np.float32)
    microkernel.matmul2_packed(x[5:14], h[5:14], microkernel.pack(w, bits), microkernel.pack_bias(bias, bits),
                               out[5:14])
    np.testing.assert_allclose(out[5:14], bias + np.hstack([x, h])[5:14] @ w, rtol=1e-5, atol=1e-5)
    assert (out[:5] == 7).all() and (out[14:] == 7).all()


def test_two_sources_mismatched_shapes_are_refused():
    packed, bias = microkernel.pack(np.ones((6, 5), np.float32), 512), microkernel.pack_bias(np.ones(5, np.float32))
    ones = lambda *shape: np.ones(shape, np.float32)  # noqa: E731
    with pytest.raises(ValueError):  # K1 + K2 != K
        microkernel.matmul2_packed(ones(2, 3), ones(2, 2), packed, bias, np.empty((2, 5), np.float32))
    with pytest.raises(ValueError):  # rows differ
        microkernel.matmul2_packed(ones(2, 3), ones(3, 3), packed, bias, np.empty((2, 5), np.float32))
    with pytest.raises(ValueError):  # a bias of another panel width
        microkernel.matmul2_packed(ones(2, 3), ones(2, 3), packed, microkernel.pack_bias(ones(5), 256),
                                   np.empty((2, 5), np.float32))


def fresh_matmul_packed():
    """An uncached compilation of matmul_packed (Numba shows no machine code for a function from its cache)."""
    source = microkernel.matmul_packed.py_func
    return njit(**dict(microkernel._JIT, cache=False))(types.FunctionType(source.__code__, source.__globals__, "fresh",
                                                                          source.__defaults__))


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="reads x86-64 machine code")
def test_the_tile_is_vector_code():
    """The compiled tile holds its sums in vector registers and multiplies with packed FMAs: at the CPU's width,
    the k loop of the widest tile is at least mr * nr fused multiply-adds on zmm (AVX-512) or ymm (AVX2)
    registers. Read from a fresh, uncached compilation (Numba shows no machine code for a cached one)."""
    fresh = fresh_matmul_packed()
    a, w = np.ones((8, 32), np.float32), np.ones((32, 96), np.float32)
    fresh(a, microkernel.pack(w), np.empty((8, 96), np.float32))
    asm = "".join(fresh.inspect_asm().values())
    mr, nr = microkernel._TILES[microkernel.VECTOR_BITS]
    lanes = microkernel.VECTOR_BITS // 32
    body = asm.split(f"lstmzoo_tile_float_{mr}x{nr}x{lanes}:")[1].split(".Lfunc_end")[0]
    register = "zmm" if microkernel.VECTOR_BITS == 512 else "ymm"
    fmas = [line for line in body.splitlines() if "vfmadd" in line and f"%{register}" in line]
    assert len(fmas) >= mr * nr, body[:3000]


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="compiles for x86-64 CPUs")
def test_the_avx2_tile_fits_sixteen_registers():
    """On any machine: the 256-bit tile's IR compiled for an AVX2 CPU without AVX-512 (16 ymm registers, not 32)
    keeps its 12 sums in registers: every FMA on ymm registers and nothing spilled to the stack."""
    import llvmlite.binding as llvm
    fresh = fresh_matmul_packed()
    fresh(np.ones((8, 32), np.float32), microkernel.pack(np.ones((32, 96), np.float32), 256),
          np.empty((8, 96), np.float32))
    module = llvm.parse_assembly("".join(fresh.inspect_llvm().values()))
    machine = llvm.Target.from_triple(llvm.get_process_triple()).create_target_machine(cpu="haswell", opt=3)
    mr, nr = microkernel._TILES[256]
    body = machine.emit_assembly(module).split(f"lstmzoo_tile_float_{mr}x{nr}x8:")[1].split(".Lfunc_end")[0]
    lines = body.splitlines()
    assert sum("vfmadd" in line and "%ymm" in line for line in lines) >= mr * nr
    assert not any("zmm" in line or "rsp" in line for line in lines), body[:3000]


def fresh_matmul2_packed():
    source = microkernel.matmul2_packed.py_func
    return njit(**dict(microkernel._JIT, cache=False))(types.FunctionType(source.__code__, source.__globals__, "fresh",
                                                                           source.__defaults__))


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="compiles for x86-64 CPUs")
@pytest.mark.parametrize("bits, cpu, register", [(256, "haswell", "ymm"), (512, "skylake-avx512", "zmm")])
def test_the_two_source_tile_keeps_its_sums_in_registers(bits, cpu, register):
    """matmul2_packed's tile (two k loops into the same sums, which start from the bias) compiled for an AVX2 CPU
    (16 ymm registers) and an AVX-512 one: at least mr * nr FMAs on the vector registers in each k loop and nothing
    spilled to the stack."""
    import llvmlite.binding as llvm
    fresh = fresh_matmul2_packed()
    fresh(np.ones((8, 16), np.float32), np.ones((8, 16), np.float32), microkernel.pack(np.ones((32, 96), np.float32),
          bits), microkernel.pack_bias(np.ones(96, np.float32), bits), np.empty((8, 96), np.float32))
    module = llvm.parse_assembly("".join(fresh.inspect_llvm().values()))
    machine = llvm.Target.from_triple(llvm.get_process_triple()).create_target_machine(cpu=cpu, opt=3)
    mr, nr = microkernel._TILES[bits]
    name = f"lstmzoo_tile_float_{mr}x{nr}x{bits // 32}_2sources_bias:"
    body = machine.emit_assembly(module).split(name)[1].split(".Lfunc_end")[0]
    lines = body.splitlines()
    assert sum("vfmadd" in line and f"%{register}" in line for line in lines) >= 2 * mr * nr
    # (the stack holds the arguments past the sixth, read through rsp: a spill is a vector register to or from it)
    assert not any("Spill" in line or "Reload" in line or ("rsp" in line and "mm" in line) for line in lines), \
        body[:3000]
    if register == "ymm":
        assert not any("zmm" in line for line in lines)


def padded_columns(b, bits):
    """``b`` [K, N] with zero columns up to whole panels: what the tiles computed before the last panel's own."""
    pw = microkernel.panel_width(b.dtype, bits)
    return np.concatenate((b, np.zeros((len(b), -len(b[0]) % pw), b.dtype)), axis=1)


def last_panel_widths(dtype, bits):
    """Widths N of the last panel's real columns to check: whole vectors (stored in place) and not (through the
    scratch tile), for every vector count below the panel's, after one whole panel."""
    pw = microkernel.panel_width(dtype, bits)
    lanes = bits // (8 * np.dtype(dtype).itemsize)
    return [pw + n for v in range(1, pw // lanes) for n in (v * lanes, v * lanes - 1)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bits", BITS)
def test_the_last_panels_tiles_give_the_whole_panels_bits(bits, dtype):
    """The last, partial panel runs a tile of only its real columns' vectors (at full tile height; fewer rows
    run the whole panel's tile through the scratch tile): every column is bitwise what the whole panel's tile
    gives, as each lane's sum is the same sequence of FMAs. matmul_packed and gemm_packed (rows and a transposed
    view, several K blocks, and adding onto out), and matmul2_packed (the whole panel's tile everywhere), against
    the same calls with zero columns up to whole panels."""
    rng = np.random.default_rng(1)
    mr = microkernel._TILES[bits][0]
    for N in last_panel_widths(dtype, bits):
        for M in (mr, 2 * mr + 3):
            a1, a = rng.standard_normal((M, 5)).astype(dtype), rng.standard_normal((M, 37)).astype(dtype)
            b, bias = rng.standard_normal((42, N)).astype(dtype), rng.standard_normal(N).astype(dtype)
            wide = padded_columns(b, bits)
            out, whole = np.empty((M, N), dtype), np.empty((M, wide.shape[1]), dtype)
            microkernel.matmul_packed(a, microkernel.pack(b[5:], bits), out)
            microkernel.matmul_packed(a, microkernel.pack(wide[5:], bits), whole)
            assert np.array_equal(out, whole[:, :N]), (N, M)
            microkernel.matmul2_packed(a1, a, microkernel.pack(b, bits), microkernel.pack_bias(bias, bits), out)
            microkernel.matmul2_packed(a1, a, microkernel.pack(wide, bits),
                                       microkernel.pack_bias(padded_columns(bias[None], bits)[0], bits), whole)
            assert np.array_equal(out, whole[:, :N]), (N, M)
        big, b_big = rng.standard_normal((3 * mr + 5, 70)).astype(dtype), rng.standard_normal((70, N)).astype(dtype)
        packed, packed_whole = microkernel.pack(b_big, bits), microkernel.pack(padded_columns(b_big, bits), bits)
        for view in (big, np.ascontiguousarray(big.T).T):
            start = rng.standard_normal((len(view), N)).astype(dtype)
            for add in (False, True):
                out = start.copy()
                whole = np.concatenate((start, np.zeros((len(view), packed_whole.shape[0] * packed_whole.shape[2] - N),
                                                        dtype)), axis=1)
                microkernel.gemm_packed(view, packed, out, 2 * mr, 32, add)
                microkernel.gemm_packed(view, packed_whole, whole, 2 * mr, 32, add)
                assert np.array_equal(out, whole[:, :N]), (N, add)


def test_the_last_panel_has_tiles_of_fewer_vectors():
    """matmul_packed holds a tile of each vector count below the panel's, at full height, for the last panel (the
    test above checks their bits, this one that they exist rather than the whole panel's tile alone)."""
    fresh = fresh_matmul_packed()
    fresh(np.ones((8, 32), np.float32), microkernel.pack(np.ones((32, 64), np.float32)), np.empty((8, 64), np.float32))
    llvm = "".join(fresh.inspect_llvm().values())
    mr, nr = microkernel._TILES[microkernel.VECTOR_BITS]
    lanes = microkernel.VECTOR_BITS // 32
    for vectors in range(1, nr):
        assert f"@lstmzoo_tile_float_{mr}x{nr}x{lanes}_{vectors}vectors(" in llvm


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bits", BITS)
def test_panels_backwards_give_the_same_bits(bits, dtype):
    """matmul_packed's ``backwards`` (the panels last first, as the time loops run every other step) changes only
    the order in which the panels are computed: every column is bitwise what the forward order gives, whole and
    partial last panels, every row count of a tile and more."""
    rng = np.random.default_rng(2)
    pw = microkernel.panel_width(dtype, bits)
    for rows in (1, 2, 3, microkernel._TILES[bits][0] + 1):
        for N in (1, pw, 3 * pw, 3 * pw + 5):
            a, b = rng.standard_normal((rows, 29)).astype(dtype), rng.standard_normal((29, N)).astype(dtype)
            packed = microkernel.pack(b, bits)
            forward, backward = np.empty((rows, N), dtype), np.full((rows, N), np.nan, dtype)
            microkernel.matmul_packed(a, packed, forward)
            microkernel.matmul_packed(a, packed, backward, True)
            assert np.array_equal(forward, backward), (rows, N)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bits", BITS)
def test_one_row_over_several_panels_gives_the_bits_of_a_full_tiles_row(bits, dtype):
    """One row runs its whole panels ``_ROW_PANELS`` at a time in one tile (12 sums, not 3): each column is bitwise
    what the same row gives inside a tile of mr rows, and within the tolerance of NumPy, for fewer whole panels than
    a group, groups with and without whole panels left over, a partial last panel, both panel orders and a row of a
    larger array."""
    rng = np.random.default_rng(6)
    pw = microkernel.panel_width(dtype, bits)
    mr = microkernel._TILES[bits][0]
    group = microkernel._ROW_PANELS
    for K in (1, 29, 70):
        for N in (pw, 3 * pw + 5, group * pw, group * pw + 7, (group + 1) * pw, 2 * group * pw + pw + 3):
            a, b = rng.standard_normal((mr, K)).astype(dtype), rng.standard_normal((K, N)).astype(dtype)
            packed = microkernel.pack(b, bits)
            tile = np.empty((mr, N), dtype)
            microkernel.matmul_packed(a, packed, tile)
            for r in (0, mr - 1):
                for backwards in (False, True):
                    row = np.full((1, N), np.nan, dtype)
                    microkernel.matmul_packed(a[r:r + 1], packed, row, backwards)
                    assert np.array_equal(row[0], tile[r]), (K, N, r, backwards)
            check(1, K, N, dtype, bits, seed=K + N)


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="compiles for x86-64 CPUs")
@pytest.mark.parametrize("bits, cpu, register", [(256, "haswell", "ymm"), (512, "skylake-avx512", "zmm")])
def test_the_one_row_tile_keeps_its_sums_in_registers(bits, cpu, register):
    """The one-row tile over ``_ROW_PANELS`` panels compiled for an AVX2 CPU (16 ymm registers) and an AVX-512 one:
    one FMA per sum in its k loop, on the vector registers, and nothing spilled to the stack."""
    import llvmlite.binding as llvm
    fresh = fresh_matmul_packed()
    fresh(np.ones((1, 32), np.float32), microkernel.pack(np.ones((32, 400), np.float32), bits),
          np.empty((1, 400), np.float32))
    module = llvm.parse_assembly("".join(fresh.inspect_llvm().values()))
    machine = llvm.Target.from_triple(llvm.get_process_triple()).create_target_machine(cpu=cpu, opt=3)
    nr = microkernel._TILES[bits][1]
    name = f"lstmzoo_tile_float_1x{nr}x{bits // 32}_{microkernel._ROW_PANELS}panels:"
    body = machine.emit_assembly(module).split(name)[1].split(".Lfunc_end")[0]
    lines = body.splitlines()
    assert sum("vfmadd" in line and f"%{register}" in line for line in lines) >= nr * microkernel._ROW_PANELS
    assert not any("Spill" in line or "Reload" in line or ("rsp" in line and "mm" in line) for line in lines), \
        body[:3000]
    if register == "ymm":
        assert not any("zmm" in line for line in lines)


def test_a_scratch_tile_made_once_gives_the_same_bits():
    """matmul_packed and matmul2_packed with the scratch tile a time loop makes once (``scratch_tile``) give the
    bits of a call that makes its own, the partial panel included; a tile too small is refused."""
    rng = np.random.default_rng(5)
    a1, a2 = rng.standard_normal((11, 7)).astype(np.float32), rng.standard_normal((11, 9)).astype(np.float32)
    b = rng.standard_normal((16, 40)).astype(np.float32)  # 40 columns: a partial last panel at either width
    packed, bias = microkernel.pack(b), microkernel.pack_bias(rng.standard_normal(40).astype(np.float32))
    scratch = microkernel.scratch_tile(packed)
    a = np.hstack((a1, a2))
    want, got = np.empty((11, 40), np.float32), np.empty((11, 40), np.float32)
    microkernel.matmul_packed(a, packed, want)
    microkernel.matmul_packed(a, packed, got, False, scratch)
    np.testing.assert_array_equal(got, want)
    want, got = np.empty((11, 40), np.float32), np.empty((11, 40), np.float32)
    microkernel.matmul2_packed(a1, a2, packed, bias, want)
    microkernel.matmul2_packed(a1, a2, packed, bias, got, scratch)
    np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="scratch tile too small"):
        microkernel.matmul_packed(a, packed, got, False, scratch[:1])
