"""Time one recurrent step's GEMM, ``h[B, H] @ W_hh^T`` with W_hh ``[4H, H]``, as the CPU LSTM's time loop
does it: kernels/cpu.py's small-batch kernel ``_rows_matmul_t`` against OpenBLAS's ``np.dot`` on one thread
(the loop's alternative), in one process, alternating; prints a Markdown table. This is what sets the batch
sizes that use the small-batch kernel (``kernels.cpu.plan``'s ``"rows"`` step).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/step_matmul.py [--repeats 5]
"""

import argparse

import numpy as np
from lstmzoo.kernels.cpu import _JIT, _one_blas_thread, _rows_matmul_t
from numba import njit

from lstmzoo import bench


@njit(**_JIT)
def _openblas(a, w, out):
    np.dot(a, w.T, out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="timings per shape, of which the median is shown")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    print(f"float32, one thread, median of {args.repeats} timings; load average before: {bench._load_average()}")
    print()
    print("| H | B | small-batch kernel us | OpenBLAS us | kernel / OpenBLAS | kernel GFLOP/s |")
    print("|---|---|---:|---:|---:|---:|")
    with _one_blas_thread():
        for H in (128, 256, 512, 1024):
            for B in (1, 2, 4, 8, 12, 16, 24, 32):
                a = rng.standard_normal((B, H)).astype(np.float32)
                w = rng.standard_normal((4 * H, H)).astype(np.float32)
                out, pad = np.empty((B, 4 * H), np.float32), np.empty((4, H), np.float32)
                ours, theirs = bench.median_times([lambda a=a, w=w, out=out, pad=pad: _rows_matmul_t(a, w, out, pad),
                                                   lambda a=a, w=w, out=out: _openblas(a, w, out)], args.repeats)
                print(f"| {H} | {B} | {ours * 1e6:.1f} | {theirs * 1e6:.1f} | {ours / theirs:.2f} | "
                      f"{2 * B * H * 4 * H / ours / 1e9:.0f} |", flush=True)


if __name__ == "__main__":
    main()
