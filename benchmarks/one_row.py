"""One row (B = 1): the per-step GEMM on the micro-kernel against W_hh packed once a call ("packed") or on OpenBLAS's
GEMV ("gemv"), forced in the forward, the backward or both, and torch beside them; a Markdown table.

    NUMBA_NUM_THREADS=1 python benchmarks/one_row.py                          # H = 64..1024, T = 100, inference
    NUMBA_NUM_THREADS=1 python benchmarks/one_row.py --hidden 128 512 --steps 1 4 16 32 64
    NUMBA_NUM_THREADS=1 python benchmarks/one_row.py --mode training --force backward --hidden 128 256 512
    NUMBA_NUM_THREADS=2 python benchmarks/one_row.py --threads 2 --hidden 64 96 384 448

What it measured is behind ``kernels.cpu.plan``'s ``_MIN_STEPS_ONE_ROW_PACKED`` (benchmarks/RESULTS.md "Session 32"):
on one thread the forward's one row runs the micro-kernel from 32 steps; the backward and 2 threads keep the GEMV.
Only a block that the plan gives one row ("gemv" or "packed") is forced; the unit split is left as planned (the
"plan" column). Each library's threads are set to ``--threads`` (OpenBLAS's too); the calls alternate, idle first
(``lstmzoo.bench.median_times``).
"""

import argparse

from lstmzoo import bench


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cell", choices=bench.CELLS, default="lstm")
    parser.add_argument("--hidden", type=int, nargs="+", default=[64, 96, 128, 192, 256, 320, 384, 448, 512, 1024],
                        metavar="H", help="hidden sizes (I = H) (default 64 .. 1024)")
    parser.add_argument("--steps", type=int, nargs="+", default=[100], metavar="T",
                        help="sequence lengths (default 100)")
    parser.add_argument("--mode", choices=("inference", "training"), default="inference")
    parser.add_argument("--force", choices=("forward", "backward", "both"), default="forward",
                        help="the passes whose one-row block is forced each way (default forward)")
    parser.add_argument("--threads", type=int, default=1, help="threads of both libraries (default 1)")
    parser.add_argument("--repeats", type=int, default=5, help="timings per call, the median shown (default 5)")
    parser.add_argument("--no-torch", action="store_true", help="leave torch out")
    args = parser.parse_args(argv)

    from lstmzoo.kernels import cpu
    cpu.set_num_threads(args.threads)
    torch = None
    if not args.no_torch:
        torch = bench._import_torch()
        if torch is not None:
            torch.set_num_threads(args.threads)
    planned = cpu.plan

    def forced(step):
        def plan(*a, **k):
            how = planned(*a, **k)
            if args.force != "both" and (args.force == "backward") != bool(k.get("backward")):
                return how
            return how._replace(blocks=[cpu.Block(b.start, b.end, step) if b.step in ("gemv", "packed") and
                                        b.end - b.start == 1 else b for b in how.blocks])
        return plan

    def with_plan(plan, call):
        def run():
            cpu.plan = plan
            try:
                call()
            finally:
                cpu.plan = planned
        return run

    training = args.mode == "training"
    kind = {"lstm": cpu.LSTM, "gru": cpu.GRU, "rnn": cpu.RNN_TANH}[args.cell]
    print(f"{args.cell.upper()} {args.mode}, B = 1, I = H, {args.threads} thread(s), forced: {args.force}; "
          f"{bench.cpu_model()}; median of {args.repeats}")
    print()
    print("| T | H | plan (forward / backward) | gemv ms | packed ms | torch ms | packed / gemv | packed / torch |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|")
    for H in args.hidden:
        for T in args.steps:
            params, x, h0, dy = bench.problem(args.cell, T, 1, H, H)
            call = bench.kernel_call(cpu, args.cell, params, x, h0, dy, training)
            calls = [with_plan(forced("gemv"), call), with_plan(forced("packed"), call)]
            if torch is not None:
                calls.append(bench.torch_call(torch, params, x, dy, training, cell=args.cell))
            ms = [1e3 * t for t in bench.median_times(calls, args.repeats)]
            steps = [planned(1, args.threads, kind, H, training=training, backward=backward, inputs=H,
                             steps=T).blocks[0].step for backward in (False, True)]
            peer = f"{ms[2]:.3f}" if torch is not None else "-"
            ratio = f"{ms[1] / ms[2]:.2f}" if torch is not None else "-"
            print(f"| {T} | {H} | {' / '.join(steps)} | {ms[0]:.3f} | {ms[1]:.3f} | {peer} | {ms[1] / ms[0]:.2f} | "
                  f"{ratio} |", flush=True)


if __name__ == "__main__":
    main()
