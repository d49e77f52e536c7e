"""A/B of the CPU LSTM training step (forward with saved gates + backward): this checkout's kernels/cpu.py against
an older copy of the kernels package, and torch.nn.LSTM forward + backward, interleaved in one process.

    git show <commit>:kernels/cpu.py > /tmp/oldpkg/kernels_old/cpu.py   (also microkernel.py, arguments.py,
    an empty __init__.py)
    NUMBA_NUM_THREADS=1 python benchmarks/ab_backward.py --old /tmp/oldpkg --threads 1 --shapes 128x128x128

Prints, per shape (BxIxH, T = --steps), the median (and min) CPU time (process time, all threads) and the median
wall time of: new training, old training, new backward alone, old backward alone, torch training; each round
calls each of them once, in that order."""

import argparse
import importlib
import sys
import time

import numpy as np


def timed(call, repeats_out, key):
    start_cpu, start_wall = time.process_time(), time.perf_counter()
    call()
    repeats_out.setdefault(key, []).append((time.process_time() - start_cpu, time.perf_counter() - start_wall))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--old", default="/tmp/oldpkg")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5, help="at least this many rounds")
    parser.add_argument("--budget", type=float, default=20.0,
                        help="more rounds (up to 200) for fast shapes, to last about this many seconds")
    parser.add_argument("--cell", default="lstm", choices=("lstm", "gru", "rnn"))
    parser.add_argument("--shapes", nargs="+", default=["128x128x128"])
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--reverse", action="store_true", help="call them in the reverse order in each round")
    args = parser.parse_args()
    import numba

    from lstmzoo.kernels import cpu as new  # the installed name: a second name (kernels.cpu) shares the Numba cache
    sys.path.insert(0, args.old)
    old = importlib.import_module("kernels_old.cpu")
    numba.set_num_threads(args.threads)
    new.set_num_threads(args.threads)
    torch = None
    if not args.no_torch:
        import torch
        torch.set_num_threads(args.threads)
    from lstmzoo import bench
    print(f"{args.cell}, T={args.steps}, {args.threads} thread(s); ms: median CPU (min CPU) / median wall")
    print("| B | I | H | new train | old train | new bwd | old bwd | torch train | new/old train CPU: median (min) | "
          "new/torch train CPU: median (min) | load before, rounds |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for shape in args.shapes:
        B, width, H = map(int, shape.split("x"))
        p, x, h0, dy = bench.problem(args.cell, args.steps, B, width, H)

        def step(mod):
            if args.cell == "lstm":
                *_, cache = mod.lstm_forward(x, h0, h0, **p)
                return lambda: mod.lstm_backward(dy, None, None, cache)
            *_, cache = getattr(mod, args.cell + "_forward")(x, h0, **p)
            return lambda: getattr(mod, args.cell + "_backward")(dy, None, cache)

        calls = {"new train": lambda: step(new)(), "old train": lambda: step(old)()}
        bwd_new, bwd_old = step(new), step(old)
        calls["new bwd"], calls["old bwd"] = bwd_new, bwd_old
        if torch is not None:
            calls["torch train"] = bench.torch_call(torch, p, x, dy, True, cell=args.cell)
        start = time.perf_counter()
        for call in calls.values():
            call()  # compile, warm up
        load = open("/proc/loadavg").read().split()[0]
        samples = {}
        for call in calls.values():
            call()
        one_round = time.perf_counter() - start  # an upper bound: the first round compiled
        repeats = max(args.repeats, min(200, int(args.budget / max(one_round / 2, 1e-6))))
        order = list(calls.items())[::-1] if args.reverse else list(calls.items())
        for _ in range(repeats):
            for key, call in order:
                timed(call, samples, key)
        med = {k: np.median(np.array(v), axis=0) * 1e3 for k, v in samples.items()}
        low = {k: np.min(np.array(v), axis=0) * 1e3 for k, v in samples.items()}
        cells = [f"{med[k][0]:.4g} ({low[k][0]:.4g}) / {med[k][1]:.4g}" for k in calls]
        ratio_old = f"{med['new train'][0] / med['old train'][0]:.2f} ({low['new train'][0] / low['old train'][0]:.2f})"
        ratio_torch = (f"{med['new train'][0] / med['torch train'][0]:.2f} "
                       f"({low['new train'][0] / low['torch train'][0]:.2f})") if torch is not None else "-"
        if torch is None:
            cells.append("-")
        print(f"| {B} | {width} | {H} | " + " | ".join(cells) + f" | {ratio_old} | {ratio_torch} | {load}, "
              f"{repeats} rounds |",
              flush=True)


if __name__ == "__main__":
    main()
