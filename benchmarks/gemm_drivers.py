"""The micro-kernel's big GEMMs on one thread, against torch.mm (MKL or oneDNN) and optionally an older commit's
micro-kernel, in one process: GFLOP/s, medians, as a Markdown table.

    NUMBA_NUM_THREADS=1 python benchmarks/gemm_drivers.py
    NUMBA_NUM_THREADS=1 python benchmarks/gemm_drivers.py --old HEAD~3

The GEMMs are those around the time loops (T = 100 steps of B rows, float32):

- "projection": the forward's input projection x W_ih^T as ``cpu._input_projection`` computes it
  (``matmul_packed`` over ``_PROJECTION_ROWS`` rows at a time, W_ih^T packed), M = T*B, K = I, N = G*H;
- "dx": the backward's da W_ih (``gemm_packed``, ``a`` C-ordered, read in place), M = T*B, K = G*H, N = I;
- "dW": the weight gradients da^T [x | h | 1] (``gemm_packed``, ``a`` transposed: its blocks packed), M = G*H,
  K = T*B, N = I + H + 1, with the rows a block ``cpu._split_gemm_packed`` takes for it.

The packing of ``b`` is left out (done once per call by the kernels; a few percent of these GEMMs). The older
micro-kernel (``kernels/microkernel.py`` at ``--old``) is imported from a temporary copy (``forward_ab.load_old``),
with its own Numba cache there; each module's dW takes its own ``GEMM_MC_PACKED`` rows a block (``GEMM_MC`` where it
has none, as the kernels did before session 24), and both take the current tree's K block (``cpu._gemm_kc``). The
contenders are timed in turn, each after an idle (``bench.median_times``).
"""

import argparse
import functools
import importlib

import numpy as np

# (kind, M, K, N): T = 100 and B, I, H from benchmarks/kernels_cpu.py's grid
SHAPES = [
    ("projection", 3200, 1024, 4096), ("projection", 3200, 256, 4096), ("projection", 12800, 256, 1024),
    ("projection", 3200, 64, 1024), ("projection", 25600, 128, 512),
    ("dx", 3200, 4096, 1024), ("dx", 12800, 4096, 256), ("dx", 12800, 1024, 256), ("dx", 25600, 512, 128),
    ("dW", 4096, 3200, 2049), ("dW", 4096, 12800, 1281), ("dW", 1024, 3200, 513), ("dW", 4096, 12800, 257),
    ("dW", 2048, 12800, 1025), ("dW", 512, 25600, 161), ("dW", 512, 1600, 257), ("dW", 1024, 1600, 321),
    ("dW", 1024, 3200, 513),
]


def projection_driver(module, rows):
    from numba import njit

    matmul_packed = module.matmul_packed

    @njit(nogil=True)
    def project(x, packed, out):
        for r0 in range(0, x.shape[0], rows):
            r1 = min(r0 + rows, x.shape[0])
            matmul_packed(x[r0:r1], packed, out[r0:r1])

    return project


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", help="a commit whose kernels/microkernel.py to time beside the working tree's")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)

    import numba
    import torch
    from lstmzoo.kernels import cpu, microkernel

    from lstmzoo import bench

    numba.set_num_threads(1)
    torch.set_num_threads(1)
    contenders = {"lstmzoo": microkernel}
    if args.old:
        from forward_ab import load_old  # beside this script

        load_old(args.old)
        contenders[f"at {args.old}"] = importlib.import_module("oldkernels.microkernel")
    drivers = {name: projection_driver(module, cpu._PROJECTION_ROWS) for name, module in contenders.items()}
    kc = cpu._gemm_kc()
    print(f"One thread, float32, GFLOP/s, median of {args.repeats}; {bench.cpu_model()}; torch {torch.__version__}; "
          f"micro-kernel {microkernel.VECTOR_BITS}-bit; K block {kc}, dW rows a block {microkernel.GEMM_MC_PACKED}")
    print()
    names = list(contenders)
    print("| GEMM | M | K | N | " + " | ".join(names) + " | torch.mm |" + (" new / old time |" if args.old else ""))
    print("|---|---:|---:|---:|" + "---:|" * (len(names) + 1) + ("---:|" if args.old else ""))
    rng = np.random.default_rng(0)
    for kind, M, K, N in SHAPES:
        if kind == "dW":  # a = da^T, da [K, M] C-ordered
            da = rng.standard_normal((K, M), dtype=np.float32)
            a = da.T
            b = rng.standard_normal((K, N), dtype=np.float32)
            torch_call = functools.partial(torch.mm, torch.from_numpy(da).T, torch.from_numpy(b))
        else:
            a = rng.standard_normal((M, K), dtype=np.float32)
            b = rng.standard_normal((K, N), dtype=np.float32)
            torch_call = functools.partial(torch.mm, torch.from_numpy(a), torch.from_numpy(b))
        out = np.empty((M, N), np.float32)
        calls = []
        for name, module in contenders.items():
            packed = module.pack(b)
            if kind == "projection":
                calls.append(functools.partial(drivers[name], a, packed, out))
            else:
                mc = getattr(module, "GEMM_MC_PACKED", module.GEMM_MC) if kind == "dW" else module.GEMM_MC
                calls.append(functools.partial(module.gemm_packed, a, packed, out, mc, kc, False))
        times = bench.median_times(calls + [torch_call], args.repeats)
        flop = 2.0 * M * K * N
        cells = " | ".join(f"{flop / t / 1e9:.0f}" for t in times)
        ratio = f" {times[0] / times[1]:.2f} |" if args.old else ""
        print(f"| {kind} | {M} | {K} | {N} | {cells} |{ratio}", flush=True)


if __name__ == "__main__":
    main()
