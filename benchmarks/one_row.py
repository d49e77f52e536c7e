"""One row (B = 1): the per-step GEMM on the micro-kernel against W_hh packed once a call ("packed") or on OpenBLAS's
GEMV ("gemv"), or on 2 or more threads the unit split ("units") or "packed" with the input projection first
("packed-first"), forced in the forward, the backward or both, the plan as committed and torch beside them; a
Markdown table.

    NUMBA_NUM_THREADS=1 python benchmarks/one_row.py                          # H = 64..1024, T = 100, inference
    NUMBA_NUM_THREADS=1 python benchmarks/one_row.py --hidden 128 512 --steps 1 4 16 32 64
    NUMBA_NUM_THREADS=1 python benchmarks/one_row.py --mode training --force backward --hidden 128 256 512
    NUMBA_NUM_THREADS=2 python benchmarks/one_row.py --threads 2 --hidden 64 128 192 256 --input H H/4

What it measured is behind ``kernels.cpu.plan``'s ``_MIN_STEPS_ONE_ROW_PACKED`` (benchmarks/RESULTS.md "Session 32";
2 threads: "Session 38"): on one thread the forward's one row runs the micro-kernel from 32 steps; the backward and 2
threads keep the GEMV, or split the units. The forced forward "packed" on 2 or more threads has the input projection
beside its loop where the plan's rule 4 says so (from 2^22 multiply-adds); the forced backward keeps the plan's.
Each library's threads are set to ``--threads`` (OpenBLAS's too); the calls alternate, idle first
(``lstmzoo.bench.median_times``).
"""

import argparse
import inspect

import numpy as np

from lstmzoo import bench


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cell", choices=bench.CELLS, default="lstm")
    parser.add_argument("--hidden", type=int, nargs="+", default=[64, 96, 128, 192, 256, 320, 384, 448, 512, 1024],
                        metavar="H", help="hidden sizes (default 64 .. 1024)")
    parser.add_argument("--steps", type=int, nargs="+", default=[100], metavar="T",
                        help="sequence lengths (default 100)")
    parser.add_argument("--input", nargs="+", default=["H"], metavar="I",
                        help="input widths: H (I = H), H/4, or a number (default H)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
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
    kind = {"lstm": cpu.LSTM, "gru": cpu.GRU, "rnn": cpu.RNN_TANH}[args.cell]
    signature = inspect.signature(planned)
    variants = ["gemv", "packed"] + (["packed-first", "units"] if args.threads > 1 else [])

    def forced(step):
        def plan(*a, **k):
            how = planned(*a, **k)
            asked = signature.bind(*a, **k).arguments
            backward = bool(asked.get("backward"))
            if asked["B"] != 1 or args.force != "both" and (args.force == "backward") != backward:
                return how
            hidden, inputs, steps = asked["hidden"], asked.get("inputs"), asked.get("steps")
            if step == "units":
                return cpu.Plan([cpu.Block(0, 1, "units", cpu._unit_parts(hidden, args.threads))])
            beside = how.beside
            if not backward and steps and inputs:
                beside = (step == "packed" and args.threads > 1 and steps > 1
                          and steps * inputs * cpu._GATES[kind] * hidden >= cpu._MIN_BESIDE_MACS)
            return cpu.Plan([cpu.Block(0, 1, step.removesuffix("-first"))], False, beside)
        return plan

    def with_plan(plan, call):
        def run():
            cpu.plan = plan
            try:
                call()
            finally:
                cpu.plan = planned
        return run

    def named(how):
        return how.blocks[0].step + ("+beside" if how.beside else "")

    training = args.mode == "training"
    dtype = np.dtype(args.dtype)
    print(f"{args.cell.upper()} {args.mode}, B = 1, {args.dtype}, {args.threads} thread(s), forced: {args.force}; "
          f"{bench.cpu_model()}; micro-kernel {cpu.microkernel.VECTOR_BITS}-bit; median of {args.repeats}")
    print()
    print(f"| T | I | H | plan (forward / backward) | plan ms | {' | '.join(v + ' ms' for v in variants)} | torch ms "
          f"| {' | '.join(v + ' / plan' for v in variants)} | plan / torch |")
    print("|---:|---:|---:|---|" + "---:|" * (2 * len(variants) + 3))
    for H in args.hidden:
        for width in args.input:
            n_in = H if width == "H" else H // 4 if width == "H/4" else int(width)
            for T in args.steps:
                params, x, h0, dy = bench.problem(args.cell, T, 1, n_in, H)
                params = {name: value.astype(dtype) for name, value in params.items()}
                x, h0, dy = x.astype(dtype), h0.astype(dtype), dy.astype(dtype)
                call = bench.kernel_call(cpu, args.cell, params, x, h0, dy, training)
                calls = [call] + [with_plan(forced(v), call) for v in variants]
                if torch is not None:
                    calls.append(bench.torch_call(torch, params, x, dy, training, cell=args.cell))
                ms = [1e3 * t for t in bench.median_times(calls, args.repeats)]
                steps = [named(planned(1, args.threads, kind, H, training=training, backward=backward,
                                       itemsize=dtype.itemsize, inputs=n_in, steps=T)) for backward in (False, True)]
                peer = f"{ms[-1]:.3f}" if torch is not None else "-"
                ratio = f"{ms[0] / ms[-1]:.2f}" if torch is not None else "-"
                mine = ms[:1 + len(variants)]
                print(f"| {T} | {n_in} | {H} | {' / '.join(steps)} | {' | '.join(f'{m:.3f}' for m in mine)} | {peer} "
                      f"| {' | '.join(f'{m / mine[0]:.2f}' for m in mine[1:])} | {ratio} |", flush=True)

if __name__ == "__main__":
    main()
