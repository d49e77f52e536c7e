"""Time one recurrent step's GEMM, ``h[rows, H] @ W_hh^T`` with W_hh ``[4H, H]``, on ONE thread: the LLVM-IR
outer-product micro-kernel (kernels/microkernel.py, W_hh^T packed once, outside the timing) against the current
per-step kernel (kernels/cpu.py's ``_rows_matmul_t``), OpenBLAS called from Numba (``np.dot`` in ``@njit``, scipy's
OpenBLAS: the time loop's GEMM above 32 rows), NumPy's ``np.matmul(..., out=)`` and ``torch.mm(..., out=)``.
Prints a Markdown table of GFLOP/s (2 * rows * H * 4H flops per call) with the CPU model, its vector flags and the
load average.

    python benchmarks/step_microkernel.py [--repeats 7] [--rows 8 16] [--hidden 256] [--bits 256]

Method: the contenders alternate, round-robin, within one process; each timing is a loop of calls lasting about
--seconds (the two Numba kernels and OpenBLAS-in-Numba loop inside compiled code, so that they pay no Python call;
NumPy and torch are called from a Python loop, which adds about a microsecond (NumPy) or a few (torch) per call:
it shows at 8 rows and H = 128 only). The figure shown is the median over --repeats of CPU time per call
(``time.process_time``: on a shared machine a descheduled process does not count). All libraries run on one thread
(the environment variables are set before NumPy, Numba or torch load, unless already set).
"""

import os

for _name in ("OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import argparse
import time

import numpy as np
from lstmzoo.kernels import microkernel
from lstmzoo.kernels.cpu import _JIT, _one_blas_thread, _rows_matmul_t
from numba import njit

from lstmzoo import bench

_LOOP = {**_JIT, "cache": False}


@njit(**_LOOP)
def _repeat_rows_kernel(a, w, out, pad, n):
    for _ in range(n):
        _rows_matmul_t(a, w, out, pad)


@njit(**_LOOP)
def _repeat_microkernel(a, packed, out, n):
    for _ in range(n):
        microkernel.matmul_packed(a, packed, out)


@njit(**_LOOP)
def _repeat_openblas(a, w, out, n):
    for _ in range(n):
        np.dot(a, w.T, out)


def _per_call(run, seconds):
    """A function of no arguments returning CPU seconds per call of ``run(n)`` (n calls), n set once, here."""
    run(1)
    start = time.perf_counter()
    run(3)
    n = max(1, int(seconds / max((time.perf_counter() - start) / 3, 1e-7)))

    def timing():
        start = time.process_time()
        run(n)
        return (time.process_time() - start) / n
    return timing


def _contenders(a, w, packed, outs, torch):
    """``run(n)`` for each contender, in the table's order, writing into ``outs``. Each reads its own copy of the
    weights: sharing one let the contenders that read ``w`` warm the cache for each other, not for the packed
    copy (at H = 1024, 16 MB, the micro-kernel measured 0.45-0.66x the row kernel's speed at 8 rows so, 1.1x
    when the two alternated alone)."""
    pad = np.empty((4, a.shape[1]), a.dtype)
    w_rows, w_blas, w_numpy, w_torch = (w.copy() for _ in range(4))
    wt = w_numpy.T

    def numpy_run(n):
        for _ in range(n):
            np.matmul(a, wt, out=outs[3])

    runs = [lambda n: _repeat_rows_kernel(a, w_rows, outs[0], pad, n),
            lambda n: _repeat_microkernel(a, packed, outs[1], n),
            lambda n: _repeat_openblas(a, w_blas, outs[2], n),
            numpy_run]
    if torch is not None:
        ta, twt, to = torch.from_numpy(a), torch.from_numpy(w_torch).t(), torch.from_numpy(outs[4])

        def torch_run(n):
            for _ in range(n):
                torch.mm(ta, twt, out=to)
        runs.append(torch_run)
    return runs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7, help="timings per shape and contender (median shown)")
    parser.add_argument("--rows", type=int, nargs="+", default=[2, 4, 8, 16, 32, 64, 128])
    parser.add_argument("--hidden", type=int, nargs="+", default=[128, 256, 512, 1024])
    parser.add_argument("--bits", type=int, choices=(256, 512), default=None,
                        help=f"force the micro-kernel's vector width (default: the CPU's, here {microkernel.VECTOR_BITS})")
    parser.add_argument("--seconds", type=float, default=0.1, help="length of one timing (default 0.1 s)")
    parser.add_argument("--no-torch", action="store_true", help="leave torch out")
    args = parser.parse_args(argv)
    torch = None if args.no_torch else bench._import_torch()
    if torch is not None:
        torch.set_num_threads(1)
    bits = args.bits or microkernel.VECTOR_BITS
    mr, nr = microkernel._TILES[bits]
    print(f"CPU: {bench.cpu_model()}; vector flags: {bench.vector_flags()}")
    print(f"micro-kernel: {bits}-bit vectors, register tile {mr} rows x {nr} vectors "
          f"({microkernel.panel_width(np.float32, bits)} float32 columns per panel)")
    print(f"float32, one thread, median of {args.repeats} CPU-time timings of ~{args.seconds} s each; "
          f"load average before: {bench._load_average()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print()
    names = ["rows kernel", "micro-kernel", "OpenBLAS (Numba)", "np.matmul"] + (["torch.mm"] if torch else [])
    print("| rows | H | N | " + " | ".join(f"{n} GFLOP/s" for n in names) + " | micro / rows kernel | "
          "micro / best other | pack us |")  # speed ratios (> 1: the micro-kernel is faster)
    print("|---|---|---|" + "---:|" * (len(names) + 3))
    rng = np.random.default_rng(0)
    with _one_blas_thread():
        for H in args.hidden:
            w = rng.standard_normal((4 * H, H)).astype(np.float32)
            packed = microkernel.pack(w.T, bits)  # compiles it, the first time
            pack_times = []
            for _ in range(3):  # once per forward call in the kernels: CPU time, median of 3
                start = time.process_time()
                packed = microkernel.pack(w.T, bits)
                pack_times.append(time.process_time() - start)
            pack_us = float(np.median(pack_times)) * 1e6
            for rows in args.rows:
                a = rng.standard_normal((rows, H)).astype(np.float32)
                outs = [np.empty((rows, 4 * H), np.float32) for _ in names]
                runs = _contenders(a, w, packed, outs, torch)
                timings = [_per_call(run, args.seconds) for run in runs]
                reference = a @ w.T
                for name, out in zip(names, outs):
                    error = np.abs(out - reference).max() / np.abs(reference).max()
                    if error > 1e-5:
                        raise AssertionError(f"{name}: relative error {error:.2e} at rows={rows} H={H}")
                samples = [[] for _ in runs]
                for _ in range(args.repeats):
                    for timing, times in zip(timings, samples):
                        times.append(timing())
                flops = 2.0 * rows * H * 4 * H
                rates = [flops / float(np.median(times)) / 1e9 for times in samples]
                best_other = max(rates[2:])
                print(f"| {rows} | {H} | {4 * H} | " + " | ".join(f"{r:.0f}" for r in rates)
                      + f" | {rates[1] / rates[0]:.2f} | {rates[1] / best_other:.2f} | {pack_us:.0f} |", flush=True)
    print()
    print(f"load average after: {bench._load_average()}")


if __name__ == "__main__":
    main()
