"""Fused Numba CPU kernels for LSTM, GRU and the tanh/ReLU RNN: ``reference.py``'s fast twin.

Same functions, shapes, dtypes and semantics as ``reference.py`` (read its docstring for the contract).
What is fused (DESIGN.md, "The kernels"):

- the input projection of all time steps is one GEMM, ``x[T*B, I] @ W_ih^T``, before the recurrence; or, for the
  LSTM and the RNN from 8 rows per thread (32 above 8 MiB of weights: ``plan``), part of each step's GEMM:
  ``[x_t | h] [W_ih | W_hh]^T + b_ih + b_hh`` in one micro-kernel pass (``_forward_fused``), with a cell pass per
  step over all the block's rows;
- the whole time loop runs in compiled code; per step one recurrent GEMM ``h @ W_hh^T`` against the
  stacked gates, then ONE elementwise pass per sequence that adds the biases, applies the activations,
  updates the state and stores what backward needs;
- backward mirrors it: one fused elementwise pass per step producing the gate gradients ``dA``, one
  recurrent GEMM ``dA @ W_hh`` for ``dh``; then after the loop ``dx``, ``dW_ih``, ``dW_hh`` are one
  GEMM each over all ``T*B`` rows and the bias gradients are column sums.
- the LSTM with projections (``w_hr``) adds one GEMM per step, ``(o * tanh(c')) @ W_hr^T``, after the cell
  pass (which then writes ``o * tanh(c')`` to a buffer instead of the state), and in backward one GEMM per
  step, ``dh @ W_hr``, before it; ``dW_hr`` is one GEMM after the loop over the saved ``o * tanh(c')``.

GEMMs: a step's recurrent GEMM from 2 rows is our own outer-product micro-kernel (``microkernel.matmul_packed``,
LLVM IR through a Numba intrinsic) against W_hh^T (W_hh in backward) packed once per call, not once per step as
OpenBLAS does; one row uses OpenBLAS's GEMV (``np.dot`` inside ``@njit``, scipy's OpenBLAS). Since session 8 the
GEMMs outside the time loops also run the micro-kernel (the forward's input projection, ``_input_projection``, on
AVX2 builds too since session 29; the backward's dx and weight gradients, ``gemm_packed``), OpenBLAS only for the
backward of a batch whose time loop ran on one thread (B < 8) without the unit split. Dense layers' GEMMs
(``dense_forward``, ``dense_backward``: ``lstmzoo.nn.Linear``'s and the attention's on NumPy arrays) run there too
from 2^18 multiply-adds, so that NumPy's OpenBLAS workers do not spin beside the time loops in a training step.

Threads: a per-step handoff to other threads, OpenBLAS's or a ``prange``'s, cost far more than it saved on the
shared machine (notes/cpu-lstm-measurements.md), so there is none. Instead (``plan``) either the batch is split into
blocks of rows (one per Numba thread, at least 4 rows each) and each thread runs the WHOLE time loop for its block,
forward and backward, with OpenBLAS at one thread; the GEMMs outside the loops are split over the same threads. With
one block (B < 8, or one Numba thread) the time loop runs on one thread, and on 2+ threads a second thread computes
the input projections a few steps ahead of it (``_forward_beside``). Or, for the forward of 1..7
rows with a large W_hh on 2+ threads (up to 32 rows in inference where W_hh outgrows an L2 of 2 MB) and enough steps
to repay its setup (``plan``), the hidden units are split over the threads (``_forward_units``; the
backward's time loop likewise, ``_backward_units``): each thread runs the whole time loop for all rows and its
units, one long-lived call per thread, and the threads meet once per step on a spin barrier (kernels/barrier.py)
instead of handing work over.

Memory: the large arrays a call writes (the states, the saved gates, the outputs, the gate gradients, the packed
operands of the GEMMs, the gradients) come from ``memory.empty``, which hands out again the memory of arrays that
nothing uses any more: a training step at the same shapes as the one before takes no fresh pages (whose faults
had cost 0.4-1.8 s of a 4-6 s step at B = 128, H = 1024 on a Zen 4 VM; kernels/memory.py).

float64 uses libm ``exp``/``tanh`` so it matches the reference to ~1e-15; float32 uses a vectorisable
rational ``tanh`` (and ``sigmoid(a) = (1 + tanh(a/2)) / 2``) accurate to a few float32 ulp, because libm
calls in the gate loop were the largest single cost of a plain Numba LSTM.

Vectorisation: two hints to LLVM, each a call at the top of a compiled function. ``_full_width_vectors`` lets it
use 512-bit registers where the CPU has AVX-512 (it tunes Intel server CPUs to 256-bit otherwise); the cell passes
(``_cell_forward``, ``_cell_backward``) are functions of their own that call ``_arguments_do_not_overlap``, without
which LLVM left the LSTM's cell pass scalar (too many rows to check for overlap at run time).

Compilation: every loop is compiled lazily, for the dtypes a run uses, and kept in Numba's cache
(``cache=True``); the first training in a dtype compiles about 10 s of one core, and ``cache_is_cold`` says
beforehand whether that is still to come. The loops avoid array assignments (``_copy``), whose shape-mismatch
error message alone took ~5 s to compile. Arguments are checked first (``arguments.py``).
"""

import atexit
import collections
import contextlib
import ctypes
import functools
import itertools
import os
import threading
import typing


def _prefer_avx512_openblas():
    """Ask scipy's OpenBLAS for its AVX-512 kernels when the CPU has them.

    OpenBLAS 0.3.30's runtime dispatch does not recognise recent AMD CPUs (Zen 4/5) and falls back to its
    AVX2 "Haswell" kernels, which run GEMMs at ~55 % of the AVX-512 ones on such a machine (measured:
    245 vs 440 GFLOP/s fp32 on 2 cores). OpenBLAS reads ``OPENBLAS_CORETYPE`` once, when it is loaded,
    which for scipy's copy is the first compilation of ``np.dot`` in Numba, after this module's import.
    A value the user set is never overridden.
    """
    if "OPENBLAS_CORETYPE" in os.environ:
        return
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split())
                    break
            else:
                return
    except OSError:
        return
    if {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"} <= flags:
        os.environ["OPENBLAS_CORETYPE"] = "SkylakeX"


_prefer_avx512_openblas()

import numba
import numpy as np
from llvmlite import ir as llvm_ir
from numba import njit, types
from numba.extending import intrinsic, overload

from . import barrier, memory, microkernel
from .arguments import check_backward, check_forward, require_cache
from .microkernel import (GEMM_KC, GEMM_MC, GEMM_MC_PACKED, _row_sums, gemm_packed, gemm_packed_any,
                          matmul2_packed, matmul_packed, pack_bias, packed_shape, panel_width, scratch_tile)

# Cell kinds, passed to the compiled loops as plain ints (branches on them sit outside the inner loops).
LSTM, GRU, RNN_TANH, RNN_RELU = 0, 1, 2, 3
_GATES = {LSTM: 4, GRU: 3, RNN_TANH: 1, RNN_RELU: 1}
# Per (t, b) values saved for backward, in units of H: LSTM i, f, g, o, tanh(c');
# GRU r, z, n, h W_hn^T + b_hn. The RNN needs only h', which is the stored state.
_SAVED = {LSTM: 5, GRU: 4, RNN_TANH: 0, RNN_RELU: 0}

# No nnan/ninf: float64 sigmoid relies on exp overflowing to inf exactly as the reference does.
_JIT = {"cache": True, "error_model": "numpy", "fastmath": {"nsz", "arcp", "contract", "reassoc"}}
# The fused step's cell passes (``_cells_forward``, ``_unit_cells``): no "reassoc", so that the inference copy of
# ``_lstm_units`` (whose i, f, g, o are not stored, which "reassoc" let LLVM fold into what follows) computes what
# the training copy does, to the bit (and ``_fma`` fixes which product c' = f * c + i * g rounds once). The
# training bits are those of the one loop before (session 35: LSTM, GRU, RNN, float32 and float64, AVX-512 and
# AVX2 builds, every split).
_JIT_CELLS = dict(_JIT, fastmath={"nsz", "arcp", "contract"})


# The plan's thresholds (``plan``; the evidence for each is in its docstring).
# The row split: at least this many rows per thread (measured on the previous per-step kernel, four rows at a time).
_MIN_ROWS_PER_THREAD = 4
# One row on one thread, a forward of this many steps or more (``plan`` told the steps): the micro-kernel's one-row
# tile against W_hh packed once a call ("packed") instead of OpenBLAS's GEMV every step ("gemv").
_MIN_STEPS_ONE_ROW_PACKED = 32
# The unit split at 2..7 rows (up to 12 from _LARGE_UNIT_WEIGHTS elements of W_hh), in parts of a multiple of
# _UNIT_GRAIN units per thread, each at least _UNIT_GRAIN.
_MIN_ROWS_UNIT_SPLIT, _MAX_ROWS_UNIT_SPLIT, _MAX_ROWS_UNIT_SPLIT_LARGE, _UNIT_GRAIN = 2, 8, 13, 16
_LARGE_UNIT_WEIGHTS = 1 << 22
# ... from these many elements of W_hh: a forward (inference, training; its threads project their own units'
# inputs), and a backward
_MIN_UNIT_WEIGHTS, _MIN_UNIT_WEIGHTS_TRAINING, _MIN_UNIT_WEIGHTS_BACKWARD = 1 << 17, 1 << 18, 1 << 18
# One row: from this many elements of W_hh in inference (training and backward: from
# _MIN_UNIT_WEIGHTS_ONE_ROW_TRAINING), where a thread's share is at most one L2 or at least _STREAMED_L2S L2s
# (inference), or at most _ONE_ROW_TRAINING_L2S L2s (training and backward).
_MIN_UNIT_WEIGHTS_ONE_ROW, _MIN_UNIT_WEIGHTS_ONE_ROW_TRAINING = 1 << 16, 1 << 18
_STREAMED_L2S, _ONE_ROW_TRAINING_L2S = 2, 0.5
# ... from this many steps, where ``plan`` is told the steps: inference (one row), training and backward (one row);
# 2 or more rows in inference with fewer than _FEW_STEPS_UNIT_WEIGHTS elements of W_hh from _MIN_ROW_STEPS_UNITS_SMALL
# rows times steps, in training and backward with at least _FEW_STEPS_UNIT_WEIGHTS_TRAINING from
# _MIN_STEPS_UNITS_TRAINING_LARGE steps.
_MIN_STEPS_UNITS, _MIN_STEPS_UNITS_ONE_ROW, _MIN_STEPS_UNITS_TRAINING, _MIN_STEPS_UNITS_TRAINING_ONE_ROW = 2, 32, 24, 64
_MIN_ROW_STEPS_UNITS_SMALL, _FEW_STEPS_UNIT_WEIGHTS = 24, 1 << 18
_MIN_STEPS_UNITS_TRAINING_LARGE, _FEW_STEPS_UNIT_WEIGHTS_TRAINING = 8, 1 << 21
# 8..32 rows in inference where W_hh outgrows an L2, on cores with at least this much L2.
_MAX_ROWS_UNIT_SPLIT_L2, _MIN_L2_UNIT_SPLIT_ROWS = 33, 2 << 20
# Fused input projection: from this many rows per block (_MIN_ROWS_FUSED_LARGE above _FUSED_BYTES of weights;
# _MIN_ROWS_UNITS_FUSED for the unit split, above the rows it runs at today).
_MIN_ROWS_FUSED, _MIN_ROWS_FUSED_LARGE, _FUSED_BYTES, _MIN_ROWS_UNITS_FUSED = 8, 32, 8 << 20, 33
# Beside the loop: from this many multiply-adds of the forward's input projection (T * B * I * G*H), and of the
# backward's dx and weight gradients (T * B * G*H * (2I + H + 1)).
_MIN_BESIDE_MACS, _MIN_GRADIENTS_BESIDE_MACS = 1 << 22, 1 << 24


class Block(typing.NamedTuple):
    """Rows ``start <= b < end`` of a batch, whose whole time loop one thread runs, and its per-step GEMM; or, with
    the step "units", all rows, their time loop run by ``len(units)`` threads, thread k computing the hidden units
    ``units[k] = (u0, u1)`` (``_forward_units``)."""
    start: int
    end: int
    step: str  # "gemv" (1 row, OpenBLAS), "packed" (2 or more rows, microkernel.matmul_packed) or "units"
    units: tuple = ()


class Plan(typing.NamedTuple):
    """How one forward or backward call runs (``plan``)."""
    blocks: list  # one Block per thread (the row split), or one "units" Block (the unit split)
    fused: bool = False  # forward: each step's GEMM projects x_t too, [x_t | h] [W_ih | W_hh]^T (``_forward_fused``)
    # The GEMMs outside the time loop run on a second thread while the loop runs: the forward's input projection
    # (``_forward_beside``), the backward's dx and weight gradients (``_backward_beside``).
    beside: bool = False


def plan(B, threads=None, kind=None, hidden=None, projected=False, training=False, backward=False, itemsize=4,
         inputs=None, steps=None, state=None):
    """How the kernels run a forward, or with ``backward=True`` a backward, over ``B`` sequences of ``steps`` steps of
    ``inputs`` values, for the cell ``kind`` with ``hidden`` units (``projected``: the LSTM with ``w_hr``, whose
    ``state`` is P wide instead of H) in elements of ``itemsize`` bytes (``training``: a forward that keeps what the
    backward needs), on ``threads`` threads (default Numba's count: ``NUMBA_NUM_THREADS`` or
    ``numba.set_num_threads``). Returns a ``Plan``. Without ``kind`` and ``hidden`` only the row split is
    planned; without ``steps`` and ``inputs`` nothing is fused or beside. The only place that decides: ``_forward``
    and ``_backward`` follow it; the tests force a path by changing the thresholds below the imports.

    The rules (W = G*H*H, the elements of W_hh; a share = W * itemsize / threads, in L2s of a core, ``_l2_bytes``):

    1. The unit split (``blocks`` = one "units" Block; ``_forward_units``, ``_backward_units``): every thread runs
       the whole time loop for all rows and its part of the hidden units (``_unit_parts``: at least 16 units each,
       so H >= 32 on 2 threads), and the threads meet once a step on a spin barrier (kernels/barrier.py). On 2 or
       more threads, never with a projection, from 2 steps in inference (W < 2^18: from 24 rows times steps, so
       12 steps at 2 rows, 6 at 4; one row: 32) and 24 in training (W >= 2^21: 8; one row: 64; where ``steps``
       is given), where:

       - one row: inference where a share is at most one L2 or at least 2 L2s, from W = 2^16; training (its
         forward and its backward) from W = 2^18 where a share is at most half an L2;
       - 2..7 rows (2..12 from W = 2^22): a forward from W = 2^17 (inference) or 2^18 (training); a backward from
         W = 2^18;
       - 8..32 rows: inference where W_hh outgrows an L2 of at least 2 MB (W * itemsize; LSTM float32: from
         H = 363).

       LSTM float32 on 2 threads with 1 MB L2s: one row at H = 128..362 and from 512 for inference, H = 256 in
       training; 2..7 rows from H = 182 (inference) or 256 (training); up to 12 rows from H = 1024 (8..32 rows only
       with 2 MB L2s). The rules are the same for both micro-kernel widths (AVX-512 and AVX2 builds; below).
    2. Otherwise the row split: at most ``threads`` blocks of consecutive rows, as even as possible, each at least
       ``_MIN_ROWS_PER_THREAD`` = 4 rows; each thread runs the whole time loop for its rows (one hand-off a call, none
       a step). A block's per-step GEMM: one row OpenBLAS's GEMV ("gemv"), more the micro-kernel against W_hh^T
       packed once a call ("packed"; OpenBLAS packs all of W_hh every call: 3-97 GFLOP/s on 2..128 rows where the
       micro-kernel ran 19-131, benchmarks/step_microkernel.py); one row too on one thread in a forward of
       ``_MIN_STEPS_ONE_ROW_PACKED`` = 32 steps or more (where packing W_hh once repays it; on 2 threads OpenBLAS's
       GEMV takes both, and the one-row backward's GEMV against the packed W_hh was 1.04-1.15x slower).
    3. ``fused`` (forward, the LSTM and the RNN; the GRU's n gate needs x and h apart): every row block has at least
       8 rows (32 where W_ih and W_hh take more than 8 MiB); the unit split from 33 rows (never, as planned today:
       at 32 rows it took 1.05-1.31x the time of its projection first, Intel Xeon, session 24).
    4. ``beside``, where the row split has one block of 2 or more rows on 2 or more threads (so a thread idles) and
       ``steps`` > 1: a forward's input projection from 2^22 multiply-adds (``_forward_beside``); a backward's dx and
       weight gradients, without a projection, from 2^24 multiply-adds and where the weight gradients
       (G*H * (I + H + 2) elements) fit in an L2 (``_backward_beside``).

    Measured (2 threads, T = 100; benchmarks/RESULTS.md, the section named; ratios are times, A/B in one process):
    - Few steps (Zen 4, session 27, benchmarks/few_steps.py: the row split's time / the unit split's, LSTM, I = H;
      each thread packs its share of the weights and a call wakes the other thread, a fixed cost). Inference, one
      row: T = 1..16 0.18-1.03 (H = 128..1024), T = 32..48 0.62-0.71 at H = 128 and 0.95-1.55 at H >= 256,
      T = 64..100 1.06-1.83; 2 and 4 rows (H = 256..1024): one step 0.67-0.88, 2 steps 0.69-1.14, 4..16 steps
      0.75-1.37. Training (forward and backward): one row (H = 256) T <= 48 0.15-0.89, T = 64 0.94, T = 100 1.15; 2
      and 4 rows at H = 512 T <= 4 0.52-1.11, T = 16 0.77-1.00, T >= 32 1.07-1.39, at H = 1024 T <= 4 0.81-1.10,
      T >= 16 1.16-1.58. (A first run, before the row split packed on both threads, put the crossovers at the same
      step counts, give or take one of the values tried.) Session 28, once each thread packed its rows without a
      gathered copy, for the LSTM, GRU and RNN: inference, 2..6 rows, W = 2^17..2^18 (LSTM H = 160..224, GRU
      224..256, RNN 384..448): T = 2..4 0.53-1.00, T = 8 0.79-1.44 (2 rows 0.79-1.05, 4 and 6 rows 0.95-1.44),
      T >= 16 1.05-1.83 (one 0.86); a rule of 32 rows times steps against the rule of 2 steps (forward_ab.py, LSTM
      H = 192..224, B = 2, 3, 6), new / old: 0.67-0.86 at 8..16 rows times steps; at 24 0.87-0.97 (H = 192) and
      1.15-1.28 (H = 224): the crossover, hence 24.
      From W = 2^18 (LSTM H >= 256, GRU >= 296, RNN >= 512) T = 2 0.74-1.77 (below 1.0 only the RNN at H = 512:
      0.74, 0.83). Training (LSTM), 2 and 4 rows: H = 256 T = 16..48 0.70-1.12; H = 512 T = 16 0.87-1.00,
      T = 24..48 1.05-1.25; H = 768..1024 (W >= 2^21) T = 2..4 0.82-1.09, T = 8 1.05-1.20.
    - One rule set for both micro-kernel widths (session 29): until then AVX2 builds had their own rules, measured
      before sessions 17-28 sped up the micro-kernel's drivers and the unit split (one row from W = 2^18, 2..7
      rows from 2^20 or from 2^18 with I <= H/2, OpenBLAS computing the input projection, no gradients beside the
      loop). Compiled for Haswell on a Zen 4 (Numba without AVX-512, OpenBLAS's Haswell kernels, torch's oneDNN,
      MKL and ATen held to AVX2; /tmp scripts, RESULTS.md "Session 29"), T = 100, 2 threads, the AVX-512 builds'
      rules and projection against the AVX2 ones: B = 1 and 4, 8 shapes each (H = 128..1024, I = H and H/4), LSTM
      inference 0.56-1.00 (median 0.80), training 0.66-0.97 (0.89); GRU 0.54-1.12 and 0.69-1.07; RNN 0.43-0.99 and
      0.52-1.09; B = 16..256 LSTM inference 0.88-1.13 (median 0.99); one thread (the projection only) 0.69-0.97 at
      B = 1 and 4, 0.93-1.01 from B = 16. Not yet timed on a real AVX2 machine.
    - 2..7 rows, the AVX2 rule before session 29: unit / row split on Zen 5 (sessions 9-10) inference 0.66-0.82 at
      H = 1024, 0.75-1.26 at 512, 1.1-2.4 at H <= 256; training with the backward's split 0.72-0.95 at H >= 512;
      the backward alone from H = 256 (LSTM 0.86-0.99). I <= H/2 with a share in L2 (Zen 4, session 20): 0.69-0.98
      in 39 of 42 rows at H = 256..320. Up to 12 rows at H = 1024 (Zen 5, session 12): 0.83-0.98 (at H = 512 it
      lost, 1.09-1.15).
    - 2..7 rows, AVX-512 rule (Zen 4, session 21, each thread projecting its own units' inputs): LSTM inference
      H = 192..448, I = H and H/4: 0.59-1.07, slower in 4 of 42 rows; H = 128 0.88-1.14 (slower in 8 of 14); GRU
      H = 192..448 0.65-1.12; RNN H = 256..512 0.71-0.98; LSTM training (both passes split) 0.87-1.03. At 8-12 rows
      0.92-1.11, median 1.04: the row split stays.
    - 8..32 rows, W_hh past an L2 (Intel Xeon, 2 MB L2s). Session 23, after the micro-kernel's prefetch: LSTM
      inference H = 384..512, I = H and H/4, units / rows 0.64-0.96 at 8..12 rows (18 of 18 rows), 0.76-1.06 at 14
      and 16 (7 of 8); training (both passes split) 0.80-1.07, not taken. Session 24, once the micro-kernel's
      drivers stopped choosing an array per tile (the threads' own-units projection 1.3-1.5x as fast): LSTM
      H = 512..1024, I = H and H/4, 0.61-1.00 at 8..32 rows (30 of 30), 0.96-1.17 at 48-64 rows (9 of 12 slower);
      GRU H = 512 and 1024 0.85-1.04, RNN H = 1024 0.73-0.94 at 12..32 rows. At H = 256 (W_hh in L2) the unit split
      lost (1.01-1.23). On a Zen 4 (1 MB L2s, session 25, the same kernels; 5 repeats) the unit split lost: LSTM
      H = 288..512, I = H and H/4, 0.89-1.45 at 10..32 rows (29 of 36 slower), 0.94-1.28 at 8 rows; H = 768 and
      1024 (3 and 5 repeats) 0.73-1.09 at 8..32 rows (and one 1.62), median 0.99 (H = 1024 takes the units to 12
      rows by the 2^22 rule anyway). So the rule asks for an L2 of 2 MB, as on the machine where it gained (that the
      Zen's L3 feeds the row split's streamed W_hh faster is a guess, not profiled).
    - One row on one thread (Zen 4, session 32, LSTM inference, I = H, T = 100, /tmp scripts; RESULTS.md "Session
      32"): the micro-kernel / OpenBLAS's GEMV 0.81-0.98 at H = 96..1024 (1.02-1.03 at H = 64 and 384); by steps,
      H = 128 and 512: T = 1 1.15 and 2.79, T = 4..16 0.92-1.03, T = 32 0.86-0.96. The backward's one row on one
      thread against the packed W_hh^T: 1.04-1.15 at H = 128..512 (0.98 at 1024): kept on the GEMV. On 2 threads
      the GEMV (OpenBLAS on both) was faster, 1.08-1.28 at H = 64..448, and 1.27-1.62 in training at H = 512, 1024
      (only at H = 128 in training the micro-kernel won, 0.91: not taken, one shape).
    - One row (Zen 4, sessions 17, 18, 21): where a share fits in L2, LSTM H = 256, 320 0.73-0.83, GRU H = 320, 384
      0.74-0.76, RNN H = 512, 640 0.72-0.83; just past it mixed or slower (LSTM H = 384 1.20-1.33); from 2 L2s (both
      splits stream W_hh from L3) LSTM H = 512..1536 0.66-0.96. Below 2^18 elements, once each thread projected its
      own units' inputs (Zen 4, session 22, inference, 5-7 repeats): LSTM H = 128..224 0.70-0.95 (16 of 16 rows),
      H = 96 and 112 0.94-1.17, H = 64 1.5; GRU H = 160..256 0.64-1.31 (3 of 12 slower); RNN H = 256..448 0.67-1.00
      (before, session 17: LSTM H = 192 0.89-1.15, H = 128 1.5-1.8). Training at a share <= 1/2 L2: LSTM H = 256
      0.72-0.81, RNN H = 512 0.80-0.99; past it mixed (LSTM H = 288..352 0.77-1.18, GRU at I = H 1.17-1.28); below
      2^18 (session 22) LSTM H = 128..224 0.81-1.07: not taken. OpenBLAS's GEMV at one thread: 1.23-2.05.
    - Fused (one Zen 5 core, session 8): 8 rows 0.74-0.91 at H = 128..512; at H = 1024 0.86-1.36 up to 24 rows,
      0.76-0.81 at 32; 2..4 rows 0.91-1.87 (the projection first runs at GEMM speed). The unit split fused at
      H = 1024 (B = 4) 1.6-2.3x; at 8-16 rows, H = 512, 0.75-0.78x.
    - Beside: the forward's projection (Zen 5, session 13) LSTM inference 0.71-1.01 at B = 2..7, H = 128..256,
      training 0.81-1.12; below 2^22 multiply-adds 1.09-1.52; on AVX2 (Zen 1, session 16) 0.74-0.92. The backward's
      GEMMs (Zen 5, session 14) LSTM H = 128 0.68-0.96, GRU 0.73-0.93 but 1.00-1.48 where its gradients outgrow the
      L2; compiled for AVX2 1.18-1.38 there (session 14), but part of the AVX-512 rules that won on a Zen 4
      compiled for AVX2 in session 29 (LSTM B = 4, H = 128: 0.77-0.89).
    - One row on 2 threads, inference, the loop on one thread ("packed", benchmarks/one_row.py; RESULTS.md "Session
      38"): on a Zen 5 (512-bit data paths) 0.66-0.87 of the GEMV's time on both threads and 0.61-1.06 of the unit
      split's below 512 KB of W_hh; compiled for AVX2 there 0.81-1.42 (13 of 17 shapes above 1.05); on the Zen 4 of
      session 32 (AVX-512 on 256-bit data paths) the GEMV on both threads was faster (1.08-1.28, above). Not taken:
      it would be a rule for one machine."""
    if threads is None:
        threads = numba.get_num_threads()
    units = _unit_split(B, threads, kind, hidden, projected, training, backward, itemsize, steps)
    if units:
        blocks = [Block(0, B, "units", units)]
    else:
        one_row = ("packed" if threads == 1 and not backward and (steps or 0) >= _MIN_STEPS_ONE_ROW_PACKED
                   else "gemv")
        blocks = [Block(b0, b1, one_row if b1 - b0 == 1 else "packed")
                  for b0, b1 in _even_blocks(B, max(1, min(threads, B // _MIN_ROWS_PER_THREAD)))]
    if kind is None or hidden is None or steps is None or inputs is None:
        return Plan(blocks)
    gates = _GATES[kind] * hidden
    width = hidden if state is None else state
    fused = not backward and _fuses_input(kind, blocks, itemsize * gates * (inputs + width))
    one_block = len(blocks) == 1 and blocks[0].step == "packed" and threads > 1 and steps > 1
    rows = B if one_block else 0
    if backward:
        beside = (one_block and not projected
                  and steps * rows * gates * (2 * inputs + width + 1) >= _MIN_GRADIENTS_BESIDE_MACS
                  and gates * (inputs + width + 2) * itemsize <= _l2_bytes())
    else:
        beside = not fused and one_block and steps * rows * inputs * gates >= _MIN_BESIDE_MACS
    return Plan(blocks, fused, beside)


def _unit_split(B, threads, kind, hidden, projected, training, backward, itemsize, steps):
    """``plan``'s rule 1: the unit split's parts of the hidden units, or () for the row split."""
    if kind is None or hidden is None or projected or threads < 2:
        return ()
    weights = _GATES[kind] * hidden * hidden
    if B == 1:
        least_steps = _MIN_STEPS_UNITS_TRAINING_ONE_ROW if training or backward else _MIN_STEPS_UNITS_ONE_ROW
    elif training or backward:
        large = weights >= _FEW_STEPS_UNIT_WEIGHTS_TRAINING
        least_steps = _MIN_STEPS_UNITS_TRAINING_LARGE if large else _MIN_STEPS_UNITS_TRAINING
    elif weights >= _FEW_STEPS_UNIT_WEIGHTS:
        least_steps = _MIN_STEPS_UNITS
    else:
        least_steps = max(_MIN_STEPS_UNITS, -(-_MIN_ROW_STEPS_UNITS_SMALL // B))
    if steps is not None and steps < least_steps:
        return ()
    share = weights * itemsize / (threads * _l2_bytes())  # in L2s
    inference = not (training or backward)
    one_row = B == 1 and (
        inference and weights >= _MIN_UNIT_WEIGHTS_ONE_ROW and (share <= 1 or share >= _STREAMED_L2S)
        or weights >= _MIN_UNIT_WEIGHTS_ONE_ROW_TRAINING and share <= _ONE_ROW_TRAINING_L2S)
    max_rows = _MAX_ROWS_UNIT_SPLIT_LARGE if weights >= _LARGE_UNIT_WEIGHTS else _MAX_ROWS_UNIT_SPLIT
    least = (_MIN_UNIT_WEIGHTS_BACKWARD if backward else _MIN_UNIT_WEIGHTS_TRAINING if training
             else _MIN_UNIT_WEIGHTS)
    past_l2 = (inference and _MAX_ROWS_UNIT_SPLIT <= B < _MAX_ROWS_UNIT_SPLIT_L2
               and weights * itemsize > _l2_bytes() >= _MIN_L2_UNIT_SPLIT_ROWS)
    split = one_row or past_l2 or _MIN_ROWS_UNIT_SPLIT <= B < max_rows and weights >= least
    units = _unit_parts(hidden, threads) if split else ()
    return units if len(units) > 1 else ()


def _unit_parts(H, threads):
    """``range(H)`` in at most ``threads`` parts ``(u0, u1)``, as even as possible in multiples of ``_UNIT_GRAIN``
    (the last part takes the remainder), each at least ``_UNIT_GRAIN`` units."""
    grains = H // _UNIT_GRAIN
    parts = max(1, min(threads, grains))
    bounds = [_UNIT_GRAIN * (grains * i // parts) for i in range(parts)] + [H]
    return tuple(itertools.pairwise(bounds))


def _fuses_input(kind, blocks, weight_bytes):
    """``plan``'s rule 3: whether each step's GEMM projects x_t too, over ``blocks`` with ``weight_bytes`` of W_ih
    and W_hh."""
    if kind == GRU:
        return False
    if blocks[0].step == "units":
        return blocks[0].end - blocks[0].start >= _MIN_ROWS_UNITS_FUSED
    if any(block.step != "packed" for block in blocks):
        return False
    rows = _MIN_ROWS_FUSED if weight_bytes <= _FUSED_BYTES else _MIN_ROWS_FUSED_LARGE
    return all(block.end - block.start >= rows for block in blocks)


def _even_blocks(n, parts):
    """``range(n)`` in ``parts`` blocks of consecutive indices, as ``[(start, end), ...]``, as even as possible."""
    return list(itertools.pairwise([n * i // parts for i in range(parts + 1)]))


@functools.cache
def _l2_bytes():
    """A core's L2 cache in bytes, from sysfs; 512 KB where it cannot be read (the smallest of the machines these
    kernels were measured on: Zen 3)."""
    base = "/sys/devices/system/cpu/cpu0/cache"
    units = {"K": 1 << 10, "M": 1 << 20}
    try:
        for entry in sorted(os.listdir(base)):
            with open(f"{base}/{entry}/level") as level, open(f"{base}/{entry}/type") as kind:
                if level.read().strip() != "2" or kind.read().strip() not in ("Unified", "Data"):
                    continue
            with open(f"{base}/{entry}/size") as size:
                text = size.read().strip()
            return int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text)
    except (OSError, ValueError):
        pass
    return 512 << 10


@functools.cache
def _gemm_kc():
    """The K block of the backward's GEMMs after the loop (``_split_gemm_packed``): ``GEMM_KC`` = 256 times 1, 2 or 4,
    the most whose block of ``a`` (``GEMM_MC`` rows of float32) takes at most a quarter of a core's L2: 1024 on a
    2 MB L2, 512 on 1 MB, 256 on 512 KB. The bits do not change with it (each K block's sums start from the
    previous block's stored ones). Measured on an Intel Xeon with 2 MB of L2 (RESULTS.md "Session 23", one thread,
    ``gemm_packed`` alone): 1024 against 256 ran dx = da W_ih 1.13-1.14x and the weight gradients 1.04-1.06x as fast;
    the LSTM's backward (2 threads) 0.90-0.99x the time at B = 32..256, H = 128..1024. At 512 (a Zen 4's 1 MB L2,
    session 25, ``gemm_packed`` alone, one thread): dx 1.03-1.15x as fast as with 256, within 2 % of 1024."""
    return GEMM_KC * max(1, min(4, _l2_bytes() // (16 * GEMM_MC * GEMM_KC)))


@intrinsic
def _full_width_vectors(typingctx):
    """Called first in a compiled loop: let LLVM vectorise that function with the CPU's widest registers.

    LLVM tunes Intel server CPUs since Skylake-X (Ice Lake, Sapphire/Emerald Rapids) to "prefer-256-bit", so Numba
    vectorises with 8 float32 lanes even where AVX-512 has 16; the per-function attribute lifts that for our
    loops only (not for the rest of a user's Numba code). Where the CPU has no AVX-512 it changes nothing."""
    def codegen(context, builder, signature, args):
        # llvmlite's FunctionAttributes accepts only flag attributes by name; a key="value" one goes in as text (a
        # hint only: should another llvmlite refuse it, the loops compile as before).
        with contextlib.suppress(TypeError, AttributeError):
            set.add(builder.function.attributes, '"prefer-vector-width"="512"')
        return context.get_dummy_value()
    return types.none(), codegen


@intrinsic
def _fma(typingctx, a, b, c):
    """``a * b + c`` rounded once (``llvm.fma``), for floats of one type; it vectorises as the products do."""
    if not (isinstance(a, types.Float) and a == b == c):
        return None

    def codegen(context, builder, signature, args):
        return builder.fma(*args)
    return a(a, b, c), codegen


@intrinsic
def _arguments_do_not_overlap(typingctx):
    """Called first in a compiled function: promise LLVM that its array arguments share no memory that it writes
    (``noalias`` on every pointer argument, what Numba's own ``noalias`` flag does for its gufunc kernels).

    For the cell passes, which read and write a handful of rows: without the promise LLVM must check at run time
    that no written row overlaps a read one before it can vectorise a loop, and above 8 such checks it gives up;
    the LSTM's forward pass (9 rows) and every backward pass then ran one element at a time, with a scalar
    division per activation: 3-7x the time of the vectorised loop (float32, H = 128..512). Every caller
    passes rows of distinct slots or arrays (read-only ones may coincide, e.g. b_ih and b_hh)."""
    def codegen(context, builder, signature, args):
        for argument in context.call_conv.get_arguments(builder.function):
            if isinstance(argument.type, llvm_ir.PointerType):
                argument.add_attribute("noalias")
        return context.get_dummy_value()
    return types.none(), codegen


# ------------------------------------------------------------------------------------------- forward

def lstm_forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths=None, training=True, w_hr=None):
    return _forward(LSTM, x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, training, w_hr)


def gru_forward(x, h0, w_ih, w_hh, b_ih, b_hh, lengths=None, training=True):
    y, h_n, _, cache = _forward(GRU, x, h0, None, w_ih, w_hh, b_ih, b_hh, lengths, training)
    return y, h_n, cache


def rnn_forward(x, h0, w_ih, w_hh, b_ih, b_hh, lengths=None, training=True, nonlinearity="tanh"):
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    kind = RNN_TANH if nonlinearity == "tanh" else RNN_RELU
    y, h_n, _, cache = _forward(kind, x, h0, None, w_ih, w_hh, b_ih, b_hh, lengths, training)
    return y, h_n, cache


def _forward(kind, x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, training, w_hr=None):
    lengths = check_forward(_GATES[kind], x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, w_hr)
    training = bool(training)  # one compiled loop for True/1/np.True_
    T, B, I = x.shape
    P = h0.shape[1]  # the state's width: H, or the projection's P
    H = w_hh.shape[0] // _GATES[kind]
    dtype = x.dtype
    x2d = np.ascontiguousarray(x).reshape(T * B, I)
    w_ih, w_hh = np.ascontiguousarray(w_ih), np.ascontiguousarray(w_hh)
    lengths = _lengths_array(lengths, T, B)
    # Training keeps every state (backward reads h_{t-1}, c_{t-1}); inference ping-pongs two slots.
    slots = T + 1 if training else 2
    hs = memory.empty((slots, B, P), dtype)
    hs[0] = h0
    cs = memory.empty((slots, B, H if kind == LSTM else 0), dtype)
    if kind == LSTM:
        cs[0] = c0
    saved = memory.empty((T, B, _SAVED[kind] * H) if training else (1, B, 0), dtype)
    y = memory.empty((T, B, P), dtype)
    # Without a projection both are empty, which the compiled loops read as "no projection".
    w_hr = np.empty((0, 0), dtype) if w_hr is None else np.ascontiguousarray(w_hr, dtype)
    r = memory.empty((T if training else 1, B, H) if len(w_hr) else (0, 0, 0), dtype)  # o * tanh(c')
    how = plan(B, kind=kind, hidden=H, projected=len(w_hr) > 0, training=training, itemsize=dtype.itemsize,
               inputs=I, steps=T, state=P)
    blocks = how.blocks
    if blocks[0].step == "units":
        last = _forward_units(kind, blocks[0].units, x2d, w_ih, w_hh, b_ih, b_hh, lengths, hs, cs, saved, y, training,
                              how.fused)
    elif how.fused:
        last = _forward_fused(kind, blocks, x2d.reshape(T, B, I), w_ih, w_hh, b_ih, b_hh, lengths, hs, cs, saved, y,
                              training, w_hr, r)
    elif how.beside:
        last = _forward_beside(kind, blocks[0], x2d, w_ih, w_hh, b_ih, b_hh, lengths, hs, cs, saved, y, training,
                               w_hr, r)
    else:
        last = _forward_first(kind, blocks, x2d, w_ih, w_hh, b_ih, b_hh, lengths, hs, cs, saved, y, training, w_hr, r)
    h_n = hs[last].copy()
    c_n = cs[last].copy() if kind == LSTM else None
    cache = (kind, x2d, w_ih, w_hh, lengths, hs, cs, saved, w_hr, r) if training else None
    return y, h_n, c_n, cache


def _forward_first(kind, blocks, x2d, w_ih, w_hh, b_ih, b_hh, lengths, hs, cs, saved, y, training, w_hr, r):
    """The row split with the input projection of all steps first (``plan``: not fused, not beside); returns the
    slot of the final state."""
    T, B, _ = y.shape
    # All time steps' input projections in one GEMM (split over the threads); the biases are added in the cell pass,
    # which reads xp anyway (a separate bias pass over [T, B, GH] cost ~5 % at large shapes).
    xp = _input_projection(x2d, w_ih, blocks).reshape(T, B, w_hh.shape[0])
    # The per-step GEMMs' right-hand sides, W_hh^T and W_hr^T, packed once for all steps and threads.
    w_hh_packed, w_hr_packed = _packed(blocks, w_hh.T, w_hr.T)
    with _recurrence_blas(B):
        return _in_row_blocks(_forward_sequence, blocks, kind, xp, w_hh, w_hh_packed, np.ascontiguousarray(b_ih),
                              np.ascontiguousarray(b_hh), lengths, hs, cs, saved, y, training, w_hr, w_hr_packed, r,
                              _NOT_PIPED)


# Rows of x per micro-kernel call in _input_projection: x's block (at most 512 KB at I = 1024) stays in L2 while each
# packed panel of W_ih^T passes over it.
_PROJECTION_ROWS = 128
# With fewer rows than _PROJECTION_ROWS per thread, _input_projection splits W_ih^T's column panels over the threads
# from this many multiply-adds (below, the hand-off to a second thread costs more than it saves). Measured on Zen 4
# (session 17, 2 threads, the projection alone, pack included): 100-200 rows, 0.59-0.82x the time of one part from
# 2^24.6 multiply-adds, 0.87-0.92 at 2^23.6, 1.19-2.5 below 2^22.6; whole LSTM calls (benchmarks/forward_ab.py) at
# B = 2 with the unit split, H = 512..1024: inference 0.77 (I = H) and 0.94-0.99 (I = H/4), training 0.90-0.98;
# at B = 1 (OpenBLAS's GEMV loop after it) 0.96-1.04.
_MIN_COLUMN_SPLIT_MACS = 1 << 23


def _input_projection(x2d, w_ih, blocks):
    """``x2d @ w_ih.T``, all time steps' input projections before the time loops over ``blocks``.

    Through the micro-kernel, against W_ih^T packed here (``_PROJECTION_ROWS`` rows at a time), the rows split into
    as many blocks as the loops' or Numba's threads, whichever more (with one block the loop runs on one thread, but
    this GEMM need not). Measured on one Zen 5 core (load ~4.5), against OpenBLAS's SkylakeX kernels: 0.55-0.82x the
    time, pack included (131-187 GFLOP/s against 85-105; 100-700 rows, I = 32..1024, 4H = 512..4096). Not on
    OpenBLAS's threads: its workers spin for a while after each call, and a time loop split over the same cores right
    after waited for them (Zen 1, RESULTS.md "Session 15": one OpenBLAS call on its threads took 1.5-3.7x the time of
    chunks on ours at one OpenBLAS thread each). Until session 29 AVX2 builds called OpenBLAS here, single-threaded in
    chunks (the 256-bit tile compiled for Haswell on a Zen 5 core had taken 0.85-1.22x the time of OpenBLAS's Haswell
    kernels, session 10); compiled for Haswell on a Zen 4 the micro-kernel's projection took 0.69-0.97x the time at
    B = 1 and 4 on one thread, and about the same from B = 16 (0.93-1.01; ``plan``'s docstring has the rest)."""
    threads = max(len(blocks), numba.get_num_threads())
    out = memory.empty((x2d.shape[0], w_ih.shape[0]), np.result_type(x2d, w_ih))
    if len(x2d) == 1:
        # One row (one step of one sequence: a decoder's or a sampler's step): OpenBLAS's GEMV reads W_ih once, in
        # the time that packing it for the micro-kernel took alone (Zen 4, one thread: 0.07 against 0.27 ms at
        # I = 512, 4H = 2048; 0.44 against 2.7 ms at I = 1024, 4H = 4096; benchmarks/RESULTS.md "Session 27").
        with _one_blas_thread():
            _dot(x2d, w_ih.T, out)
        return out
    packed = pack(w_ih.T)
    parts = max(1, min(threads, x2d.shape[0] // _PROJECTION_ROWS))
    if (parts < threads and len(packed) >= threads
            and x2d.shape[0] * x2d.shape[1] * w_ih.shape[0] >= _MIN_COLUMN_SPLIT_MACS):
        # too few rows for a part per thread: the column panels are split instead (each output element is the same
        # sum either way: the tiles' lanes are independent of the rows and columns a call takes)
        pw, n = packed.shape[2], out.shape[1]
        _in_parallel([functools.partial(_project_rows, x2d, packed[p0:p1], out[:, p0 * pw:min(p1 * pw, n)])
                      for p0, p1 in _even_blocks(len(packed), threads)])
        return out
    _in_parallel([functools.partial(_project_rows, x2d[r0:r1], packed, out[r0:r1])
                  for r0, r1 in _even_blocks(len(x2d), parts)])
    return out


def _ramp(n, B):
    """``n`` rows, ``B`` a step, as row ranges ``[[r0, r1], ...]`` of whole steps (the last may end at ``n``): one
    step, then twice as many each time up to ``_PROJECTION_ROWS`` rows (at least one step), so that a time loop
    reading them in order can start after the first."""
    most = max(1, _PROJECTION_ROWS // max(B, 1))
    bounds, steps = [0], 1
    while bounds[-1] < n:
        bounds.append(min(bounds[-1] + steps * B, n))
        steps = min(2 * steps, most)
    return np.array(list(itertools.pairwise(bounds)), np.int64).reshape(-1, 2)


@njit(nogil=True, **_JIT)
def _project_rows(x, packed, out):
    for r0 in range(0, x.shape[0], _PROJECTION_ROWS):
        r1 = min(r0 + _PROJECTION_ROWS, x.shape[0])
        matmul_packed(x[r0:r1], packed, out[r0:r1])


@njit(nogil=True, **_JIT)
def _forward_sequence(kind, xp, w_hh, w_hh_packed, b_ih, b_hh, lengths, hs, cs, saved, y, training, w_hr,
                      w_hr_packed, r, ready, b0, b1, packed):
    """The whole forward recurrence of the sequences ``b0 <= b < b1`` (the others are not touched, so
    blocks of rows can run in parallel threads); returns the slot of ``hs``/``cs`` holding the final state, or -1
    when the thread projecting the inputs failed. ``packed``: the per-step GEMMs run the micro-kernel against
    ``w_hh_packed`` (``w_hr_packed``) instead of OpenBLAS against ``w_hh`` (``w_hr``) (``plan``). ``ready``: empty
    when ``xp`` is complete; else the progress of the thread writing it (``_forward_beside``), waited for before
    each step reads ``xp[t]``.

    With a projection (``w_hr`` not empty) the cell pass writes o * tanh(c') to ``r`` and the projected
    state ``r W_hr^T`` is one more GEMM per step."""
    _full_width_vectors()
    T = y.shape[0]
    GH = w_hh.shape[0]
    gh = np.empty((b1 - b0, GH), y.dtype)
    projected = w_hr.shape[0] > 0
    hp = np.empty((b1 - b0, w_hr.shape[0]), y.dtype)
    # With a projection y is P wide and gets the projected state below: the cell pass writes its H-wide output here.
    y_cells = np.empty((b1 - b0, w_hr.shape[1] if projected else 0), y.dtype)
    if not training:  # an empty array of this thread's own (_private_empty)
        saved = _private_empty(saved)
    scratch, scratch_hr = scratch_tile(w_hh_packed), scratch_tile(w_hr_packed)
    for t in range(T):
        if ready.size and not barrier.wait_until(ready, t + 1):
            return -1
        cur, nxt = (t, t + 1) if training else (t & 1, (t + 1) & 1)
        h_rows = hs[cur][b0:b1]
        if packed:
            matmul_packed(h_rows, w_hh_packed, gh, t & 1 == 1, scratch)  # (panel order alternating: matmul_packed)
        else:
            np.dot(h_rows, w_hh.T, gh)
        slot = t if training else 0
        h_new = r[slot][b0:b1] if projected else hs[nxt][b0:b1]
        _cell_forward(kind, xp[t][b0:b1], gh, b_ih, b_hh, hs[cur][b0:b1], cs[cur][b0:b1], h_new, cs[nxt][b0:b1],
                      saved[slot][b0:b1], y_cells if projected else y[t][b0:b1], lengths[b0:b1], t, training, 0,
                      0, h_new.shape[1])
        for b in range(b0, b1):
            if t >= lengths[b]:  # past this sequence's length: state frozen, output zero
                _copy(hs[cur, b], hs[nxt, b])
                _copy(cs[cur, b], cs[nxt, b])
                y[t, b] = 0.0
                if projected:
                    r[t if training else 0, b] = 0.0  # the projection GEMM and dW_hr read every row
        if projected:
            r_rows = r[t if training else 0][b0:b1]
            if packed:
                matmul_packed(r_rows, w_hr_packed, hp, False, scratch_hr)
            else:
                np.dot(r_rows, w_hr.T, hp)
            for b in range(b0, b1):
                if t < lengths[b]:
                    _copy(hp[b - b0], hs[nxt, b])
                    _copy(hp[b - b0], y[t, b])
    return T if training else T & 1


# ``ready`` of a time loop whose input projections are all written before it starts.
_NOT_PIPED = np.empty(0, np.int64)


def _forward_beside(kind, block, x2d, w_ih, w_hh, b_ih, b_hh, lengths, hs, cs, saved, y, training, w_hr, r):
    """The row split's one time loop on this thread while a second thread computes the input projections
    ``x_t W_ih^T`` ahead of it (``_project_ahead``), a few steps at a time, publishing how many steps are written
    (kernels/barrier.py's ``publish``); the loop waits for step t's before reading it (``wait_until``). Before, the
    projection of all steps ran first on both threads and the loop then on one: the projection's time (a quarter
    to two fifths of an LSTM inference at B = 2..8, H = 128..512, I = H) was spent before the loop could start,
    and the second thread idled through the loop. Each output element is the same sum in the same order as in
    ``_input_projection`` (the micro-kernel's lanes are independent of the rows a call takes), so the results are
    bitwise those of the projection-first path. Returns the slot of the final state."""
    T, B, _ = y.shape
    dtype = y.dtype
    xp = memory.empty((T, B, w_hh.shape[0]), dtype)
    ready = barrier.new_state()
    w_ih_packed = pack(w_ih.T)
    w_hh_packed, w_hr_packed = _packed([block], w_hh.T, w_hr.T)
    loop = functools.partial(_forward_sequence, kind, xp, w_hh, w_hh_packed, np.ascontiguousarray(b_ih),
                             np.ascontiguousarray(b_hh), lengths, hs, cs, saved, y, training, w_hr, w_hr_packed, r,
                             ready, block.start, block.end, True)
    ahead = functools.partial(_projection_thread, ready, x2d, w_ih_packed, xp.reshape(T * B, -1), B, _ramp(T * B, B))
    with _one_blas_thread():
        return _in_parallel([loop, ahead])[0]


def _projection_thread(ready, *args):
    """``_project_ahead`` on its thread; should it fail, the time loop waiting for it is released
    (``barrier.abort``) before the error goes on."""
    try:
        _project_ahead(ready, *args)
    except BaseException:
        barrier.abort(ready)
        raise


@njit(nogil=True, **_JIT)
def _project_ahead(ready, x2d, w_ih_packed, xp2d, B, chunks):
    """``xp2d = x2d @ W_ih^T`` (all steps' input projections, B rows a step) through the micro-kernel against
    ``w_ih_packed`` (W_ih^T packed), in the row ranges ``chunks`` of whole steps (``_ramp``: first one step, so that
    the loop can start at once, then twice as many each time up to ``_PROJECTION_ROWS`` rows), in order, each
    published on ``ready`` as the number of steps written."""
    for i in range(len(chunks)):
        r0, r1 = chunks[i, 0], chunks[i, 1]
        _project_rows(x2d[r0:r1], w_ih_packed, xp2d[r0:r1])
        barrier.publish(ready, r1 // B)


def _forward_fused(kind, blocks, x, w_ih, w_hh, b_ih, b_hh, lengths, hs, cs, saved, y, training, w_hr, r):
    """The forward recurrence with the input projection fused into each step's GEMM: ``gates_t = [x_t | h] [W_ih |
    W_hh]^T + (b_ih + b_hh)`` as one micro-kernel pass (``microkernel.matmul2_packed``) against ``[W_ih | W_hh]^T``
    packed once per call, the summed biases the sums' start. No [T, B, G*H] projection is written and read back,
    and the x part runs at the micro-kernel's speed. LSTM and RNN (the GRU's n gate needs its x and h parts
    apart). Returns the slot of ``hs``/``cs`` holding the final state."""
    dtype = y.dtype
    w_packed = _pack_two(w_ih, w_hh)
    bias = pack_bias(b_ih.astype(dtype) + b_hh.astype(dtype))
    (w_hr_packed,) = _packed(blocks, w_hr.T)
    with _recurrence_blas(len(y[0])):
        return _in_row_blocks(_fused_sequence, blocks, kind, x, w_packed, bias, w_hh.shape[0], lengths, hs, cs, saved,
                              y, training, w_hr, w_hr_packed, r)


def _pack_two(w_ih, w_hh):
    """``pack(np.concatenate((w_ih, w_hh), axis=1).T)`` without the concatenated copy: each part packed into its
    rows of the panels (``pack_into``). The same array; on the Intel Xeon of RESULTS.md "Session 24" 0.1-0.4x the
    time (0.02 against 0.24 ms at I = H = 128, 0.17 against 1.11 at 256, 5.0 against 13.1 at 1024): 1-8 % of a
    fused LSTM forward at B = 16..32, H = 128..256."""
    n_in = w_ih.shape[1]
    packed = memory.empty(packed_shape(n_in + w_hh.shape[1], w_hh.shape[0], w_hh.dtype), w_hh.dtype)
    _pack_into(w_ih.T, packed[:, :n_in])
    _pack_into(w_hh.T, packed[:, n_in:])
    return packed


@njit(nogil=True, **_JIT)
def _fused_sequence(kind, x, w_packed, bias, GH, lengths, hs, cs, saved, y, training, w_hr, w_hr_packed, r, b0, b1,
                    packed):
    """``_forward_sequence`` with the input projection in the step's GEMM (``_forward_fused``), for the rows
    ``b0 <= b < b1``, and one cell pass per step over the block's rows (``_cells_forward``)."""
    _full_width_vectors()
    T = y.shape[0]
    gates = np.empty((b1 - b0, GH), y.dtype)
    projected = w_hr.shape[0] > 0
    hp = np.empty((b1 - b0, w_hr.shape[0]), y.dtype)
    y_cells = np.empty((b1 - b0, w_hr.shape[1] if projected else 0), y.dtype)  # as in _forward_sequence
    lens = lengths[b0:b1]
    scratch, scratch_hr = scratch_tile(w_packed), scratch_tile(w_hr_packed)
    for t in range(T):
        cur, nxt = (t, t + 1) if training else (t & 1, (t + 1) & 1)
        slot = t if training else 0
        matmul2_packed(x[t][b0:b1], hs[cur][b0:b1], w_packed, bias, gates, scratch)
        h_new = r[slot][b0:b1] if projected else hs[nxt][b0:b1]
        _cells_forward(kind, gates, hs[cur][b0:b1], cs[cur][b0:b1], h_new, cs[nxt][b0:b1], saved[slot][b0:b1],
                       y_cells if projected else y[t][b0:b1], lens, t, training)
        for b in range(b0, b1):
            if t >= lengths[b]:  # past this sequence's length: state frozen, output zero
                _copy(hs[cur, b], hs[nxt, b])
                _copy(cs[cur, b], cs[nxt, b])
                y[t, b] = 0.0
                if projected:
                    r[slot, b] = 0.0  # the projection GEMM and dW_hr read every row
        if projected:
            matmul_packed(r[slot][b0:b1], w_hr_packed, hp, False, scratch_hr)
            for b in range(b0, b1):
                if t < lengths[b]:
                    _copy(hp[b - b0], hs[nxt, b])
                    _copy(hp[b - b0], y[t, b])
    return T if training else T & 1


def _forward_units(kind, units, x2d, w_ih, w_hh, b_ih, b_hh, lengths, hs, cs, saved, y, training, fused):
    """The forward recurrence with the HIDDEN UNITS split over threads (``plan``'s "units" step), all rows in every
    thread: thread ``k`` owns the units ``units[k] = (u0, u1)``, i.e. the gate columns ``g * H + u`` for each gate
    ``g`` and ``u0 <= u < u1``, packs those rows of ``[W_ih | W_hh]`` (``fused``) or of ``W_hh`` once per call,
    gate-major, and per step computes its [B, G * Hs] gates with one micro-kernel pass over the whole ``h_t`` and
    runs the cell pass on its units (``_unit_sequence``). Not fused, each thread first computes its own units'
    columns of the input projection of all steps (``_project_own_units``: no second hand-off, W_ih packed by both
    threads at once, and each thread reads back only what it wrote; LSTM inference on Zen 4, 2 threads, B = 1..7,
    H = 256..1024: 0.73-1.02x the time of all units' projection on both threads first (and one 0.67, the old call in
    a slow spell), median about 0.93, benchmarks/RESULTS.md "Session 21"; on AVX2 builds too since session 29, where
    OpenBLAS had computed all units' projection first). The threads meet once per step (kernels/barrier.py), because
    each one's next step reads every unit of ``h_t``. LSTM (without projection), GRU and RNN; the GRU only
    projection-first.

    Each output element is the same sum in the same order as in the row split (the micro-kernel's lanes are
    independent) and the same cell code, so the results are bitwise those of the row split's path of the same kind
    (fused or projection-first) on one thread. Returns the slot of ``hs``/``cs`` holding the final state.

    The threads are ``_in_parallel``'s: this one and a pool's, each a distinct OS thread, so a thread that waits at
    the barrier never waits for work queued behind itself. Calls from several Python threads at once share the
    pool: one call's second thread may then queue behind another call's, and its first thread waits (yielding the
    core) until it starts; a delay, not a deadlock."""
    T, B, _ = y.shape
    dtype = y.dtype
    x = x2d.reshape(T, B, x2d.shape[1])
    bias = b_ih.astype(dtype) + b_hh.astype(dtype) if fused else np.empty(0, dtype)  # as _forward_fused sums
    b_ih, b_hh = np.ascontiguousarray(b_ih, dtype), np.ascontiguousarray(b_hh, dtype)
    state = barrier.new_state()
    pw = panel_width(dtype)
    calls = [functools.partial(_unit_sequence if k == 0 else _unit_thread, state, kind, k, len(units), u0, u1, x,
                               w_ih, w_hh, b_ih, b_hh, bias, lengths, hs, cs, saved, y, training, fused, pw,
                               *_unit_buffers(T * B, x.shape[2], w_hh.shape[1], _GATES[kind] * (u1 - u0), fused,
                                              dtype), *(() if k == 0 else (_NO_GO, 0)))
             for k, (u0, u1) in enumerate(units)]
    return _in_parallel(calls, functools.partial(barrier.abort, state), go_first=True)[0]


def _unit_buffers(rows, n_in, H, N, fused, dtype):
    """One ``_unit_sequence`` thread's large arrays, from ``memory`` (recycled between calls; allocated in the
    compiled loop, the pool's threads took fresh pages for them in some calls, depending on the C library's heap:
    up to 12288 page faults, 18-32 ms of system time, in a one-step forward at H = 1024 on 2 threads of a Zen 4,
    benchmarks/RESULTS.md "Session 27"): W_hh's (``[W_ih | W_hh]``'s where ``fused``) and W_ih's packed rows, and
    the own units' input projections ``[rows, N]`` (not ``fused``; else empty)."""
    K = (n_in if fused else 0) + H
    packed = memory.empty(packed_shape(K, N, dtype), dtype)
    packed_in = memory.empty((0, 0, 0) if fused else packed_shape(n_in, N, dtype), dtype)
    xm = memory.empty((0, 0) if fused else (rows, N), dtype)
    return packed, packed_in, xm


def _unit_thread(state, *args):
    """``_unit_sequence`` on a crew thread of the unit split; should it fail, the other threads are released from
    the barrier (they would wait for it forever) before the error goes on (the calling thread's own part runs
    ``_unit_sequence`` itself, released by ``_in_parallel``'s ``release``)."""
    try:
        return _unit_sequence(state, *args)
    except BaseException:
        barrier.abort(state)
        raise


@njit(nogil=True, **_JIT)
def _unit_sequence(state, kind, k, threads, u0, u1, x, w_ih, w_hh, b_ih, b_hh, bias, lengths, hs, cs, saved, y,
                   training, fused, pw, packed, packed_in, xm, go, round_):
    """Thread ``k`` of ``threads`` in ``_forward_units``: the units ``u0 <= u < u1`` of every row and step.

    One barrier per step is enough, also with inference's two ping-pong slots: at step t each thread reads all of
    slot ``cur`` and writes only its units of slot ``nxt``. A thread can only write slot ``nxt`` of step t after the
    barrier of step t - 1, which every thread passes only after its own reads of step t - 1, the last ones of that
    slot (``nxt`` of step t is ``cur`` of step t - 1); and it reads slot ``cur`` of step t only after the barrier of
    step t - 1, which every thread reaches after writing its units of that slot. Its large arrays come from the
    caller (``_unit_buffers``). Returns the final state's slot, or -1 when another thread failed (``barrier.abort``).
    ``go``, ``round_``: ``_in_parallel``'s ``go_first`` (the calling thread's part says the round has started;
    empty elsewhere)."""
    _full_width_vectors()
    if go.size:
        barrier.publish(go, round_)
    T, B, H = y.shape
    G = w_hh.shape[0] // H
    Hs = u1 - u0
    N = G * Hs
    # This thread's gate rows, gate-major: local column g * Hs + j is global gate row g * H + u0 + j, packed
    # ([W_ih | W_hh] fused, else W_hh) as pack() packs the transposed rows (pack_rows_into: no gathered copy).
    rows = np.empty(N, np.int64)
    for g in range(G):
        for j in range(Hs):
            rows[g * Hs + j] = g * H + u0 + j
    n_in = w_ih.shape[1] if fused else 0
    P = (N + pw - 1) // pw
    if fused:
        microkernel.pack_rows_into(w_ih, rows, packed)
    microkernel.pack_rows_into(w_hh, rows, packed, n_in)
    if not fused:  # this thread's units' input projections, all steps, gate-major as the gates: [T * B, N]
        _project_own_units(x.reshape(T * B, x.shape[2]), w_ih, rows, packed_in, xm)
    bias_k = np.zeros((P, pw), y.dtype)
    for n in range(N):
        if fused:
            bias_k[n // pw, n % pw] = bias[rows[n]]
    gates = np.empty((B, N), y.dtype)
    if not training:  # an empty array of this thread's own (_private_empty)
        saved = _private_empty(saved)
    scratch = scratch_tile(packed)
    for t in range(T):
        cur, nxt = (t, t + 1) if training else (t & 1, (t + 1) & 1)
        slot = t if training else 0
        if fused:
            matmul2_packed(x[t], hs[cur], packed, bias_k, gates, scratch)
        else:
            matmul_packed(hs[cur], packed, gates, t & 1 == 1, scratch)
        _unit_cells(kind, fused, gates, xm[t * B:(t + 1) * B], b_ih, b_hh, hs[cur], cs[cur], hs[nxt],
                    cs[nxt], saved[slot], y[t], lengths, t, training, u0, Hs)
        if not barrier.wait(state, threads, t):
            return -1
    return T if training else T & 1


@njit(nogil=True, **_JIT)
def _project_own_units(x2d, w_ih, rows, packed, out):
    """out = ``x2d @ w_ih[rows].T``: one unit-split thread's columns of the input projection (``rows``: its gate
    rows, gate-major), ``_PROJECTION_ROWS`` rows at a time through the micro-kernel against those rows of W_ih,
    packed into ``packed``. Each element is the same sum in the same order as in ``_input_projection`` (the tiles'
    lanes are independent of the columns a call takes), so the bits are the row split's."""
    microkernel.pack_rows_into(w_ih, rows, packed)
    for r0 in range(0, x2d.shape[0], _PROJECTION_ROWS):
        r1 = min(r0 + _PROJECTION_ROWS, x2d.shape[0])
        matmul_packed(x2d[r0:r1], packed, out[r0:r1])


@njit(inline="always", **_JIT)
def _private_empty(saved):
    """An empty array shaped as ``saved`` (inference's (1, B, 0), strides 0: every row one address), allocated by
    the calling thread. ``_cell_forward`` stores what the backward needs under a run-time ``training`` flag, which
    compiles to masked stores with an all-zero mask in inference; with one array for all threads those stores
    aim at one address from every thread, and the threads slowed each other as if they wrote one cache line
    (``_lstm_units``). Each thread's own empty array has an address of its own."""
    return np.empty(saved.shape, saved.dtype)


@njit(**_JIT_CELLS)
def _unit_cells(kind, fused, gates, xp, b_ih, b_hh, h, c, h_new, c_new, save, y, lengths, t, training, u0, Hs):
    """The cell pass of the units ``u0 <= u < u0 + Hs`` of every row for one step of the unit split, from ``gates``
    [B, G * Hs] (gate-major over these units): the pre-activations with the biases in (``fused``), or ``h W_hh^T``
    alone, to which the input projection of step t (these units' own: row b's at ``xp[b, g * Hs + j]``) and the
    biases are added here. Writes these units of ``h_new``, ``c_new``, ``y`` and ``save``; rows past their length
    keep their state and output zero. Not fused, the rows go through the row split's ``_cell_forward`` (the same
    compiled loop, vectorised); fused (the LSTM and RNN), every value is the same expression as in
    ``_cells_forward``, one unit at a time. So the results are bitwise those of the row split. Its arrays do not
    overlap (distinct slots of hs, cs)."""
    _full_width_vectors()
    _arguments_do_not_overlap()
    H = h.shape[1]
    zero = h.dtype.type(0)
    if not fused:  # the row split's own cell pass on this thread's units, all rows in one call
        _cell_forward(kind, xp, gates, b_ih, b_hh, h, c, h_new, c_new, save, y, lengths, t, training, u0, 0, Hs)
    for b in range(gates.shape[0]):
        hn = h_new[b]
        yb = y[b]
        if t >= lengths[b]:  # past this sequence's length: state frozen, output zero
            hb = h[b]
            for j in range(u0, u0 + Hs):
                hn[j] = hb[j]
                yb[j] = zero
            if kind == LSTM:
                cb = c[b]
                cn = c_new[b]
                for j in range(u0, u0 + Hs):
                    cn[j] = cb[j]
            continue
        if not fused:
            continue
        a = gates[b]
        if kind == LSTM:  # as _cells_forward computes it
            if training:
                _lstm_units(a, Hs, c[b], c_new[b], hn, yb, save[b], u0, Hs, H, True)
            else:
                _lstm_units(a, Hs, c[b], c_new[b], hn, yb, save[b], u0, Hs, H, False)
        elif kind == RNN_TANH:
            for j in range(Hs):
                hj = _tanh(a[j])
                hn[u0 + j] = hj
                yb[u0 + j] = hj
        else:
            for j in range(Hs):
                hj = max(a[j], zero)
                hn[u0 + j] = hj
                yb[u0 + j] = hj


@njit(inline="always", **_JIT)
def _lstm_units(a, gs, cb, cn, hn, yb, sv, u0, S, H, training):
    """One row's LSTM update of the units ``u0 <= u < u0 + S`` from ``a``, the pre-activations with the biases in
    (gate g of unit u0 + j at ``a[g * gs + j]``): writes ``cn[u]``, ``hn[u]``, ``yb[u]`` and with
    ``training`` what the backward needs (gate g of unit u at ``sv[g * H + u]``, then tanh(c') at ``sv[4 * H + u]``).
    ``_cells_forward`` and ``_unit_cells`` compute the fused step's cells here, one source for the same bits.

    Inlined into its callers, which pass ``training`` as a constant (one call for True, one for False), so that the
    compiled loop has no store that depends on it. A run-time flag was compiled as masked stores into ``sv`` with
    an all-zero mask in inference, where ``saved`` is one empty array ((1, B, 0), strides 0) whose rows are all one
    address: on AMD Zen 5 (2 vCPUs, RESULTS.md "Session 35") the row split's two threads then slowed each other as
    if they wrote one cache line (LSTM inference B = 128, I = 32, H = 128, the time loops alone: medians 5.8-13.0
    ms a call, against 5.3-6.1 with an empty array of each thread's own, whose stores are as masked; whole calls
    0.85-0.94x the time once the stores were gone)."""
    for j in range(S):
        i = _sigmoid(a[j])
        f = _sigmoid(a[gs + j])
        g = _tanh(a[2 * gs + j])
        o = _sigmoid(a[3 * gs + j])
        u = u0 + j
        cj = _fma(f, cb[u], i * g)
        tanh_c = _tanh(cj)
        cn[u] = cj
        hj = o * tanh_c
        hn[u] = hj
        yb[u] = hj
        if training:
            sv[u] = i
            sv[H + u] = f
            sv[2 * H + u] = g
            sv[3 * H + u] = o
            sv[4 * H + u] = tanh_c


@njit(**_JIT_CELLS)
def _cells_forward(kind, gates, h, c, h_new, c_new, save, y, lengths, t, training):
    """The elementwise update of one step for a block of rows (those with ``t < lengths[b]``), from ``gates`` = the
    pre-activations with the biases in (``_fused_sequence``); writes ``h_new``, ``y`` (H wide),
    ``c_new`` and what backward needs. One call per step, not per row; its arrays do not overlap."""
    _full_width_vectors()
    _arguments_do_not_overlap()
    H = h_new.shape[1]
    zero = h.dtype.type(0)
    for b in range(gates.shape[0]):
        if t >= lengths[b]:
            continue
        a = gates[b]
        hn = h_new[b]
        yb = y[b]
        if kind == LSTM:
            if training:  # a constant in each inlined copy: no store that depends on it (_lstm_units)
                _lstm_units(a, H, c[b], c_new[b], hn, yb, save[b], 0, H, H, True)
            else:
                _lstm_units(a, H, c[b], c_new[b], hn, yb, save[b], 0, H, H, False)
        elif kind == RNN_TANH:
            for j in range(H):
                hj = _tanh(a[j])
                hn[j] = hj
                yb[j] = hj
        else:
            for j in range(H):
                hj = max(a[j], zero)
                hn[j] = hj
                yb[j] = hj


@njit(**_JIT)
def _cell_forward(kind, xp, gh, b_ih, b_hh, h, c, h_new, c_new, save, y, lengths, t, training, u0, x0, xs):
    """The elementwise update of one step for a block of rows (row b of each 2-D argument: one sequence; those with
    ``t < lengths[b]`` only, the others are the caller's), of the units ``u0 <= u < u0 + S``, from gh = h W_hh^T (no
    biases) of these units, gate-major (gate g of unit u0 + j at ``gh[b, g * S + j]``, S = ``gh.shape[1] // G``) and
    xp = x W_ih^T: gate g of unit u0 + j at ``xp[b, x0 + g * xs + j]``, a whole row (``x0`` = u0, ``xs`` = H) or
    these units' own, gate-major as gh (``x0`` = 0, ``xs`` = S). The row split passes whole rows (u0 = 0, S = H), the
    unit split its own units' gates: one compiled function for both, so that both give the same bits (two copies of
    the same loop may contract ``f * c + i * g`` into different fused multiply-adds). h_new, c_new, save, y and the
    biases are whole rows, written and read at these units only; y (H wide) gets h_new's values. A function of
    its own, not inlined, so that its rows can be declared not to overlap (vectorised loops); one call a step for
    all rows, not one a row (LSTM float32 on a Zen 5: 129-134 ns a row of 128 units against 211-231 with a call a
    row; forwards 4-8 % faster where the cell pass is a fifth of a step, RESULTS.md "Session 36")."""
    _full_width_vectors()
    _arguments_do_not_overlap()
    for b in range(gh.shape[0]):
        if t < lengths[b]:
            _cell_units(kind, xp[b], gh[b], b_ih, b_hh, h[b], c[b], h_new[b], c_new[b], save[b], y[b], training, u0,
                        x0, xs)


@njit(inline="always", **_JIT)
def _cell_units(kind, xp, gh, b_ih, b_hh, h, c, h_new, c_new, save, y, training, u0, x0, xs):
    """``_cell_forward`` of one row. The rows are sliced at ``u0`` up front, so that every index in the loops is a
    loop counter plus a multiple of a length, which LLVM can tell is not negative (an index ``u0 + j`` kept Numba's
    negative-index check and the loop scalar). What the backward needs is stored under the run-time ``training``
    flag: masked stores into an empty ``save`` in inference (each thread's own, ``_private_empty``), which keep the
    one compiled loop's bits for both (a copy with ``training`` a constant left out the values it does not store,
    and "reassoc" then let LLVM fold them into what follows: other bits)."""
    # Not h's width: with a projection h is P wide and h_new is o * tanh(c'). max(., 0): LLVM then knows that H + j
    # is not negative where the loop runs over S, not H (else Numba's negative-index check keeps the loop scalar).
    H = max(h_new.shape[0], 0)
    xs = max(xs, 0)
    one, zero = h.dtype.type(1), h.dtype.type(0)  # typed, or float32 arithmetic would promote to float64
    x, bi, bh, hn, yb = xp[x0:], b_ih[u0:], b_hh[u0:], h_new[u0:], y[u0:]
    if kind == LSTM:
        S = gh.shape[0] // 4
        cb, cn, sv = c[u0:], c_new[u0:], save[u0:]
        for j in range(S):
            i = _sigmoid(x[j] + bi[j] + gh[j] + bh[j])
            f = _sigmoid(x[xs + j] + bi[H + j] + gh[S + j] + bh[H + j])
            g = _tanh(x[2 * xs + j] + bi[2 * H + j] + gh[2 * S + j] + bh[2 * H + j])
            o = _sigmoid(x[3 * xs + j] + bi[3 * H + j] + gh[3 * S + j] + bh[3 * H + j])
            cj = f * cb[j] + i * g
            tanh_c = _tanh(cj)
            cn[j] = cj
            hj = o * tanh_c
            hn[j] = hj
            yb[j] = hj
            if training:
                sv[j] = i
                sv[H + j] = f
                sv[2 * H + j] = g
                sv[3 * H + j] = o
                sv[4 * H + j] = tanh_c
    elif kind == GRU:
        S = gh.shape[0] // 3
        hb, sv = h[u0:], save[u0:]
        for j in range(S):
            r = _sigmoid(x[j] + bi[j] + gh[j] + bh[j])
            z = _sigmoid(x[xs + j] + bi[H + j] + gh[S + j] + bh[H + j])
            gh_n = gh[2 * S + j] + bh[2 * H + j]
            n = _tanh(x[2 * xs + j] + bi[2 * H + j] + r * gh_n)
            hj = (one - z) * n + z * hb[j]
            hn[j] = hj
            yb[j] = hj
            if training:
                sv[j] = r
                sv[H + j] = z
                sv[2 * H + j] = n
                sv[3 * H + j] = gh_n
    elif kind == RNN_TANH:
        for j in range(gh.shape[0]):
            hj = _tanh(x[j] + bi[j] + gh[j] + bh[j])
            hn[j] = hj
            yb[j] = hj
    else:
        for j in range(gh.shape[0]):
            hj = max(x[j] + bi[j] + gh[j] + bh[j], zero)
            hn[j] = hj
            yb[j] = hj


# ------------------------------------------------------------------------------------------ backward

def lstm_backward(dy, dh_n, dc_n, cache):
    return _backward(dy, dh_n, dc_n, cache)


def gru_backward(dy, dh_n, cache):
    dx, dh0, _, dw_ih, dw_hh, db_ih, db_hh = _backward(dy, dh_n, None, cache)
    return dx, dh0, dw_ih, dw_hh, db_ih, db_hh


def rnn_backward(dy, dh_n, cache):
    dx, dh0, _, dw_ih, dw_hh, db_ih, db_hh = _backward(dy, dh_n, None, cache)
    return dx, dh0, dw_ih, dw_hh, db_ih, db_hh


def _backward(dy, dh_n, dc_n, cache):
    kind, x2d, w_ih, w_hh, lengths, hs, cs, saved, w_hr, r = require_cache(cache)
    T, B, H = len(hs) - 1, hs.shape[1], hs.shape[2]  # H: the state's width (P with a projection)
    dtype = hs.dtype
    check_backward(dy, dh_n, dc_n, T, B, H, cs.shape[2] if kind == LSTM else None, dtype)
    dh = np.zeros((B, H), dtype) if dh_n is None else np.array(dh_n, dtype=dtype, order="C")
    dc = np.zeros((B, cs.shape[2]), dtype) if dc_n is None else np.array(dc_n, dtype=dtype, order="C")
    GH = w_hh.shape[0]
    # Gate-preactivation gradients of all steps: w.r.t. the input projection and w.r.t. h W_hh^T.
    # They differ only for the GRU's n gate (r * ...), so the other cells share one array.
    da_x = memory.zeros((T, B, GH), dtype)
    da_h = memory.zeros((T, B, GH), dtype) if kind == GRU else da_x
    projected = len(w_hr) > 0
    dhp = memory.zeros((T, B, H) if projected else (0, 0, 0), dtype)  # gradients w.r.t. the projected states
    hidden = GH // _GATES[kind]
    how = plan(B, kind=kind, hidden=hidden, projected=projected, backward=True, itemsize=dtype.itemsize,
               inputs=x2d.shape[1], steps=T, state=H)
    blocks = how.blocks
    backward_units = blocks[0].step == "units"
    if how.beside:
        return _backward_beside(kind, blocks[0], np.ascontiguousarray(dy, dtype), dh, dc, w_hh, lengths, hs, cs,
                                saved, da_x, da_h, x2d, w_ih)
    if backward_units:
        _backward_units(kind, blocks[0].units, np.ascontiguousarray(dy, dtype), dh, dc, w_hh, lengths, hs, cs, saved,
                        da_x, da_h)
    else:
        w_hh_packed, w_hr_packed = _packed_c(blocks, w_hh, w_hr)  # the per-step GEMMs' W_hh and W_hr, packed once
        with _recurrence_blas(B):
            _in_row_blocks(_backward_sequence, blocks, kind, np.ascontiguousarray(dy, dtype), dh, dc, w_hh,
                           w_hh_packed, lengths, hs, cs, saved, da_x, da_h, w_hr, w_hr_packed, dhp, _NOT_PIPED)
    # Everything that does not feed the recurrence: one GEMM each over all T*B rows, through the micro-kernel's
    # blocked GEMM (kernels/microkernel.py, gemm_packed) on all of Numba's threads; the bias gradients are summed
    # beside the weight-gradient GEMM, each block of da as the GEMM reaches it (``_weight_gradients``).
    da_x2d, da_h2d = da_x.reshape(T * B, GH), da_h.reshape(T * B, GH)
    threads = numba.get_num_threads()
    n_in = x2d.shape[1]
    h2d = hs[:T].reshape(T * B, H)
    forward_units = plan(B, threads, kind, hidden, projected, training=True, itemsize=dtype.itemsize,
                         inputs=n_in, steps=T).blocks[0].step == "units"
    if len(blocks) == 1 and threads > 1 and not forward_units and not backward_units:
        # The time loop ran on one thread (B < 8): OpenBLAS on all its threads, as before. Measured on 2 threads
        # (Zen 5, quiet): the micro-kernel GEMMs split over our threads made the step 1.15x slower at B = 1 and 4,
        # H = 1024 (wall), though faster on one thread (0.53-0.93 of OpenBLAS's step at B = 1..4).
        # Not where the forward splits the units over the threads (``plan``): OpenBLAS's workers spin for a while
        # after each call, and the next forward's threads, which meet every step, waited for the core they took
        # (training steps 1.1-5x the row split's time at B = 2..4, H = 512..1024). Nor where the backward's time loop
        # split the units (``_backward_units``): it ran on our threads too.
        dx = _matmul(da_x2d, w_ih)
        grads = (dx.reshape(T, B, n_in), dh, dc if kind == LSTM else None, _matmul(da_x2d.T, x2d),
                 _matmul(da_h2d.T, h2d), _column_sums(da_x2d), _column_sums(da_h2d))
        if projected:
            grads += (_matmul(dhp.reshape(T * B, H).T, r.reshape(T * B, r.shape[2])),)
        return grads
    if da_h is da_x:  # one GEMM da^T [x | h] for dW_ih and dW_hh, and the (equal) bias gradients
        dw_ih, dw_hh, db_ih = _weight_gradients(da_x2d, x2d, h2d, True, threads)
        db_hh = db_ih.copy()
    else:
        dw_ih, _, db_ih = _weight_gradients(da_x2d, x2d, None, True, threads)
        dw_hh, _, db_hh = _weight_gradients(da_h2d, h2d, None, True, threads)
    dx = _big_matmul(da_x2d, w_ih, threads)
    grads = (dx.reshape(T, B, n_in), dh, dc if kind == LSTM else None, dw_ih, dw_hh, db_ih, db_hh)
    if projected:
        grads += (_weight_gradients(dhp.reshape(T * B, H), r.reshape(T * B, r.shape[2]), None, False, threads)[0],)
    return grads


# The rows of da per part that ``_backward_beside``'s second thread takes at a time.
_GRADIENT_PART_ROWS = 64
# Added to the parts' claim counter when the loop's thread takes over the parts nobody claimed yet.
_HANDED_OVER = 1 << 40


def _backward_beside(kind, block, dy, dh, dc, w_hh, lengths, hs, cs, saved, da_x, da_h, x2d, w_ih):
    """The row split's one backward time loop on this thread while a second thread computes, part by part behind
    it, what the loop does not need: dx = da_x W_ih and the weight and bias gradients da^T [x | h] and the column
    sums of da (``_gradients_behind``). Before, both ran after the loop, on both threads, and the second thread idled
    through the loop.

    The rows of da (T * B, in steps) are cut into parts of about ``_GRADIENT_PART_ROWS`` rows, whole steps, from
    the last step back (the loop's order). The loop publishes the steps it has finished (``_backward_sequence``'s
    ``ready``); the second thread claims the parts one by one (an atomic counter), waits for each part's steps and
    computes its dx rows and adds its weight gradients. When the loop ends, its thread takes the parts nobody claimed
    yet (``_gradients_tail``): their dx rows, then the first half of the gate rows of their weight gradients, while
    the second thread, done with its claimed parts, computes the other half. Each weight gradient is the sum of the
    parts' sums in the parts' order, each part one ``gemm_packed`` call: its bits depend on T, B and the part size
    only, not on which thread computed which part. They differ in rounding from the other paths', which sum the
    steps forwards in one GEMM. Returns the gradients as ``_backward`` does."""
    T, B, H = dy.shape
    GH, n_in = w_ih.shape
    dtype = dy.dtype
    shared = da_h is da_x
    dw_ih, dw_hh = memory.zeros((GH, n_in), dtype), memory.zeros((GH, H), dtype)
    db_ih, db_hh = np.zeros((GH, 1), dtype), np.zeros((0 if shared else GH, 1), dtype)  # (shared: db_hh is db_ih)
    dx = memory.empty((T * B, n_in), dtype)
    w_ih_packed = _pack_panels(w_ih)
    (w_hh_packed,) = _packed_c([block], w_hh)
    ready, claims, done, handover = (barrier.new_state() for _ in range(4))
    empty = np.empty((0, 0, 0), dtype)  # no projection: W_hr, its packing and dhp
    loop = (kind, dy, dh, dc, w_hh, w_hh_packed, lengths, hs, cs, saved, da_x, da_h, np.empty((0, 0), dtype), empty,
            empty, ready, block.start, block.end, block.step == "packed")
    gradients = (claims, done, handover, da_x.reshape(T * B, GH), da_h.reshape(T * B, GH), x2d,
                 hs[:T].reshape(T * B, H), w_ih_packed, dx, dw_ih, dw_hh, db_ih, db_hh, B,
                 max(1, _GRADIENT_PART_ROWS // B),
                 panel_width(dtype))
    with _one_blas_thread():
        _in_parallel([functools.partial(_loop_and_tail, loop, ready, gradients),
                      functools.partial(_gradients_thread, ready, gradients)])
    db_ih = db_ih[:, 0]
    db_hh = db_ih.copy() if shared else db_hh[:, 0]
    return dx.reshape(T, B, n_in), dh, dc if kind == LSTM else None, dw_ih, dw_hh, db_ih, db_hh


def _loop_and_tail(loop, ready, gradients):
    """The time loop, then the parts nobody claimed (``_gradients_tail``); on failure the other thread is released
    (``barrier.abort`` of every state it may wait on) before the error goes on."""
    try:
        _backward_sequence(*loop)
        _gradients_tail(*gradients)
    except BaseException:
        for state in (ready, *gradients[:3]):
            barrier.abort(state)
        raise


def _gradients_thread(ready, gradients):
    """``_gradients_behind`` on its thread; on failure the loop's thread is released, as ``_loop_and_tail`` does."""
    try:
        _gradients_behind(ready, *gradients)
    except BaseException:
        for state in (ready, *gradients[:3]):
            barrier.abort(state)
        raise


@njit(nogil=True, **_JIT)
def _part_steps(T, steps, part):
    """Steps ``lo <= t < hi`` of part ``part``: parts of ``steps`` steps from the last step back."""
    hi = T - part * steps
    return max(0, hi - steps), hi


@njit(nogil=True, **_JIT)
def _gradients_behind(ready, claims, done, handover, da_x, da_h, x, h, w_ih_packed, dx, dw_ih, dw_hh, db_ih, db_hh,
                      B, steps, pw):
    """The second thread of ``_backward_beside``: claims parts in order, waits for each part's steps on ``ready``,
    computes its rows of ``dx`` and adds its weight gradients (all gate rows), publishing on ``done`` how many
    parts are complete; once the loop's thread has taken over (the claim returns ``_HANDED_OVER`` or more), the
    second half of the gate rows of the remaining parts. False when the other thread failed."""
    T = len(da_x) // B
    parts = (T + steps - 1) // steps
    part = 0
    while True:
        part = barrier.atomic_add(claims, 0, 1)
        if part >= parts:
            break
        lo, hi = _part_steps(T, steps, part)
        if not barrier.wait_until(ready, T - lo):
            return False
        gemm_packed(da_x[lo * B:hi * B], w_ih_packed, dx[lo * B:hi * B], GEMM_MC, GEMM_KC, False)
        _add_part_gradients(da_x, da_h, x, h, lo * B, hi * B, 0, len(dw_ih), dw_ih, dw_hh, db_ih, db_hh, pw)
        barrier.publish(done, part + 1)
    if part < _HANDED_OVER:
        return True
    if not barrier.wait_until(handover, 1):
        return False
    first = barrier.arrivals(handover) - 1
    for part in range(first, parts):
        lo, hi = _part_steps(T, steps, part)
        _add_part_gradients(da_x, da_h, x, h, lo * B, hi * B, _half_of_gates(len(dw_ih)), len(dw_ih), dw_ih, dw_hh,
                            db_ih, db_hh, pw)
    return True


@njit(nogil=True, **_JIT)
def _gradients_tail(claims, done, handover, da_x, da_h, x, h, w_ih_packed, dx, dw_ih, dw_hh, db_ih, db_hh, B, steps,
                    pw):
    """The loop's thread after the loop (``_backward_beside``): takes the parts not claimed yet, computes their dx
    rows, waits until the second thread's claimed parts are all added, then adds the first half of the gate rows of
    its parts' weight gradients. False when the other thread failed."""
    T = len(da_x) // B
    parts = (T + steps - 1) // steps
    first = min(barrier.atomic_add(claims, 0, _HANDED_OVER), parts)
    barrier.publish(handover, first + 1)
    for part in range(first, parts):
        lo, hi = _part_steps(T, steps, part)
        gemm_packed(da_x[lo * B:hi * B], w_ih_packed, dx[lo * B:hi * B], GEMM_MC, GEMM_KC, False)
    if first == parts:
        return True
    if not barrier.wait_until(done, first):
        return False
    for part in range(first, parts):
        lo, hi = _part_steps(T, steps, part)
        _add_part_gradients(da_x, da_h, x, h, lo * B, hi * B, 0, _half_of_gates(len(dw_ih)), dw_ih, dw_hh, db_ih,
                            db_hh, pw)
    return True


@njit(nogil=True, **_JIT)
def _half_of_gates(GH):
    """Where the gate rows are cut between the two threads: about half, at a multiple of 16 (whole tiles)."""
    return min(GH, (GH // 2 + 15) // 16 * 16)


@njit(nogil=True, **_JIT)
def _add_part_gradients(da_x, da_h, x, h, r0, r1, m0, m1, dw_ih, dw_hh, db_ih, db_hh, pw):
    """Over the rows ``r0:r1`` and the gate rows ``m0:m1``: ``dw_ih += da_x^T x``, ``dw_hh += da_h^T h`` and the
    column sums of da_x (and da_h) added to ``db_ih`` (``db_hh``; [GH, 1] each, ``db_hh`` empty where da_h is da_x,
    the LSTM and the RNN: one GEMM against [x] and [h] packed apart, ``gemm_packed``'s ``out2``, the sums beside it,
    its ``sums``; the GRU: [x], then [h], each with its sums), packed here (panels ``pw`` wide, ``_pack_part``)."""
    if m1 <= m0:
        return
    if len(db_hh) == 0:
        packed = _pack_part(x[r0:r1], h[r0:r1], pw)
        gemm_packed(da_x[r0:r1].T[m0:m1], packed, dw_ih[m0:m1], GEMM_MC, GEMM_KC, True, dw_hh[m0:m1], None,
                    db_ih[m0:m1, 0])
    else:
        packed = _pack_part(x[r0:r1], x[r0:r1, :0], pw)
        gemm_packed(da_x[r0:r1].T[m0:m1], packed, dw_ih[m0:m1], GEMM_MC, GEMM_KC, True, None, None,
                    db_ih[m0:m1, 0])
        packed = _pack_part(h[r0:r1], h[r0:r1, :0], pw)
        gemm_packed(da_h[r0:r1].T[m0:m1], packed, dw_hh[m0:m1], GEMM_MC, GEMM_KC, True, None, None,
                    db_hh[m0:m1, 0])


@njit(nogil=True, **_JIT)
def _pack_part(b1, b2, pw):
    """``_pack_panels(b1, b2)`` (C-ordered rows; panels ``pw`` wide) row by row."""
    K, N1 = b1.shape
    N2 = b2.shape[1]
    P1 = (N1 + pw - 1) // pw
    P2 = P1 + (N2 + pw - 1) // pw
    packed = np.empty((P2, K, pw), b1.dtype)
    for k in range(K):
        for p in range(P2):
            row = packed[p, k]
            for j in range(pw):
                if p < P1:
                    n = p * pw + j
                    row[j] = b1[k, n] if n < N1 else 0.0
                else:
                    n = (p - P1) * pw + j
                    row[j] = b2[k, n] if n < N2 else 0.0
    return packed


def _weight_gradients(a, b1, b2, sums, threads):
    """``(a^T b1, a^T b2, column sums of a)`` for ``a`` [K, M], ``b1`` [K, N1] and ``b2`` [K, N2] (None: no second
    product) and ``sums`` (False: None for the sums): the weight gradients ``da^T x`` and ``da^T h`` and the bias
    gradients of all T*B rows, each an array of its own. One blocked GEMM against ``b1`` and ``b2`` packed apart
    (``_pack_panels``), the sums beside it (``gemm_packed``'s ``sums``: the bits of the column of ones that sessions
    8-39 packed, whose panel cost up to 12 % of the GEMM), ``a^T`` read in place (its rows are ``a``'s columns, so
    each k's row values are adjacent) and packed once for all (``gemm_packed``'s ``out2``), split over ``threads`` by
    rows of the results (``_split_gemm_packed``): every element is the same sum in the same order on any number of
    threads, and the same as where [b1 | b2 | 1] was one result (until session 32), whose column slices cost a copy
    each (1.3 ms of a 22 ms backward at T = 100, B = 4, I = H = 512, 2 threads)."""
    K, M = a.shape
    outs = [memory.empty((M, b1.shape[1]), a.dtype)]
    if b2 is not None:
        outs.append(memory.empty((M, b2.shape[1]), a.dtype))
    bias = np.empty(M, a.dtype) if sums else None
    packed = _pack_panels(b1, *(() if b2 is None else (b2,)))
    _split_gemm_packed(a.T, packed, outs[0], threads, False, *outs[1:], sums=bias)
    return outs[0], outs[1] if b2 is not None else None, bias


def _pack_panels(*matrices):
    """``microkernel.pack`` of each of ``matrices`` (2-D, the same number of rows), one after the other in one
    array, each from a panel of its own (``gemm_packed``'s ``out2`` and ``out3``); nothing built: a NumPy copy per
    panel (one strided block copy each: 3-7x the speed of a compiled loop over rows that writes all panels, measured
    at T*B = 12800, I = H = 1024)."""
    K = matrices[0].shape[0]
    dtype = matrices[0].dtype
    pw = panel_width(dtype)
    counts = [-(-m.shape[1] // pw) for m in matrices]
    packed = memory.empty((sum(counts), K, pw), dtype)
    first = 0
    for m, count in zip(matrices, counts):
        N = m.shape[1]
        for p in range(count):
            c0, c1 = p * pw, min(N, (p + 1) * pw)
            panel = packed[first + p]
            panel[:, :c1 - c0] = m[:, c0:c1]
            if c1 - c0 < pw:
                panel[:, c1 - c0:] = 0
        first += count
    return packed


def _packed_c(blocks, *matrices):
    """``_packed`` for C-ordered matrices (the backward's W_hh and W_hr): a NumPy copy per panel, 0.35-0.5x the
    time of ``microkernel.pack`` (1.5 vs 4.3 ms at H = 1024)."""
    use = any(block.step == "packed" for block in blocks)
    return [_pack_panels(m) if use and m.size else np.empty((0, 0, 0), m.dtype) for m in matrices]


def _big_matmul(a, b, threads):
    """``a @ b`` (``a`` [M, K] C-ordered, e.g. ``dx = da W_ih``) through the blocked micro-kernel GEMM, ``b`` packed
    once. Also for few rows (T*B = 100 < I): packing ``a^T`` instead and computing ``(b^T a^T)^T`` was slower at
    every shape tried (T*B = 100..400, H = 128..1024)."""
    out = memory.empty((a.shape[0], b.shape[1]), a.dtype)
    _split_gemm_packed(a, _pack_panels(b), out, threads)
    return out


def _split_gemm_packed(a, packed, out, threads, add=False, out2=None, out3=None, sums=None):
    """``gemm_packed(a, packed, out, add=add, out2=out2, out3=out3, sums=sums)`` with the rows of ``a`` and the
    results split into up to ``threads`` blocks of whole register tiles, one thread each; ``GEMM_MC_PACKED`` rows a
    block where ``a`` is transposed (da^T: its blocks are packed), else ``GEMM_MC``."""
    tiles = -(-len(a) // 8)
    parts = max(1, min(threads, tiles // 4))
    mc = GEMM_MC_PACKED if a.ndim == 2 and a.shape[1] > 1 and a.strides[1] != a.itemsize else GEMM_MC
    # mc and kc passed: a call that leaves out arguments with defaults misses Numba's fast dispatch (~50 us a call)
    rows = [slice(8 * t0, 8 * t1) for t0, t1 in _even_blocks(tiles, parts)]
    _in_parallel([functools.partial(gemm_packed_any, a[r], packed, out[r], mc, _gemm_kc(), add,
                                    None if out2 is None else out2[r], None if out3 is None else out3[r],
                                    None if sums is None else sums[r])
                  for r in rows])


# Dense layers (``lstmzoo.nn.Linear`` on NumPy arrays, ``dense_forward`` and ``dense_backward``): their GEMMs run on
# the kernels' threads through the micro-kernel from this many multiply-adds and this many outputs (below, NumPy's
# ``@``). NumPy's OpenBLAS starts its workers for products of 10^6 multiply-adds and up (measured: NumPy 2.4.6,
# OpenBLAS 0.3.31, SkylakeX kernels; other builds' thresholds not measured), and they spin for about 0.1 s after
# each call: in a training step the recurrent kernels' threads that follow shared the two cores with them
# (benchmarks/train_step.py, RESULTS.md "Session 29": the LSTM's forward up to 12x and its backward up to 14x its
# time in the kernel tables).
_MIN_DENSE_MACS, _MIN_DENSE_OUTPUTS = 1 << 18, 16
# ... and on more than one of the kernels' threads from this many multiply-adds a GEMM (below, one part on the
# calling thread): waking a pool thread that sleeps took 60-90 us on the Zen 4 VM of benchmarks/RESULTS.md
# "Session 31" (a no-op through _in_parallel), more than half of a GEMM of a few million multiply-adds on one core
# (140 x 128 x 100: forward 57 us on one part, 144 on two). The input projection's column split
# (_MIN_COLUMN_SPLIT_MACS) starts where it did. The bits do not depend on the parts.
_MIN_DENSE_SPLIT_MACS = _MIN_COLUMN_SPLIT_MACS


def dense_forward(x, weight, bias=None):
    """``x @ weight.T + bias`` for ``x`` [N, I], ``weight`` [O, I] and ``bias`` [O] (or None), one dtype: a dense
    (``Linear``) layer's forward. From ``_MIN_DENSE_MACS`` multiply-adds and ``_MIN_DENSE_OUTPUTS`` outputs through
    the micro-kernel's blocked GEMM (``gemm_packed``) against ``weight.T`` packed here, on Numba's threads (split by
    rows, or by column panels where the rows are too few for a part each), the sums starting from the bias; the
    same bits on any number of threads. Smaller or narrower products: NumPy's ``x @ weight.T`` (then ``+ bias``),
    the narrow ones from ``_MIN_DENSE_MACS`` with OpenBLAS on one thread (``_one_blas_thread``): its workers
    would otherwise start and spin beside the kernels' threads."""
    N, n_in = x.shape
    outputs = weight.shape[0]
    if not _dense_on_kernels(N, n_in, outputs):
        with _one_blas_thread(N * n_in * outputs >= _MIN_DENSE_MACS):
            y = x @ weight.T
        return y if bias is None else y + bias
    out = memory.empty((N, outputs), np.result_type(x, weight))
    if bias is not None:
        out[:] = bias
    _dense_gemm(np.ascontiguousarray(x), pack(weight.T), out, bias is not None)
    return out


def dense_backward(dout, x, weight, bias=True):
    """``(dx, dweight, dbias)`` of ``dense_forward(x, weight, bias)`` for the gradient ``dout`` [N, O] of its
    output: ``dout @ weight`` (None where ``weight`` is None: only the weight gradient, as an attention's ``W``
    needs), ``dout.T @ x`` and the column sums of ``dout`` (None without ``bias``). From
    ``_MIN_DENSE_MACS`` multiply-adds and ``_MIN_DENSE_OUTPUTS`` outputs on Numba's threads through the micro-kernel:
    the weight gradient as one GEMM ``dout^T x`` and the bias gradients beside it (``_weight_gradients``), dx
    against ``weight`` packed once; the same bits on any number of threads. Else NumPy's ``@`` and
    ``dout.sum(axis=0)``."""
    N, outputs = dout.shape
    n_in = x.shape[1]
    if not _dense_on_kernels(N, n_in, outputs):
        with _one_blas_thread(N * n_in * outputs >= _MIN_DENSE_MACS):
            dweight, dx = dout.T @ x, None if weight is None else dout @ weight
        return dx, dweight, dout.sum(axis=0) if bias else None
    dout, x = np.ascontiguousarray(dout), np.ascontiguousarray(x)
    threads = _dense_threads(N * n_in * outputs)
    if outputs <= n_in:
        # fewer outputs than inputs (a convolution's Unfold + Linear: 54,080 rows of 144 inputs, 32 outputs): the
        # transposed product x^T dout, packing dout instead of [x | 1], and the bias gradients as column sums.
        # The same bits: each element is the same chain of multiply-adds over the rows, in order, either way.
        # 0.38-0.66x the time of dout^T [x | 1] at N x I x O = 54080 x 144 x 32 .. 5120 x 576 x 96 (one and two
        # threads of the Zen 4 of benchmarks/RESULTS.md "Session 30", loaded).
        transposed = memory.empty((n_in, outputs), np.result_type(dout, x))
        _split_gemm_packed(x.T, _pack_panels(dout), transposed, threads)
        dweight, dbias = transposed.T, _column_sums(dout) if bias else None
    else:
        dweight, _, dbias = _weight_gradients(dout, x, None, bias, threads)
    dx = None
    if weight is not None:
        dx = memory.empty((N, weight.shape[1]), dweight.dtype)
        _dense_gemm(dout, _pack_panels(weight), dx, False)
    return dx, dweight, dbias


def _dense_on_kernels(rows, inputs, outputs):
    return rows * inputs * outputs >= _MIN_DENSE_MACS and outputs >= _MIN_DENSE_OUTPUTS


def _dense_threads(macs):
    """The parts a dense GEMM of ``macs`` multiply-adds is split into: Numba's threads from
    ``_MIN_DENSE_SPLIT_MACS``, else one."""
    return numba.get_num_threads() if macs >= _MIN_DENSE_SPLIT_MACS else 1


def _dense_gemm(a, packed, out, add):
    """``out (+)= a @ b`` (``packed = pack(b)``) on Numba's threads: by rows where each thread gets 4 register tiles
    of them or more (``_split_gemm_packed``), else by column panels (a decoder's step: few rows, many outputs); one
    part below ``_MIN_DENSE_SPLIT_MACS``."""
    threads = _dense_threads(a.shape[0] * a.shape[1] * out.shape[1])
    if len(a) >= 32 * threads or len(packed) < 2 * threads:
        _split_gemm_packed(a, packed, out, threads, add)
        return
    pw, n = packed.shape[2], out.shape[1]
    _in_parallel([functools.partial(gemm_packed_any, a, packed[p0:p1], out[:, p0 * pw:min(p1 * pw, n)], GEMM_MC,
                                    _gemm_kc(), add)
                  for p0, p1 in _even_blocks(len(packed), threads)])


@njit(nogil=True, **_JIT)
def _backward_sequence(kind, dy, dh, dc, w_hh, w_hh_packed, lengths, hs, cs, saved, da_x, da_h, w_hr, w_hr_packed,
                       dhp, ready, b0, b1, packed):
    """Backward through time for the sequences ``b0 <= b < b1``: fills their rows of da_x, da_h (and with a
    projection dhp, the gradients w.r.t. the projected states) and updates their dh, dc in place to dh0,
    dc0. ``packed``: the per-step GEMMs run the micro-kernel against ``w_hh_packed`` (``w_hr_packed``).
    ``ready``: empty, or a barrier state on which the number of steps whose da_x[t], da_h[t] are final is
    published after each step's cell pass (for the thread computing the weight gradients beside the loop,
    ``_backward_beside``)."""
    _full_width_vectors()
    T, _, H = dy.shape
    dh_rec = np.empty((b1 - b0, H), dy.dtype)
    projected = w_hr.shape[0] > 0
    dr = np.empty((b1 - b0, w_hr.shape[1]), dy.dtype)  # w.r.t. o * tanh(c'): what the cell pass takes as dy
    no_dh = np.zeros(w_hr.shape[1], dy.dtype)  # all of the state's gradient already went through W_hr
    units = w_hr.shape[1] if projected else H  # the cell's width (H is the state's: P with a projection)
    scratch, scratch_hr = scratch_tile(w_hh_packed), scratch_tile(w_hr_packed)
    for t in range(T - 1, -1, -1):
        if projected:
            for b in range(b0, b1):
                if t < lengths[b]:
                    for j in range(H):
                        dhp[t, b, j] = dy[t, b, j] + dh[b, j]
                    dh[b] = 0.0
            dhp_rows = dhp[t][b0:b1]
            if packed:
                matmul_packed(dhp_rows, w_hr_packed, dr, False, scratch_hr)
            else:
                np.dot(dhp_rows, w_hr, dr)
        _cells_backward(kind, t, b0, b1, lengths, projected, dr, dy, dh, no_dh, dc, cs, hs, saved, da_x, da_h, 0,
                        units)
        if ready.size:
            barrier.publish(ready, T - t)
        da_rows = da_h[t][b0:b1]
        if packed:
            matmul_packed(da_rows, w_hh_packed, dh_rec, t & 1 == 1, scratch)
        else:
            np.dot(da_rows, w_hh, dh_rec)
        for b in range(b0, b1):
            if t < lengths[b]:
                for j in range(H):
                    dh[b, j] += dh_rec[b - b0, j]


def _backward_units(kind, units, dy, dh, dc, w_hh, lengths, hs, cs, saved, da_x, da_h):
    """The backward recurrence with the HIDDEN UNITS split over threads (``plan``'s "units" step for a backward),
    all rows in every thread, as ``_forward_units`` splits the forward: thread ``k`` owns the units ``units[k] =
    (u0, u1)``. Per step it runs the cell backward of its units (which reads only its units of dh and dc), writing
    its units' columns ``g * H + u`` of the gate gradients da_x[t] (da_h[t]), then, after the threads met (all of
    da_h[t] written), its units' columns of ``dh_{t-1} += da_h[t] W_hh`` (all of da_h[t] against the columns u0..u1
    of W_hh, packed once per call per thread). One barrier per step (``_unit_backward_sequence``). LSTM (without
    projection), GRU and RNN. Fills da_x, da_h and leaves dh0, dc0 in dh, dc, as ``_backward_sequence`` does.

    Each value is the same expression in the same order as in ``_backward_sequence`` (the micro-kernel's columns
    are independent sums over all of da_h[t]'s columns), so the results are bitwise those of the row split's
    backward on one thread (from 2 rows; one row runs OpenBLAS's GEMV there)."""
    state = barrier.new_state()
    # each thread's packed columns of W_hh from memory (allocated in the compiled loop, they took fresh pages in some
    # calls: 8160 page faults, 20-22 ms of system time in a 59 ms backward at B = 1, H = 1024 on 2 threads of a Zen 4)
    calls = [functools.partial(_unit_backward_sequence if k == 0 else _unit_backward_thread, state, kind, k,
                               len(units), u0, u1, dy, dh, dc, w_hh, lengths, hs, cs, saved, da_x, da_h,
                               memory.empty(packed_shape(w_hh.shape[0], u1 - u0, dy.dtype), dy.dtype),
                               *(() if k == 0 else (_NO_GO, 0)))
             for k, (u0, u1) in enumerate(units)]
    _in_parallel(calls, functools.partial(barrier.abort, state), go_first=True)


def _unit_backward_thread(state, *args):
    """``_unit_backward_sequence`` on one thread; on failure the other threads are released (``_unit_thread``)."""
    try:
        return _unit_backward_sequence(state, *args)
    except BaseException:
        barrier.abort(state)
        raise


@njit(nogil=True, **_JIT)
def _unit_backward_sequence(state, kind, k, threads, u0, u1, dy, dh, dc, w_hh, lengths, hs, cs, saved, da_x, da_h,
                            packed, go, round_):
    """Thread ``k`` of ``threads`` in ``_backward_units``: the units ``u0 <= u < u1`` of every row and step,
    backwards. One barrier per step, between the cell pass (writes this thread's columns of da_x[t], da_h[t] and its
    units of dh, dc) and the GEMM (reads all of da_h[t]): step t's GEMM reads only slice t of da_h, which no thread
    writes again, and dh, dc are read and written by their units' thread only. Returns False when another thread
    failed (``barrier.abort``). ``go``, ``round_``: as ``_unit_sequence``'s."""
    _full_width_vectors()
    if go.size:
        barrier.publish(go, round_)
    T, B, H = dy.shape
    Hs = u1 - u0
    microkernel.pack_into(w_hh[:, u0:u1], packed)  # W_hh's columns of these units, as _packed_c packs all of them
    dh_rec = np.empty((B, Hs), dy.dtype)
    no_dr, no_dh = np.empty((0, 0), dy.dtype), np.empty(0, dy.dtype)  # no projection (as _backward_sequence's types)
    scratch = scratch_tile(packed)
    for t in range(T - 1, -1, -1):
        _cells_backward(kind, t, 0, B, lengths, False, no_dr, dy, dh, no_dh, dc, cs, hs, saved, da_x, da_h, u0, Hs)
        if not barrier.wait(state, threads, T - 1 - t):
            return False
        matmul_packed(da_h[t], packed, dh_rec, t & 1 == 1, scratch)
        for b in range(B):
            if t < lengths[b]:
                dhb, rec = dh[b, u0:u1], dh_rec[b]
                for j in range(Hs):
                    dhb[j] += rec[j]
    return True


@njit(**_JIT)
def _cells_backward(kind, t, b0, b1, lengths, projected, dr, dy, dh, no_dh, dc, cs, hs, saved, da_x, da_h, u0, n):
    """Step ``t``'s cell passes of the sequences ``b0 <= b < b1``, units ``u0 <= u < u0 + n`` (``_cell_backward``
    of each row, inlined: one call per step and block instead of one per row, 0.x of the time at H = 128). The row
    split passes all units, the unit split (``_unit_backward_sequence``) its own: the same compiled loop, so both
    give the same bits. A function of its own because the inlined cell promises that the arrays it writes (dh, dc,
    da_x; da_h for the GRU) overlap nothing it reads; here that holds (da_h is da_x only where the cell does not
    touch da_h), in ``_backward_sequence`` it would not."""
    for b in range(b0, b1):
        if t < lengths[b]:
            d_out = dr[b - b0] if projected else dy[t, b]
            d_state = no_dh if projected else dh[b]
            _cell_backward(kind, d_out, d_state, dc[b], cs[t, b], hs[t, b], hs[t + 1, b], saved[t, b],
                           da_x[t, b], da_h[t, b], u0, n)
        # else: da stays zero and dh, dc pass through unchanged, as the frozen state did.


@njit(inline="always", **_JIT)
def _cell_backward(kind, dy, dh, dc, c_prev, h_prev, h_new, save, da_x, da_h, u0, n):
    """One sequence's gate gradients for one step, units ``u0 <= u < u0 + n``, from the output gradient dy + dh (a
    function of its own, like _cell_forward; da_h is da_x itself except for the GRU, and only the GRU's branch
    writes it). The rows are whole rows, sliced at ``u0`` up front (vectorised loops, as in ``_cell_forward``).

    Leaves in dh the part of dh_{t-1} that does not go through W_hh (nonzero only for the GRU's z * h)
    and in dc the new dc_{t-1}; the caller adds da_h @ W_hh to dh.
    """
    _full_width_vectors()
    _arguments_do_not_overlap()
    H = max(dy.shape[0], 0)  # known not negative, as in _cell_forward (the loops run over n)
    one, zero = dy.dtype.type(1), dy.dtype.type(0)
    dy, dh, save, da_x = dy[u0:], dh[u0:], save[u0:], da_x[u0:]
    if kind == LSTM:
        dc, c_prev = dc[u0:], c_prev[u0:]
        for j in range(n):
            i, f, g, o, tanh_c = save[j], save[H + j], save[2 * H + j], save[3 * H + j], save[4 * H + j]
            dh_new = dy[j] + dh[j]
            dc_new = dc[j] + dh_new * o * (one - tanh_c * tanh_c)
            da_x[j] = dc_new * g * i * (one - i)
            da_x[H + j] = dc_new * c_prev[j] * f * (one - f)
            da_x[2 * H + j] = dc_new * i * (one - g * g)
            da_x[3 * H + j] = dh_new * tanh_c * o * (one - o)
            dc[j] = dc_new * f
            dh[j] = zero
    elif kind == GRU:
        h_prev, da_h = h_prev[u0:], da_h[u0:]
        for j in range(n):
            r, z, nj, gh_n = save[j], save[H + j], save[2 * H + j], save[3 * H + j]
            dh_new = dy[j] + dh[j]
            da_n = dh_new * (one - z) * (one - nj * nj)
            da_z = dh_new * (h_prev[j] - nj) * z * (one - z)
            da_r = da_n * gh_n * r * (one - r)
            da_x[j] = da_r
            da_x[H + j] = da_z
            da_x[2 * H + j] = da_n
            da_h[j] = da_r
            da_h[H + j] = da_z
            da_h[2 * H + j] = da_n * r
            dh[j] = dh_new * z
    elif kind == RNN_TANH:
        h_new = h_new[u0:]
        for j in range(n):
            da_x[j] = (dy[j] + dh[j]) * (one - h_new[j] * h_new[j])
            dh[j] = zero
    else:
        h_new = h_new[u0:]
        for j in range(n):
            da_x[j] = (dy[j] + dh[j]) if h_new[j] > 0 else zero
            dh[j] = zero


# ------------------------------------------------------------------------------------------- helpers

def _lengths_array(lengths, T, B):
    if lengths is None:
        return np.full(B, T, np.int64)
    return np.ascontiguousarray(lengths, dtype=np.int64)


@njit(inline="always", **_JIT)
def _copy(source, target):
    """target[:] = source for two 1-D arrays of one length, as a plain loop: an array assignment compiles
    Numba's shape-mismatch error message (string formatting, ~5 s of the first run's compilation)."""
    for j in range(target.shape[0]):
        target[j] = source[j]


def pack(b):
    """``microkernel.pack(b)`` (``b`` 2-D float32 or float64) into an array from ``memory`` (recycled between
    calls), on Numba's threads where it is large (``_pack_into``)."""
    b = np.asarray(b)
    packed = memory.empty(packed_shape(*b.shape, b.dtype), b.dtype)
    _pack_into(b, packed)
    return packed


# Packing splits its panels over the threads from this many bytes (below, waking a thread cost more than it saved:
# on 2 threads of a Zen 4, 1.2-8x the time of one from 0.26 to 4 MB, 0.56-0.59x at 16-32 MB; benchmarks/RESULTS.md
# "Session 27").
_MIN_THREADS_PACK_BYTES = 8 << 20


def _pack_into(b, packed):
    """``microkernel.pack_into(b, packed)``, its panels shared out over Numba's threads (``_in_parallel``) where
    ``packed`` takes ``_MIN_THREADS_PACK_BYTES`` or more: packing reads and writes each weight once, and a call of
    a few steps spends most of its time there (one step at B = 16, I = H = 1024: ~5 of 9 ms on one Zen 4 thread,
    benchmarks/RESULTS.md "Session 27"). The same array either way."""
    P, _, pw = packed.shape
    threads = min(numba.get_num_threads(), P)
    if threads < 2 or packed.nbytes < _MIN_THREADS_PACK_BYTES:
        microkernel.pack_into(b, packed)
        return
    N = b.shape[1]
    _in_parallel([functools.partial(microkernel.pack_into, b[:, p0 * pw:min(p1 * pw, N)], packed[p0:p1])
                  for p0, p1 in _even_blocks(P, threads)])


@njit(**_JIT)
def _column_sums(a):
    """The sums of ``a``'s columns, row after row in order (``microkernel._row_sums`` of ``a^T``): the bits of the
    bias sums beside the weight gradients' GEMM (``gemm_packed``'s ``sums``)."""
    out = np.empty(a.shape[1], a.dtype)
    _row_sums(a.T, 0, a.shape[1], 0, a.shape[0], out, True)
    return out


def _packed(blocks, *matrices):
    """``microkernel.pack`` of each of ``matrices`` (the right-hand sides [K, N] of a time loop's per-step GEMMs)
    where a block runs the micro-kernel; an empty array where none does or the matrix is empty (no projection)."""
    use = any(block.step == "packed" for block in blocks)
    return [pack(m) if use and m.size else np.empty((0, 0, 0), m.dtype) for m in matrices]


def _in_row_blocks(loop, blocks, *args):
    """``loop(*args, start, end, packed)`` for each of the ``plan``'s ``blocks``, one thread each (the loops
    release the GIL); returns the first block's result."""
    calls = [functools.partial(loop, *args, block.start, block.end, block.step == "packed") for block in blocks]
    return _in_parallel(calls)[0]


def _in_parallel(calls, release=None, go_first=False):
    """The results of ``calls`` (functions of no arguments that release the GIL), the first run on this
    thread and the others on a crew's threads at the same time (``_Crew``: one long-lived thread each, kept ready
    for a while after each call). ``release``: called when the first call fails, before waiting for the others
    (e.g. ``barrier.abort`` of a barrier they would wait at forever). ``go_first``: the first call takes two more
    arguments, ``go`` and ``round_``, and says itself, from its compiled code, that the round has started
    (``barrier.publish(go, round_)``; with an empty ``go`` nothing), once this thread has let the GIL go: a crew
    thread that took its call while this thread still held the GIL (converting the call's arguments) would sleep
    until then, and waking it took 20-50 us on the machines measured (the unit split's calls at one step took
    0.2 ms against 0.07). Where the crew is in use (by another Python thread, or by a call from one of its own
    threads) the calls go to a thread pool's queue instead (``_in_parallel_queued``).

    While they run, the crew's threads may not use the CPU this thread runs on (Linux: their CPU sets are narrowed
    before they start and widened again to this thread's set when its own call is done, ``_keep_off_this_cpu``).
    Else the kernel may wake a pool thread on this thread's CPU, where it waits until this thread's compiled loop
    is preempted or the load balancer moves one of them. Measured on a 2-vCPU machine (AMD Zen 4, Linux 6.18,
    benchmarks/RESULTS.md "Session 20"), for the first 10-20 calls after the process idled 0.3 s: the unit split's
    two threads shared one CPU (LSTM B = 4, I = 64, H = 256: 3.4-3.9 ms a call against 1.9 once apart) and the row
    split's second block started 1.4-2.4 ms late (B = 16, I = H = 128: up to 4.5 ms against 2.5). Narrowed, each
    call after the first took the settled time."""
    if len(calls) == 1:
        return [_run_first(calls[0], go_first, _NO_GO, 0, release)]
    crew = _crew(len(calls) - 1)
    if not crew.busy.acquire(blocking=False):
        return _in_parallel_queued(calls, release, go_first)
    try:
        barrier.resume(crew.go)  # after _rest_the_crews
        for worker in crew.workers:
            if worker.finished < crew.round:  # a round whose caller was interrupted (KeyboardInterrupt) in waiting
                worker.outcome_of(crew.round)
        own = _keep_off_this_cpu(crew.tids)
        crew.round += 1
        for worker, call in zip(crew.workers, calls[1:]):
            worker.post(call, crew.round)
        try:
            first = _run_first(calls[0], go_first, crew.go, crew.round, release)
        finally:
            if own is not None:
                _set_cpus(crew.tids, own)
            outcomes = [worker.outcome_of(crew.round) for worker in crew.workers]
    finally:
        crew.busy.release()
    for failed, value in outcomes:
        if failed:
            raise value
    return [first] + [value for _, value in outcomes]


def _run_first(call, go_first, go, round_, release):
    """The first call of ``_in_parallel``, on this thread: ``call(go, round_)`` where it says itself that round
    ``round_`` has started (``go_first``), else ``call()`` after saying it here, on ``go`` (not on an empty one);
    ``release()`` where it fails. A compiled function that says it and then calls the call's function, passed as an
    argument, was not kept: Numba compiled it anew in every process, 3-14 s a call site (RESULTS.md "Session
    39")."""
    try:
        if go_first:
            return call(go, round_)
        if go.size:
            barrier.publish(go, round_)
        return call()
    except BaseException:
        if release is not None:
            release()
        raise


# ``go`` of a call that says no round (``_in_parallel``'s ``go_first``).
_NO_GO = np.empty(0, np.int64)

# How long a crew thread stays ready for its next call, and the calling thread for a crew thread's result, before
# they sleep: ``barrier.wait_for``.
_READY_NS = 2_000_000


class _Worker:
    """One thread of a ``_Crew``. After each call it stays ready for the next one for ``_READY_NS``
    (``barrier.wait_for``: spinning, yielding the core to any other runnable thread, without the GIL), then sleeps
    until one is posted. Waking a sleeping thread took 60-90 us on the 2-vCPU virtual machines measured (Zen 4,
    Zen 5: RESULTS.md "Session 31", "Session 39"), more than the work of a small call, on every call of a loop."""

    def __init__(self, crew, index):
        self.crew = crew
        self.done = barrier.new_state()  # the rounds it finished, published
        self.lock = threading.Lock()
        self.posted = threading.Condition(self.lock)
        self.finished_round = threading.Condition(self.lock)
        self.round = 0  # the round of the call posted last
        self.finished = 0  # the last round finished
        self.sleeping = False
        self.caller_waiting = False
        self.call = None
        self.outcome = None
        self.thread = threading.Thread(target=self._run, name=f"lstmzoo-crew-{index}", daemon=True)
        self.started = threading.Event()
        self.thread.start()
        self.started.wait()

    def post(self, call, round_):
        """Give this thread round ``round_``'s call (the caller says when the round starts, on the crew's go)."""
        with self.lock:
            self.call, self.round = call, round_
            if self.sleeping:
                self.posted.notify()

    def outcome_of(self, round_):
        """(failed, the result or the exception) of round ``round_``'s call, once it is done."""
        if not barrier.wait_for(self.done, round_, _READY_NS):
            with self.lock:
                while self.finished < round_:
                    self.caller_waiting = True
                    self.finished_round.wait()
                self.caller_waiting = False
        return self.outcome

    def _run(self):  # (``wait_for`` returns False at once while the crew rests: ``_rest_the_crews``)
        self.tid = threading.get_native_id()
        self.started.set()
        target = 1
        ready = barrier.wait_for(self.crew.go, target, _READY_NS)
        while True:
            if not ready:
                with self.lock:
                    while self.round < target:
                        self.sleeping = True
                        self.posted.wait()
                    self.sleeping = False
            call = self.call
            try:
                outcome = (False, call())
            except BaseException as error:  # handed to the caller, raised there
                outcome = (True, error)
            self.call, self.outcome = None, outcome
            with self.lock:
                self.finished = target
                if self.caller_waiting:
                    self.finished_round.notify()
            target += 1
            ready = barrier.publish_and_wait_for(self.done, target - 1, self.crew.go, target, _READY_NS)


class _Crew:
    """``workers`` threads for ``_in_parallel`` (``_Worker``), used by one call at a time (``busy``); ``go`` counts
    the rounds started, ``round`` is the last one."""

    def __init__(self, workers):
        self.busy = threading.Lock()
        self.go = barrier.new_state()
        self.round = 0
        self.workers = [_Worker(self, k) for k in range(workers)]
        self.tids = [worker.tid for worker in self.workers]


def _crew(workers):
    crew = _CREWS.get(workers)
    if crew is None:
        with _CREWS_LOCK:
            crew = _CREWS.get(workers)
            if crew is None:
                crew = _CREWS[workers] = _Crew(workers)
    return crew


# The crews made so far, by their number of threads.
_CREWS = {}
_CREWS_LOCK = threading.Lock()


def _rest_the_crews():
    """Send every crew's threads that are staying ready to sleep now (``barrier.abort`` of their ``go``, undone by
    the next ``_in_parallel``): before OpenBLAS runs on its own threads, which would otherwise share a core with a
    crew thread for up to ``_READY_NS`` (the LSTM's training forward at B = 1, H = 512 on 2 threads, whose steps
    are OpenBLAS's GEMV on both threads after the input projection on the crew: 1.45x the time)."""
    for crew in list(_CREWS.values()):
        barrier.abort(crew.go)


# At exit, no crew thread is left running compiled code while the interpreter tears Numba's down.
atexit.register(_rest_the_crews)


def _in_parallel_queued(calls, release=None, go_first=False):
    """``_in_parallel`` through a thread pool's queue (``concurrent.futures``): where the crew is busy. A call
    whose thread waits on a barrier may then wait for a pool thread to finish another call first: a delay, not a
    deadlock, as every call has a thread."""
    workers = len(calls) - 1
    pool = _thread_pool(workers)
    own = _keep_off_this_cpu(_POOL_THREADS[workers])
    try:
        futures = [pool.submit(call) for call in calls[1:]]
        first = _run_first(calls[0], go_first, _NO_GO, 0, release)
    finally:
        if own is not None:
            _set_cpus(_POOL_THREADS[workers], own)
    return [first] + [future.result() for future in futures]


# The native thread ids of each _thread_pool(workers)'s threads, as they start.
_POOL_THREADS = collections.defaultdict(list)


@functools.cache
def _thread_pool(workers):
    from concurrent.futures import ThreadPoolExecutor
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lstmzoo", initializer=_pool_thread_started,
                              initargs=(workers,))


def _pool_thread_started(workers):
    _POOL_THREADS[workers].append(threading.get_native_id())


def _forget_the_pools():
    """In a child process made by ``os.fork``: the crews' and pools' threads stayed in the parent, so a call here
    would wait forever for a thread that does not exist (and the recorded thread ids name the parent's threads).
    The child starts new ones."""
    _CREWS.clear()
    _thread_pool.cache_clear()
    _POOL_THREADS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_the_pools)


def _keep_off_this_cpu(tids):
    """Narrows the CPU set of each thread of ``tids`` (a crew's or a pool's) to this thread's set less the CPU this
    thread runs on now (``_in_parallel``); returns this thread's set, to widen them to afterwards, or None where
    nothing was narrowed (not Linux, one CPU, the pool's threads not started yet)."""
    current_cpu = _current_cpu()
    if not tids or current_cpu is None:
        return None
    try:
        own = os.sched_getaffinity(0)
    except OSError:
        return None
    rest = own - {current_cpu()}
    if not rest or len(rest) == len(own):
        return None
    _set_cpus(tids, rest)
    return own


def _set_cpus(tids, cpus):
    for tid in tids:
        try:
            os.sched_setaffinity(tid, cpus)
        except OSError:  # a thread that has ended
            pass


@functools.cache
def _current_cpu():
    """libc's ``sched_getcpu`` (the CPU the calling thread runs on), or None where there is none or no
    ``os.sched_setaffinity`` (not Linux)."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).sched_getcpu
    except (OSError, AttributeError):
        return None


@njit(**_JIT)
def _rows_matmul_t(a, w, out, pad):
    """out = a @ w.T for the few rows of ``a`` (w: [N, K], C-contiguous): eight rows at a time, then four.
    The time loops' per-step kernel for 2..32 rows before the micro-kernel; kept as the baseline that
    benchmarks/step_matmul.py and step_microkernel.py time.

    Each block of rows streams ``w`` once, two of its rows at a time: 16 (or 8) dot products share each load
    and their sums stay in registers over the whole K loop (the k loop vectorises as a reduction). When
    fewer than four rows are left, the last block reads them from the zero-padded ``pad`` ([4, K]) and
    stores only the real rows."""
    _full_width_vectors()
    R = a.shape[0]
    r0 = 0
    while R - r0 >= 8:
        _eight_rows_matmul_t(a[r0], a[r0 + 1], a[r0 + 2], a[r0 + 3], a[r0 + 4], a[r0 + 5], a[r0 + 6], a[r0 + 7],
                             w, out, r0)
        r0 += 8
    while r0 < R:
        rows = min(4, R - r0)
        if rows == 4:
            _four_rows_matmul_t(a[r0], a[r0 + 1], a[r0 + 2], a[r0 + 3], w, out, r0, 4)
        else:
            pad[:] = 0.0
            for i in range(rows):
                _copy(a[r0 + i], pad[i])
            _four_rows_matmul_t(pad[0], pad[1], pad[2], pad[3], w, out, r0, rows)
        r0 += rows


@njit(inline="always", **_JIT)
def _eight_rows_matmul_t(a0, a1, a2, a3, a4, a5, a6, a7, w, out, r0):
    N = w.shape[0]
    zero = w.dtype.type(0)
    for n in range(0, N, 2):
        w0 = w[n]
        w1 = w[n + 1] if n + 1 < N else w[n]  # an odd last column computes it twice, stored once
        s00 = s10 = s20 = s30 = s40 = s50 = s60 = s70 = zero
        s01 = s11 = s21 = s31 = s41 = s51 = s61 = s71 = zero
        for k in range(w.shape[1]):
            x0 = w0[k]
            x1 = w1[k]
            b = a0[k]
            s00 += b * x0
            s01 += b * x1
            b = a1[k]
            s10 += b * x0
            s11 += b * x1
            b = a2[k]
            s20 += b * x0
            s21 += b * x1
            b = a3[k]
            s30 += b * x0
            s31 += b * x1
            b = a4[k]
            s40 += b * x0
            s41 += b * x1
            b = a5[k]
            s50 += b * x0
            s51 += b * x1
            b = a6[k]
            s60 += b * x0
            s61 += b * x1
            b = a7[k]
            s70 += b * x0
            s71 += b * x1
        for i, (s0, s1) in enumerate(((s00, s01), (s10, s11), (s20, s21), (s30, s31),
                                      (s40, s41), (s50, s51), (s60, s61), (s70, s71))):
            out[r0 + i, n] = s0
            if n + 1 < N:
                out[r0 + i, n + 1] = s1


@njit(inline="always", **_JIT)
def _four_rows_matmul_t(a0, a1, a2, a3, w, out, r0, rows):
    N, K = w.shape
    zero = w.dtype.type(0)
    for n in range(0, N, 2):
        w0 = w[n]
        w1 = w[n + 1] if n + 1 < N else w[n]  # an odd last column computes it twice, stored once
        s00 = s10 = s20 = s30 = s01 = s11 = s21 = s31 = zero
        for k in range(K):
            x0 = w0[k]
            x1 = w1[k]
            b0 = a0[k]
            b1 = a1[k]
            b2 = a2[k]
            b3 = a3[k]
            s00 += b0 * x0
            s10 += b1 * x0
            s20 += b2 * x0
            s30 += b3 * x0
            s01 += b0 * x1
            s11 += b1 * x1
            s21 += b2 * x1
            s31 += b3 * x1
        for i, (s0, s1) in enumerate(((s00, s01), (s10, s11), (s20, s21), (s30, s31))):
            if i < rows:
                out[r0 + i, n] = s0
                if n + 1 < N:
                    out[r0 + i, n + 1] = s1


def _tanh(a):
    """tanh for use inside the compiled loops; float32 gets the vectorisable approximation."""


def _sigmoid(a):
    """sigmoid for use inside the compiled loops; float32 gets the vectorisable approximation."""


@overload(_tanh, inline="always")
def _tanh_for(a):
    if a == types.float32:
        return lambda a: _tanh_float32(a)
    return lambda a: np.tanh(a)


@overload(_sigmoid, inline="always")
def _sigmoid_for(a):
    if a == types.float32:
        return lambda a: np.float32(0.5) + np.float32(0.5) * _tanh_float32(np.float32(0.5) * a)
    return lambda a: 1.0 / (1.0 + np.exp(-a))  # the reference's formula, so float64 matches to rounding


@njit(inline="always", **_JIT)
def _tanh_float32(a):
    """tanh as a [13/6] rational function on [-7.9, 7.9] (Eigen's coefficients): max error 3.4e-7.

    Multiplies, adds, one division and a clamp: it vectorises, where libm's tanhf is a call per element.
    """
    x = min(max(a, np.float32(-7.90531110763549805)), np.float32(7.90531110763549805))
    x2 = x * x
    p = x2 * np.float32(-2.76076847742355e-16) + np.float32(2.00018790482477e-13)
    p = x2 * p + np.float32(-8.60467152213735e-11)
    p = x2 * p + np.float32(5.12229709037114e-08)
    p = x2 * p + np.float32(1.48572235717979e-05)
    p = x2 * p + np.float32(6.37261928875436e-04)
    p = x2 * p + np.float32(4.89352455891786e-03)
    q = x2 * np.float32(1.19825839466702e-06) + np.float32(1.18534705686654e-04)
    q = x2 * q + np.float32(2.26843463243900e-03)
    q = x2 * q + np.float32(4.89352518554385e-03)
    return x * p / q


def cache_is_cold(dtype="float32"):
    """Whether the next training in ``dtype`` must first compile the time loops (about 10 s of one core).

    True when Numba's cache holds no forward or no backward time loop of ``dtype`` compiled for this CPU: the
    first run after installing, after this file changed, or with a new ``NUMBA_CACHE_DIR``. Cheap: it reads
    the two loops' cache index files and compiles nothing, so a command can say what it is waiting for.
    """
    element = numba.from_dtype(np.dtype(dtype))
    # A forward runs one of two time loops (_forward_fused's or the one after a projection GEMM): either will do.
    for loops in ((_forward_sequence, _fused_sequence), (_backward_sequence,)):
        cached = False
        for loop in loops:
            try:  # Numba's cache index: {(signature, target machine, source hashes): data file}
                index = loop._cache._cache_file._load_index()
                machine = loop.targetctx.codegen().magic_tuple()
            except AttributeError:  # another Numba's internals: assume the worst, the message is harmless
                return True
            cached = cached or any(key[1] == machine and key[0][1].dtype == element for key in index)
        if not cached:
            return True
    return False


def set_num_threads(n):
    """Threads for the BLAS calls outside the time loops: every OpenBLAS loaded, SciPy's (behind ``np.dot`` in
    Numba) and NumPy's (the small dense products' ``@``); the loops run them on one thread for B >= 2, see
    ``_recurrence_blas``.

    Returns False where neither is an OpenBLAS (then their own settings apply).
    """
    functions = _openblas_thread_functions()
    for _, set_threads in functions:
        set_threads(int(n))
    return bool(functions)


@functools.cache
def _openblas_thread_functions():
    """``(get, set)`` of the thread count of every OpenBLAS loaded once SciPy's is (NumPy's and SciPy's in pip's
    wheels), as ctypes functions: holding both at one thread and restoring them took 9.5-10.3 us through
    threadpoolctl's controllers, 4.2-5.3 through these (benchmarks/RESULTS.md "Session 31"), and the time loops do
    it once per kernel call, a decoder's step included. threadpoolctl finds the libraries."""
    import scipy.linalg.cython_blas  # noqa: F401  (loads SciPy's OpenBLAS, the one Numba's np.dot calls)
    from threadpoolctl import ThreadpoolController

    functions = []
    for controller in ThreadpoolController().select(internal_api="openblas").lib_controllers:
        lib = ctypes.CDLL(controller.filepath)
        for prefix, suffix in itertools.product(("scipy_", ""), ("64_", "", "_64")):
            get_threads = getattr(lib, f"{prefix}openblas_get_num_threads{suffix}", None)
            set_threads = getattr(lib, f"{prefix}openblas_set_num_threads{suffix}", None)
            if get_threads is not None and set_threads is not None:
                set_threads.argtypes = [ctypes.c_int]
                functions.append((get_threads, set_threads))
                break
    return tuple(functions)


def _recurrence_blas(B):
    """The OpenBLAS setting for a time loop over B sequences: one thread, except for B = 1, whose per-step
    GEMV was measured both faster (loaded machine, H = 512: 0.45-0.85x the time) and slower (quieter,
    1.45x) single-threaded, so it keeps the default (and the crews' threads rest: ``_rest_the_crews``). B >= 2
    uses the micro-kernel, not OpenBLAS."""
    if B <= 1:
        _rest_the_crews()
    return _one_blas_thread(B > 1)


def _one_blas_thread(hold=True):
    """A context: every OpenBLAS loaded (SciPy's, NumPy's) at 1 thread inside it (where ``hold``; else left alone).

    For the per-step GEMMs of a time loop: with its threads, every step hands work to OpenBLAS's worker and back
    around the serial elementwise pass; on the shared 2-vCPU machine that handoff waited for the scheduler, and
    whole calls ran 5-25x slower, bimodally (B=32, H=512 forward: 140-2500 ms with 2 threads, 95-120 ms with 1;
    torch 58-110). For the narrow dense products on NumPy's ``@`` (``dense_forward``): its workers would spin for
    0.1 s after the call, beside the kernels' threads.
    Not thread-safe: concurrent calls from several Python threads may leave a count changed."""
    return _OneBlasThread() if hold else _LEAVE_BLAS


class _OneBlasThread:
    """``_one_blas_thread``'s context: a class, not a generator, because a decoder's step enters it once per kernel
    call. Entering and leaving with both libraries at 2 threads (Zen 4, benchmarks/RESULTS.md "Session 31"):
    4.2-5.3 us, 5.9-6.2 through a generator, 3.2-3.6 for SciPy's library alone through a generator (before session
    31), against 75 us for a whole one-step call at B = 1, H = 256; most of it is OpenBLAS's own
    ``set_num_threads`` (0.6-0.8 us a call)."""
    __slots__ = ("before",)

    def __enter__(self):
        functions = _openblas_thread_functions()
        self.before = [get_threads() for get_threads, _ in functions]
        for (_, set_threads), threads in zip(functions, self.before):
            if threads != 1:
                set_threads(1)

    def __exit__(self, *exception):
        for (_, set_threads), threads in zip(_openblas_thread_functions(), self.before):
            if threads != 1:
                set_threads(threads)


_LEAVE_BLAS = contextlib.nullcontext()


def _matmul(a, b):
    """``a @ b`` (OpenBLAS, on its threads) into an array from ``memory``. Returned from the compiled ``np.dot``, a
    fresh array's pages had to be faulted in again in many calls (the weight gradients at B = 1, H = 1024: 32 MB,
    8160 faults, 16-22 ms of system time in a 25-59 ms backward on 2 threads of a Zen 4). The crews' threads rest
    first (``_rest_the_crews``)."""
    out = memory.empty((a.shape[0], b.shape[1]), np.result_type(a, b))
    _rest_the_crews()
    _dot(a, b, out)
    return out


@njit(nogil=True, **_JIT)
def _dot(a, b, out):
    np.dot(a, b, out)
