"""Numba CUDA forward and backward through time for LSTM, GRU and the tanh/ReLU RNN.

Same functions, signatures and results as ``reference.py`` (the spec). Arrays are CuPy arrays (NumPy
arrays are copied to the device); under Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) NumPy arrays
stand in for CuPy arrays and ``np.matmul`` for cuBLAS, so the same code runs on a machine without a GPU.

Where the work goes (G = 4 LSTM, 3 GRU, 1 RNN; weights in PyTorch's layout, gates stacked in its order):

- One cuBLAS GEMM before the recurrence: the input projection of every step, ``xw = x W_ih^T + b_ih``.
- Per time step, the recurrent GEMM ``h_{t-1} W_hh^T`` and the whole elementwise cell update (bias,
  activations, c/h update, the length mask, the stores the backward needs). Three ways to run the recurrence:

  * per-step kernel (``_step_forward_kernel``): one launch per step, GEMM and update fused; each block owns a
    tile of ``STEP_TILE_UNITS`` hidden units x ``STEP_TILE_BATCH`` sequences, stages ``h_{t-1}`` and the G gate
    rows of ``W_hh`` for its units through shared memory ``STEP_TILE_K`` columns at a time, and finishes
    those units' update in the same launch, so the gate pre-activations never go through global memory.
  * cuBLAS per step ("gemm", ``_gemm_forward_kernel``): ``xp.matmul`` into a ``[B, G*H]`` buffer, then one
    launch of the elementwise update; two launches a step, but cuBLAS's GEMM.
  * persistent kernel (``_persistent_forward_kernel``): ONE cooperative launch for all T steps; each block
    loads the G rows of ``W_hh`` of its hidden units into shared memory once and keeps them there, the
    threads of a block split the dot products over k and reduce them in shared memory, and a grid-wide
    barrier (``cuda.cg.this_grid().sync()``) separates the steps. No per-step launch and no re-read of
    ``W_hh`` from global memory: this is what pays at small batch, where a step is latency-bound.

- Backward, per step: the recurrent GEMM ``dh = dgates_{t+1} W_hh`` and the elementwise backward of the
  units (dgates of step t, the carried dc), either fused in one step kernel (tiles through shared memory,
  ``_step_backward_kernel``) or as cuBLAS then an elementwise launch (``_gemm_backward_kernel``). After the
  loop, cuBLAS GEMMs over all steps at once give dx, dW_ih, dW_hh and the bias gradients. The backward has
  no persistent variant yet (the caches are the same whichever path the forward took).

Which path runs (``choose_path`` and ``choose_backward``; ``FORCE_PATH`` = "step", "gemm" or "persistent"
and ``FORCE_BACKWARD`` = "step" or "gemm" force one). Forward: the persistent kernel when
``B <= PERSISTENT_MAX_BATCH`` (32) and some tile of ``u`` hidden units per block has (a) its ``G * u * H``
weights plus the reduction buffer within ``PERSISTENT_SHARED_BYTES`` (48 KiB, the per-block limit without
the opt-in attribute), (b) at most 1024 threads per block, and (c) ``ceil(H / u)`` blocks no more than the
device can hold co-resident for a cooperative launch (``max_cooperative_grid_blocks``); the smallest such
``u`` is taken (most blocks, so the most SMs share the work). Otherwise "gemm" from ``GEMM_MIN_MACS``
(2^25) multiply-adds per gate in a step (B * H * H), else the step kernel. Backward: "gemm" from
``GEMM_MIN_MACS`` and at ``B <= 16`` from ``H >= 512``, else the step kernel. Measured on an NVIDIA H200
(benchmarks/RESULTS.md, "GPU", T = 100, float32, I = H, every path forced in turn): the persistent forward
took 0.85-1.7 ms at B = 1 for H = 256..1024 (cuDNN 1.3-1.9), growing with B (it loops over the sequences:
14.6 ms at B = 16, H = 1024, where cuBLAS per step took 11.5); cuBLAS per step beat the step kernel 1.2-7x
from B * H * H = 2^26 (B = 256, H = 512 and 1024, B = 64, H = 1024) and lost 1.3-1.8x below 2^25 at B = 64
and 256 (at B = 1..16, where the persistent kernel runs, the step kernel was slower still at H = 1024); the step
backward, whose blocks each loop over all G * H columns, took 46-94 ms at B = 1, H = 512..1024 against
11-28 for cuBLAS per step. The per-step paths cost at least ~0.1 ms a step whatever the shape (cuBLAS per
step: 10-18 ms for 100 steps from B = 1 to 256): the host's launches, which the persistent kernel avoids.
Under the simulator a cooperative grid holds one block, so the rule picks the persistent kernel only when
one block covers all H units.

Caches hold every step's h (and c, and the gate activations for LSTM/GRU) in ``[T+1, B, H]`` buffers;
inference (``training=False``) keeps only two state slots and ping-pongs between them (slot ``t % n_slots``
in both cases).
"""

import functools
import math

import numba
import numpy as np
from numba import config as _numba_config
from numba import cuda

from .arguments import check_backward, check_forward, require_cache

SIMULATOR = bool(_numba_config.ENABLE_CUDASIM)

try:  # CuPy owns the arrays and the stream on a real GPU; the simulator works on NumPy arrays
    if SIMULATOR:
        raise ImportError
    import cupy
    xp = cupy
except ImportError:
    cupy = None
    xp = np

#: None picks by shape (``choose_path``); "step", "gemm" or "persistent" forces the forward path (tests, benchmarks).
FORCE_PATH = None
#: None picks by shape (``choose_backward``); "step" or "gemm" forces the backward's (tests, benchmarks).
FORCE_BACKWARD = None

# Per-step kernel tile: hidden units x sequences per block, and the k-slice staged in shared memory.
STEP_TILE_UNITS = 32
STEP_TILE_BATCH = 8
STEP_TILE_K = 32

# Persistent kernel: largest batch, threads splitting each dot product, shared memory per block for W_hh.
PERSISTENT_MAX_BATCH = 32
PERSISTENT_KSPLIT = 32
PERSISTENT_SHARED_BYTES = 48 * 1024
MAX_THREADS_PER_BLOCK = 1024

GATES = {"lstm": 4, "gru": 3, "rnn": 1}
# Gate activations kept for the backward, per hidden unit: LSTM i, f, g, o; GRU r, z, n and h W_hn + b_hn.
# The RNN needs none: its activation is the stored h.
SAVED_ACTS = {"lstm": 4, "gru": 4, "rnn": 0}


# ------------------------------------------------------------------------------------------- cell math
# One (sequence b, hidden unit j) at a time, shared by the per-step and the persistent kernels. Built per
# dtype so that float32 kernels use float32 constants and never promote to float64 arithmetic.

@functools.lru_cache(maxsize=None)
def _cell_functions(cell, dtype):
    """(forward_unit, backward_unit) device functions of ``cell`` for ``dtype``."""
    ONE, ZERO = dtype.type(1), dtype.type(0)

    @cuda.jit(device=True)
    def sigmoid(a):
        if a >= ZERO:  # never exp of a large positive number (inf on a GPU, OverflowError in the simulator)
            return ONE / (ONE + math.exp(-a))
        e = math.exp(a)
        return e / (ONE + e)

    # forward_unit(rec, b, j, t, valid, ...): ``rec[g]`` is row b of h_{t-1} W_hh^T at column g*H + j.
    # It writes y[t, b, j], the next state slot and (training) the activations; ``valid`` is t < length[b].

    @cuda.jit(device=True)
    def lstm_forward_unit(rec, b, j, t, valid, xw, b_hh, h_states, c_states, acts, y,
                          slot_prev, slot_next, training, relu):
        H = y.shape[2]
        i = sigmoid(xw[t, b, j] + b_hh[j] + rec[0])
        f = sigmoid(xw[t, b, H + j] + b_hh[H + j] + rec[1])
        g = math.tanh(xw[t, b, 2 * H + j] + b_hh[2 * H + j] + rec[2])
        o = sigmoid(xw[t, b, 3 * H + j] + b_hh[3 * H + j] + rec[3])
        c_prev = c_states[slot_prev, b, j]
        c_new = f * c_prev + i * g
        h_new = o * math.tanh(c_new)
        if valid:
            y[t, b, j] = h_new
            h_states[slot_next, b, j] = h_new
            c_states[slot_next, b, j] = c_new
        else:  # past the sequence's length: output zero, state carried unchanged
            y[t, b, j] = ZERO
            h_states[slot_next, b, j] = h_states[slot_prev, b, j]
            c_states[slot_next, b, j] = c_prev
        if training:
            acts[t, b, j] = i
            acts[t, b, H + j] = f
            acts[t, b, 2 * H + j] = g
            acts[t, b, 3 * H + j] = o

    @cuda.jit(device=True)
    def gru_forward_unit(rec, b, j, t, valid, xw, b_hh, h_states, c_states, acts, y,
                         slot_prev, slot_next, training, relu):
        H = y.shape[2]
        gh_n = rec[2] + b_hh[2 * H + j]
        r = sigmoid(xw[t, b, j] + rec[0] + b_hh[j])
        z = sigmoid(xw[t, b, H + j] + rec[1] + b_hh[H + j])
        n = math.tanh(xw[t, b, 2 * H + j] + r * gh_n)
        h_prev = h_states[slot_prev, b, j]
        h_new = (ONE - z) * n + z * h_prev
        y[t, b, j] = h_new if valid else ZERO
        h_states[slot_next, b, j] = h_new if valid else h_prev
        if training:
            acts[t, b, j] = r
            acts[t, b, H + j] = z
            acts[t, b, 2 * H + j] = n
            acts[t, b, 3 * H + j] = gh_n

    @cuda.jit(device=True)
    def rnn_forward_unit(rec, b, j, t, valid, xw, b_hh, h_states, c_states, acts, y,
                         slot_prev, slot_next, training, relu):
        a = xw[t, b, j] + b_hh[j] + rec[0]
        if relu:
            h_new = a if a > ZERO else ZERO
        else:
            h_new = math.tanh(a)
        y[t, b, j] = h_new if valid else ZERO
        h_states[slot_next, b, j] = h_new if valid else h_states[slot_prev, b, j]

    # backward_unit(b, j, t, valid, dh_state, ...): ``dh_state`` is dL/dh of the state after step t (from
    # the later steps and dh_n). It writes this unit's dgates of step t (``dgates_h``: the recurrent-side
    # ones, GRU only), the part of dL/dh_{t-1} that does not go through W_hh (``carry``) and LSTM's dc.

    @cuda.jit(device=True)
    def lstm_backward_unit(b, j, t, valid, dh_state, dy, h_states, c_states, acts, dgates, dgates_h,
                           carry, dc, relu):
        H = dy.shape[2]
        m = ONE if valid else ZERO
        dh_new = m * (dy[t, b, j] + dh_state)
        dc_state = dc[b, j]
        i, f, g, o = acts[t, b, j], acts[t, b, H + j], acts[t, b, 2 * H + j], acts[t, b, 3 * H + j]
        tanh_c = math.tanh(c_states[t + 1, b, j])  # only used where valid, where it is this step's c
        dc_new = m * dc_state + dh_new * o * (ONE - tanh_c * tanh_c)
        dgates[t, b, j] = dc_new * g * i * (ONE - i)
        dgates[t, b, H + j] = dc_new * c_states[t, b, j] * f * (ONE - f)
        dgates[t, b, 2 * H + j] = dc_new * i * (ONE - g * g)
        dgates[t, b, 3 * H + j] = dh_new * tanh_c * o * (ONE - o)
        carry[b, j] = (ONE - m) * dh_state
        dc[b, j] = dc_new * f + (ONE - m) * dc_state

    @cuda.jit(device=True)
    def gru_backward_unit(b, j, t, valid, dh_state, dy, h_states, c_states, acts, dgates, dgates_h,
                          carry, dc, relu):
        H = dy.shape[2]
        m = ONE if valid else ZERO
        dh_new = m * (dy[t, b, j] + dh_state)
        r, z, n, gh_n = acts[t, b, j], acts[t, b, H + j], acts[t, b, 2 * H + j], acts[t, b, 3 * H + j]
        da_n = dh_new * (ONE - z) * (ONE - n * n)
        da_z = dh_new * (h_states[t, b, j] - n) * z * (ONE - z)
        da_r = da_n * gh_n * r * (ONE - r)
        dgates[t, b, j] = da_r
        dgates[t, b, H + j] = da_z
        dgates[t, b, 2 * H + j] = da_n
        dgates_h[t, b, j] = da_r
        dgates_h[t, b, H + j] = da_z
        dgates_h[t, b, 2 * H + j] = da_n * r  # r gates h W_hn + b_hn, so W_hh's n rows see da_n * r
        carry[b, j] = dh_new * z + (ONE - m) * dh_state

    @cuda.jit(device=True)
    def rnn_backward_unit(b, j, t, valid, dh_state, dy, h_states, c_states, acts, dgates, dgates_h,
                          carry, dc, relu):
        m = ONE if valid else ZERO
        dh_new = m * (dy[t, b, j] + dh_state)
        h_new = h_states[t + 1, b, j]  # this step's activation where valid (dh_new is 0 elsewhere)
        if relu:
            dgates[t, b, j] = dh_new if h_new > ZERO else ZERO
        else:
            dgates[t, b, j] = dh_new * (ONE - h_new * h_new)
        carry[b, j] = (ONE - m) * dh_state

    return {
        "lstm": (lstm_forward_unit, lstm_backward_unit),
        "gru": (gru_forward_unit, gru_backward_unit),
        "rnn": (rnn_forward_unit, rnn_backward_unit),
    }[cell]


# ------------------------------------------------------------------------------------- forward kernels

@functools.lru_cache(maxsize=None)
def _step_forward_kernel(cell, dtype, tile_units, tile_batch, tile_k):
    """One time step: block (x: unit, y: sequence) -> recurrent GEMM tile + cell update, one launch."""
    G, DT = GATES[cell], numba.from_dtype(dtype)
    ZERO = dtype.type(0)
    forward_unit, _ = _cell_functions(cell, dtype)
    n_threads = tile_units * tile_batch
    # +1 column: the compute loop reads w_tile[g, tx, kk] across a warp, a stride that would otherwise put
    # every thread of the warp on the same shared-memory bank. (A constant here: shared shapes must be.)
    w_tile_cols = tile_k + 1

    @cuda.jit
    def kernel(xw, b_hh, w_hh, h_states, c_states, acts, y, lengths, t, training, relu):
        B, H = y.shape[1], y.shape[2]
        n_slots = h_states.shape[0]
        slot_prev, slot_next = t % n_slots, (t + 1) % n_slots
        tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
        u0, b0 = cuda.blockIdx.x * tile_units, cuda.blockIdx.y * tile_batch
        j, b = u0 + tx, b0 + ty
        thread = ty * tile_units + tx
        h_tile = cuda.shared.array((tile_batch, tile_k), DT)
        w_tile = cuda.shared.array((G, tile_units, w_tile_cols), DT)
        rec = cuda.local.array(G, DT)
        for g in range(G):
            rec[g] = ZERO
        for k0 in range(0, H, tile_k):
            # cooperative loads, consecutive threads on consecutive k (coalesced); zeros past the edges
            for e in range(thread, tile_batch * tile_k, n_threads):
                bb, kk = e // tile_k, e % tile_k
                inside = b0 + bb < B and k0 + kk < H
                h_tile[bb, kk] = h_states[slot_prev, b0 + bb, k0 + kk] if inside else ZERO
            for e in range(thread, G * tile_units * tile_k, n_threads):
                row, kk = e // tile_k, e % tile_k
                g, uu = row // tile_units, row % tile_units
                inside = u0 + uu < H and k0 + kk < H
                w_tile[g, uu, kk] = w_hh[g * H + u0 + uu, k0 + kk] if inside else ZERO
            cuda.syncthreads()
            for kk in range(tile_k):
                h = h_tile[ty, kk]
                for g in range(G):
                    rec[g] += h * w_tile[g, tx, kk]
            cuda.syncthreads()  # before the next k-slice overwrites the tiles
        if j < H and b < B:
            forward_unit(rec, b, j, t, t < lengths[b], xw, b_hh, h_states, c_states, acts, y,
                         slot_prev, slot_next, training, relu)

    return kernel


@functools.lru_cache(maxsize=None)
def _persistent_forward_kernel(cell, dtype, tile_units, ksplit):
    """All T steps in one cooperative launch; block (x: k-lane, y: unit) keeps its W_hh rows on chip.

    Dynamic shared memory: ``G * tile_units * H`` elements, this block's rows of W_hh for the whole run.
    """
    G, DT = GATES[cell], numba.from_dtype(dtype)
    ZERO = dtype.type(0)
    forward_unit, _ = _cell_functions(cell, dtype)
    n_threads = tile_units * ksplit

    @cuda.jit
    def kernel(xw, b_hh, w_hh, h_states, c_states, acts, y, lengths, training, relu):
        T, B, H = y.shape[0], y.shape[1], y.shape[2]
        n_slots = h_states.shape[0]
        lane, u = cuda.threadIdx.x, cuda.threadIdx.y
        u0 = cuda.blockIdx.x * tile_units
        j = u0 + u
        thread = u * ksplit + lane
        w_block = cuda.shared.array(0, DT)  # [(g * tile_units + u) * H + k]
        partial = cuda.shared.array((tile_units, G, ksplit), DT)
        rec = cuda.local.array(G, DT)
        grid = cuda.cg.this_grid()

        for e in range(thread, G * tile_units * H, n_threads):
            row, k = e // H, e % H
            g, uu = row // tile_units, row % tile_units
            w_block[e] = w_hh[g * H + u0 + uu, k] if u0 + uu < H else ZERO
        cuda.syncthreads()

        for t in range(T):
            slot_prev, slot_next = t % n_slots, (t + 1) % n_slots
            for b in range(B):
                for g in range(G):
                    rec[g] = ZERO
                for k in range(lane, H, ksplit):  # lanes on consecutive k: coalesced h, no bank conflicts
                    h = h_states[slot_prev, b, k]
                    for g in range(G):
                        rec[g] += h * w_block[(g * tile_units + u) * H + k]
                for g in range(G):
                    partial[u, g, lane] = rec[g]
                cuda.syncthreads()
                if lane == 0 and j < H:
                    for g in range(G):
                        total = ZERO
                        for other in range(ksplit):
                            total += partial[u, g, other]
                        rec[g] = total
                    forward_unit(rec, b, j, t, t < lengths[b], xw, b_hh, h_states, c_states, acts, y,
                                 slot_prev, slot_next, training, relu)
                cuda.syncthreads()  # ``partial`` is reused by the next sequence
            # every block must see all of h_t before any block reads it as h_{t-1} of the next step
            grid.sync()

    return kernel


# ------------------------------------------------------------------------------------ backward kernel

@functools.lru_cache(maxsize=None)
def _step_backward_kernel(cell, dtype, tile_units, tile_batch, tile_k):
    """One step back: block (x: unit, y: sequence) -> dh = dgates_{t+1} W_hh tile + cell backward."""
    DT = numba.from_dtype(dtype)
    ZERO = dtype.type(0)
    _, backward_unit = _cell_functions(cell, dtype)
    separate_recurrent = cell == "gru"  # the GRU's recurrent-side dgates differ from the input-side ones
    n_threads = tile_units * tile_batch

    @cuda.jit
    def kernel(dy, w_hh, h_states, c_states, acts, lengths, dgates, dgates_h, carry, dc, t, relu):
        T, B, H = dy.shape[0], dy.shape[1], dy.shape[2]
        K = w_hh.shape[0]  # G * H
        tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
        u0, b0 = cuda.blockIdx.x * tile_units, cuda.blockIdx.y * tile_batch
        j, b = u0 + tx, b0 + ty
        thread = ty * tile_units + tx
        d_tile = cuda.shared.array((tile_batch, tile_k), DT)
        w_tile = cuda.shared.array((tile_k, tile_units), DT)
        dh = ZERO
        if t + 1 < T:  # the last step has no later step: its dh is dh_n, already in ``carry``
            for k0 in range(0, K, tile_k):
                for e in range(thread, tile_batch * tile_k, n_threads):
                    bb, kk = e // tile_k, e % tile_k
                    d = ZERO
                    if b0 + bb < B and k0 + kk < K:
                        if separate_recurrent:
                            d = dgates_h[t + 1, b0 + bb, k0 + kk]
                        else:
                            d = dgates[t + 1, b0 + bb, k0 + kk]
                    d_tile[bb, kk] = d
                for e in range(thread, tile_k * tile_units, n_threads):  # consecutive threads on j
                    kk, uu = e // tile_units, e % tile_units
                    inside = k0 + kk < K and u0 + uu < H
                    w_tile[kk, uu] = w_hh[k0 + kk, u0 + uu] if inside else ZERO
                cuda.syncthreads()
                for kk in range(tile_k):
                    dh += d_tile[ty, kk] * w_tile[kk, tx]
                cuda.syncthreads()
        if j < H and b < B:
            # only this thread reads and writes carry[b, j] and dc[b, j], so updating them in place is safe
            backward_unit(b, j, t, t < lengths[b], dh + carry[b, j], dy, h_states, c_states, acts,
                          dgates, dgates_h, carry, dc, relu)

    return kernel


# ------------------------------------------------------------------------ cuBLAS-per-step ("gemm") kernels
# The recurrent GEMM of each step through cuBLAS (``xp.matmul`` into a [B, G*H] buffer), then one launch of the
# elementwise cell update (forward) or cell backward over all (sequence, unit) pairs. Two launches a step instead of
# one, but cuBLAS's tiles instead of the step kernels' shared-memory ones: what pays at large batch (the forward)
# and at any batch for the backward, whose step kernel has one block per 32 units, each looping over all G*H
# columns (benchmarks/RESULTS.md, "GPU").

GEMM_THREADS = 128  # threads per block of the elementwise kernels: consecutive units, one sequence per grid row


@functools.lru_cache(maxsize=None)
def _gemm_forward_kernel(cell, dtype):
    """One step's cell update from ``rec`` = h_{t-1} W_hh^T [B, G*H]; grid (units / GEMM_THREADS, B)."""
    G, DT = GATES[cell], numba.from_dtype(dtype)
    forward_unit, _ = _cell_functions(cell, dtype)

    @cuda.jit
    def kernel(rec_all, xw, b_hh, w_hh, h_states, c_states, acts, y, lengths, t, training, relu):  # w_hh unused
        B, H = y.shape[1], y.shape[2]
        n_slots = h_states.shape[0]
        j = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
        b = cuda.blockIdx.y
        if j < H and b < B:
            rec = cuda.local.array(G, DT)
            for g in range(G):
                rec[g] = rec_all[b, g * H + j]
            forward_unit(rec, b, j, t, t < lengths[b], xw, b_hh, h_states, c_states, acts, y,
                         t % n_slots, (t + 1) % n_slots, training, relu)

    return kernel


@functools.lru_cache(maxsize=None)
def _gemm_backward_kernel(cell, dtype):
    """One step back from ``dh_rec`` = dgates_{t+1} W_hh [B, H] (zeros at the last step); grid as the forward's."""
    _, backward_unit = _cell_functions(cell, dtype)

    @cuda.jit
    def kernel(dh_rec, dy, h_states, c_states, acts, lengths, dgates, dgates_h, carry, dc, t, relu):
        B, H = dy.shape[1], dy.shape[2]
        j = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
        b = cuda.blockIdx.y
        if j < H and b < B:
            backward_unit(b, j, t, t < lengths[b], dh_rec[b, j] + carry[b, j], dy, h_states, c_states, acts,
                          dgates, dgates_h, carry, dc, relu)

    return kernel


# ------------------------------------------------------------------------------------- launch helpers

def _cdiv(a, b):
    return -(-a // b)


@functools.lru_cache(maxsize=None)
def _external_stream(ptr):
    return cuda.external_stream(ptr)


def _stream():
    """CuPy's current stream, so kernels order with the cuBLAS calls around them; 0 in the simulator."""
    if cupy is None:
        return 0
    return _external_stream(cupy.cuda.get_current_stream().ptr)


def _step_tiles(B, H, K):
    return min(STEP_TILE_UNITS, H), min(STEP_TILE_BATCH, B), min(STEP_TILE_K, K)


def _kernel_args(args):
    """Arguments for a Numba launch: CuPy arrays as Numba device views, imported without a sync.

    Numba would otherwise synchronize on the stream each CuPy array names at every launch; no sync is
    needed because every kernel runs on CuPy's current stream (``_stream``), after the work that made
    its inputs. Viewing the arrays once per call also keeps the per-step launches cheap.
    """
    if cupy is None:
        return args
    return tuple(cuda.as_cuda_array(a, sync=False) if isinstance(a, cupy.ndarray) else a for a in args)


def _cooperative_capacity(kernel, block, shared_bytes):
    """How many blocks of the specialized ``kernel`` fit co-resident (the cooperative launch limit)."""
    if SIMULATOR:
        return 1  # the simulator runs blocks one after another: a grid barrier only works with one block
    compiled = next(iter(kernel.overloads.values()))
    return compiled.max_cooperative_grid_blocks(block, shared_bytes)


def _persistent_config(cell, dtype, B, H, args, forced=False):
    """(kernel, grid, block, dynamic shared bytes) for the persistent path, or None where it does not fit.

    ``args`` are the launch arguments: the kernel is compiled (specialized) for them so that the device
    can be asked how many of its blocks fit co-resident.
    """
    if B > PERSISTENT_MAX_BATCH and not forced:
        return None
    ksplit = min(PERSISTENT_KSPLIT, 1 << (H - 1).bit_length())
    candidates = sorted({1 << p for p in range(H.bit_length())} | {H})
    for tile_units in candidates:
        shared_bytes = GATES[cell] * tile_units * H * dtype.itemsize
        partial_bytes = tile_units * GATES[cell] * ksplit * dtype.itemsize  # the static reduction buffer
        if (tile_units * ksplit > MAX_THREADS_PER_BLOCK
                or shared_bytes + partial_bytes > PERSISTENT_SHARED_BYTES):
            break  # larger tiles only need more
        kernel = _persistent_forward_kernel(cell, dtype, tile_units, ksplit).specialize(*args)
        block, n_blocks = (ksplit, tile_units), _cdiv(H, tile_units)
        if n_blocks <= _cooperative_capacity(kernel, block, shared_bytes):
            return kernel, n_blocks, block, shared_bytes
    return None


def choose_path(cell, dtype, B, H, args):
    """("persistent", launch config), ("gemm", None) or ("step", None) for this shape and device (rule: module
    docstring).

    ``FORCE_PATH`` overrides the rule; forcing "persistent" where no launch fits is an error.
    """
    if FORCE_PATH not in (None, "step", "gemm", "persistent"):
        raise ValueError(f"FORCE_PATH must be None, 'step', 'gemm' or 'persistent', got {FORCE_PATH!r}")
    if FORCE_PATH in ("step", "gemm"):
        return FORCE_PATH, None
    config = _persistent_config(cell, dtype, B, H, args, forced=FORCE_PATH == "persistent")
    if config is not None:
        return "persistent", config
    if FORCE_PATH == "persistent":
        raise ValueError(f"the persistent kernel cannot run {cell} with B={B}, H={H} on this device: "
                         "its W_hh slices do not fit in shared memory or its blocks are not co-resident")
    return ("gemm" if B * H * H >= GEMM_MIN_MACS else "step"), None


#: From this many multiply-adds per gate in a step's recurrent GEMM (B * H * H) the forward (where the persistent
#: kernel does not run) and the backward run cuBLAS per step ("gemm"); below, the step kernels (module docstring).
GEMM_MIN_MACS = 1 << 25
#: The backward also runs cuBLAS per step at up to this batch from ``GEMM_MIN_H`` hidden units.
GEMM_SMALL_BATCH = 16
GEMM_MIN_H = 512


def choose_backward(cell, dtype, B, H):
    """"step" or "gemm": the backward's per-step path (rule: module docstring; ``FORCE_BACKWARD`` overrides)."""
    if FORCE_BACKWARD not in (None, "step", "gemm"):
        raise ValueError(f"FORCE_BACKWARD must be None, 'step' or 'gemm', got {FORCE_BACKWARD!r}")
    if FORCE_BACKWARD is not None:
        return FORCE_BACKWARD
    return "gemm" if B * H * H >= GEMM_MIN_MACS or (B <= GEMM_SMALL_BATCH and H >= GEMM_MIN_H) else "step"


def _as_device(a, dtype):
    return xp.ascontiguousarray(xp.asarray(a), dtype=dtype)


def _lengths_array(lengths, T, B):
    if lengths is None:
        return xp.full(B, T, dtype=np.int32)
    return xp.ascontiguousarray(xp.asarray(lengths), dtype=np.int32)


def _require_device_arrays():
    if not SIMULATOR and cupy is None:
        raise RuntimeError("lstmzoo's CUDA kernels need CuPy: install the extra with pip install 'lstmzoo[cuda]'")


def _forward(cell, x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, training, nonlinearity):
    _require_device_arrays()
    lengths = check_forward(GATES[cell], x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths)
    dtype = np.dtype(x.dtype)
    x, h0, w_ih, w_hh, b_ih, b_hh = (_as_device(a, dtype) for a in (x, h0, w_ih, w_hh, b_ih, b_hh))
    T, B, I = x.shape
    H = h0.shape[1]
    GH = GATES[cell] * H
    relu = int(nonlinearity == "relu")
    lens = _lengths_array(lengths, T, B)
    dummy = xp.zeros((1, 1, 1), dtype=dtype)  # stands in for the arrays a cell does not use

    xw = xp.matmul(x.reshape(T * B, I), w_ih.T).reshape(T, B, GH)
    xw += b_ih
    n_slots = T + 1 if training else 2
    h_states = xp.empty((n_slots, B, H), dtype=dtype)
    h_states[0] = h0
    c_states = dummy
    if cell == "lstm":
        c_states = xp.empty((n_slots, B, H), dtype=dtype)
        c_states[0] = _as_device(c0, dtype)
    acts = xp.empty((T, B, SAVED_ACTS[cell] * H), dtype=dtype) if training and SAVED_ACTS[cell] else dummy
    y = xp.empty((T, B, H), dtype=dtype)

    args = _kernel_args((xw, b_hh, w_hh, h_states, c_states, acts, y, lens, int(training), relu))
    stream = _stream()
    path, config = choose_path(cell, dtype, B, H, args)
    if path == "persistent":
        kernel, grid, block, shared_bytes = config
        kernel[grid, block, stream, shared_bytes](*args)
    elif path == "gemm":
        rec = xp.empty((B, GH), dtype=dtype)
        launch = _gemm_forward_kernel(cell, dtype)[(_cdiv(H, GEMM_THREADS), B), GEMM_THREADS, stream]
        rec_arg, before_t, after_t = _kernel_args((rec,)), args[:8], args[8:]
        w_hh_t = w_hh.T
        for t in range(T):
            xp.matmul(h_states[t % n_slots], w_hh_t, out=rec)
            launch(*rec_arg, *before_t, t, *after_t)
    else:
        tiles = _step_tiles(B, H, H)
        kernel = _step_forward_kernel(cell, dtype, *tiles)
        launch = kernel[(_cdiv(H, tiles[0]), _cdiv(B, tiles[1])), tiles[:2], stream]
        before_t, after_t = args[:8], args[8:]  # the step kernel takes t after the arrays
        for t in range(T):
            launch(*before_t, t, *after_t)

    last = T % n_slots
    h_n = h_states[last].copy()
    c_n = c_states[last].copy() if cell == "lstm" else None
    cache = (cell, x, lens, w_ih, w_hh, h_states, c_states, acts, relu) if training else None
    return y, h_n, c_n, cache


def _backward(dy, dh_n, dc_n, cache):
    cell, x, lens, w_ih, w_hh, h_states, c_states, acts, relu = require_cache(cache)
    dtype = np.dtype(x.dtype)
    T, B, I = x.shape
    H = h_states.shape[2]
    check_backward(dy, dh_n, dc_n, T, B, H, H if cell == "lstm" else None, dtype)
    GH = GATES[cell] * H
    dy = _as_device(dy, dtype)
    dummy = xp.zeros((1, 1, 1), dtype=dtype)
    dgates = xp.empty((T, B, GH), dtype=dtype)
    dgates_h = xp.empty((T, B, GH), dtype=dtype) if cell == "gru" else dummy
    carry = xp.zeros((B, H), dtype=dtype) if dh_n is None else _as_device(dh_n, dtype).copy()
    dc = dummy[0]
    if cell == "lstm":
        dc = xp.zeros((B, H), dtype=dtype) if dc_n is None else _as_device(dc_n, dtype).copy()

    recurrent = dgates_h if cell == "gru" else dgates
    if choose_backward(cell, dtype, B, H) == "gemm":
        dh_rec = xp.zeros((B, H), dtype=dtype)  # the last step has no later step: its dh is dh_n, in ``carry``
        launch = _gemm_backward_kernel(cell, dtype)[(_cdiv(H, GEMM_THREADS), B), GEMM_THREADS, _stream()]
        arrays = _kernel_args((dh_rec, dy, h_states, c_states, acts, lens, dgates, dgates_h, carry, dc))
        for t in reversed(range(T)):
            if t + 1 < T:
                xp.matmul(recurrent[t + 1], w_hh, out=dh_rec)
            launch(*arrays, t, relu)
    else:
        tiles = _step_tiles(B, H, GH)
        kernel = _step_backward_kernel(cell, dtype, *tiles)
        launch = kernel[(_cdiv(H, tiles[0]), _cdiv(B, tiles[1])), tiles[:2], _stream()]
        arrays = _kernel_args((dy, w_hh, h_states, c_states, acts, lens, dgates, dgates_h, carry, dc))
        for t in reversed(range(T)):
            launch(*arrays, t, relu)

    dh0 = xp.matmul(recurrent[0], w_hh) + carry
    flat = dgates.reshape(T * B, GH)
    flat_recurrent = recurrent.reshape(T * B, GH)
    dx = xp.matmul(flat, w_ih).reshape(T, B, I)
    dw_ih = xp.matmul(flat.T, x.reshape(T * B, I))
    dw_hh = xp.matmul(flat_recurrent.T, h_states[:T].reshape(T * B, H))
    db_ih = flat.sum(axis=0)
    db_hh = flat_recurrent.sum(axis=0) if cell == "gru" else db_ih.copy()
    dc0 = dc if cell == "lstm" else None
    return dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh


# --------------------------------------------------------------------------------- public functions

def lstm_forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths=None, training=True, w_hr=None):
    if w_hr is not None:
        # The fused step kernels take the state's width for the number of units; a projection needs them apart.
        raise NotImplementedError("proj_size is not supported on the GPU yet")
    return _forward("lstm", x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, training, "tanh")


def lstm_backward(dy, dh_n, dc_n, cache):
    return _backward(dy, dh_n, dc_n, cache)


def gru_forward(x, h0, w_ih, w_hh, b_ih, b_hh, lengths=None, training=True):
    y, h_n, _, cache = _forward("gru", x, h0, None, w_ih, w_hh, b_ih, b_hh, lengths, training, "tanh")
    return y, h_n, cache


def gru_backward(dy, dh_n, cache):
    dx, dh0, _, dw_ih, dw_hh, db_ih, db_hh = _backward(dy, dh_n, None, cache)
    return dx, dh0, dw_ih, dw_hh, db_ih, db_hh


def rnn_forward(x, h0, w_ih, w_hh, b_ih, b_hh, lengths=None, training=True, nonlinearity="tanh"):
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    y, h_n, _, cache = _forward("rnn", x, h0, None, w_ih, w_hh, b_ih, b_hh, lengths, training, nonlinearity)
    return y, h_n, cache


def rnn_backward(dy, dh_n, cache):
    dx, dh0, _, dw_ih, dw_hh, db_ih, db_hh = _backward(dy, dh_n, None, cache)
    return dx, dh0, dw_ih, dw_hh, db_ih, db_hh
