"""A/B of the work beside the time loop against the same work before or after it, with torch 2.13.0 as the peer,
all in one process: the forward's input projection (``--switch forward``: kernels/cpu.py ``_forward_beside``
against the projection first: ``cpu.plan``'s ``beside`` turned off for the forward), or the backward's dx and weight
gradients (``--switch backward``: ``_backward_beside`` against the GEMMs after the loop, ``beside`` turned off for
the backward; training only).

    NUMBA_NUM_THREADS=2 python benchmarks/beside_ab.py --cell lstm --batch 2 3 4 5 6 7 --hidden 128 256
    NUMBA_NUM_THREADS=2 python benchmarks/beside_ab.py --cell gru --batch 2 4 6 --hidden 128 256 512
    NUMBA_NUM_THREADS=2 python benchmarks/beside_ab.py --switch backward --mode training --batch 2 4 6 7

The three contenders (projection first, beside, torch) are timed in turn, ``--repeats`` times each
(``lstmzoo.bench.median_times``: idle, one untimed call, then calls for about a second), and the medians printed as
a Markdown table; wall time. T = 100, float32, I = H and H/4. Only shapes where ``cpu.plan`` would choose the
path are meaningful (one block of rows: B < 8 on 2 threads, below the unit split's H; the backward's switch on
every build since session 29, the forward's since session 16).
"""

import argparse

import numpy as np


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cell", choices=["lstm", "gru", "rnn"], default="lstm")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, nargs="+", default=[2, 4, 6, 7])
    parser.add_argument("--hidden", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--mode", nargs="+", choices=["inference", "training"], default=["inference", "training"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--switch", choices=["forward", "backward"], default="forward",
                        help="which work beside the loop is turned off for the first column")
    args = parser.parse_args(argv)

    import numba
    import torch
    from lstmzoo.kernels import cpu, microkernel

    from lstmzoo.bench import _load_average, cpu_model, median_times, torch_call
    torch.set_num_threads(args.threads)
    numba.set_num_threads(args.threads)
    cpu.set_num_threads(args.threads)
    real = cpu.plan
    G = {"lstm": 4, "gru": 3, "rnn": 1}[args.cell]
    T = 100
    print(f"{cpu_model()}; micro-kernel {microkernel.VECTOR_BITS}-bit; {args.cell.upper()}, {args.threads} threads, "
          f"T = {T}, float32, median of {args.repeats}; torch {torch.__version__}; beside: the {args.switch} pass's; "
          f"load average before: {_load_average()}\n")
    print("| mode | B | I | H | first ms | beside ms | torch ms | beside / first | first / torch | beside / torch |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for mode in args.mode:
        training = mode == "training"
        for H in args.hidden:
            for width in (H, H // 4):
                for B in args.batch:
                    rng = np.random.default_rng(0)
                    bound = 1 / np.sqrt(H)
                    shapes = {"w_ih": (G * H, width), "w_hh": (G * H, H), "b_ih": (G * H,), "b_hh": (G * H,)}
                    p = {k: rng.uniform(-bound, bound, shape) for k, shape in shapes.items()}
                    p = {k: v.astype(np.float32) for k, v in p.items()}
                    x = rng.standard_normal((T, B, width)).astype(np.float32)
                    h0 = np.zeros((B, H), np.float32)
                    dy = rng.standard_normal((T, B, H)).astype(np.float32)

                    def ours(beside):
                        def call():
                            cpu.plan = _switched(real, args.switch == "backward", beside)
                            if args.cell == "lstm":
                                *_, cache = cpu.lstm_forward(x, h0, h0, **p, training=training)
                                if training:
                                    cpu.lstm_backward(dy, None, None, cache)
                            else:
                                *_, cache = getattr(cpu, args.cell + "_forward")(x, h0, **p, training=training)
                                if training:
                                    getattr(cpu, args.cell + "_backward")(dy, None, cache)
                        return call
                    first, beside, peer = (1e3 * t for t in median_times(
                        [ours(False), ours(True), torch_call(torch, p, x, dy, training, cell=args.cell)],
                        args.repeats))
                    print(f"| {mode} | {B} | {width} | {H} | {first:.2f} | {beside:.2f} | {peer:.2f} | "
                          f"{beside / first:.2f} | {first / peer:.2f} | {beside / peer:.2f} |", flush=True)
    cpu.plan = real
    print(f"\nload average after: {_load_average()}")


def _switched(plan, backward, beside):
    """``plan`` with the ``beside`` of the backward's (or forward's) plans turned off."""
    def switched(*args, **kwargs):
        how = plan(*args, **kwargs)
        if bool(kwargs.get("backward")) != backward:
            return how
        if not beside:
            return how._replace(beside=False)
        return how
    return switched


if __name__ == "__main__":
    main()
