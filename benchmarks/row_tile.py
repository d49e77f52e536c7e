"""One row's per-step GEMM, ``h[1, H] @ W_hh^T`` (W_hh [G*H, H], packed once), on ONE thread: the micro-kernel of
the working tree against an older commit's (``--old``, default HEAD), in one process; a Markdown table.

    python benchmarks/row_tile.py --old HEAD~1
    bash benchmarks/as_avx2.sh python benchmarks/row_tile.py --old HEAD~1 --dtype float32 float64

What it measured is behind ``kernels/microkernel.py``'s ``_ROW_PANELS`` (benchmarks/RESULTS.md "Session 39"): one
row over three whole panels in one tile (9 FMA chains) instead of a tile a panel (3). The two GEMMs give the same bits
(checked here before timing). Each timing is a compiled loop of calls lasting about ``--seconds``; old and new
alternate; the median of ``--repeats`` is shown, in microseconds a call.
"""

import argparse
import sys
import time

import numpy as np
from numba import njit

from lstmzoo import bench


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", default="HEAD", help="the commit to compare with (default HEAD)")
    parser.add_argument("--hidden", type=int, nargs="+", default=[16, 24, 32, 48, 64, 96, 128, 192, 256, 512],
                        metavar="H")
    parser.add_argument("--gates", type=int, default=4, help="G: 4 (LSTM), 3 (GRU) or 1 (RNN); default 4")
    parser.add_argument("--dtype", nargs="+", default=["float32"], choices=("float32", "float64"))
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--seconds", type=float, default=0.02, help="length of one timing (default 0.02)")
    args = parser.parse_args(argv)

    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    from forward_ab import load_old
    from lstmzoo.kernels import microkernel as new
    load_old(args.old)
    old = sys.modules["oldkernels.microkernel"]

    def looped(module):
        @njit
        def loop(h, packed, out, n, scratch):
            for t in range(n):
                module.matmul_packed(h, packed, out, t & 1 == 1, scratch)
        return loop

    loops = [looped(old), looped(new)]
    print(f"One row, h[1, H] @ W_hh^T, W_hh [{args.gates}H, H], one thread; old = {args.old}; {bench.cpu_model()}; "
          f"micro-kernel {new.VECTOR_BITS}-bit; median of {args.repeats}, us a call")
    print()
    print("| dtype | H | W_hh KB | old us | new us | new / old |")
    print("|---|---:|---:|---:|---:|---:|")
    rng = np.random.default_rng(0)
    for name in args.dtype:
        dtype = np.dtype(name)
        for H in args.hidden:
            N = args.gates * H
            h = rng.standard_normal((1, H)).astype(dtype)
            packed = new.pack(np.ascontiguousarray(rng.standard_normal((N, H)).astype(dtype).T))
            scratch = new.scratch_tile(packed)
            outs = [np.empty((1, N), dtype) for _ in loops]
            for loop, out in zip(loops, outs):
                loop(h, packed, out, 2, scratch)
            if not np.array_equal(*outs):
                raise SystemExit(f"the old and new GEMMs differ at {name}, H = {H}")
            n = 10
            while True:
                start = time.perf_counter()
                loops[1](h, packed, outs[1], n, scratch)
                if time.perf_counter() - start >= args.seconds / 4:
                    break
                n *= 2
            n = max(1, int(n * args.seconds / max(time.perf_counter() - start, 1e-9)))
            times = [[], []]
            for _ in range(args.repeats):
                for k, (loop, out) in enumerate(zip(loops, outs)):
                    start = time.perf_counter()
                    loop(h, packed, out, n, scratch)
                    times[k].append((time.perf_counter() - start) / n * 1e6)
            o, w = (float(np.median(t)) for t in times)
            print(f"| {name} | {H} | {packed.nbytes // 1024} | {o:.3f} | {w:.3f} | {w / o:.2f} |", flush=True)


if __name__ == "__main__":
    main()
