"""A/B of the CPU kernels' forward (or forward + backward) against an older commit's and torch, in one process.

    NUMBA_NUM_THREADS=1 python benchmarks/forward_ab.py --threads 1 --batch 4 32 128 --shapes 32,128 128,128
    NUMBA_NUM_THREADS=2 python benchmarks/forward_ab.py --threads 2 --old HEAD~1 --mode training

The older kernels (``kernels/{cpu,microkernel,arguments,barrier,memory}.py`` at ``--old``, default HEAD) are written to
a temporary package and imported beside the working tree's; the three contenders (old, new, torch) are timed in turn,
each ``--repeats`` times, and the median is printed. Time: CPU time of the process at 1 thread (other jobs on a shared
machine do not count), wall time at 2 or more threads (where CPU time adds up the threads). T = 100, float32.
``--idle S`` sleeps S seconds before each timing, as benchmarks/kernels_cpu.py does (0.3): after an idle the
scheduler places threads differently for a while (benchmarks/RESULTS.md "Session 20").
"""

import argparse
import importlib
import os
import subprocess
import sys
import tempfile
import time

import numpy as np


def load_old(rev):
    root = tempfile.mkdtemp(prefix="lstmzoo_ab_")
    package = os.path.join(root, "oldkernels")
    os.makedirs(package)
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    # barrier.py since 713dc97, memory.py since session 26
    for name in ("cpu", "microkernel", "arguments", "barrier", "memory"):
        shown = subprocess.run(["git", "show", f"{rev}:kernels/{name}.py"], cwd=here, capture_output=True, text=True)
        if shown.returncode and name in ("barrier", "memory"):
            continue
        shown.check_returncode()
        with open(os.path.join(package, f"{name}.py"), "w") as f:
            f.write(shown.stdout)
    open(os.path.join(package, "__init__.py"), "w").close()
    sys.path.insert(0, root)
    return importlib.import_module("oldkernels.cpu")


def timer(threads):
    return time.process_time if threads == 1 else time.perf_counter


def seconds(call, clock, budget=0.3, idle=0.0):
    if idle:
        time.sleep(idle)
    call()
    start = clock()
    n = 0
    while True:
        call()
        n += 1
        elapsed = clock() - start
        if elapsed >= budget:
            return elapsed / n



def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--old", default="HEAD")
    parser.add_argument("--cell", default="lstm", choices=("lstm", "gru", "rnn"))
    parser.add_argument("--mode", default="inference", choices=("inference", "training"))
    parser.add_argument("--batch", type=int, nargs="+", default=[4, 16, 32, 128, 256])
    parser.add_argument("--shapes", nargs="+", default=["32,128", "128,128", "256,256", "128,512", "256,1024"],
                        help="I,H pairs")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--idle", type=float, default=0.0, help="seconds of idle before each timing (default 0)")
    args = parser.parse_args(argv)

    from lstmzoo.kernels import cpu as new
    old = load_old(args.old)
    new.set_num_threads(args.threads)
    old.set_num_threads(args.threads)
    torch = None
    if not args.no_torch:
        import torch
        torch.set_num_threads(args.threads)
    from lstmzoo import bench

    clock = timer(args.threads)
    load = open("/proc/loadavg").read().split()[:3]
    print(f"# {args.cell} {args.mode}, {args.threads} thread(s), T={args.steps}, old={args.old}, "
          f"{'CPU' if args.threads == 1 else 'wall'} time, median of {args.repeats}, idle {args.idle} s before each; "
          f"load before {' '.join(load)}")
    print("| B | I | H | old ms | new ms | torch ms | new/old | new/torch |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    training = args.mode == "training"
    for I_H in args.shapes:
        inputs, H = map(int, I_H.split(","))
        for B in args.batch:
            params, x, h0, dy = bench.problem(args.cell, args.steps, B, inputs, H)
            calls = [bench.kernel_call(module, args.cell, params, x, h0, dy, training) for module in (old, new)]
            if torch is not None:
                calls.append(bench.torch_call(torch, params, x, dy, training, cell=args.cell))
            samples = [[] for _ in calls]
            for _ in range(args.repeats):
                for call, times in zip(calls, samples):
                    times.append(seconds(call, clock, idle=args.idle))
            ms = [1e3 * float(np.median(t)) for t in samples]
            t_ms = f"{ms[2]:.2f}" if torch is not None else "-"
            vs_torch = f"{ms[1] / ms[2]:.2f}" if torch is not None else "-"
            print(f"| {B} | {inputs} | {H} | {ms[0]:.2f} | {ms[1]:.2f} | {t_ms} | {ms[1] / ms[0]:.2f} | {vs_torch} |",
                  flush=True)
    print(f"# load after {' '.join(open('/proc/loadavg').read().split()[:3])}")


if __name__ == "__main__":
    main()
