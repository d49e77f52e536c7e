"""Data-parallel training under MPI: 1 rank against 2 on this machine, the Allreduce by size, and a model of N ranks.

    LSTMZOO_MIRROR=../shared/datasets python benchmarks/distributed.py            # pendigits, 2 epochs, 2 pairs
    python benchmarks/distributed.py --recipe airline-passengers --epochs 20 --pairs 1 --set hidden_size=64

1. ``lstmzoo train RECIPE`` on 1 process and under ``mpiexec -n 2``, one Numba thread per rank, back to back
   (1, 2, 1, 2, ...: the machine may be shared, so each speed-up is the ratio of a pair of neighbouring runs);
   the final weights compared, the loss curves of the first pair drawn into ``distributed-RECIPE-loss-curves.png``
   beside this script's RESULTS.md.
2. ``MPI.Allreduce`` of a float32 buffer by size on 2 ranks (the flat gradient buffer's operation), median of
   repeats.
3. A model, on paper: an epoch on N ranks takes ``s + p ceil(B / N) / B + steps * A(N, M)`` (global batch ``B``), with ``s`` the replicated work
   (every rank builds every batch, clips and steps the optimizer) and ``p`` the work split over the ranks (the
   training steps' forward and backward, the validation, and the part of building the batches a rank does for its
   rows only: pendigits' augmentation), both measured in CPU seconds in this process over one
   epoch (CPU time, so that other jobs on a shared machine do not count), and ``A`` a ring Allreduce of the
   ``M``-byte gradient buffer, ``2 (N - 1) / N * M / bandwidth + 2 (N - 1) * latency``; the per-rank batch below
   which a step spends longer communicating than computing is ``A / c``, ``c = p / items`` per item.

Prints a Markdown section for benchmarks/RESULTS.md and writes the raw figures to ``distributed-RECIPE.json``.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

def _name(recipe, settings=()):
    """``recipe`` and its ``--set`` values (``pendigits-hidden_size=256``): runs of other settings keep their files."""
    return "-".join([recipe, *settings])


def plot_path(recipe, settings=()):
    return HERE / f"distributed-{_name(recipe, settings)}-loss-curves.png"


def record_path(recipe, settings=()):
    return HERE / f"distributed-{_name(recipe, settings)}.json"

SIZES = [2**k for k in range(8, 25, 2)]        # float32 elements: 1 KB ... 64 MB
NETWORKS = {"10 Gbit/s": 10e9 / 8, "25 Gbit/s": 25e9 / 8, "100 Gbit/s": 100e9 / 8}
LATENCY = 10e-6         # s per message hop, assumed (TCP over Ethernet: 10-50 us; InfiniBand: 1-2 us)
RANKS = [4, 8, 16, 32, 64]


def allreduce_worker(out):
    """Run under mpiexec: time Allreduce of float32 buffers of SIZES elements; rank 0 writes {elements: seconds}.
    With the MPI settings a training starts with (``lstmzoo.distributed.MPI_DEFAULTS``: MPICH's single-copy
    transfers off), so the figures are those of a training's Allreduce."""
    from lstmzoo.distributed import use_mpi_defaults
    use_mpi_defaults()
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    times = {}
    for size in SIZES:
        buffer = np.ones(size, dtype=np.float32)
        repeats = max(5, min(200, int(2e7 // size)))
        samples = []
        for _ in range(repeats):
            comm.Barrier()
            started = time.perf_counter()
            comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
            samples.append(time.perf_counter() - started)
        times[size] = float(np.median(samples))
    if comm.rank == 0:
        Path(out).write_text(json.dumps(times))


def load_average():
    return os.getloadavg()[0]


def train(recipe, args, ranks, folder, env):
    """One `lstmzoo train` run; returns its wall seconds, the epochs' seconds and its metrics rows."""
    lstmzoo = [sys.executable, "-m", "lstmzoo", "train", recipe, *args, "--out", str(folder)]
    command = lstmzoo if ranks == 1 else [shutil.which("mpiexec"), "-n", str(ranks), *lstmzoo]
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return {"ranks": ranks, "wall": wall, "epochs": sum(row["seconds"] for row in rows), "rows": rows,
            "load": load_average()}


def profile(recipe, hp):
    """CPU seconds of one epoch's parts on one process: {"batches" (replicated), "batches_split", "steps",
    "optimizer", "validation"}, and the
    epoch's steps, items and the model's parameter count."""
    import lstmzoo.random as lz_random
    from lstmzoo.optim import clip_grad_norm
    lz_random.seed(hp["seed"])
    data = recipe.load_data(hp)
    model = recipe.build_model(hp)
    optimizer = recipe.make_optimizer(model, hp)
    model.train()
    seconds = dict.fromkeys(("batches", "batches_as_rank_0_of_2", "steps", "optimizer", "validation"), 0.0)

    def timed(part, function, *args):
        started = time.process_time()
        result = function(*args)
        seconds[part] += time.process_time() - started
        return result

    recipe.make_batches(data, hp, np.random.default_rng(0))     # once untimed: both timings below warm
    batches = timed("batches", recipe.make_batches, data, hp, np.random.default_rng(0))
    # What a rank does of make_batches for its own rows only (pendigits distorts only its rows of each batch):
    # make_batches timed again as rank 0 of 2; the difference, twice, is split over the ranks, the rest replicated.
    from lstmzoo import distributed
    one_rank, world = seconds["batches"], distributed.world
    distributed.world = lambda: types.SimpleNamespace(rank=0, size=2)
    try:
        timed("batches_as_rank_0_of_2", recipe.make_batches, data, hp, np.random.default_rng(0))
    finally:
        distributed.world = world
    split = min(max(2 * (one_rank - seconds.pop("batches_as_rank_0_of_2")), 0.0), one_rank)
    seconds.update(batches=one_rank - split, batches_split=split)
    for batch in batches:
        optimizer.zero_grad()
        timed("steps", recipe.train_step, model, batch, hp)
        timed("optimizer", lambda: (clip_grad_norm(model, hp.get("clip_norm") or 1e9), optimizer.step()))
    model.eval()
    timed("validation", recipe.validate, model, data, hp)
    return seconds, len(batches), sum(int(b[0].shape[1]) for b in batches), model.num_parameters()


def weights_difference(a, b):
    from lstmzoo.checkpoint import load_weights
    wa, wb = load_weights(a / "weights-last.safetensors"), load_weights(b / "weights-last.safetensors")
    return max(float(np.abs(wa[k].astype(np.float64) - wb[k]).max()) for k in wa), \
        max(float(np.abs(wa[k]).max()) for k in wa)


def draw(pair, path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    figure = Figure(figsize=(6, 5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(2, 1, sharex=True)
    for run, style in zip(pair, ("-o", "--x")):
        epochs = [row["epoch"] for row in run["rows"]]
        for ax, name in zip(axes, ("train_loss", "val_loss")):
            ax.plot(epochs, [row[name] for row in run["rows"]], style, label=f"{run['ranks']} rank(s)")
            ax.set_ylabel(name)
            ax.grid(alpha=0.3)
    axes[0].legend()
    axes[1].set_xlabel("epoch")
    figure.savefig(path, dpi=100)


def ring_allreduce(ranks, nbytes, bandwidth):
    return 2 * (ranks - 1) / ranks * nbytes / bandwidth + 2 * (ranks - 1) * LATENCY


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="pendigits")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--pairs", type=int, default=2, help="1-rank/2-rank run pairs, back to back")
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--reuse-runs", action="store_true",
                        help="take the training runs from distributed-RECIPE.json; measure the Allreduce and the "
                             "model's parts")
    parser.add_argument("--allreduce-worker", metavar="OUT", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.allreduce_worker:
        allreduce_worker(options.allreduce_worker)
        return

    env = {**os.environ, "NUMBA_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    args = ["--epochs", str(options.epochs), *(f"--set={s}" for s in options.settings)]
    work = Path(tempfile.mkdtemp(prefix="lstmzoo-distributed-"))
    load_before = load_average()
    if options.reuse_runs:
        old = json.loads(record_path(options.recipe, options.settings).read_text())
        runs, difference, largest = old["runs"], old["weights_max_difference"], old["weights_max_abs"]
        load_before = old["load_before"]
    else:
        runs = []
        for pair in range(options.pairs):
            for ranks in (1, 2):
                runs.append(train(options.recipe, args, ranks, work / f"run-{pair}-{ranks}", env))
                print(f"pair {pair}, {ranks} rank(s): {runs[-1]['wall']:.1f} s wall, {runs[-1]['epochs']:.1f} s in "
                      f"epochs, load {runs[-1]['load']:.1f}", file=sys.stderr)
        difference, largest = weights_difference(work / "run-0-1", work / "run-0-2")
        draw(runs[:2], plot_path(options.recipe, options.settings))

    times_path = work / "allreduce.json"
    subprocess.run([shutil.which("mpiexec"), "-n", "2", sys.executable, __file__, "--allreduce-worker",
                    str(times_path)], env=env, check=True)
    allreduce = {int(k): v for k, v in json.loads(times_path.read_text()).items()}

    from lstmzoo.registry import get_recipe
    recipe = get_recipe(options.recipe)
    hp = recipe.settle(recipe.resolve({"epochs": options.epochs, **dict(s.split("=", 1) for s in options.settings)}))
    parts, steps, items, elements = profile(recipe, hp)
    serial = parts["batches"] + parts["optimizer"]
    parallel = parts.get("batches_split", 0.0) + parts["steps"] + parts["validation"]
    record = {"recipe": options.recipe, "settings": options.settings, "epochs": options.epochs,
              "load_before": load_before, "load_after": load_average(), "runs": runs,
              "weights_max_difference": difference, "weights_max_abs": largest, "allreduce_seconds": allreduce,
              "parameters": elements, "steps_per_epoch": steps, "items_per_epoch": items,
              "epoch_cpu_seconds": parts, "serial": serial, "parallel": parallel,
              "latency_assumed": LATENCY}
    record_path(options.recipe, options.settings).write_text(json.dumps(record, indent=1))
    shutil.rmtree(work)
    report(record)


def report(r):
    ones = [x for x in r["runs"] if x["ranks"] == 1]
    twos = [x for x in r["runs"] if x["ranks"] == 2]
    print(f"`python benchmarks/distributed.py` ({r['recipe']}, {r['epochs']} epochs"
          f"{', ' + ' '.join(r['settings']) if r['settings'] else ''}); load average {r['load_before']:.1f} "
          f"before, {r['load_after']:.1f} after.\n")
    print("| pair | 1 rank: epochs s | 2 ranks: epochs s | speed-up (epochs) | 1 rank: wall s | 2 ranks: wall s "
          "| speed-up (wall) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for pair, (a, b) in enumerate(zip(ones, twos)):
        print(f"| {pair} | {a['epochs']:.1f} | {b['epochs']:.1f} | {a['epochs'] / b['epochs']:.2f}x | "
              f"{a['wall']:.1f} | {b['wall']:.1f} | {a['wall'] / b['wall']:.2f}x |")
    print(f"\nFinal weights, 1 rank against 2 (first pair): largest difference {r['weights_max_difference']:.2e} "
          f"(largest weight {r['weights_max_abs']:.2f}).\n")
    for pair, (a, b) in enumerate(zip(ones, twos)):
        rows = ", ".join(f"epoch {x['epoch']}: {x['train_loss']:.4f} / {y['train_loss']:.4f}"
                         for x, y in zip(a["rows"], b["rows"]))
        print(f"- pair {pair}, train_loss 1 rank / 2 ranks: {rows}")
    print("\nAllreduce of a float32 buffer on 2 ranks of this machine (shared memory), median:\n")
    print("| elements | MB | time us | GB/s |")
    print("|---:|---:|---:|---:|")
    for size, seconds in r["allreduce_seconds"].items():
        size = int(size)
        print(f"| {size:,} | {size * 4 / 1e6:.3g} | {seconds * 1e6:.1f} | {size * 4 / seconds / 1e9:.2f} |")
    nbytes = 4 * (r["parameters"] + 2)
    per_item = r["parallel"] / r["items_per_epoch"]
    parts = ", ".join(f"{name} {value:.2f} s" for name, value in r["epoch_cpu_seconds"].items())
    print(f"\nModel inputs: {r['parameters']:,} parameters ({nbytes / 1e6:.2f} MB reduced per step), "
          f"{r['steps_per_epoch']} steps and {r['items_per_epoch']:,} items per epoch; one epoch's CPU time on one "
          f"process: {parts}; so s = {r['serial']:.2f} s replicated, p = {r['parallel']:.2f} s split "
          f"({per_item * 1e3:.2f} ms per item); latency {LATENCY * 1e6:.0f} us assumed.\n")
    on_two = r["serial"] + r["parallel"] / 2 + r["steps_per_epoch"] * float(np.interp(
        r["parameters"] + 2, [int(k) for k in r["allreduce_seconds"]], list(r["allreduce_seconds"].values())))
    print(f"The model on 2 ranks of this machine (the measured Allreduce): {(r['serial'] + r['parallel']) / on_two:.2f}x "
          f"for an idle machine.\n")
    for batch in (r["items_per_epoch"] / r["steps_per_epoch"], 1024):
        steps = r["items_per_epoch"] / batch
        title = f"the recipe's batch ({batch:.0f} on average)" if steps == r["steps_per_epoch"] else \
            f"a global batch of {batch}"
        print(f"Speed-up over 1 rank, {title} ({steps:.0f} steps per epoch):\n")
        print("| network | " + " | ".join(f"N={n}" for n in RANKS) + " |")
        print("|---|" + "---:|" * len(RANKS))
        for name, bandwidth in NETWORKS.items():
            one = r["serial"] + r["parallel"]
            # the step waits for the rank with the most rows: ceil(batch / N) of them
            cells = [one / (r["serial"] + r["parallel"] * np.ceil(batch / n) / batch
                            + steps * ring_allreduce(n, nbytes, bandwidth)) for n in RANKS]
            print(f"| {name} | " + " | ".join(f"{c:.1f}x" for c in cells) + " |")
        print()
    print("Per-rank batch below which a step spends longer in the Allreduce than in computing (A / c):\n")
    print("| network | " + " | ".join(f"N={n}" for n in RANKS) + " |")
    print("|---|" + "---:|" * len(RANKS))
    for name, bandwidth in NETWORKS.items():
        print(f"| {name} | " + " | ".join(f"{ring_allreduce(n, nbytes, bandwidth) / per_item:.1f}"
                                           for n in RANKS) + " |")


if __name__ == "__main__":
    main()
