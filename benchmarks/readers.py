"""Load time and peak memory of ``lstmzoo.tasks.read_series`` on a long CSV (``unique_id,ds,y``; by default
10,000 daily series of 1,000 points: 10 million rows, 265 MB), against ``pandas.read_csv`` of the same file;
prints a Markdown table.

    python benchmarks/readers.py [--series 10000] [--points 1000] [--repeats 3]

Each load runs in a fresh Python process (so one reader's memory cannot hide another's), started
``--repeats`` times: the table shows the median times and the largest peak. "wall s" is the elapsed time of
the load, "CPU s" the processor time it used (user + system: on a machine shared with other work this one
moves far less than the wall time), "peak RSS" the process's maximum resident set (``resource.getrusage``),
"above imports" that minus the resident set once the reader's modules are imported: what the load itself
needed. The rows:

- ``lstmzoo read_series``: the whole reader: parse (NumPy's C parser, ``np.loadtxt``), ISO dates to
  ``datetime64``, grouping by id, the time-order and duplicate checks, the frequency inference.
- ``np.loadtxt alone``: its parse only: the same three columns, ids and dates as the fixed-width bytes
  read_series gives them here (8 bytes wider than the widest in its sample: ``S14``, ``S18``) and float64;
  the floor of this design.
- ``csv module, rows only``: the standard library's reader splitting every row into strings, nothing
  converted: the floor of a reader built on it (which would then need a Python loop per value).
- ``pandas.read_csv``: pandas' C parser with its defaults (ids and dates left as strings).
- ``pandas.read_csv, dates parsed``: with ``parse_dates=["ds"]``, nearer to what read_series returns.

pandas is not a dependency of lstmzoo; the benchmark needs it installed (``pip install pandas``) for its rows.
"""

import argparse
import csv
import functools
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from lstmzoo import bench

READERS = ("lstmzoo read_series", "np.loadtxt alone", "csv module, rows only", "pandas.read_csv",
           "pandas.read_csv, dates parsed")


def write_long_csv(path, series, points, seed=0):
    """``series`` random walks of ``points`` daily values each, ids ``s00000``..., four decimals."""
    rng = np.random.default_rng(seed)
    dates = np.arange(np.datetime64("2000-01-01"), np.datetime64("2000-01-01") + points).astype(str).tolist()
    with open(path, "w") as out:
        out.write("unique_id,ds,y\n")
        for k in range(series):
            values = (100 + np.cumsum(rng.standard_normal(points))).tolist()
            out.write("".join(f"s{k:05d},{day},{value:.4f}\n" for day, value in zip(dates, values)))


def loader(reader):
    """The function that loads a path the way ``reader`` does, with its modules imported."""
    if reader == "lstmzoo read_series":
        from lstmzoo.tasks import read_series
        return read_series
    if reader == "csv module, rows only":
        return _csv_rows
    if reader == "np.loadtxt alone":
        return functools.partial(np.loadtxt, delimiter=",", skiprows=1, comments=None, encoding="latin-1",
                                 dtype=[("unique_id", "S14"), ("ds", "S18"), ("y", "f8")])
    import pandas
    dates = ["ds"] if reader.endswith("dates parsed") else False
    return functools.partial(pandas.read_csv, parse_dates=dates)


def _csv_rows(path):
    with open(path, newline="") as handle:
        for _ in csv.reader(handle):
            pass


def load(reader, path):
    """In this process: (wall seconds and CPU seconds of one load with ``reader``, peak RSS MB, RSS MB after
    its imports)."""
    read = loader(reader)
    imported = _peak_mb()
    start, start_cpu = time.perf_counter(), _cpu_seconds()
    read(path)
    return time.perf_counter() - start, _cpu_seconds() - start_cpu, _peak_mb(), imported


def _peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _measure(reader, path, repeats):
    """(median wall s, median CPU s, largest peak MB, largest MB above imports) over ``repeats`` fresh
    processes."""
    runs = []
    for _ in range(repeats):
        result = subprocess.run([sys.executable, __file__, "--child", reader, str(path)], capture_output=True,
                                text=True, check=True)
        runs.append(tuple(map(float, result.stdout.split())))
    wall, cpu, peaks, imported = zip(*runs)
    above = max(peak - before for peak, before in zip(peaks, imported))
    return statistics.median(wall), statistics.median(cpu), max(peaks), above


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--points", type=int, default=1_000, help="daily values per series")
    parser.add_argument("--repeats", type=int, default=3,
                        help="fresh processes per reader (median time shown)")
    parser.add_argument("--child", nargs=2, metavar=("READER", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(*load(*args.child))
        return
    try:
        import pandas
        readers, pandas_version = READERS, pandas.__version__
    except ImportError:
        readers, pandas_version = READERS[:3], "not installed"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "long.csv"
        write_long_csv(path, args.series, args.points)
        print(f"{args.series * args.points:,} rows ({args.series:,} series x {args.points:,} days), "
              f"{path.stat().st_size / 1e6:.0f} MB; {bench.cpu_model()}; Python "
              f"{platform.python_version()}, NumPy {np.__version__}, pandas {pandas_version}; median of "
              f"{args.repeats} processes per reader; load average before (1, 5, 15 min): "
              f"{bench._load_average()}")
        print()
        print("| reader | wall s | CPU s | peak RSS MB | above imports MB |")
        print("|---|---:|---:|---:|---:|")
        for reader in readers:
            wall, cpu, peak, above = _measure(reader, path, args.repeats)
            print(f"| {reader} | {wall:.2f} | {cpu:.2f} | {peak:.0f} | {above:.0f} |", flush=True)
        print()
        print(f"load average after (1, 5, 15 min): {bench._load_average()}")


if __name__ == "__main__":
    main()
