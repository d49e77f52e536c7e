"""Wall time of the first ``lstmzoo train airline-passengers`` after installing (Numba compiles the CPU kernels)
against a warm run (the kernels loaded from Numba's cache), printed as a Markdown table.

    python benchmarks/first_run.py               # cold, then warm, 2 runs each
    python benchmarks/first_run.py --runs 3
    python benchmarks/first_run.py --by-function # one cold run: which compilations took the time

Each run is a fresh ``python -m lstmzoo train airline-passengers --out <tmp>`` subprocess. Cold runs point
``NUMBA_CACHE_DIR`` at a new empty folder, so every kernel the run needs is compiled; warm runs reuse one folder
that a previous run filled. The main job (airline passengers) ships with the package, so no download is timed.
"""

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

from lstmzoo.bench import cpu_model


def train_seconds(cache_dir, out_dir):
    """(wall, CPU) seconds of one ``lstmzoo train airline-passengers`` with ``NUMBA_CACHE_DIR=cache_dir``.

    The CPU seconds (user + system, all threads) are what the run cost whatever else the machine was doing;
    the wall seconds are what a user waits, and grow on a busy machine."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "lstmzoo", "train", "airline-passengers", "--out", out_dir], env=env,
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


# Run in the cold run's process by --by-function: each top-level Numba compilation (one that no other compilation on
# the same thread encloses) timed in CPU seconds of its thread (a thread waiting for another's compilation of the
# same form adds ~0), summed by function; the table goes to stderr at exit.
_BY_FUNCTION = """
import atexit, collections, runpy, sys, threading, time
import numba.core.dispatcher as dispatcher
seconds, forms, local = collections.Counter(), collections.defaultdict(set), threading.local()
compile_one = dispatcher.Dispatcher.compile
def timed(self, signature):
    depth = getattr(local, "depth", 0)
    local.depth, start = depth + 1, time.thread_time()
    try:
        return compile_one(self, signature)
    finally:
        local.depth = depth
        if depth == 0:
            name = self.py_func.__module__.rsplit(".", 1)[-1] + "." + self.py_func.__qualname__
            seconds[name] += time.thread_time() - start
            forms[name].add(str(signature))
dispatcher.Dispatcher.compile = timed
def report():
    print("| function | forms | CPU s |", file=sys.stderr)
    print("|---|---:|---:|", file=sys.stderr)
    for name, s in seconds.most_common():
        print(f"| {name} | {len(forms[name])} | {s:.2f} |", file=sys.stderr)
    print(f"| all | {sum(map(len, forms.values()))} | {sum(seconds.values()):.2f} |", file=sys.stderr)
atexit.register(report)
sys.argv = ["lstmzoo"] + sys.argv[1:]
runpy.run_module("lstmzoo", run_name="__main__")
"""


def by_function(cache_dir, out_dir):
    """The compilations of one cold ``lstmzoo train airline-passengers``, by function, as a Markdown table."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    done = subprocess.run([sys.executable, "-c", _BY_FUNCTION, "train", "airline-passengers", "--out", out_dir],
                          env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return "\n".join(line for line in done.stderr.splitlines() if line.startswith("|"))


def _median_gap(cold, warm, column):
    """median(cold) - median(warm) of column 0 (wall seconds) or 1 (CPU seconds)."""
    return statistics.median(r[column] for r in cold) - statistics.median(r[column] for r in warm)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2, help="cold runs and warm runs, each (default 2)")
    parser.add_argument("--by-function", action="store_true",
                        help="one cold run instead, its Numba compilations timed by function (CPU s of the thread)")
    args = parser.parse_args()
    if args.by_function:
        with tempfile.TemporaryDirectory(prefix="lstmzoo-first-run-") as tmp:
            table = by_function(os.path.join(tmp, "cold-cache"), os.path.join(tmp, "cold"))
        print(f"Compilations of a cold `lstmzoo train airline-passengers`, {cpu_model()}, Python "
              f"{platform.python_version()}, NUMBA_NUM_THREADS={os.environ.get('NUMBA_NUM_THREADS', 'default')}:")
        print()
        print(table)
        return
    cold, warm = [], []
    with tempfile.TemporaryDirectory(prefix="lstmzoo-first-run-") as tmp:
        warm_cache = os.path.join(tmp, "warm-cache")
        for run in range(args.runs):
            cold.append(train_seconds(os.path.join(tmp, f"cold-cache-{run}"), os.path.join(tmp, f"cold-{run}")))
            if run == 0:  # fill the warm cache once, untimed
                train_seconds(warm_cache, os.path.join(tmp, "fill"))
            warm.append(train_seconds(warm_cache, os.path.join(tmp, f"warm-{run}")))
    print(f"`lstmzoo train airline-passengers`, {cpu_model()}, Python {platform.python_version()}, "
          f"NUMBA_NUM_THREADS={os.environ.get('NUMBA_NUM_THREADS', 'default')}; "
          f"load average at the end: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print()
    print("| Numba cache | runs | wall s, median | wall s, min-max | CPU s, median |")
    print("|---|---:|---:|---:|---:|")
    for name, runs in (("cold (empty NUMBA_CACHE_DIR)", cold), ("warm", warm)):
        walls, cpus = [w for w, _ in runs], [c for _, c in runs]
        print(f"| {name} | {len(runs)} | {statistics.median(walls):.1f} | {min(walls):.1f}-{max(walls):.1f} | "
              f"{statistics.median(cpus):.1f} |")
    print()
    print(f"cold - warm (medians): {_median_gap(cold, warm, 0):.1f} s wall, "
          f"{_median_gap(cold, warm, 1):.1f} s CPU")


if __name__ == "__main__":
    main()
