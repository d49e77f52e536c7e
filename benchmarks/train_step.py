"""One whole training step of a small model, LSTM + a Linear head on every step + Adam, as a recipe runs it: the
kernels' LSTM and the head's GEMMs on the kernels' threads (the default since session 30), the head on NumPy's
OpenBLAS as before (all its threads, and one), and torch's same step.

    NUMBA_NUM_THREADS=2 python benchmarks/train_step.py
    NUMBA_NUM_THREADS=2 python benchmarks/train_step.py --shapes 35,4,256,256,1000 35,20,650,650,10000

The kernel tables (benchmarks/kernels_cpu.py) time the LSTM alone. In a model, a head on NumPy's OpenBLAS leaves
OpenBLAS's worker threads spinning for a while after each call (about 0.1 s, OpenBLAS's thread timeout): the LSTM's
forward and backward then share the cores with them. Since session 30 ``Linear`` runs its large GEMMs through the
kernels' micro-kernel on their threads instead (``kernels.cpu.dense_forward``). This script shows what each costs,
part by part (milliseconds, median of the steps): the LSTM's forward, the head's forward and backward, the LSTM's
backward, the optimizer's step, and the whole step. Shapes are T,B,I,H,V (V: the head's outputs); float32. Each
configuration runs ``--steps`` steps after two untimed ones, ``--repeats`` times, alternating. Without torch (or with
``--no-torch``) the last column reads "-".
"""

import argparse
import contextlib
import statistics
import time

import numpy as np

from lstmzoo import bench

PARTS = ("lstm fwd", "head fwd+bwd", "lstm bwd", "optimizer", "step")


def ours(T, B, n_in, H, V):
    from lstmzoo.nn.layers import Linear
    from lstmzoo.nn.module import Module
    from lstmzoo.nn.recurrent import LSTM
    from lstmzoo.optim import Adam

    class Model(Module):
        def __init__(self):
            super().__init__()
            self.lstm, self.head = LSTM(n_in, H), Linear(H, V)

    model = Model()
    optimizer = Adam(model, 1e-3)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, n_in)).astype(np.float32)
    dout = (rng.standard_normal((T, B, V)) * 1e-3).astype(np.float32)

    def step():
        optimizer.zero_grad()
        t0 = time.perf_counter()
        y, _ = model.lstm.forward(x)
        t1 = time.perf_counter()
        model.head.forward(y)
        dy = model.head.backward(dout)
        t2 = time.perf_counter()
        model.lstm.backward(dy)
        t3 = time.perf_counter()
        optimizer.step()
        t4 = time.perf_counter()
        return t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0
    return step


def theirs(torch, T, B, n_in, H, V):
    lstm, head = torch.nn.LSTM(n_in, H), torch.nn.Linear(H, V)
    optimizer = torch.optim.Adam(list(lstm.parameters()) + list(head.parameters()), 1e-3)
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((T, B, n_in)).astype(np.float32))
    dout = torch.from_numpy((rng.standard_normal((T, B, V)) * 1e-3).astype(np.float32))

    def step():
        optimizer.zero_grad()
        t0 = time.perf_counter()
        y, _ = lstm(x)
        out = head(y)
        out.backward(dout)
        t3 = time.perf_counter()
        optimizer.step()
        t4 = time.perf_counter()
        return float("nan"), float("nan"), float("nan"), t4 - t3, t4 - t0
    return step


@contextlib.contextmanager
def head_on_numpy(on):
    """The Linear head's GEMMs on NumPy's ``@`` at every size (as before session 30), not on the kernels' threads."""
    from lstmzoo.kernels import cpu
    before = cpu._MIN_DENSE_MACS
    cpu._MIN_DENSE_MACS = float("inf") if on else before
    try:
        yield
    finally:
        cpu._MIN_DENSE_MACS = before


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=["35,4,256,256,1000", "100,4,64,256,10", "35,32,256,256,1000",
                                                         "35,20,200,200,10000"], help="T,B,I,H,V")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-torch", action="store_true")
    args = parser.parse_args(argv)

    import numba
    from threadpoolctl import threadpool_limits
    torch = None if args.no_torch else bench._import_torch()  # without torch (the bench extra): no peer rows
    if torch is not None:
        torch.set_num_threads(numba.get_num_threads())
    print(f"CPU: {bench.cpu_model()}; {numba.get_num_threads()} threads; float32; ms a step, median of "
          f"{args.steps * args.repeats} steps; load average before (1, 5, 15 min): {bench._load_average()}")
    print()
    print("| T | B | I | H | V | run | " + " | ".join(PARTS) + " | step / torch's |")
    print("|---:|---:|---:|---:|---:|---|" + "---:|" * (len(PARTS) + 1))
    for shape in args.shapes:
        T, B, n_in, H, V = map(int, shape.split(","))
        # (step, OpenBLAS's threads, the head's GEMMs on NumPy's OpenBLAS as before session 30)
        runs = {"lstmzoo": (ours(T, B, n_in, H, V), None, False),
                "lstmzoo, head on NumPy, OpenBLAS all threads": (ours(T, B, n_in, H, V), None, True),
                "lstmzoo, head on NumPy, OpenBLAS 1 thread": (ours(T, B, n_in, H, V), 1, True)}
        if torch is not None:
            runs["torch"] = (theirs(torch, T, B, n_in, H, V), None, False)
        times = {name: [] for name in runs}
        for _ in range(args.repeats):
            for name, (step, limit, numpy_head) in runs.items():
                with threadpool_limits(limits=limit, user_api="blas"), head_on_numpy(numpy_head):
                    step()
                    step()
                    times[name] += [step() for _ in range(args.steps)]
        medians = {name: [1e3 * statistics.median(t[i] for t in ts) for i in range(len(PARTS))]
                   for name, ts in times.items()}
        for name, ms in medians.items():
            ratio = f"{ms[-1] / medians['torch'][-1]:.2f}" if "torch" in medians else "-"
            cells = " | ".join("-" if v != v else f"{v:.2f}" for v in ms)
            print(f"| {T} | {B} | {n_in} | {H} | {V} | {name} | {cells} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
