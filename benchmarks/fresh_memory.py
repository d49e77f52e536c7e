"""What fresh memory costs the CPU kernels: an LSTM forward + backward with the large arrays recycled between calls
(kernels/memory.py) and with every array new from NumPy (as before session 26), each timed alone and right after
a torch.nn.LSTM forward + backward of the same shape in the same process (whose freed memory the next
allocations meet); user and system CPU time and wall time, medians, as a Markdown table.

    NUMBA_NUM_THREADS=1 python benchmarks/fresh_memory.py --threads 1 --shapes 128,256,1024 128,1024,1024
    NUMBA_NUM_THREADS=2 python benchmarks/fresh_memory.py --threads 2 --shapes 16,256,256 128,1024,1024

"New arrays" sets ``memory.MIN_BYTES`` past every request, so that each goes to ``np.empty``/``np.zeros`` (NumPy
asks the system for large blocks and gives them back when freed). The contenders run in turn, ``--repeats``
rounds, each after an idle of 0.3 s; T = 100, float32, a shape is B,I,H.
"""

import argparse
import os
import time

import numpy as np


def timed(call):
    """(user, system, wall) seconds of ``call()``."""
    start, wall = os.times(), time.perf_counter()
    call()
    end = os.times()
    return np.array([end.user - start.user, end.system - start.system, time.perf_counter() - wall])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--shapes", nargs="+", default=["128,256,1024", "128,1024,1024"], metavar="B,I,H")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    import numba
    import torch
    from lstmzoo.kernels import cpu, memory

    from lstmzoo import bench

    numba.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    recycled_from = memory.MIN_BYTES
    T = 100
    print(f"{args.threads} thread(s), T = {T}, float32, ms, median of {args.repeats}; {bench.cpu_model()}; "
          f"torch {torch.__version__}")
    print()
    print("| B | I | H | arrays | after | user | system | wall | wall / torch's |")
    print("|---:|---:|---:|---|---|---:|---:|---:|---:|")
    for shape in args.shapes:
        B, n_in, H = (int(n) for n in shape.split(","))
        rng = np.random.default_rng(0)
        x = rng.standard_normal((T, B, n_in), dtype=np.float32)
        h0 = np.zeros((B, H), np.float32)
        w_ih = rng.standard_normal((4 * H, n_in), dtype=np.float32) * np.float32(H ** -0.5)
        w_hh = rng.standard_normal((4 * H, H), dtype=np.float32) * np.float32(H ** -0.5)
        b = np.zeros(4 * H, np.float32)
        dy = rng.standard_normal((T, B, H), dtype=np.float32)
        lstm = torch.nn.LSTM(n_in, H)
        x_t, dy_t = torch.from_numpy(x).requires_grad_(), torch.from_numpy(dy)

        def ours():
            *_, cache = cpu.lstm_forward(x, h0, h0, w_ih, w_hh, b, b)
            cpu.lstm_backward(dy, None, None, cache)

        def theirs():
            y, _ = lstm(x_t)
            y.backward(dy_t)

        contenders = {}
        for arrays, least in (("recycled", recycled_from), ("new", 1 << 62)):
            for after in ("ours", "torch"):
                contenders[arrays, after] = least
        ours(), theirs()
        times = {key: [] for key in contenders}
        times["torch", "torch"] = []
        for _ in range(args.repeats):
            for (arrays, after), least in contenders.items():
                memory.MIN_BYTES = least
                if arrays == "new":
                    memory.release()  # the recycled slabs back to the system, as before session 26
                ours()  # the same contender's step before: its memory freed as a training loop frees it
                if after == "torch":
                    theirs()
                time.sleep(0.3)
                times[arrays, after].append(timed(ours))
            time.sleep(0.3)
            times["torch", "torch"].append(timed(theirs))
        memory.MIN_BYTES = recycled_from
        torch_wall = np.median(np.array(times["torch", "torch"]), axis=0)[2]
        for (arrays, after), rows in times.items():
            user, system, wall = np.median(np.array(rows), axis=0) * 1e3
            name = "torch.nn.LSTM" if arrays == "torch" else arrays
            print(f"| {B} | {n_in} | {H} | {name} | {'torch' if after == 'torch' else 'its own step'} | {user:.0f} | "
                  f"{system:.0f} | {wall:.0f} | {wall / torch_wall / 1e3:.2f} |", flush=True)


if __name__ == "__main__":
    main()
