"""An outer-product GEMM micro-kernel written as LLVM IR: ``out = a @ b`` for a few rows ``a`` and a matrix ``b``
packed once into column panels, as a recurrent step's ``h @ W_hh^T`` (``b = W_hh^T``, packed once per call).

Why: ``kernels/cpu.py``'s per-step kernel (``_rows_matmul_t``) computes 8 rows x 2 columns of dot products, each a
reduction over K that LLVM vectorises along K: every sum is a vector that has to be reduced at the end, and each
pair of W_hh rows is streamed from cache once per 8 rows of ``a``. BLAS libraries (and oneDNN) instead keep a
register tile of OUTPUT elements: ``MR`` rows x ``NR`` vectors of ``W`` lanes, ``MR * NR`` vector accumulators that
live in registers for the whole K loop. Per k one row of the packed panel (``NR`` vector loads) is multiplied by
``MR`` scalars of ``a`` (each broadcast to all lanes) and added: ``MR * NR`` FMAs for ``NR`` loads and ``MR``
broadcasts, with no reduction at the end. Numba has no vector types, and LLVM's SLP vectoriser did not build such a
tile out of scalar code (RESULTS.md, session 6: 5 GFLOP/s), so the tile is written here directly in LLVM IR.

The register tile (``_TILES``, chosen by the CPU's vector width at import, ``VECTOR_BITS``):

- AVX-512 (32 vector registers of 512 bits): 8 rows x 3 vectors = 24 accumulators of 16 float32 (8 float64),
  3 registers for the panel row, the broadcasts fold into the FMAs as memory operands;
- AVX2 (16 registers of 256 bits): 4 rows x 3 vectors = 12 accumulators of 8 float32 (4 float64), + 3 + 1.

The IR of one tile function (``_tile_function``: ``mr`` rows, ``nr`` vectors of ``lanes`` elements)::

    entry:   row pointers a_i = a + i * lda;  if K == 0 goto store
    k_loop:  k = phi [0, entry], [k + 1, k_loop];  acc[i][v] = phi [zeroinitializer, entry], [acc'[i][v], k_loop]
             b_v = load <lanes x T> at panel + k * nr * lanes + v * lanes            (nr vector loads)
             s_i = splat(load a_i[k])                                                (mr broadcasts)
             acc'[i][v] = llvm.fma(s_i, b_v, acc[i][v])                              (mr * nr FMAs)
             if k + 1 < K goto k_loop
    store:   store acc[i][v] at c + i * ldc + v * lanes

The functions are internal to the module that calls them, ``noinline`` so that they keep their own attributes:
``"min-legal-vector-width"`` and ``"prefer-vector-width"`` at the vectors' width (LLVM tunes Intel server CPUs to
256-bit vectors and would otherwise split a 512-bit FMA into two), and ``noalias`` on the three pointers.

Packing (``pack``): ``b`` [K, N] becomes ``packed`` [P, K, PW], ``PW = nr * lanes`` columns per panel, P = ceil(N /
PW), the last panel padded with zeros, so that the k loop reads one contiguous row of PW elements per k. The panel
width also tells ``matmul_packed`` which tile to run (the widths of the two tiles differ for each dtype). The
forward packs transposes (``w.T``), whose tiles are transposed in vector registers (``pack_into``).

The driver (``matmul_packed``) runs panel by panel (each panel is read from memory once and stays in cache for all
the row tiles; ``a`` is small; the time loops alternate the panels' order from step to step, ``backwards``) and, in
each panel, ``mr`` rows at a time; the last rows run a tile of fewer rows
(the IR switches on the row count, so none is padded). In ``matmul_packed`` and ``gemm_packed`` (not the fused
step's ``matmul2_packed``, below) the last, partial panel runs, at full tile height, a tile of only the vectors its
real columns need (``vectors`` < nr: e.g. the 16 real columns of a 48-wide panel take one
vector, not three), stored in place when the real columns fill whole vectors and otherwise through a scratch tile
from which only the real columns are copied; fewer rows there run the whole panel's tile into the scratch tile (a
tile per row count and vector count doubled the compile time of the callers). Each lane's sum is the same sequence
of FMAs in either tile, so the bits do not change. It matters where N is a small multiple of the vector: the
backward's dx = da W_ih at I = 32 or 64 computed 48 or 96 columns for 32 or 64 (benchmarks/last_panel.py).

float32 and float64 both run these tiles (float64 with half the lanes). ``out`` must not overlap ``a`` or ``packed``.

Two sources (``matmul2_packed``, the forward's fused step ``[x_t | h] [W_ih | W_hh]^T + b``): the same tile with two
k loops in a row, over ``a1`` against the panel's first K1 rows and over ``a2`` against the rest, into the same
registers, which start from the panel's bias (``pack_bias``) instead of zero. It saves a concatenated row buffer and
the bias pass. Measured on one Zen 5 core (T = 100 steps of 32-256 rows, K = I + H up to 1280): 199-216 GFLOP/s.

Measured (benchmarks/step_microkernel.py, one thread, float32, Emerald Rapids, load 4.6-5.9 from other jobs): 19-131
GFLOP/s over 2..128 rows and H = 128..1024 (N = 4H), 1.25-2.6x the previous dot-product kernel everywhere but 4
rows at H = 1024 (0.98), and 0.9-3.1x the best of OpenBLAS, NumPy and torch.mm (below 1 at 128 rows, at 32-64 rows
with H = 1024 and at 2 rows with H = 128). At H = 1024 the 16 MB of weights stream from L3 every step. Tried and not kept: other AVX-512 tiles (12x2, 6x4,
14x2, 4x4: within +-10 %) and blocking k so that a panel's block stays in L1 (no faster). The 256-bit tile is
checked to fit an AVX2 CPU's 16 registers (tests/test_microkernel.py), not timed on one.

Prefetch: every k loop asks for the panel's row ``PREFETCH_ROWS`` = 16 k ahead (one ``llvm.prefetch`` per vector of
the row; it never faults, so the rows past a panel's end need no test). The same prefetch measured no faster on the
loaded Emerald Rapids machine above; on an idle Intel Xeon with 2 MB of L2 per core (AMX, AVX-512; RESULTS.md
"Session 23") a step's GEMM with the panels streaming from L2 or L3 ran 1.1-1.35x as fast at 8..64 rows, H = 512
and 1024 (one and two threads at once; distances 4, 8, 16, 24, 32, 48 tried, 16 the best), and the LSTM's forward
0.75-1.01x the time (median 0.91) at B = 4..128 in inference (2 threads). On a Zen 4 (1 MB L2s, session 25) the
LSTM's forward with / without it: 0.98-1.04x at 16..128 rows, 0.94-1.17x (two runs disagreeing) at 2..6 rows: no
clear loss, no gain. Not timed on an AVX2 CPU (the 256-bit tile prefetches too).

Numba's cache: the time loops in ``cpu.py`` that call ``matmul_packed`` are cached with its code inside, and Numba
invalidates a cache entry only when the file of the cached function changes: after editing this file, clear the
cache (or touch ``cpu.py``).
"""

import contextlib

import numba
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic

_JIT = {"cache": True, "error_model": "numpy", "fastmath": {"nsz", "arcp", "contract", "reassoc"}}

# (rows, vectors) of the register tile for each vector width in bits. 512: 24 of the 32 zmm registers hold sums;
# 256: 12 of the 16 ymm registers (an AVX2 CPU has no more).
_TILES = {512: (8, 3), 256: (4, 3)}
# Whole panels per tile where ``matmul_packed`` has one row (``_row_tiles``): 12 sums in registers. The tile of one
# panel has 3 sums a row, one FMA chain each, and each FMA waits for the last of its chain (4 cycles on Zen 4 and 5):
# one row ran 3 FMAs in 4 cycles where 2 a cycle issue. Two rows over two panels (12 sums, each panel vector used
# twice, so held in a register) spilled the 256-bit tile's 16 registers: 2.4x the time of the tile of one panel.
_ROW_PANELS = 3
#: Each k loop prefetches the panel's row this many k ahead into L1 (``_k_loop``).
PREFETCH_ROWS = 16


def _host_vector_bits():
    """512 where the CPU Numba compiles for has AVX-512F, else 256: read from Numba's own target features (so that
    ``NUMBA_CPU_NAME``/``NUMBA_CPU_FEATURES`` are respected), falling back to LLVM's view of the host."""
    features = ""
    with contextlib.suppress(Exception):
        from numba.core.registry import cpu_target
        features = cpu_target.target_context.codegen()._tm_features
    if not features:
        with contextlib.suppress(Exception):
            import llvmlite.binding as llvm
            features = ",".join(("+" if on else "-") + name for name, on in llvm.get_host_cpu_features().items())
    return 512 if "+avx512f" in features.split(",") else 256


VECTOR_BITS = _host_vector_bits()


def panel_width(dtype, bits=None):
    """Columns per packed panel for ``dtype`` at vector width ``bits`` (default ``VECTOR_BITS``)."""
    bits = VECTOR_BITS if bits is None else bits
    if bits not in _TILES:
        raise ValueError(f"bits must be one of {sorted(_TILES)}, got {bits!r}")
    return _TILES[bits][1] * bits // (8 * np.dtype(dtype).itemsize)


def packed_shape(K, N, dtype, bits=None):
    """The shape [P, K, PW] of ``pack``'s array for a [K, N] ``b`` of ``dtype``: N columns in P panels PW wide."""
    pw = panel_width(dtype, bits)
    return -(-N // pw), K, pw


def pack(b, bits=None):
    """``b`` [K, N] (e.g. ``w_hh.T``) laid out in column panels [P, K, PW] for ``matmul_packed``, zero-padded;
    ``bits`` forces a vector width (256 or 512; default: the CPU's). (The CPU kernels pack into recycled memory
    with ``packed_shape`` and ``pack_into``: ``cpu.pack``.)"""
    b = np.asarray(b)
    if b.ndim != 2 or b.dtype not in (np.float32, np.float64):
        raise ValueError(f"pack takes a 2-D float32 or float64 array, got {b.ndim}-D {b.dtype}")
    packed = np.empty(packed_shape(*b.shape, b.dtype, bits), b.dtype)
    pack_into(b, packed)
    return packed


def _make_transpose_tile(bits):
    """The intrinsic ``transpose_tile(w, r0, c0, packed, p, k0, j0)``: ``packed[p, k0 + i, j0 + j] = w[r0 + j, c0 +
    i]`` for i, j < L, L = ``bits`` / the element's bits (16 float32 at 512 bits): L vector loads of w's rows, a
    transpose in registers, L vector stores along the panel's rows. The transpose swaps, for d = L/2, ..., 2, 1, the
    off-diagonal d x d blocks of each 2d x 2d block (two-source shuffles of rows i and i + d with constant masks:
    log2(L) rounds of L shuffles); swapping every bit of the row index with the column's is the transpose. ``w``
    needs a unit stride along its rows; no bounds checks."""

    @intrinsic
    def transpose_tile(typingctx, w, r0, c0, packed, p, k0, j0):
        if not (isinstance(w, types.Array) and isinstance(packed, types.Array) and w.dtype == packed.dtype
                and w.dtype in (types.float32, types.float64) and w.ndim == 2 and packed.ndim == 3):
            return None

        def codegen(context, builder, signature, args):
            w_type, _, _, packed_type, _, _, _ = signature.args
            w_val, r0_val, c0_val, packed_val, p_val, k0_val, j0_val = args
            element = context.get_value_type(w_type.dtype)
            size = context.get_abi_sizeof(element)
            lanes = bits // (8 * size)
            vector = ir.VectorType(element, lanes)
            i32 = ir.IntType(32)
            w_array = context.make_array(w_type)(context, builder, w_val)
            packed_array = context.make_array(packed_type)(context, builder, packed_val)
            rows = []
            for j in range(lanes):
                r = builder.add(r0_val, context.get_constant(types.intp, j))
                pointer = cgutils.get_item_pointer(context, builder, w_type, w_array, [r, c0_val])
                rows.append(builder.load(builder.bitcast(pointer, vector.as_pointer()), align=size))
            d = lanes // 2
            while d:
                low = ir.Constant(ir.VectorType(i32, lanes), [x if not x & d else lanes + x - d for x in range(lanes)])
                high = ir.Constant(ir.VectorType(i32, lanes), [x + d if not x & d else lanes + x for x in range(lanes)])
                swapped = list(rows)
                for i in range(lanes):
                    if not i & d:
                        swapped[i] = builder.shuffle_vector(rows[i], rows[i + d], low)
                        swapped[i + d] = builder.shuffle_vector(rows[i], rows[i + d], high)
                rows = swapped
                d //= 2
            for i in range(lanes):
                k = builder.add(k0_val, context.get_constant(types.intp, i))
                pointer = cgutils.get_item_pointer(context, builder, packed_type, packed_array, [p_val, k, j0_val])
                builder.store(rows[i], builder.bitcast(pointer, vector.as_pointer()), align=size)
            return context.get_dummy_value()

        return types.none(w, r0, c0, packed, p, k0, j0), codegen

    return transpose_tile


_transpose_tile = _make_transpose_tile(VECTOR_BITS)
_TRANSPOSE_BYTES = VECTOR_BITS // 8  # one vector: the transposed tiles are (bytes / itemsize) squared


@njit(nogil=True, **_JIT)
def pack_into(b, packed):
    """packed[p, k, j] = b[k, p * PW + j], 0 past b's last column (compiled and without the GIL, so that a time
    loop's caller can pack). Both orders read ``b`` along its contiguous axis, in as few streams as the CPU's
    prefetchers follow. A transposed C array such as ``w_hh.T`` (forward): ``pack_rows_into`` of all its rows, L of
    them at a time, in L x L tiles transposed in vector registers (``_transpose_tile``; L = one vector, 16 float32 at
    512 bits), the last rows and columns one by one (5-8x the speed of 16 x 16 blocks copied one element at a
    time: 1.0 against 4.2 ms for 4096 x 1024 float32 on a Zen 5 core; benchmarks/RESULTS.md, session 10; through
    ``pack_rows_into`` since session 28, 0.73-1.13x the time of its own loop before); with rows not unit-strided,
    those blocks. A C array such as ``w_hh`` (backward): row by row (panel by panel, they read 48 rows 4 KB apart at
    once and took 2-5x the time)."""
    P, K, PW = packed.shape
    N = b.shape[1]
    w = b.T
    if b.strides[0] < b.strides[1] and (K < 2 or w.strides[1] == w.itemsize):
        # a transposed C array: its rows in order, whole L x L tiles transposed in registers, the rest one by one
        pack_rows_into(w, np.arange(N), packed)
        return
    elif b.strides[0] < b.strides[1]:
        _pack_blocks(b, packed)
    elif K and N and b.strides[1] == b.itemsize and b.strides[0] >= 0 and b.strides[0] % b.itemsize == 0:
        # rows with unit stride (a C array or its column slice: the unit split's columns of W_hh): each panel's row
        # a copy of adjacent values, read through _span with unsigned indices (a vector copy; through the 2-D
        # view of layout "A" it was an element at a time: 2048 x 256 of a 2048 x 512 float32 array took 0.86 ms
        # warm on a Zen 4 core)
        span = _span(b)
        ld = np.uint64(b.strides[0] // b.itemsize)
        for k in range(K):
            first = np.uint64(k) * ld
            for p in range(P):
                n0 = p * PW
                target = packed[p, k]
                source = first + np.uint64(n0)
                for j in range(min(PW, N - n0)):
                    target[np.uint64(j)] = span[source + np.uint64(j)]
    else:
        for k in range(K):
            for p in range(P):
                n0 = p * PW
                for j in range(min(PW, N - n0)):
                    packed[p, k, j] = b[k, n0 + j]
    columns = N - (P - 1) * PW if P else PW
    for k in range(K):  # the last panel's padding
        for j in range(columns, PW):
            packed[P - 1, k, j] = 0


@njit(nogil=True, **_JIT)
def pack_rows_into(w, rows, packed, k0=0):
    """``packed[p, k0 + k, j] = w[rows[p * PW + j], k]`` for k < K (w's columns), 0 past the last of ``rows``: what
    ``pack_into(w[rows].T, ...)`` writes, into the panels' rows ``k0 .. k0 + K``, without the gathered copy
    ``w[rows]`` (a unit split's thread packs its gate rows of W_hh, and of W_ih: ``rows`` runs of consecutive rows
    of ``w``). Each L x L tile whose L rows of ``w`` are consecutive (L = one vector) is transposed in registers
    as ``pack_into`` does, the rest copied one element at a time; ``w`` needs a unit stride along its rows for the
    tiles. The gather and ``pack_into`` of the 1024 gate rows of a 2048 x 512 float32 W_hh on one Zen 4 core took
    0.21-0.25 ms warm, 0.47-0.53 ms with W_hh out of cache; this 0.06-0.09 and 0.33-0.45 (benchmarks/RESULTS.md
    "Session 28")."""
    P, _, PW = packed.shape
    N, K = len(rows), w.shape[1]
    L = _TRANSPOSE_BYTES // w.itemsize
    whole_k = K - K % L if K < 2 or w.strides[1] == w.itemsize else 0
    for p in range(P):
        n0 = p * PW
        columns = min(PW, N - n0)
        for j0 in range(0, columns, L):
            r = rows[n0 + j0]
            run = j0 + L <= columns and whole_k > 0
            for j in range(1, L if run else 0):
                if rows[n0 + j0 + j] != r + j:
                    run = False
                    break
            if run:
                for c0 in range(0, whole_k, L):
                    _transpose_tile(w, r, c0, packed, p, k0 + c0, j0)
                for k in range(whole_k, K):
                    for j in range(L):
                        packed[p, k0 + k, j0 + j] = w[r + j, k]
            else:
                for j in range(j0, min(j0 + L, columns)):
                    wj = w[rows[n0 + j]]
                    for k in range(K):
                        packed[p, k0 + k, j] = wj[k]
    columns = N - (P - 1) * PW if P else PW
    for k in range(K):  # the last panel's padding
        for j in range(columns, PW):
            packed[P - 1, k0 + k, j] = 0


@njit(nogil=True, **_JIT)
def _pack_blocks(b, packed):
    """``pack_into`` of a transposed array whose rows are not unit-strided: 16 x 16 blocks, one element at a time,
    16 of its rows read at a time (how every transposed matrix was packed before session 10; benchmarks/ab_pack.py
    times it against the tiles transposed in registers). Leaves the last panel's padding to the caller."""
    P, K, PW = packed.shape
    N = b.shape[1]
    for p in range(P):
        n0 = p * PW
        columns = min(PW, N - n0)
        for j0 in range(0, columns, 16):
            j1 = min(j0 + 16, columns)
            for k0 in range(0, K, 16):
                k1 = min(k0 + 16, K)
                for j in range(j0, j1):
                    for k in range(k0, k1):
                        packed[p, k, j] = b[k, n0 + j]


# ------------------------------------------------------------------------------------------- the IR

def _tile_declaration(module, name, signature, element, lanes, noalias):
    """A new internal, never-inlined LLVM function ``void name(signature)`` whose code is built for ``lanes``-wide
    vectors of ``element``, its pointer arguments ``noalias`` (all, or those of the given indices); returns it with
    (vector type, element size in bytes, the llvm.fma intrinsic of that vector, the broadcast's shuffle mask)."""
    vector = ir.VectorType(element, lanes)
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), signature), name)
    fn.linkage = "internal"
    for index, argument in enumerate(fn.args):
        if isinstance(argument.type, ir.PointerType) and (noalias is None or index in noalias):
            argument.add_attribute("noalias")
    fn.attributes.add("nounwind")
    fn.attributes.add("noinline")
    width = 32 if isinstance(element, ir.FloatType) else 64
    # Key="value" attributes go in as text (llvmlite's FunctionAttributes knows only flags by name).
    set.add(fn.attributes, f'"min-legal-vector-width"="{lanes * width}"')
    set.add(fn.attributes, f'"prefer-vector-width"="{lanes * width}"')
    fma = cgutils.get_or_insert_function(module, ir.FunctionType(vector, [vector] * 3), f"llvm.fma.v{lanes}f{width}")
    broadcast = ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes)
    return fn, vector, width // 8, fma, broadcast


def _tile_function(module, element, lanes, nr, mr, sources=1, bias=False, vectors=None, panels=1):
    """The LLVM function ``void tile(T* a, i64 lda, T* panel, i64 K, T* c, i64 ldc)``: c[i, j] = sum_k a[i*lda + k]
    * panel[k * nr*lanes + j] for i < mr, j < nv*lanes (see the module's docstring), nv = ``vectors`` (default
    ``nr``: the whole panel; fewer for the last, partial panel, whose other vectors are padding); defined once per
    module. Each lane's sum is the same sequence of FMAs whatever nv, so a partial tile's columns have the same bits.

    With ``sources`` = 2 and ``bias`` (``matmul2_packed``) the function is ``void tile(T* a1, i64 lda1, i64 K1,
    T* a2, i64 lda2, i64 K2, T* panel, T* bias, T* c, i64 ldc)``: the sums start from the panel's ``bias`` (nr*lanes
    values, the same for every row), run a k loop over ``a1`` against the panel's first K1 rows, then a second k loop
    over ``a2`` against the next K2 rows, into the same registers: c = bias + a1 @ panel[:K1] + a2 @ panel[K1:].

    ``panels`` > 1 (one source, no bias, whole panels): the tile runs on over that many consecutive panels (K *
    nr*lanes elements apart) into c's next columns, nv = nr * ``panels`` vectors; ``matmul_packed``'s one or two
    rows (``_ROW_PANELS``). Each lane's sum is the same sequence of FMAs as in the tile of one panel, so the bits
    do not change."""
    nv = nr * panels if vectors is None else vectors
    name = f"lstmzoo_tile_{element}_{mr}x{nr}x{lanes}" + (f"_{sources}sources" if sources > 1 else "") + \
        ("_bias" if bias else "") + (f"_{panels}panels" if panels > 1 else f"_{nv}vectors" if nv != nr else "")
    if name in module.globals:
        return module.globals[name]
    i64 = ir.IntType(64)
    pointer = element.as_pointer()
    if sources == 1 and not bias:
        signature = [pointer, i64, pointer, i64, pointer, i64]
    else:
        signature = [pointer, i64, i64] * sources + [pointer] + [pointer] * bias + [pointer, i64]
    fn, vector, size, fma, broadcast = _tile_declaration(module, name, signature, element, lanes, None)
    if sources == 1 and not bias:
        a, lda, panel, K, c, ldc = fn.args
        inputs = [(a, lda, K)]
        bias_ptr = None
    else:
        inputs = [tuple(fn.args[3 * s:3 * s + 3]) for s in range(sources)]
        rest = fn.args[3 * sources:]
        panel, bias_ptr, c, ldc = (rest[0], rest[1], rest[2], rest[3]) if bias else (rest[0], None, rest[1], rest[2])

    builder = ir.IRBuilder(fn.append_basic_block("entry"))
    if bias_ptr is None:
        acc = [[ir.Constant(vector, None)] * nv for i in range(mr)]
    else:
        start = [builder.load(builder.bitcast(builder.gep(bias_ptr, [i64(v * lanes)]), vector.as_pointer()),
                              align=size) for v in range(nv)]
        acc = [list(start) for i in range(mr)]
    offset = i64(0)
    for s, (a, lda, K) in enumerate(inputs):
        rows = [builder.gep(a, [builder.mul(lda, i64(i))]) for i in range(mr)]
        acc = _k_loop(builder, fn, f"{s}" if sources > 1 else "", acc,
                      lambda k, i, rows=rows: builder.gep(rows[i], [k]), builder.gep(panel, [offset]), K,
                      vector, size, nr * lanes, nv, lanes, fma, broadcast,
                      builder.mul(K, i64(nr * lanes)) if panels > 1 else None)
        if s + 1 < sources:
            offset = builder.add(offset, builder.mul(K, i64(nr * lanes)))

    for i in range(mr):
        out_row = builder.gep(c, [builder.mul(ldc, i64(i))])
        for v in range(nv):
            target = builder.bitcast(builder.gep(out_row, [i64(v * lanes)]), vector.as_pointer())
            builder.store(acc[i][v], target, align=size)
    builder.ret_void()
    return fn


def _prefetch(builder, address):
    """Emit a prefetch of ``address``'s cache line into L1 (``llvm.prefetch``: read, high locality, data)."""
    i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
    name = "llvm.prefetch.p0"
    function = builder.module.globals.get(name) or ir.Function(
        builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]), name)
    builder.call(function, [builder.bitcast(address, i8p), i32(0), i32(3), i32(1)])


def _k_loop(builder, fn, label, acc, scalar, panel, K, vector, size, stride, vectors, lanes, fma, broadcast,
            panel_stride=None):
    """Emit ``for k < K: acc[i][v] += a_i(k) * panel[k, v]`` (v < ``vectors`` vectors of a panel row, rows
    ``stride`` elements apart; ``scalar(k, i)`` the address of a_i(k), i < len(acc)) after the builder's current
    block (skipped when K <= 0); returns the sums after the loop (phi values), with the builder at the end of the
    block after it. With ``panel_stride`` (elements from one panel to the next) the vectors run on into the next
    panels, ``stride / lanes`` of them a panel: vector v is vector v % (stride / lanes) of panel v // (stride /
    lanes) (``_tile_function``'s ``panels``)."""
    i64 = ir.IntType(64)
    before = builder.block
    loop, after = fn.append_basic_block(f"k_loop{label}"), fn.append_basic_block(f"after_k_loop{label}")
    builder.cbranch(builder.icmp_signed(">", K, i64(0)), loop, after)

    builder.position_at_end(loop)
    k = builder.phi(i64, "k")
    current = [[builder.phi(vector, f"acc{i}_{v}") for v in range(vectors)] for i in range(len(acc))]
    per_panel = stride // lanes

    def offset(v):  # of vector v of the row, from the first panel's row
        if v < per_panel:
            return i64(v * lanes)
        return builder.add(builder.mul(panel_stride, i64(v // per_panel)), i64(v % per_panel * lanes))
    row = builder.gep(panel, [builder.mul(k, i64(stride))])
    b = [builder.load(builder.bitcast(builder.gep(row, [offset(v)]), vector.as_pointer()), align=size)
         for v in range(vectors)]
    ahead = builder.gep(panel, [builder.mul(builder.add(k, i64(PREFETCH_ROWS)), i64(stride))])
    for v in range(vectors):  # the panel's row PREFETCH_ROWS ahead (past the end: a prefetch never faults)
        _prefetch(builder, builder.gep(ahead, [offset(v)]))
    new = []
    for i in range(len(acc)):
        value = builder.load(scalar(k, i), align=size)
        splat = builder.shuffle_vector(builder.insert_element(ir.Constant(vector, ir.Undefined), value, i64(0)),
                                       ir.Constant(vector, ir.Undefined), broadcast)
        new.append([builder.call(fma, [splat, b[v], current[i][v]]) for v in range(vectors)])
    k_next = builder.add(k, i64(1))
    branch = builder.cbranch(builder.icmp_signed("<", k_next, K), loop, after)
    if panel_stride is not None:
        branch.set_metadata("llvm.loop", _no_unroll(builder.module))
    k.add_incoming(i64(0), before)
    k.add_incoming(k_next, loop)
    for i in range(len(acc)):
        for v in range(vectors):
            current[i][v].add_incoming(acc[i][v], before)
            current[i][v].add_incoming(new[i][v], loop)

    builder.position_at_end(after)
    totals = [[builder.phi(vector) for v in range(vectors)] for i in range(len(acc))]  # the phis first in the block
    for i in range(len(acc)):
        for v in range(vectors):
            totals[i][v].add_incoming(acc[i][v], before)
            totals[i][v].add_incoming(new[i][v], loop)
    return totals


def _no_unroll(module):
    """Loop metadata that asks LLVM not to unroll a loop (``llvm.loop.unroll.disable``; the loop's own id, a node
    that names itself, first). Unrolled by two, the one-row tile over several panels spilled a sum on AVX2."""
    node = module.add_metadata([module.add_metadata([ir.MetaDataString(module, "llvm.loop.unroll.disable")])])
    node.operands = (node,) + tuple(node.operands)
    return node


def _switch(builder, value, count, emit, label):
    """Emit ``switch value: case m -> emit(m)`` for m = 1 .. count - 1, ``count`` by default, every case then
    branching to one block after the switch, where the builder is left."""
    done = builder.append_basic_block(f"{label}_done")
    default = builder.append_basic_block(f"{label}_{count}")
    switch = builder.switch(value, default)
    for m in range(count, 0, -1):
        block = default if m == count else builder.append_basic_block(f"{label}_{m}")
        if m < count:
            switch.add_case(ir.Constant(value.type, m), block)
        builder.position_at_end(block)
        emit(m)
        builder.branch(done)
    builder.position_at_end(done)


def _rows_and_vectors(builder, rows_val, vectors_val, mr, nr, call, label):
    """``call(m, v)`` for the whole panel's tile of m = ``rows_val`` rows (a switch, 1 <= m <= mr, v = nr), or with
    ``vectors_val`` (the last, partial panel's tile, always ``mr`` rows: a tile per row count and vector count
    doubled the compile time of its callers) v = ``vectors_val`` vectors (a switch, 1 <= v < nr)."""
    if vectors_val is None:
        _switch(builder, rows_val, mr, lambda m: call(m, nr), label)
    else:
        _switch(builder, vectors_val, nr - 1, lambda v: call(mr, v), f"{label}_vectors")


def _make_tile(bits):
    """The intrinsic ``tile(a, r0, rows, packed, p, c, c0, n0)``: ``c[c0:c0+rows, n0:n0+PW] = a[r0:r0+rows] @
    packed[p]`` for 1 <= rows <= mr, with the register tile of ``_TILES[bits]`` (a switch on ``rows`` picks the
    tile function of that many rows). ``a`` and ``c`` need unit strides along their rows; no bounds checks.
    Returns it and its form for the last, partial panel, ``part_tile(a, r0, rows, packed, p, c, c0, n0,
    vectors)``, which computes (and stores) only the first ``vectors`` vectors of the panel, 1 <= vectors < nr:
    the real columns, not the padding; ``rows`` must be mr there. And the tile of one row over ``_ROW_PANELS``
    whole panels, ``row_tile(a, r0, 1, packed, p, c, c0, n0)``: ``c[c0, n0:n0+_ROW_PANELS*PW] = a[r0] @
    packed[p:p+_ROW_PANELS]`` (its ``rows`` is always 1)."""
    mr, nr = _TILES[bits]

    def typed(*arguments, multi=False):
        a, _, _, packed, _, c = arguments[:6]
        arrays = (a, packed, c)
        if not all(isinstance(x, types.Array) for x in arrays) or len({x.dtype for x in arrays}) != 1:
            return None
        if a.dtype not in (types.float32, types.float64):
            return None
        if (a.ndim, packed.ndim, c.ndim) != (2, 3, 2):
            return None

        def codegen(context, builder, signature, args):
            a_type, _, _, packed_type, _, c_type, _, _ = signature.args[:8]
            a_val, r0_val, rows_val, packed_val, p_val, c_val, c0_val, n0_val = args[:8]
            element = context.get_value_type(a_type.dtype)
            lanes = bits // (8 * context.get_abi_sizeof(element))
            i64 = ir.IntType(64)
            a_array = context.make_array(a_type)(context, builder, a_val)
            packed_array = context.make_array(packed_type)(context, builder, packed_val)
            c_array = context.make_array(c_type)(context, builder, c_val)
            zero = context.get_constant(types.intp, 0)
            a_ptr = cgutils.get_item_pointer(context, builder, a_type, a_array, [r0_val, zero])
            panel_ptr = cgutils.get_item_pointer(context, builder, packed_type, packed_array, [p_val, zero, zero])
            c_ptr = cgutils.get_item_pointer(context, builder, c_type, c_array, [c0_val, n0_val])
            size = i64(context.get_abi_sizeof(element))
            lda = builder.sdiv(cgutils.unpack_tuple(builder, a_array.strides)[0], size)
            ldc = builder.sdiv(cgutils.unpack_tuple(builder, c_array.strides)[0], size)
            K = cgutils.unpack_tuple(builder, packed_array.shape)[1]

            def call(m, v):
                function = _tile_function(builder.module, element, lanes, nr, m, vectors=v)
                builder.call(function, [a_ptr, lda, panel_ptr, K, c_ptr, ldc])

            if multi:
                function = _tile_function(builder.module, element, lanes, nr, 1, panels=_ROW_PANELS)
                builder.call(function, [a_ptr, lda, panel_ptr, K, c_ptr, ldc])
            else:
                _rows_and_vectors(builder, rows_val, args[8] if len(args) > 8 else None, mr, nr, call, "tile")
            return context.get_dummy_value()

        return types.none(*arguments), codegen

    @intrinsic
    def tile(typingctx, a, r0, rows, packed, p, c, c0, n0):
        return typed(a, r0, rows, packed, p, c, c0, n0)

    @intrinsic
    def part_tile(typingctx, a, r0, rows, packed, p, c, c0, n0, vectors):
        return typed(a, r0, rows, packed, p, c, c0, n0, vectors)

    @intrinsic
    def row_tile(typingctx, a, r0, rows, packed, p, c, c0, n0):
        return typed(a, r0, rows, packed, p, c, c0, n0, multi=True)

    return tile, part_tile, row_tile


def _make_tile2(bits):
    """The intrinsic ``tile2(a1, a2, r0, rows, packed, bias, p, c, c0, n0)``: ``c[c0:c0+rows, n0:n0+PW] = bias[p] +
    a1[r0:r0+rows] @ packed[p, :K1] + a2[r0:r0+rows] @ packed[p, K1:]`` (K1 = a1's columns) for 1 <= rows <= mr,
    one register tile over both sources (``_tile_function`` with 2 sources and a bias). The last panel runs the
    whole panel's tile (a tile of fewer vectors there saved 1-8 % of a fused step at N = 4H = 400..512, less than it
    cost in compile time)."""
    mr, nr = _TILES[bits]

    @intrinsic
    def tile2(typingctx, a1, a2, r0, rows, packed, bias, p, c, c0, n0):
        arrays = (a1, a2, packed, bias, c)
        if not all(isinstance(x, types.Array) for x in arrays) or len({x.dtype for x in arrays}) != 1:
            return None
        if a1.dtype not in (types.float32, types.float64):
            return None
        if (a1.ndim, a2.ndim, packed.ndim, bias.ndim, c.ndim) != (2, 2, 3, 2, 2):
            return None

        def codegen(context, builder, signature, args):
            a1_type, a2_type, _, _, packed_type, bias_type, _, c_type, _, _ = signature.args
            a1_val, a2_val, r0_val, rows_val, packed_val, bias_val, p_val, c_val, c0_val, n0_val = args
            element = context.get_value_type(a1_type.dtype)
            lanes = bits // (8 * context.get_abi_sizeof(element))
            i64 = ir.IntType(64)
            size = i64(context.get_abi_sizeof(element))
            zero = context.get_constant(types.intp, 0)
            sources = []
            for a_type, a_val in ((a1_type, a1_val), (a2_type, a2_val)):
                array = context.make_array(a_type)(context, builder, a_val)
                pointer = cgutils.get_item_pointer(context, builder, a_type, array, [r0_val, zero])
                lda = builder.sdiv(cgutils.unpack_tuple(builder, array.strides)[0], size)
                sources += [pointer, lda, cgutils.unpack_tuple(builder, array.shape)[1]]
            packed_array = context.make_array(packed_type)(context, builder, packed_val)
            bias_array = context.make_array(bias_type)(context, builder, bias_val)
            c_array = context.make_array(c_type)(context, builder, c_val)
            panel_ptr = cgutils.get_item_pointer(context, builder, packed_type, packed_array, [p_val, zero, zero])
            bias_ptr = cgutils.get_item_pointer(context, builder, bias_type, bias_array, [p_val, zero])
            c_ptr = cgutils.get_item_pointer(context, builder, c_type, c_array, [c0_val, n0_val])
            ldc = builder.sdiv(cgutils.unpack_tuple(builder, c_array.strides)[0], size)

            def call(m):
                function = _tile_function(builder.module, element, lanes, nr, m, sources=2, bias=True)
                builder.call(function, sources + [panel_ptr, bias_ptr, c_ptr, ldc])
            _switch(builder, rows_val, mr, call, "tile2")
            return context.get_dummy_value()

        return types.none(a1, a2, r0, rows, packed, bias, p, c, c0, n0), codegen

    return tile2


_tile_512, _part_tile_512, _row_tile_512 = _make_tile(512)
_tile_256, _part_tile_256, _row_tile_256 = _make_tile(256)
_MR_512, _NR_512 = _TILES[512]
_MR_256, _NR_256 = _TILES[256]


@njit(**_JIT)
def scratch_tile(packed):
    """The scratch tile ``matmul_packed`` and ``matmul2_packed`` run ``packed``'s partial panel through: a time loop
    makes it once and passes it to every step's call (their ``scratch``; left out, each call makes its own, an
    allocation and a free a step)."""
    PW = packed.shape[2]
    wide = PW == _NR_512 * (64 // packed.itemsize)
    return np.empty((_MR_512 if wide else _MR_256, PW), packed.dtype)


@njit(inline="always", **_JIT)
def _tile_or_new(scratch, mr, PW, out):
    """The tile a call runs its partial panel through: the caller's ``scratch`` (checked), or, without one, a new
    tile of ``out``'s dtype."""
    if scratch is None:
        return np.empty((mr, PW), out.dtype)
    if scratch.shape[0] < mr or scratch.shape[1] < PW:
        raise ValueError("scratch tile too small for packed: make it with scratch_tile(packed)")
    return scratch


@njit(**_JIT)
def matmul_packed(a, packed, out, backwards=False, scratch=None):
    """out[:] = a @ b, with ``packed = pack(b)`` (``a`` [M, K], ``out`` [M, N], rows with unit stride, one dtype).
    Which tile runs follows from the panel width (``pack``'s ``bits``).

    ``backwards``: the panels in reverse order, last first (the same bits: each panel's columns are their own
    sums). A time loop that reads the same packed matrix every step alternates the order (``backwards=t & 1``), so
    that the panels one step read last, still in cache, are the ones the next step reads first: a matrix a little
    larger than the cache is otherwise evicted panel by panel just before each is read again (least recently used
    goes first), and every step streams all of it from the next level. One thread, one or two rows, whole steps'
    GEMMs h[rows, H] @ W_hh^T on Zen 4 (1 MB L2; benchmarks/panel_order.py): 0.89-0.92x the time at H = 224..256
    (W_hh^T packed 0.8-1.0 MB), 0.94-0.97 at 192, 288 and 320, none at 160 and 384 nor at 4 or more rows, whose
    FMAs take longer than the stream."""
    M, K = a.shape
    P, _, PW = packed.shape
    N = out.shape[1]
    if packed.shape[1] != K or out.shape[0] != M or P * PW < N or (P - 1) * PW >= max(N, 1):
        raise ValueError("matmul_packed: shapes of a, packed and out do not match")
    if M == 0 or N == 0:
        return
    if (K > 1 and a.strides[1] != a.itemsize) or (N > 1 and out.strides[1] != out.itemsize):
        raise ValueError("matmul_packed: a and out need unit strides along their rows")
    wide = PW == _NR_512 * (64 // a.itemsize)
    if not wide and PW != _NR_256 * (32 // a.itemsize):
        raise ValueError("matmul_packed: packed was not made by pack() for this dtype")
    mr = _MR_512 if wide else _MR_256
    lanes = PW // (_NR_512 if wide else _NR_256)
    tile = _tile_or_new(scratch, mr, PW, out)
    # One row: the whole panels in groups of _ROW_PANELS, a tile each, first (or last, backwards); the panels after
    # them as below.
    grouped = N // PW // _ROW_PANELS * _ROW_PANELS if M == 1 else 0
    if not backwards:
        for p in range(0, grouped, _ROW_PANELS):
            _row_tiles(a, packed, p, out, wide)
    for q in range(P - grouped):
        p = P - 1 - q if backwards else grouped + q
        n0 = p * PW
        cols = min(PW, N - n0)
        vectors = (cols + lanes - 1) // lanes  # the last panel's: only those of its real columns
        for r0 in range(0, M, mr):
            rows = min(mr, M - r0)
            part = vectors * lanes < PW and rows == mr  # the partial panel's tile
            if cols == PW or (part and cols == vectors * lanes):  # in place (each array passed by name: _tiles)
                _tiles(a, r0, rows, packed, p, out, r0, n0, wide, part, vectors)
            else:  # through the scratch tile
                _tiles(a, r0, rows, packed, p, tile, 0, 0, wide, part, vectors)
                for i in range(rows):
                    for j in range(cols):
                        out[r0 + i, n0 + j] = tile[i, j]
    if backwards:
        for p in range(grouped - _ROW_PANELS, -1, -_ROW_PANELS):
            _row_tiles(a, packed, p, out, wide)


@njit(nogil=True, inline="always", **_JIT)
def _row_tiles(a, packed, p, out, wide):
    """``matmul_packed``'s tile of its one row over the whole panels p .. p + ``_ROW_PANELS`` - 1."""
    n0 = p * packed.shape[2]
    if wide:
        _row_tile_512(a, 0, 1, packed, p, out, 0, n0)
    else:
        _row_tile_256(a, 0, 1, packed, p, out, 0, n0)


@njit(nogil=True, inline="always", **_JIT)
def _tiles(a, r0, rows, packed, p, c, c0, n0, wide, part, vectors):
    """``matmul_packed``'s call of one tile, the whole panel's (``part`` False) or its first ``vectors``.

    Its callers pass ``out`` or the scratch tile by name, in two calls, not one call with an array chosen at run
    time (``target = out if ... else scratch``): with that choice the loops ran at 0.68-0.89x the speed (one Intel
    Xeon core, 3200 rows in calls of 32 or 128, K = 64..256, N = 960..4080: 79-150 against 105-188 GFLOP/s;
    RESULTS.md "Session 24"). The same tiles, the same bits."""
    if not part:
        if wide:
            _tile_512(a, r0, rows, packed, p, c, c0, n0)
        else:
            _tile_256(a, r0, rows, packed, p, c, c0, n0)
    elif wide:
        _part_tile_512(a, r0, rows, packed, p, c, c0, n0, vectors)
    else:
        _part_tile_256(a, r0, rows, packed, p, c, c0, n0, vectors)


_tile2_512 = _make_tile2(512)
_tile2_256 = _make_tile2(256)


def pack_bias(bias, bits=None):
    """``bias`` [N] in ``pack``'s panels, [P, PW], zero-padded: the start of ``matmul2_packed``'s sums."""
    bias = np.asarray(bias)
    pw = panel_width(bias.dtype, bits)
    packed = np.zeros((-(-len(bias) // pw), pw), bias.dtype)
    packed.reshape(-1)[:len(bias)] = bias
    return packed


@njit(**_JIT)
def matmul2_packed(a1, a2, packed, bias, out, scratch=None):
    """out[:] = bias + a1 @ b1 + a2 @ b2 with ``packed = pack(vstack(b1, b2))`` and ``bias = pack_bias(...)``, in
    one register tile per block of output (``a1`` [M, K1], ``a2`` [M, K2], ``out`` [M, N]; rows with unit stride,
    one dtype): a recurrent step's gates ``x_t W_ih^T + h W_hh^T + b`` with no input projection stored before."""
    M, K1 = a1.shape
    K2 = a2.shape[1]
    P, K, PW = packed.shape
    N = out.shape[1]
    if (K1 + K2 != K or a2.shape[0] != M or out.shape[0] != M or P * PW < N or (P - 1) * PW >= max(N, 1)
            or bias.shape[0] != P or bias.shape[1] != PW):
        raise ValueError("matmul2_packed: shapes of a1, a2, packed, bias and out do not match")
    if M == 0 or N == 0:
        return
    if ((K1 > 1 and a1.strides[1] != a1.itemsize) or (K2 > 1 and a2.strides[1] != a2.itemsize)
            or (N > 1 and out.strides[1] != out.itemsize)):
        raise ValueError("matmul2_packed: a1, a2 and out need unit strides along their rows")
    wide = PW == _NR_512 * (64 // a1.itemsize)
    if not wide and PW != _NR_256 * (32 // a1.itemsize):
        raise ValueError("matmul2_packed: packed was not made by pack() for this dtype")
    mr = _MR_512 if wide else _MR_256
    tile = _tile_or_new(scratch, mr, PW, out)
    for p in range(P):
        n0 = p * PW
        cols = min(PW, N - n0)
        for r0 in range(0, M, mr):
            rows = min(mr, M - r0)
            if cols == PW:
                if wide:
                    _tile2_512(a1, a2, r0, rows, packed, bias, p, out, r0, n0)
                else:
                    _tile2_256(a1, a2, r0, rows, packed, bias, p, out, r0, n0)
            else:  # the last, partial panel: through the scratch tile
                if wide:
                    _tile2_512(a1, a2, r0, rows, packed, bias, p, tile, 0, 0)
                else:
                    _tile2_256(a1, a2, r0, rows, packed, bias, p, tile, 0, 0)
                for i in range(rows):
                    for j in range(cols):
                        out[r0 + i, n0 + j] = tile[i, j]


# ------------------------------------------------------------------ a blocked GEMM for the big GEMMs outside the loops

def _block_tile_function(module, element, lanes, nr, mr, a_columns, accumulate, vectors=None):
    """Like ``_tile_function``, for ``gemm_packed``'s blocks: ``void tile(T* a, i64 lda, T* panel, i64 K, T* c,
    i64 ldc)`` with c[i, j] (+)= sum_k a_i(k) * panel[k * nr*lanes + j] for i < mr, j < nr*lanes, where a_i(k) is
    ``a[i * lda + k]`` (``a_columns`` False: a row-major block) or ``a[k * lda + i]`` (True: a block of a transposed
    matrix, e.g. ``da.T``, whose mr values of one k are adjacent), and ``accumulate`` adds to c instead of
    overwriting it (a block of K after the first). ``vectors``: only the first of the panel's nr vectors, as in
    ``_tile_function``."""
    nv = nr if vectors is None else vectors
    name = (f"lstmzoo_block_tile_{element}_{mr}x{nr}x{lanes}_{'c' if a_columns else 'r'}{'a' if accumulate else 's'}"
            + (f"_{nv}vectors" if nv != nr else ""))
    if name in module.globals:
        return module.globals[name]
    i64 = ir.IntType(64)
    pointer = element.as_pointer()
    fn, vector, size, fma, broadcast = _tile_declaration(module, name, [pointer, i64, pointer, i64, pointer, i64],
                                                         element, lanes, (0, 2, 4))
    a, lda, panel, K, c, ldc = fn.args

    builder = ir.IRBuilder(fn.append_basic_block("entry"))
    targets = [[builder.bitcast(builder.gep(builder.gep(c, [builder.mul(ldc, i64(i))]), [i64(v * lanes)]),
                                vector.as_pointer()) for v in range(nv)] for i in range(mr)]
    if accumulate:
        start = [[builder.load(targets[i][v], align=size) for v in range(nv)] for i in range(mr)]
    else:
        start = [[ir.Constant(vector, None)] * nv for _ in range(mr)]
    if a_columns:  # a_i(k) = a[k * lda + i]
        def scalar(k, i):
            return builder.gep(a, [builder.add(builder.mul(k, lda), i64(i))])
    else:  # a_i(k) = a[i * lda + k]
        offsets = [builder.mul(lda, i64(i)) for i in range(mr)]

        def scalar(k, i):
            return builder.gep(a, [builder.add(offsets[i], k)])
    totals = _k_loop(builder, fn, "", start, scalar, panel, K, vector, size, nr * lanes, nv, lanes, fma, broadcast)
    for i in range(mr):
        for v in range(nv):
            builder.store(totals[i][v], targets[i][v], align=size)
    builder.ret_void()
    return fn


def _make_block_tile(bits):
    """The intrinsic ``tile(a, a_columns, r0, rows, k0, kc, packed, p, c, c0, n0, accumulate)``:
    ``c[c0:c0+rows, n0:n0+PW] (+)= a[r0:r0+rows, k0:k0+kc] @ packed[p, k0:k0+kc]`` for 1 <= rows <= mr. ``a`` has
    unit strides along its rows (``a_columns`` False) or along its columns (True, a transposed view); ``c`` along
    its rows. No bounds checks. Returns it and its form for the last panel, with a last argument ``vectors``, as
    ``_make_tile``. A 3-D ``a`` is ``gemm_packed``'s packed block, [tiles, kc, mr] (``_pack_a``, ``a_columns``
    True) or [tiles, mr, kc] (``_pack_a_rows``, False): ``r0`` is then the tile's index, whose values the tile reads
    from the start (the panel from ``k0``), so that the driver's loop makes no view per tile."""
    mr, nr = _TILES[bits]

    def typed(*arguments):
        a, packed, c = arguments[0], arguments[6], arguments[8]
        arrays = (a, packed, c)
        if not all(isinstance(x, types.Array) for x in arrays) or len({x.dtype for x in arrays}) != 1:
            return None
        if a.dtype not in (types.float32, types.float64) or (packed.ndim, c.ndim) != (3, 2) or a.ndim not in (2, 3):
            return None

        def codegen(context, builder, signature, args):
            a_type, _, _, _, _, _, packed_type, _, c_type, _, _, _ = signature.args[:12]
            a_val, columns_val, r0_val, rows_val, k0_val, kc_val, packed_val, p_val, c_val, c0_val, n0_val, acc_val = \
                args[:12]
            element = context.get_value_type(a_type.dtype)
            lanes = bits // (8 * context.get_abi_sizeof(element))
            i64 = ir.IntType(64)
            a_array = context.make_array(a_type)(context, builder, a_val)
            packed_array = context.make_array(packed_type)(context, builder, packed_val)
            c_array = context.make_array(c_type)(context, builder, c_val)
            zero = context.get_constant(types.intp, 0)
            blocked = a_type.ndim == 3  # a packed block: tile r0's values from its start
            a_index = [r0_val, zero, zero] if blocked else [r0_val, k0_val]
            a_ptr = cgutils.get_item_pointer(context, builder, a_type, a_array, a_index)
            panel_ptr = cgutils.get_item_pointer(context, builder, packed_type, packed_array, [p_val, k0_val, zero])
            c_ptr = cgutils.get_item_pointer(context, builder, c_type, c_array, [c0_val, n0_val])
            size = i64(context.get_abi_sizeof(element))
            a_strides = cgutils.unpack_tuple(builder, a_array.strides)
            ldc = builder.sdiv(cgutils.unpack_tuple(builder, c_array.strides)[0], size)
            done = builder.append_basic_block("block_tile_done")
            for a_columns in (False, True):
                for accumulate in (False, True):
                    chosen = builder.and_(
                        builder.icmp_unsigned("==", columns_val, ir.Constant(columns_val.type, int(a_columns))),
                        builder.icmp_unsigned("==", acc_val, ir.Constant(acc_val.type, int(accumulate))))
                    here = builder.append_basic_block("variant")
                    after = builder.append_basic_block("next_variant")
                    builder.cbranch(chosen, here, after)
                    builder.position_at_end(here)
                    lda = builder.sdiv(a_strides[1 if a_columns or blocked else 0], size)

                    def call(m, v, a_columns=a_columns, accumulate=accumulate, lda=lda):
                        function = _block_tile_function(builder.module, element, lanes, nr, m, a_columns, accumulate,
                                                        vectors=v)
                        builder.call(function, [a_ptr, lda, panel_ptr, kc_val, c_ptr, ldc])
                    _rows_and_vectors(builder, rows_val, args[12] if len(args) > 12 else None, mr, nr, call,
                                      "block_tile")
                    builder.branch(done)
                    builder.position_at_end(after)
            builder.branch(done)
            builder.position_at_end(done)
            return context.get_dummy_value()

        return types.none(*arguments), codegen

    @intrinsic
    def tile(typingctx, a, a_columns, r0, rows, k0, kc, packed, p, c, c0, n0, accumulate):
        return typed(a, a_columns, r0, rows, k0, kc, packed, p, c, c0, n0, accumulate)

    @intrinsic
    def part_tile(typingctx, a, a_columns, r0, rows, k0, kc, packed, p, c, c0, n0, accumulate, vectors):
        return typed(a, a_columns, r0, rows, k0, kc, packed, p, c, c0, n0, accumulate, vectors)

    return tile, part_tile


_block_tile_512, _part_block_tile_512 = _make_block_tile(512)
_block_tile_256, _part_block_tile_256 = _make_block_tile(256)

#: ``gemm_packed``'s blocks: rows of ``a`` (and ``out``) per block, whose ``KC`` columns stay in L2 while all panels
#: pass, and the K block (a panel's KC x PW part stays in L1 while the block's row tiles pass; the backward's GEMMs
#: after the loop take a larger one where the L2 is larger, ``cpu._gemm_kc``).
GEMM_MC, GEMM_KC = 128, 256
#: ... and the rows per block for a transposed ``a`` (``_pack_a``), whose packing reads this many adjacent values a
#: k: one Intel Xeon core (2 MB L2, RESULTS.md "Session 24"), the weight gradients da^T [x | h] at T*B = 1600..12800,
#: 4H = 1024..4096, I + H = 256..2049 ran 1.06-1.33x as fast as with 128 rows (kc = 1024); on a Zen 4 (1 MB L2,
#: session 25; kc = 512) 1.05-1.94x, the best of 128, 256 and 512 rows at every shape tried.
GEMM_MC_PACKED = 512
#: ``gemm_packed`` copies each block of a transposed ``a`` (unit stride along its columns, such as ``da.T``) into a
#: packed block where ``b`` has at least this many panels: a tile then reads one stream instead of a cache line (and
#: often a page) per k.
_PACK_A_PANELS = 4


@njit(nogil=True, inline="always", **_JIT)
def _block_tile(a, a_columns, r0, rows, k0, kc, packed, p, c, c0, n0, accumulate, wide, part, vectors):
    """``gemm_packed``'s call of one tile, the whole panel's (``part`` False) or its first ``vectors``."""
    if not part:
        if wide:
            _block_tile_512(a, a_columns, r0, rows, k0, kc, packed, p, c, c0, n0, accumulate)
        else:
            _block_tile_256(a, a_columns, r0, rows, k0, kc, packed, p, c, c0, n0, accumulate)
    elif wide:
        _part_block_tile_512(a, a_columns, r0, rows, k0, kc, packed, p, c, c0, n0, accumulate, vectors)
    else:
        _part_block_tile_256(a, a_columns, r0, rows, k0, kc, packed, p, c, c0, n0, accumulate, vectors)


@intrinsic
def _span(typingctx, a):
    """A 1-D C array over ``a``'s memory (2-D, non-negative strides in whole elements), from its first element
    through its last, sharing ``a``'s buffer: ``a[i, j]`` is ``_span(a)[(i * s0 + j * s1) // itemsize]``. Indexed
    with unsigned integers, a copy through it has no wraparound test and a known unit stride, which LLVM
    vectorises (``_pack_a``); through a 2-D view of layout "A" it read one element at a time (a gather)."""
    if not isinstance(a, types.Array) or a.ndim != 2:
        return None
    span_type = types.Array(a.dtype, 1, "C")

    def codegen(context, builder, signature, args):
        array = context.make_array(signature.args[0])(context, builder, args[0])
        intp = context.get_value_type(types.intp)
        itemsize = intp(context.get_abi_sizeof(context.get_data_type(signature.args[0].dtype)))
        last = itemsize  # bytes from the first element through the end of the last
        for n, stride in zip(cgutils.unpack_tuple(builder, array.shape), cgutils.unpack_tuple(builder, array.strides)):
            last = builder.add(last, builder.mul(builder.sub(n, intp(1)), stride))
        span = context.make_array(span_type)(context, builder)
        context.populate_array(span, data=array.data, shape=cgutils.pack_array(builder, [builder.sdiv(last, itemsize)]),
                               strides=cgutils.pack_array(builder, [itemsize]), itemsize=itemsize,
                               meminfo=array.meminfo)
        return impl_ret_borrowed(context, builder, span_type, span._getvalue())

    return span_type(a), codegen


#: ``_pack_a`` copies this many k of one tile at a time.
_PACK_A_KS = 16
#: ``gemm_packed`` packs a transposed ``a``'s blocks with ``_pack_a`` (k-major tiles) where a tile's ``mr`` values of
#: one k fill this many bytes (a cache line: float64 at 512 bits), else with ``_pack_a_rows`` (row-major tiles).
_PACK_A_LINE = 64


@njit(nogil=True, **_JIT)
def _pack_a(a, m0, m1, k0, kc, block):
    """Rows ``m0:m1`` and columns ``k0:k0+kc`` of a transposed ``a`` (unit stride along its columns, a positive
    whole-element stride along its rows) into ``block`` [tiles, kc, mr]: ``block[t, k, i] = a[m0 + t*mr + i,
    k0 + k]``, the ``mr`` values of one k side by side as in ``a``, and consecutive k next to each other (a tile's
    broadcasts then read one stream). ``_PACK_A_KS`` k at a time for each tile in turn: the tile's part of the
    block is written as one run of 512 bytes (float32), where k outermost wrote 32 bytes into every tile's part in
    turn (the parts kc * mr elements apart: 16 KB at kc = 512, float32, all in one L1 set). Read through ``_span``
    with unsigned indices (a vector copy). One Zen 4 core (session 26, mc = kc = 512, ``_pack_a`` timed alone):
    10-14 GB/s at da [T*B, 4H] = [1600..3200, 132..1024], 6 at [12800, 4096], where the loop over k then tiles
    through ``a``'s 2-D view ran at 2-4; the weight gradients' GEMM with it 0.76-0.97x the time
    (benchmarks/gemm_drivers.py, RESULTS.md "Session 26")."""
    mr = block.shape[2]
    tiles = (m1 - m0 + mr - 1) // mr
    span = _span(a)
    ld = np.uint64(a.strides[1] // a.itemsize)  # between consecutive k; consecutive rows are adjacent
    for kb in range(0, kc, _PACK_A_KS):
        for t in range(tiles):
            rows = min(mr, m1 - m0 - t * mr)
            first = np.uint64(m0 + t * mr)
            for k in range(kb, min(kc, kb + _PACK_A_KS)):
                source = np.uint64(k0 + k) * ld + first
                target = block[t, k]
                for i in range(rows):
                    target[np.uint64(i)] = span[source + np.uint64(i)]


@njit(nogil=True, **_JIT)
def _pack_a_rows(a, m0, m1, k0, kc, block):
    """Rows ``m0:m1`` and columns ``k0:k0+kc`` of a transposed ``a`` (unit stride along its columns) into ``block``
    [tiles, mr, >= kc], row-major tiles: ``block[t, i, k] = a[m0 + t*mr + i, k0 + k]``, which the tiles read as a
    C-ordered ``a`` (``a_columns`` False). Whole L x L squares transposed in vector registers (``_transpose_tile``,
    L = one vector), a band of L rows at a time (the band's rows written in order: squares k outermost wrote 64
    bytes into L rows kc elements apart in turn, 1.5-3x the time), the rest one value at a time. Against
    ``_pack_a``'s k-major tiles, float32, on a Zen 5 core (benchmarks/RESULTS.md "Session 37"): the packing alone
    0.54-0.92x the time, the weight-gradient GEMM with it 0.80-1.02x (0.83-0.97 in the AVX2 emulation), the same
    bits; float64 at 512 bits, whose k-major tile reads one cache line a k, 0.96-1.13x: left to ``_pack_a``
    (``_PACK_A_LINE``)."""
    tiles, mr, width = block.shape
    flat = block.reshape((1, tiles * mr, width))
    w = a.T  # unit stride along its rows
    L = _TRANSPOSE_BYTES // a.itemsize
    rows = m1 - m0
    mf = rows - rows % L if w.strides[1] == w.itemsize else 0
    kf = kc - kc % L
    for mb in range(0, mf, L):
        for kb in range(0, kf, L):
            _transpose_tile(w, k0 + kb, m0 + mb, flat, 0, mb, kb)
        for k in range(kf, kc):
            for i in range(L):
                flat[0, mb + i, k] = w[k0 + k, m0 + mb + i]
    for m in range(mf, rows):
        for k in range(kc):
            flat[0, m, k] = w[k0 + k, m0 + m]


# ``_row_sums`` adds in order: no reassociation, so that its sums are a column of ones' in the tile, bit for bit
_JIT_IN_ORDER = dict(_JIT, fastmath={"nsz", "arcp", "contract"})


@njit(nogil=True, **_JIT_IN_ORDER)
def _row_sums(a, m0, m1, k0, kk, sums, first):
    """``sums[m0:m1]`` (``first``: =, else +=) the sums of ``a[m0:m1, k0:k0+kk]``'s rows, one k after the other: the
    additions (and so the bits) of a column of ones packed as a last panel of ``b``, which the tile's FMAs add in
    the same order (``gemm_packed``'s ``sums``). Where ``a`` has unit stride along its columns (``da.T``), a k's
    values are adjacent and are added as vectors (through ``_span``, as ``_pack_a`` reads them)."""
    if first:
        for m in range(m0, m1):
            sums[m] = 0
    if m1 - m0 > 1 and a.strides[0] == a.itemsize and a.strides[1] >= 0:
        span = _span(a)
        ld = np.uint64(a.strides[1] // a.itemsize)
        n = np.uint64(m1 - m0)
        part = np.empty(m1 - m0, sums.dtype)  # of unit stride, so that the additions are vectors
        part[:] = sums[m0:m1]
        for k in range(k0, k0 + kk):
            source = np.uint64(k) * ld + np.uint64(m0)
            for i in range(n):
                part[i] += span[source + i]
        sums[m0:m1] = part
    else:
        for m in range(m0, m1):
            total = sums[m]
            for k in range(k0, k0 + kk):
                total += a[m, k]
            sums[m] = total


@njit(nogil=True, **_JIT)
def gemm_packed(a, packed, out, mc=GEMM_MC, kc=GEMM_KC, add=False, out2=None, out3=None, sums=None):
    """out[:] = a @ b for a large ``a`` [M, K], with ``packed = pack(b)`` ([K, N] in column panels): the micro-
    kernel's register tile over blocks of ``mc`` rows and ``kc`` of K (the first K block stores, the others add;
    with ``add`` the first adds too: ``out += a @ b``; each block's sums start from ``out``'s values, so K cut into
    parts at multiples of ``kc``, added part by part in order onto zeros, gives the same bits as one call).
    ``a`` may be C-ordered (unit stride along rows) or a transposed C array such as ``da.T`` (unit stride along
    columns: each k's ``mr`` values are adjacent, but consecutive k are a row of ``da`` apart, a cache line and often
    a page each; from ``_PACK_A_PANELS`` panels each ``mc`` x ``kc`` block of such an ``a`` is first copied into a
    packed block, which the tiles read as one C-ordered block (``_pack_a_rows``) or, where one k's ``mr`` values fill
    a cache line, as one stream (``_pack_a``): the weight gradients da^T [x | h] 0.55-0.89x the time with
    ``_pack_a`` on the Intel machine of the module's docstring, at 1-2 panels 1.03-1.48x; packing a C-ordered ``a`` too
    was mixed for dx = da W_ih (0.89-1.14x; 124 against 143 GFLOP/s at 12800 x 1024 x 256), so those are read in
    place); ``out`` needs unit stride along its rows. Deterministic: the order of the sums
    depends only on the shapes and ``kc`` (packed or not: the same FMAs in the same order).

    ``out2`` (and ``out3``, which needs ``out2``): results of their own for the panels after the first
    ``ceil(N1 / PW)`` (``N1`` = ``out``'s columns; then ``ceil(N2 / PW)`` for ``out2``), as ``cpu._pack_panels``
    packs matrices one after the other, each from a panel of its own: ``out = a @ b1``, ``out2 = a @ b2`` and
    ``out3 = a @ b3`` with ``a`` read (and packed) once (the weight gradients da^T x, da^T h and da^T 1, the bias
    gradients, which one result [da^T x | da^T h | da^T 1] would hand out as column slices to be copied). Each
    column's sum is the same as in a GEMM of its own.

    ``sums`` (1-D, ``M`` long; ``add``: added onto): the sums of ``a``'s rows, block by block beside the tiles
    (``_row_sums``), the same bits as a column of ones in ``b`` and ``out3`` (each an addition in k's order); for a
    transposed ``a`` it reads each block just before the block is packed, so the packing finds it in cache, where a
    panel of ones cost a tile of one vector for every tile of ``a`` (the weight gradients with their bias sums
    beside: 0.88-1.01x the time, float32 and float64, one thread, T*B = 400..12800, 4H = 512..4096; benchmarks/
    results/session-40.md)."""
    M, K = a.shape
    P, _, PW = packed.shape
    N1 = out.shape[1]
    if out2 is None:
        if out3 is not None:
            raise ValueError("gemm_packed: out3 needs out2")
        second = third = out
        N2 = N3 = 0
        P1 = P2 = P
        if packed.shape[1] != K or out.shape[0] != M or P * PW < N1 or (P - 1) * PW >= max(N1, 1):
            raise ValueError("gemm_packed: shapes of a, packed and out do not match")
    else:
        second = out2
        N2 = out2.shape[1]
        if out3 is None:
            third = out2
            N3 = 0
        else:
            third = out3
            N3 = out3.shape[1]
        P1 = (N1 + PW - 1) // PW
        P2 = P1 + (N2 + PW - 1) // PW
        if (packed.shape[1] != K or out.shape[0] != M or out2.shape[0] != M or third.shape[0] != M
                or P != P2 + (N3 + PW - 1) // PW):
            raise ValueError("gemm_packed: shapes of a, packed, out, out2 and out3 do not match")
    if sums is None:
        row_sums = np.empty(0, out.dtype)  # none (gemm_packed_any passes such an array: one compiled form)
    else:
        row_sums = sums
    has_sums = row_sums.shape[0] > 0
    if has_sums and row_sums.shape[0] != M:
        raise ValueError("gemm_packed: sums needs one value for each row of a")
    if has_sums and K == 0 and not add:
        row_sums[:] = 0
    N = N1 + N2 + N3
    if has_sums and K and N == 0:
        for k0 in range(0, K, kc):
            _row_sums(a, 0, M, k0, min(kc, K - k0), row_sums, not add and k0 == 0)
    if M == 0 or N == 0:
        return
    if K == 0:
        if add:
            return
        for i in range(M):
            for j in range(N1):
                out[i, j] = 0
            for j in range(N2):
                second[i, j] = 0
            for j in range(N3):
                third[i, j] = 0
        return
    if (a.strides[0] % a.itemsize or a.strides[1] % a.itemsize or out.strides[0] % out.itemsize
            or second.strides[0] % second.itemsize or third.strides[0] % third.itemsize):
        raise ValueError("gemm_packed: a's and out's strides need to be whole elements")
    a_columns = not (K == 1 or a.strides[1] == a.itemsize)
    if a_columns and M > 1 and a.strides[0] != a.itemsize:
        raise ValueError("gemm_packed: a needs unit stride along its rows or along its columns")
    if ((N1 > 1 and out.strides[1] != out.itemsize) or (N2 > 1 and second.strides[1] != second.itemsize)
            or (N3 > 1 and third.strides[1] != third.itemsize)):
        raise ValueError("gemm_packed: out needs unit stride along its rows")
    wide = PW == _NR_512 * (64 // a.itemsize)
    if not wide and PW != _NR_256 * (32 // a.itemsize):
        raise ValueError("gemm_packed: packed was not made by pack() for this dtype")
    mr = _MR_512 if wide else _MR_256
    lanes = PW // (_NR_512 if wide else _NR_256)
    scratch = np.empty((mr, PW), out.dtype)
    packs = a_columns and P >= _PACK_A_PANELS and a.strides[1] > 0  # (k backwards in memory: read in place)
    # the block's tiles row-major (_pack_a_rows) where a tile's mr values of one k are less than a cache line
    by_rows = mr * a.itemsize < _PACK_A_LINE
    tiles = (min(mc, M) + mr - 1) // mr if packs else 0
    block = np.empty((tiles, mr, min(kc, K)) if by_rows else (tiles, min(kc, K), mr), a.dtype)
    for m0 in range(0, M, mc):
        m1 = min(M, m0 + mc)
        for k0 in range(0, K, kc):
            kk = min(kc, K - k0)
            accumulate = add or k0 > 0
            if has_sums:
                _row_sums(a, m0, m1, k0, kk, row_sums, not accumulate)
            if packs and by_rows:
                _pack_a_rows(a, m0, m1, k0, kk, block)
            elif packs:
                _pack_a(a, m0, m1, k0, kk, block)
            for p in range(P):
                c = out if p < P1 else second if p < P2 else third  # the panel's result, its columns from n0
                n0 = (p if p < P1 else p - P1 if p < P2 else p - P2) * PW
                cols = min(PW, c.shape[1] - n0)
                vectors = (cols + lanes - 1) // lanes  # the last panel's: only those of its real columns
                for r0 in range(m0, m1, mr):
                    rows = min(mr, m1 - r0)
                    part = vectors * lanes < PW and rows == mr  # the partial panel's tile
                    if cols == PW or (part and cols == vectors * lanes):  # in place (out by name: _tiles)
                        if packs:  # the tile's rows from the packed block
                            _block_tile(block, not by_rows, (r0 - m0) // mr, rows, k0, kk, packed, p, c, r0, n0,
                                        accumulate, wide, part, vectors)
                        else:
                            _block_tile(a, a_columns, r0, rows, k0, kk, packed, p, c, r0, n0, accumulate, wide,
                                        part, vectors)
                        continue
                    # through the scratch tile
                    if accumulate:
                        for i in range(rows):
                            for j in range(cols):
                                scratch[i, j] = c[r0 + i, n0 + j]
                    if packs:
                        _block_tile(block, not by_rows, (r0 - m0) // mr, rows, k0, kk, packed, p, scratch, 0, 0,
                                    accumulate, wide, part, vectors)
                    else:
                        _block_tile(a, a_columns, r0, rows, k0, kk, packed, p, scratch, 0, 0, accumulate, wide, part,
                                    vectors)
                    for i in range(rows):
                        for j in range(cols):
                            c[r0 + i, n0 + j] = scratch[i, j]


def gemm_packed_any(a, packed, out, mc=GEMM_MC, kc=GEMM_KC, add=False, out2=None, out3=None, sums=None):
    """``gemm_packed(a, packed, out, mc, kc, add, out2, out3, sums)`` called from Python through one compiled form,
    whatever the layouts of ``a`` and the results: Numba's layout "A" (strides read at run time, as the tiles read
    them anyway), compiled or loaded from Numba's cache once per dtype, then its entry point called directly, as Numba's
    own dispatcher calls a form it converts an argument to. Through the dispatcher a C-ordered ``a`` (dx, a
    projection) and a transposed one (the weight gradients, ``da.T``) were two compilations of about 3 s each in a
    first training (column slices of ``out`` would add more; benchmarks/RESULTS.md "Session 31"). The same code runs
    for every layout, so the same bits. ``out2`` and ``out3`` left out are passed as ``out[:, :0]`` (no columns: no
    panels) and ``sums`` as an array of no values, so that there is one form with and without them."""
    out2 = out[:, :0] if out2 is None else out2
    out3 = out[:, :0] if out3 is None else out3
    sums = np.empty(0, out.dtype) if sums is None else sums
    # The key: what Numba's types of the arrays depend on, read off them (numba.typeof of three arrays took 20 us)
    fa, fp = a.flags, packed.flags
    key = (a.dtype, a.ndim, fa.writeable, fa.aligned, packed.dtype, packed.ndim, fp.writeable, fp.aligned,
           fp.c_contiguous, fp.f_contiguous) + tuple(
        v for o in (out, out2, out3, sums) for v in (o.dtype, o.ndim, o.flags.writeable, o.flags.aligned))
    entry = _ANY_LAYOUT.get(key)
    if entry is None:
        if a.ndim != 2 or out.ndim != 2 or out2.ndim != 2 or out3.ndim != 2 or sums.ndim != 1:
            raise ValueError("gemm_packed_any: a, out, out2 and out3 must be 2-D, sums 1-D")
        signature = (numba.typeof(a).copy(layout="A"), numba.typeof(packed), numba.typeof(out).copy(layout="A"),
                     types.intp, types.intp, types.boolean, numba.typeof(out2).copy(layout="A"),
                     numba.typeof(out3).copy(layout="A"), numba.typeof(sums).copy(layout="A"))
        entry = _ANY_LAYOUT[key] = gemm_packed.compile(signature)
    entry(a, packed, out, mc, kc, add, out2, out3, sums)


# gemm_packed_any's entry points, by the dtypes, dimensions and flags of its arrays
_ANY_LAYOUT = {}
