"""CPU time of one training step of pendigits' model (issue 16): where the fixed per-step cost of a small step goes.

    NUMBA_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/step_overhead.py [--rows 1 4 16 32] [--steps 200]
    NUMBA_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/step_overhead.py --profile 16 [--steps 2000]

The model is pendigits' defaults (``recipe.build_model``: bidirectional LSTM, hidden 64, 5 features, 10 classes,
dropout 0.25) on random batches of 48 steps (pendigits resamples every digit to 48 points). A step is what
``lstmzoo.train`` does per batch: ``optimizer.zero_grad()``, ``recipe.train_step`` (forward, loss, backward), then
``clip_grad_norm`` (pendigits clips at 1.0) and ``optimizer.step()``. The rows run interleaved (one step of each per
round) and each phase's CPU time (``time.process_time``) is printed as the median over the rounds, in ms.
``--profile ROWS`` prints cProfile's top functions by own time for that many rows instead.

Prints one line per row count: the whole step and its phases. ``--json PATH`` also writes the medians.

glibc's malloc is told to keep freed memory (``keep_freed_memory``): in this small process it otherwise gives the
few MB a step frees back to the system and page-faults them in again on the next step (at 16 rows ~780 minor faults,
1.8 ms of system time per step), which ``lstmzoo train pendigits`` does not (its heap, grown by loading the data,
stays: ~20 faults per step). ``--malloc-default`` leaves malloc alone; the faults per step are printed either way.
"""

import argparse
import cProfile
import json
import os
import pstats
import resource
import time

import numpy as np


def keep_freed_memory():
    """glibc: no trimming of the heap's top, arrays up to 32 MiB from the heap (not mmap). False elsewhere."""
    import ctypes
    try:
        libc = ctypes.CDLL(None)
        return bool(libc.mallopt(-3, 32 << 20) and libc.mallopt(-1, 1 << 30))     # M_MMAP_THRESHOLD, M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        return False


def build(seed=0):
    import lstmzoo.random as lz_random
    from lstmzoo.registry import get_recipe
    recipe = get_recipe("pendigits")
    hp = recipe.settle(recipe.resolve({}))
    lz_random.seed(seed)
    model = recipe.build_model(hp)
    optimizer = recipe.make_optimizer(model, hp)
    model.train()
    return recipe, hp, model, optimizer


def batches(rows, count, steps=48, features=5, seed=1):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((steps, rows, features)).astype(np.float32), np.full(rows, steps, np.int64),
             rng.integers(0, 10, rows)) for _ in range(count)]


PHASES = ("zero_grad", "forward", "loss", "backward", "clip", "optimizer")


def timed_step(model, optimizer, batch, clip_norm, times):
    """One training step as lstmzoo.train runs it, its phases' CPU seconds appended to ``times``."""
    from lstmzoo.array import device_module
    from lstmzoo.nn import CrossEntropyLoss
    from lstmzoo.optim import clip_grad_norm
    clock = time.process_time
    inputs, lengths, labels = batch
    t0 = clock()
    optimizer.zero_grad()
    t1 = clock()
    out = model(inputs, lengths=lengths)
    t2 = clock()
    loss = CrossEntropyLoss()
    float(loss(out, device_module("cpu").asarray(labels)))
    t3 = clock()
    model.backward(loss.backward())
    t4 = clock()
    clip_grad_norm(model, clip_norm)
    t5 = clock()
    optimizer.step()
    t6 = clock()
    for name, start, end in zip(PHASES, (t0, t1, t2, t3, t4, t5), (t1, t2, t3, t4, t5, t6)):
        times[name].append(end - start)
    times["step"].append(t6 - t0)


def plain_step(recipe, hp, model, optimizer, batch):
    from lstmzoo.optim import clip_grad_norm
    optimizer.zero_grad()
    recipe.train_step(model, batch, hp)
    clip_grad_norm(model, hp["clip_norm"])
    optimizer.step()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 4, 16, 32])
    parser.add_argument("--steps", type=int, default=200, help="rounds (one step of each row count per round)")
    parser.add_argument("--profile", type=int, metavar="ROWS", help="cProfile that many rows' steps instead")
    parser.add_argument("--json", help="also write the medians (ms) to this file")
    parser.add_argument("--malloc-default", action="store_true", help="leave glibc's malloc settings alone")
    options = parser.parse_args()
    kept = False if options.malloc_default else keep_freed_memory()
    recipe, hp, model, optimizer = build()
    if options.profile:
        data = batches(options.profile, 8)
        for batch in data:      # warm: compiled kernels loaded, optimizer state made
            plain_step(recipe, hp, model, optimizer, batch)
        profiler = cProfile.Profile(time.process_time)
        profiler.enable()
        for step in range(options.steps):
            plain_step(recipe, hp, model, optimizer, data[step % len(data)])
        profiler.disable()
        stats = pstats.Stats(profiler)
        print(f"{options.steps} steps of {options.profile} rows: "
              f"{1e3 * stats.total_tt / options.steps:.3f} ms CPU per step under cProfile")
        stats.sort_stats("tottime").print_stats(30)
        stats.sort_stats("cumulative").print_stats(40)
        return
    data = {rows: batches(rows, 8) for rows in options.rows}
    for rows in options.rows:
        for batch in data[rows]:
            plain_step(recipe, hp, model, optimizer, batch)
    times = {rows: {name: [] for name in ("step", *PHASES)} for rows in options.rows}
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for step in range(options.steps):
        for rows in options.rows:
            timed_step(model, optimizer, data[rows][step % 8], hp["clip_norm"], times[rows])
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / (options.steps * len(options.rows))
    medians = {rows: {name: 1e3 * float(np.median(values)) for name, values in phases.items()}
               for rows, phases in times.items()}
    print(f"load {os.getloadavg()[0]:.2f}; CPU ms per step (median of {options.steps}); pendigits defaults, T = 48; "
          f"malloc keeps freed memory: {kept}; {faults:.1f} minor page faults per step")
    print(f"{'rows':>5} {'step':>7} " + " ".join(f"{name:>9}" for name in PHASES))
    for rows, values in medians.items():
        print(f"{rows:>5} {values['step']:>7.3f} " + " ".join(f"{values[name]:>9.3f}" for name in PHASES))
    if options.json:
        with open(options.json, "w") as file:
            json.dump({"load": os.getloadavg()[0], "medians_ms": medians}, file, indent=1)


if __name__ == "__main__":
    main()
