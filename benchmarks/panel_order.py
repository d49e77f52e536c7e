"""One thread's recurrent-step GEMMs ``h[rows, H] @ W_hh^T`` (W_hh^T packed, ``4H`` columns) for T steps, the
panels read in the same order every step against the order alternating from step to step
(``microkernel.matmul_packed``'s ``backwards=t & 1``, as the time loops of kernels/cpu.py call it). Where the packed
matrix is a little larger than a core's L2, the same order every step evicts each panel just before it is read
again; alternating, the panels read last are read first. Medians of CPU time per step, interleaved, as a table.

    python benchmarks/panel_order.py [--rows 1 2 4 8] [--hidden 192 224 256 288 320] [--repeats 7]
"""

import argparse
import time

import numpy as np
from lstmzoo.kernels import microkernel
from numba import njit

from lstmzoo import bench


@njit(nogil=True)
def _steps(h2, packed, out, n, alternate):
    for t in range(n):
        microkernel.matmul_packed(h2[t & 1], packed, out, alternate and t & 1 == 1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--hidden", type=int, nargs="+", default=[192, 224, 256, 288, 320])
    parser.add_argument("--steps", type=int, default=400, help="steps per timing (default 400)")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    print(f"CPU: {bench.cpu_model()}; micro-kernel {microkernel.VECTOR_BITS}-bit; float32, one thread, "
          f"{args.steps} steps a timing, median of {args.repeats}; load average before: {bench._load_average()}")
    print()
    print("| rows | H | packed W_hh^T MB | same order us/step | alternating us/step | alternating / same |")
    print("|---:|---:|---:|---:|---:|---:|")
    rng = np.random.default_rng(0)
    for H in args.hidden:
        packed = microkernel.pack((rng.standard_normal((H, 4 * H)) / np.sqrt(H)).astype(np.float32))
        for rows in args.rows:
            h2 = rng.standard_normal((2, rows, H)).astype(np.float32)
            out = np.empty((rows, 4 * H), np.float32)
            times = {False: [], True: []}
            for alternate in times:
                _steps(h2, packed, out, 2, alternate)
            for _ in range(args.repeats):
                for alternate in times:
                    start = time.process_time()
                    _steps(h2, packed, out, args.steps, alternate)
                    times[alternate].append((time.process_time() - start) / args.steps * 1e6)
            same, alternating = (float(np.median(times[k])) for k in (False, True))
            print(f"| {rows} | {H} | {packed.nbytes / 2**20:.2f} | {same:.2f} | {alternating:.2f} | "
                  f"{alternating / same:.2f} |", flush=True)
    print()
    print(f"load average after: {bench._load_average()}")


if __name__ == "__main__":
    main()
