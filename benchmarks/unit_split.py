"""The forward's two thread splits A/B against torch: the batch rows over threads (each thread the whole time loop
of its rows) and the hidden units over threads (all rows in each thread, one barrier per step; projection-first or
with the input projection fused into the step's GEMM), interleaved in one process, medians, as a Markdown table.

    python benchmarks/unit_split.py --threads 2 --cell lstm --mode inference
    python benchmarks/unit_split.py --threads 2 --batch 1 4 16 --hidden 256 1024 --input H --mode training

Training times forward (training=True) + backward. The variants are forced by setting ``kernels/cpu.py``'s thresholds
for the call (``SETTINGS``; "units" wherever it can run): "rows", "rows-2" (blocks of 2 or more rows instead of 4),
"units" and "units-fused" run the backward's time loop on the row split (one thread below 8 rows), "units-bwd"
splits the units in the backward's time loop too (``_backward_units``), "rows-units-bwd" only there. "plan" is
what ``cpu.plan`` chooses with the thresholds as committed.

    python benchmarks/unit_split.py --threads 2 --batch 2 4 --hidden 256 512 1024 --mode training \
        --variants rows units units-bwd rows-units-bwd
"""

import argparse

import numpy as np

from lstmzoo import bench

# kernels/cpu.py's thresholds set for each variant's calls
# (None: as committed)
SETTINGS = ("_MAX_ROWS_UNIT_SPLIT", "_MIN_ROWS_UNIT_SPLIT", "_MIN_UNIT_WEIGHTS", "_MIN_UNIT_WEIGHTS_TRAINING",
            "_MIN_ROWS_UNITS_FUSED", "_MIN_UNIT_WEIGHTS_BACKWARD", "_MAX_ROWS_UNIT_SPLIT_LARGE", "_MIN_ROWS_PER_THREAD",
            "_MIN_UNIT_WEIGHTS_ONE_ROW", "_MIN_UNIT_WEIGHTS_ONE_ROW_TRAINING", "_MAX_ROWS_UNIT_SPLIT_L2")
VARIANTS = {
    "rows": (0, 10**9, 10**18, 10**18, 10**9, 10**18, 0, None, 10**18, 10**18, 0),
    # the row split in blocks of at least 2 rows (committed: _MIN_ROWS_PER_THREAD = 4), e.g. 2 + 2 at B = 4
    "rows-2": (0, 10**9, 10**18, 10**18, 10**9, 10**18, 0, 2, 10**18, 10**18, 0),
    # the forward's unit split (each thread projecting its own units' inputs); the backward's loop on the row split
    "units": (10**9, 1, 0, 0, 10**9, 10**18, 10**9, None, 10**18, 10**18, 10**9),
    "units-fused": (10**9, 1, 0, 0, 0, 10**18, 10**9, None, 10**18, 10**18, 10**9),
    # units, and the backward's time loop split by units too
    "units-bwd": (10**9, 1, 0, 0, 10**9, 0, 10**9, None, 10**18, 10**18, 10**9),
    # the forward's row split, the backward's unit split
    "rows-units-bwd": (10**9, 1, 10**18, 10**18, 10**9, 0, 10**9, None, 10**18, 10**18, 0),
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cell", choices=("lstm", "gru", "rnn"), default="lstm")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    parser.add_argument("--hidden", type=int, nargs="+", default=[128, 256, 512, 1024])
    parser.add_argument("--input", nargs="+", default=["H", "H/4"])
    parser.add_argument("--mode", nargs="+", choices=("inference", "training"), default=["inference", "training"])
    parser.add_argument("--variants", nargs="+", choices=tuple(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--steps", type=int, default=bench.T)
    parser.add_argument("--idle", type=float, default=0.1, help="seconds of idle before each timing (default 0.1)")
    parser.add_argument("--timed", type=float, default=0.1, help="seconds each timing aims at (default 0.1)")
    args = parser.parse_args(argv)

    import numba
    import torch
    from lstmzoo.kernels import cpu

    bench.IDLE_S, bench.TIMED_S = args.idle, args.timed
    numba.set_num_threads(args.threads)
    cpu.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    committed = tuple(getattr(cpu, name) for name in SETTINGS)
    G = bench.GATES[args.cell]
    kind = {"lstm": cpu.LSTM, "gru": cpu.GRU, "rnn": cpu.RNN_TANH}[args.cell]
    print(f"CPU: {bench.cpu_model()}, micro-kernel {cpu.microkernel.VECTOR_BITS}-bit; "
          f"{args.threads} threads; torch {torch.__version__}; cell {args.cell}; T = {args.steps}; float32; median of "
          f"{args.repeats}; load average before: {open('/proc/loadavg').read().split()[:3]}")
    print()
    names = args.variants
    print("| B | I | H | mode | " + " | ".join(f"{n} ms" for n in names) + " | torch ms | plan | "
          + " | ".join(f"{n} / torch" for n in names) + " | plan / torch |")
    print("|---|---|---|---|" + "---:|" * (2 * len(names) + 3))
    for mode in args.mode:
        training = mode == "training"
        for H in args.hidden:
            for width in args.input:
                n_in = H // 4 if width == "H/4" else (H if width == "H" else int(width))
                for B in args.batch:
                    rng = np.random.default_rng(0)
                    bound = 1 / np.sqrt(H)
                    params = {"w_ih": rng.uniform(-bound, bound, (G * H, n_in)),
                              "w_hh": rng.uniform(-bound, bound, (G * H, H)),
                              "b_ih": rng.uniform(-bound, bound, G * H), "b_hh": rng.uniform(-bound, bound, G * H)}
                    params = {k: v.astype(np.float32) for k, v in params.items()}
                    x = rng.standard_normal((args.steps, B, n_in)).astype(np.float32)
                    h0 = np.zeros((B, H), np.float32)
                    dy = rng.standard_normal((args.steps, B, H)).astype(np.float32)

                    def ours(setting):
                        def call():
                            for name, value in zip(SETTINGS, setting):
                                if value is not None:
                                    setattr(cpu, name, value)
                            try:
                                if args.cell == "lstm":
                                    *_, cache = cpu.lstm_forward(x, h0, h0, **params, training=training)
                                    if training:
                                        cpu.lstm_backward(dy, None, None, cache)
                                else:
                                    *_, cache = getattr(cpu, args.cell + "_forward")(x, h0, **params,
                                                                                     training=training)
                                    if training:
                                        getattr(cpu, args.cell + "_backward")(dy, None, cache)
                            finally:
                                for name, value in zip(SETTINGS, committed):
                                    setattr(cpu, name, value)
                        return call

                    calls = [ours(VARIANTS[n]) for n in names]
                    calls.append(bench.torch_call(torch, params, x, dy, training, cell=args.cell))
                    times = bench.median_times(calls, args.repeats)
                    how = cpu.plan(B, args.threads, kind=kind, hidden=H, training=training, inputs=n_in,
                                   steps=args.steps)
                    backward_units = training and cpu.plan(B, args.threads, kind=kind, hidden=H,
                                                           backward=True).blocks[0].step == "units"
                    if how.blocks[0].step == "units":
                        chosen = "units-fused" if how.fused else "units"
                        if backward_units:
                            chosen = "units-bwd" if chosen == "units" else "units-fused+bwd (not a variant)"
                    else:
                        chosen = "rows-units-bwd" if backward_units else "rows"
                    t_plan = times[names.index(chosen)] if chosen in names else float("nan")
                    torch_ms = times[-1] * 1e3
                    print(f"| {B} | {n_in} | {H} | {mode} | " + " | ".join(f"{t * 1e3:.2f}" for t in times[:-1])
                          + f" | {torch_ms:.2f} | {chosen} | "
                          + " | ".join(f"{t * 1e3 / torch_ms:.2f}" for t in times[:-1])
                          + f" | {t_plan * 1e3 / torch_ms:.2f} |", flush=True)
    print()
    print(f"load average after: {open('/proc/loadavg').read().split()[:3]}")


if __name__ == "__main__":
    main()
