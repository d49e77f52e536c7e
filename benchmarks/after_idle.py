"""Per-call times of the first calls after the process idled: an older commit's kernels, the working tree's and
torch, in one process, each timed in rounds of an idle followed by back-to-back calls, rounds alternating.

    NUMBA_NUM_THREADS=2 python benchmarks/after_idle.py --shape 16 128 128
    NUMBA_NUM_THREADS=2 python benchmarks/after_idle.py --shape 4 64 256 --variant units --old HEAD~2

Prints, per contender, the median over rounds of each of the first 10 calls' milliseconds, then the medians of calls
11-20 and 21 on, and the mean of all calls (what a timing that starts after an idle averages). Written for the
threads that the kernel placed on one CPU after an idle (benchmarks/RESULTS.md "Session 20"): a benchmark that
idles before each timing (benchmarks/kernels_cpu.py) sees those first calls. ``--variant`` forces one of
benchmarks/unit_split.py's thread splits in both kernels (default: their plans). LSTM, T = 100, float32.
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import forward_ab  # noqa: E402
import unit_split  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=[16, 128, 128], metavar=("B", "I", "H"))
    parser.add_argument("--mode", choices=("inference", "training"), default="inference")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--old", default="HEAD", help="the older kernels' commit (default HEAD)")
    parser.add_argument("--variant", choices=tuple(unit_split.VARIANTS), default=None)
    parser.add_argument("--idle", type=float, default=0.3, help="seconds of idle before each round (default 0.3)")
    parser.add_argument("--calls", type=int, default=60, help="calls per round (default 60)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args(argv)

    import torch
    from lstmzoo.kernels import cpu as new

    from lstmzoo import bench

    old = forward_ab.load_old(args.old)
    for module in (old, new):
        module.set_num_threads(args.threads)
        if args.variant:
            for name, value in zip(unit_split.SETTINGS, unit_split.VARIANTS[args.variant]):
                if value is not None and hasattr(module, name):
                    setattr(module, name, value)
    import numba
    numba.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    B, n_in, H = args.shape
    T, training = args.steps, args.mode == "training"
    params, x, h0, dy = bench.problem("lstm", T, B, n_in, H)
    calls = {"old": bench.kernel_call(old, "lstm", params, x, h0, dy, training),
             "new": bench.kernel_call(new, "lstm", params, x, h0, dy, training),
             "torch": bench.torch_call(torch, params, x, dy, training)}
    for call in calls.values():
        call()
    times = {name: [] for name in calls}
    for _ in range(args.rounds):
        for name, call in calls.items():
            time.sleep(args.idle)
            row = []
            for _ in range(args.calls):
                start = time.perf_counter()
                call()
                row.append((time.perf_counter() - start) * 1e3)
            times[name].append(row)
    print(f"# LSTM {args.mode}, B = {B}, I = {n_in}, H = {H}, T = {T}, {args.threads} threads, old = {args.old}, "
          f"variant {args.variant or 'plan'}; {bench.cpu_model()}; ms per call, median over {args.rounds} rounds "
          f"of {args.calls} calls after a {args.idle} s idle")
    print("| kernels | call 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 | 10 | calls 11-20 | 21- | mean of all |")
    print("|---|" + "---:|" * 13)
    for name, rows in times.items():
        a = np.median(np.array(rows), axis=0)
        cells = [f"{t:.2f}" for t in a[:10]] + [f"{np.median(a[10:20]):.2f}", f"{np.median(a[20:]):.2f}",
                                               f"{np.mean(rows):.2f}"]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
