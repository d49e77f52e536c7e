"""CPU time of the per-step passes over the flat parameter/gradient buffers (issue 16: the work every MPI rank
repeats): the optimizer step (the NumPy formulas against the one-pass Numba loop), gradient clipping and zeroing.

    NUMBA_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/optim_step.py [--sizes 544000 5000000] [--repeats 50] [--cold]

The contenders run interleaved in one process (one call of each per round) and the medians of the per-call CPU
times (``time.thread_time``) are printed, in ms.
"""

import argparse
import math
import time

import numpy as np

from lstmzoo import optim


class FlatModel:
    """The least a model must be for the optimizers: ``flatten()``."""

    def __init__(self, size, dtype, rng):
        self.flat = (rng.standard_normal(size).astype(dtype) * 0.1, np.zeros(size, dtype=dtype))

    def flatten(self):
        return self.flat


def contenders(size, dtype, rng):
    """name -> function of no arguments that does one step's pass (its state kept between calls)."""
    runs = {}
    for label, cls, kwargs in [("Adam", optim.Adam, {}), ("AdamW", optim.AdamW, {}),
                               ("SGD momentum", optim.SGD, dict(momentum=0.9))]:
        for fused in (False, True):
            model = FlatModel(size, dtype, rng)
            opt = cls(model, lr=1e-3, **kwargs)
            model.flat[1][...] = rng.standard_normal(size).astype(dtype) * 1e-3
            opt.step()      # creates the state (and compiles the loop)

            def update(opt=opt, fused=fused, cls=cls):
                opt.step_count += 1
                if fused:
                    opt._update()
                elif cls is optim.SGD:
                    optim._sgd_numpy(opt.params, opt.grads, opt.state.get("momentum_buffer"), opt.lr, opt.momentum,
                                     opt.weight_decay, opt.nesterov)
                else:
                    optim._adam_numpy(opt.params, opt.grads, opt.state["exp_avg"], opt.state["exp_avg_sq"], opt.lr,
                                      opt.betas, opt.eps, opt.weight_decay, opt.decoupled_weight_decay,
                                      opt.step_count)
            runs[f"{label} {'one-pass loop' if fused else 'NumPy formulas'}"] = update
    model = FlatModel(size, dtype, rng)
    grads = model.flat[1]
    grads[...] = rng.standard_normal(size).astype(dtype) * 1e-3
    runs["clip_grad_norm (no clipping)"] = lambda: optim.clip_grad_norm(model, 1e9)
    runs["sum of squares: (g * g).sum()"] = lambda: float((grads * grads).sum())
    runs["sum of squares: g @ g"] = lambda: float(grads @ grads)
    runs["zero_grad: grads[...] = 0"] = lambda: grads.fill(0)
    return runs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[544_000, 5_000_000])
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--cold", action="store_true",
                        help="overwrite a 64 MB scratch array before each call (caches cold, as after a backward)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    scratch = np.zeros(16 * 2**20, dtype=np.float32)
    for size in args.sizes:
        runs = contenders(size, np.dtype(args.dtype), rng)
        times = {name: [] for name in runs}
        for _ in range(args.repeats):
            for name, run in runs.items():
                if args.cold:
                    scratch += 1
                started = time.thread_time()
                run()
                times[name].append(time.thread_time() - started)
        print(f"\n{size:,} parameters, {args.dtype}{', caches cold' if args.cold else ''}, median CPU ms per call over {args.repeats} calls:")
        for name, values in times.items():
            print(f"  {name:34s} {1e3 * float(np.median(values)):8.3f}")
        assert all(math.isfinite(v) for values in times.values() for v in values)


if __name__ == "__main__":
    main()
