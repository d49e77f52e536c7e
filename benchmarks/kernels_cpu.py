"""Time the fused CPU kernels against torch's nn.LSTM / nn.GRU / nn.RNN and print a Markdown table.

    python benchmarks/kernels_cpu.py --threads 2                      # full LSTM table (I = H and I = H/4)
    python benchmarks/kernels_cpu.py --cell gru --threads 1           # the GRU (also: --cell rnn, tanh)
    python benchmarks/kernels_cpu.py --quick --threads 2              # a handful of shapes
    python benchmarks/kernels_cpu.py --threads 1 --batch 1 4 --hidden 256 --input H --mode inference

The logic lives in lstmzoo.bench (also behind ``lstmzoo bench``); this is a thin command line.
"""

import argparse

from lstmzoo import bench


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cell", choices=bench.CELLS, default="lstm",
                        help="the cell timed, against torch's nn.LSTM, nn.GRU or nn.RNN (tanh) (default lstm)")
    parser.add_argument("--quick", action="store_true", help="a handful of shapes, fewer repeats")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for both libraries (default: each library's own default)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timings per shape and library, of which the median is shown (default 5; 3 with --quick)")
    parser.add_argument("--batch", type=int, nargs="+", default=None, metavar="B",
                        help=f"batch sizes (default {' '.join(map(str, bench.BATCHES))})")
    parser.add_argument("--hidden", type=int, nargs="+", default=None, metavar="H",
                        help=f"hidden sizes (default {' '.join(map(str, bench.HIDDENS))})")
    parser.add_argument("--input", nargs="+", default=None, metavar="I",
                        help="input widths: H (I = H), H/4, or a number (default: H H/4)")
    parser.add_argument("--steps", type=int, default=bench.T, help=f"sequence length T (default {bench.T})")
    parser.add_argument("--mode", choices=("inference", "training"), nargs="+", default=["inference", "training"],
                        help="what is timed (default both)")
    args = parser.parse_args(argv)
    for width in args.input or ():
        if width not in bench.INPUTS and not width.isdigit():
            parser.error(f"--input takes H, H/4 or a number, got {width!r}")
    subset = (args.batch, args.hidden, args.input) != (None, None, None) or args.steps != bench.T
    shapes = None
    if subset or not args.quick:
        shapes = bench.shapes_for(args.batch or bench.BATCHES, args.hidden or bench.HIDDENS,
                                  args.input or tuple(bench.INPUTS), args.steps)
    bench.run(quick=args.quick, threads=args.threads, repeats=args.repeats, shapes=shapes, cell=args.cell,
              modes=tuple(args.mode))


if __name__ == "__main__":
    main()
