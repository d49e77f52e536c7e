"""Time the fused CPU LSTM kernels against torch.nn.LSTM and print a Markdown table.

    python benchmarks/kernels_cpu.py --threads 2            # full table, a few minutes
    python benchmarks/kernels_cpu.py --quick --threads 2    # a handful of shapes

The logic lives in lstmzoo.bench (also behind ``lstmzoo bench``); this is a thin command line.
"""

import argparse

from lstmzoo import bench


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a handful of shapes, fewer repeats")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for both libraries (default: each library's own default)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timings per shape and library, of which the median is shown (default 5; 3 with --quick)")
    args = parser.parse_args()
    bench.run(quick=args.quick, threads=args.threads, repeats=args.repeats)


if __name__ == "__main__":
    main()
