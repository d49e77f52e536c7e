"""Does a GEMM's speed depend on whether its input changes between calls? One recurrent step's GEMM,
``h[rows, H] @ W^T`` with W ``[N, H]`` packed once, on ONE thread, timed four ways that differ only in which
``h`` each call reads: always the same array; two arrays of equal values, alternating; two that differ in one ulp
of every element, alternating; two independent random arrays, alternating (a time loop's h_t changes every
step). The micro-kernel (kernels/microkernel.py) and OpenBLAS called from Numba (``np.dot`` in ``@njit``) each.

    python benchmarks/changing_inputs.py [--rows 1 2 4 8] [--hidden 256] [--columns 2H 4H] [--repeats 7]

Why: a scratch loop once had the micro-kernel 1.27-1.36x slower on alternating inputs than on a repeated one;
measured this way, round-robin, on AMD EPYC Zen 4 (2026-12-04, benchmarks/RESULTS.md "Session 19"), every
"independent / same" ratio was 0.98-1.01 for the micro-kernel (rows 1-8, H = 256 and 512), so the scratch figure had
been a slow spell of the host, and kernel tables timed on one fixed input (benchmarks/step_microkernel.py) stand
for a time loop's changing h_t. Each figure is the median over --repeats of CPU time per call.
"""

import os

if __name__ == "__main__":  # run as a script: NumPy's BLAS and Numba on one thread (imported, e.g. by a test: as is)
    for _name in ("OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_name, "1")

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from lstmzoo.kernels import microkernel  # noqa: E402
from numba import njit  # noqa: E402

from lstmzoo import bench  # noqa: E402

INPUTS = ("same", "equal copies", "one ulp apart", "independent")


@njit(nogil=True)
def _micro(h2, packed, out, n):
    for t in range(n):
        microkernel.matmul_packed(h2[t & (len(h2) - 1)], packed, out)


@njit(nogil=True)
def _blas(h2, w_t, out, n):
    for t in range(n):
        np.dot(h2[t & (len(h2) - 1)], w_t, out)


def _inputs(rows, H, rng):
    """The four inputs of INPUTS as ``[2, rows, H]`` arrays, read alternately, and ``[1, rows, H]`` ("same")."""
    h = (0.1 * rng.standard_normal((rows, H))).astype(np.float32)
    other = (0.1 * rng.standard_normal((rows, H))).astype(np.float32)
    return {"same": h[None].copy(), "equal copies": np.stack([h, h.copy()]),
            "one ulp apart": np.stack([h, np.nextafter(h, np.float32(np.inf))]), "independent": np.stack([h, other])}


def _per_call(run, h2, seconds):
    """CPU seconds per call of ``run(h2, n)``, n chosen here to last about ``seconds``."""
    run(h2, 3)
    start = time.perf_counter()
    run(h2, 20)
    n = max(20, int(seconds / max((time.perf_counter() - start) / 20, 1e-8)))
    start = time.process_time()
    run(h2, n)
    return (time.process_time() - start) / n


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--hidden", type=int, nargs="+", default=[256])
    parser.add_argument("--columns", nargs="+", default=["2H", "4H"], help="N as a multiple of H (default 2H 4H)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=0.05, help="length of one timing (default 0.05 s)")
    args = parser.parse_args(argv)
    print(f"CPU: {bench.cpu_model()}; micro-kernel {microkernel.VECTOR_BITS}-bit; float32, one thread, "
          f"median of {args.repeats} CPU-time timings; load average before: {bench._load_average()}")
    print()
    print("| kernel | rows | H | N | " + " | ".join(f"{name} us" for name in INPUTS) + " | independent / same |")
    print("|---|---:|---:|---:|" + "---:|" * (len(INPUTS) + 1))
    rng = np.random.default_rng(0)
    for H in args.hidden:
        for columns in args.columns:
            N = int(columns.rstrip("H") or 1) * H
            w = (rng.standard_normal((N, H)) / np.sqrt(H)).astype(np.float32)
            packed, w_t = microkernel.pack(np.ascontiguousarray(w.T)), np.ascontiguousarray(w.T)
            for rows in args.rows:
                pairs = _inputs(rows, H, rng)
                out = np.empty((rows, N), np.float32)
                kernels = {"micro-kernel": lambda h2, n: _micro(h2, packed, out, n),
                           "OpenBLAS": lambda h2, n: _blas(h2, w_t, out, n)}
                times = {(k, name): [] for k in kernels for name in INPUTS}
                for _ in range(args.repeats):  # round-robin, so a slow spell of the host hits every column
                    for k, run in kernels.items():
                        for name in INPUTS:
                            times[k, name].append(_per_call(run, pairs[name], args.seconds))
                for k in kernels:
                    medians = [float(np.median(times[k, name])) * 1e6 for name in INPUTS]
                    print(f"| {k} | {rows} | {H} | {N} | " + " | ".join(f"{m:.2f}" for m in medians)
                          + f" | {medians[-1] / medians[0]:.2f} |", flush=True)
    print()
    print(f"load average after: {bench._load_average()}")


if __name__ == "__main__":
    main()
