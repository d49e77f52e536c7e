"""The last, partial panel of a packed GEMM: its own tile (only the vectors of its real columns) against the whole
panel's tile (what ``kernels/microkernel.py`` ran there before: every padding column computed, then copied out of a
scratch tile). One thread, float32, interleaved in one process, median CPU time per call, as a Markdown table.

    NUMBA_NUM_THREADS=1 python benchmarks/last_panel.py [--repeats 9]

The GEMMs are the backward's dx = da W_ih ([T*B, 4H] @ [4H, I], ``gemm_packed``) and its per-step
da_t W_hh ([B, 4H] @ [4H, H], ``matmul_packed``), and the forward's per-step h W_hh^T at small H. "before" is the
same call with the right-hand side padded with zero columns to whole panels: the work the whole panel's tile did
(without its copy out of the scratch tile, so the figure flatters "before" slightly). Both give the same bits in
the real columns (tests/test_microkernel.py).
"""

import argparse
import time

import numpy as np
from lstmzoo.kernels import microkernel
from numba import njit

from lstmzoo import bench


@njit(nogil=True, cache=False)
def _gemm_loop(a, packed, out, n):
    for _ in range(n):
        microkernel.gemm_packed(a, packed, out, microkernel.GEMM_MC, microkernel.GEMM_KC, False)


@njit(nogil=True, cache=False)
def _step_loop(a, packed, out, n):
    for _ in range(n):
        microkernel.matmul_packed(a, packed, out)


def per_call(loop, args, seconds=0.05):
    loop(*args, 1)
    n, start = 1, time.process_time()
    loop(*args, n)
    estimate = max(time.process_time() - start, 1e-6)
    n = max(1, int(seconds / estimate))
    start = time.process_time()
    loop(*args, n)
    return (time.process_time() - start) / n


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    pw = microkernel.panel_width(np.float32)
    cases = [("dx = da W_ih", "gemm", 1600, 4 * H, n_in) for H, n_in in ((128, 32), (256, 64), (512, 128),
                                                                           (256, 256), (1024, 256))]
    cases += [("da_t W_hh", "step", B, 4 * H, H) for B, H in ((8, 128), (16, 256), (32, 256), (16, 512))]
    cases += [("h W_hh^T", "step", B, H, 4 * H) for B, H in ((8, 100), (16, 116))]
    print(f"CPU: {bench.cpu_model()}; micro-kernel {microkernel.VECTOR_BITS}-bit, panel {pw} float32 columns; "
          f"one thread; median of {args.repeats} (CPU time per call); load average before: "
          f"{open('/proc/loadavg').read().split()[:3]}")
    print()
    print("| GEMM | rows M | K | N | last panel's columns | before us | after us | after / before |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, kind, M, K, N in cases:
        a = rng.standard_normal((M, K)).astype(np.float32)
        b = rng.standard_normal((K, N)).astype(np.float32)
        padded = np.concatenate((b, np.zeros((K, -N % pw), np.float32)), axis=1)
        loop = _gemm_loop if kind == "gemm" else _step_loop
        variants = [(microkernel.pack(padded), np.empty((M, padded.shape[1]), np.float32)),
                    (microkernel.pack(b), np.empty((M, N), np.float32))]
        times = [[], []]
        for _ in range(args.repeats):
            for (packed, out), samples in zip(variants, times):
                samples.append(per_call(loop, (a, packed, out)))
        before, after = (float(np.median(t)) * 1e6 for t in times)
        print(f"| {name} | {M} | {K} | {N} | {N % pw or pw} | {before:.1f} | {after:.1f} | {after / before:.2f} |")
    print()
    print(f"load average after: {open('/proc/loadavg').read().split()[:3]}")


if __name__ == "__main__":
    main()
