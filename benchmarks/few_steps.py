"""The unit split against the row split for calls of few steps (a decoder's or a sampler's step: T = 1; short
sequences), and the page faults each call takes: a Markdown table.

    NUMBA_NUM_THREADS=2 python benchmarks/few_steps.py --batch 1 --steps 1 2 4 8 16 32 48 64 100
    NUMBA_NUM_THREADS=2 python benchmarks/few_steps.py --batch 2 4 --steps 1 2 4 16 --mode training
    NUMBA_NUM_THREADS=2 python benchmarks/few_steps.py --cell gru --batch 1 4 --steps 1 2 16 32 64

Both splits are forced (``cpu._unit_split`` patched), whatever ``plan`` would choose, which the table names
("plan"). Each is timed after an idle of 0.3 s and one untimed call, ``--repeats`` rounds of ``--calls`` calls in
turn, the median of all; wall time (the threads run at once). The faults column: the fewest minor page faults
(the kernel handing the process a fresh page) of one call of the unit split, of the row split. ``--cell`` (LSTM,
GRU or the tanh RNN), I = H, float32, on Numba's threads (``NUMBA_NUM_THREADS``).
"""

import argparse
import resource
import statistics
import time

import numpy as np


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--hidden", type=int, nargs="+", default=[128, 256, 512, 1024])
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--mode", default="inference", choices=("inference", "training"))
    parser.add_argument("--cell", default="lstm", choices=("lstm", "gru", "rnn"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--calls", type=int, default=10)
    args = parser.parse_args(argv)

    import numba
    from lstmzoo.kernels import cpu

    from lstmzoo import bench

    threads = numba.get_num_threads()
    training = args.mode == "training"
    real = cpu._unit_split

    def forced(units):
        def split(B, threads, kind, hidden, *rest):
            return cpu._unit_parts(hidden, threads) if units else ()
        return split

    kind, gates = {"lstm": (cpu.LSTM, 4), "gru": (cpu.GRU, 3), "rnn": (cpu.RNN_TANH, 1)}[args.cell]
    print(f"# {args.cell.upper()} {args.mode} (forward{' + backward' if training else ''}), I = H, {threads} threads; "
          f"{bench.cpu_model()}; wall time, median of {args.repeats} x {args.calls} calls")
    print("| T | B | H | plan | unit split ms | row split ms | rows / units | faults a call (units, rows) |")
    print("|---:|---:|---:|---|---:|---:|---:|---|")
    rng = np.random.default_rng(0)
    for B in args.batch:
        for H in args.hidden:
            for T in args.steps:
                w_ih, w_hh = (0.1 * rng.standard_normal((2, gates * H, H))).astype(np.float32)
                b = np.zeros(gates * H, np.float32)
                h0 = np.zeros((B, H), np.float32)
                x, dy = rng.standard_normal((2, T, B, H)).astype(np.float32)

                def call():
                    if kind == cpu.LSTM:
                        out = cpu.lstm_forward(x, h0, h0, w_ih, w_hh, b, b, training=training)
                        if training:
                            cpu.lstm_backward(dy, None, None, out[3])
                    else:
                        forward = cpu.gru_forward if kind == cpu.GRU else cpu.rnn_forward
                        out = forward(x, h0, w_ih, w_hh, b, b, training=training)
                        if training:
                            (cpu.gru_backward if kind == cpu.GRU else cpu.rnn_backward)(dy, None, out[2])

                times, faults = {True: [], False: []}, {True: [], False: []}
                try:
                    for _ in range(args.repeats):
                        for units in (True, False):
                            cpu._unit_split = forced(units)
                            time.sleep(0.3)
                            call()
                            for _ in range(args.calls):
                                before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                                start = time.perf_counter()
                                call()
                                times[units].append(time.perf_counter() - start)
                                faults[units].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
                finally:
                    cpu._unit_split = real
                step = cpu.plan(B, kind=kind, hidden=H, training=training, inputs=H, steps=T).blocks[0].step
                if training:
                    step += "/" + cpu.plan(B, kind=kind, hidden=H, backward=True, inputs=H, steps=T).blocks[0].step
                units_ms, rows_ms = (1e3 * statistics.median(times[u]) for u in (True, False))
                print(f"| {T} | {B} | {H} | {step} | {units_ms:.3f} | {rows_ms:.3f} | {rows_ms / units_ms:.2f} | "
                      f"{min(faults[True])}, {min(faults[False])} |", flush=True)


if __name__ == "__main__":
    main()
