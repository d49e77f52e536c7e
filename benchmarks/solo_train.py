"""One LSTM training step (forward with saved gates + backward) timed alone in its process: this checkout's kernels,
an older copy of them, or torch.nn.LSTM. Run one process per version; unlike an interleaved A/B, no version evicts
the others' data or pays for the previous one's memory.

    git show <commit>:kernels/cpu.py > /tmp/oldpkg/kernels_old/cpu.py   (also microkernel.py, arguments.py, an
    empty __init__.py)
    NUMBA_NUM_THREADS=1 python benchmarks/solo_train.py 128x256x1024 new 4
    NUMBA_NUM_THREADS=1 python benchmarks/solo_train.py 128x256x1024 old 4 --old /tmp/oldpkg
    NUMBA_NUM_THREADS=1 python benchmarks/solo_train.py 128x256x1024 torch 4

Shape BxIxH, T = 100; after one warm-up step, N steps; prints CPU ms median and min of the forward, the backward
and the step, the step's wall ms, and the load average. Threads: NUMBA_NUM_THREADS (also OpenBLAS's and torch's).
"""

import argparse
import importlib
import os
import sys
import time

import numpy as np


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("shape")
    parser.add_argument("version", choices=("new", "old", "torch"))
    parser.add_argument("steps", type=int)
    parser.add_argument("--old", default="/tmp/oldpkg")
    args = parser.parse_args()
    threads = int(os.environ.get("NUMBA_NUM_THREADS", "1"))
    B, width, H = map(int, args.shape.split("x"))
    T = 100
    rng = np.random.default_rng(0)
    bound = 1 / np.sqrt(H)
    names = ("w_ih", "w_hh", "b_ih", "b_hh")
    shapes = ((4 * H, width), (4 * H, H), (4 * H,), (4 * H,))
    p = {n: rng.uniform(-bound, bound, s).astype(np.float32) for n, s in zip(names, shapes)}
    x = rng.standard_normal((T, B, width)).astype(np.float32)
    h0 = np.zeros((B, H), np.float32)
    dy = rng.standard_normal((T, B, H)).astype(np.float32)
    times = {"fwd": [], "bwd": [], "train": [], "wall": []}
    if args.version == "torch":
        import torch

        from lstmzoo.bench import torch_call
        torch.set_num_threads(threads)
        call = torch_call(torch, p, x, dy, True)
        call()
        for _ in range(args.steps):
            start, wall = time.process_time(), time.perf_counter()
            call()
            times["train"].append(time.process_time() - start)
            times["wall"].append(time.perf_counter() - wall)
    else:
        if args.version == "old":
            sys.path.insert(0, args.old)
        mod = importlib.import_module("kernels_old.cpu" if args.version == "old" else "kernels.cpu")
        mod.set_num_threads(threads)
        cache = mod.lstm_forward(x, h0, h0, **p)[-1]
        mod.lstm_backward(dy, None, None, cache)
        del cache
        for _ in range(args.steps):
            start, wall = time.process_time(), time.perf_counter()
            cache = mod.lstm_forward(x, h0, h0, **p)[-1]
            middle = time.process_time()
            mod.lstm_backward(dy, None, None, cache)
            end = time.process_time()
            times["wall"].append(time.perf_counter() - wall)
            del cache
            times["fwd"].append(middle - start)
            times["bwd"].append(end - middle)
            times["train"].append(end - start)
    summary = ", ".join(f"{k} {np.median(v) * 1e3:.4g} (min {np.min(v) * 1e3:.4g})" for k, v in times.items() if v)
    print(f"{args.version} {args.shape} {threads} thread(s), {args.steps} steps: {summary} ms; load "
          f"{open('/proc/loadavg').read().split()[0]}")


if __name__ == "__main__":
    main()
