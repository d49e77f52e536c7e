"""Host-side cost of one launch on the per-step paths of kernels/cuda.py, on a GPU, as a Markdown table.

    python benchmarks/cuda_launch.py

The per-step paths (step kernel, cuBLAS per step) launch one or two kernels per time step from Python; where the
GPU work per step is small their time is these launches. Times N back-to-back calls of each (host clock until the
last call returns, then the GPU's events until the work has finished) at B = 1, H = 256, float32:
- a Numba launch of the cuBLAS path's elementwise LSTM update (``_gemm_forward_kernel``) through its dispatcher;
- ``cupy.matmul`` of h [1, 256] by W_hh^T [256, 1024] into a buffer (the recurrent GEMM through cuBLAS);
- a CuPy elementwise launch (``cupy.add`` into a buffer), CuPy's own launch cost, for comparison.
"""

import argparse
import time

import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per timing (default 2000)")
    parser.add_argument("--repeats", type=int, default=5, help="timings per row; the median is shown (default 5)")
    args = parser.parse_args()
    from kernels_cuda import _require_gpu  # this folder's script: the same one-sentence exit without a GPU or CuPy

    cupy = _require_gpu()
    from lstmzoo.kernels import cuda as kernels

    B, H, T = 1, 256, 4
    dtype = np.dtype(np.float32)
    xw = cupy.zeros((T, B, 4 * H), dtype)
    b_hh, w_hh = cupy.zeros(4 * H, dtype), cupy.zeros((4 * H, H), dtype)
    h_states, c_states = cupy.zeros((2, B, H), dtype), cupy.zeros((2, B, H), dtype)
    acts, y = cupy.zeros((1, 1, 1), dtype), cupy.zeros((T, B, H), dtype)
    lengths, rec = cupy.full(B, T, np.int32), cupy.zeros((B, 4 * H), dtype)
    stream = kernels._stream()
    launch = kernels._gemm_forward_kernel("lstm", dtype)[(kernels._cdiv(H, kernels.GEMM_THREADS), B),
                                                        kernels.GEMM_THREADS, stream]
    arrays = kernels._kernel_args((rec, xw, b_hh, w_hh, h_states, c_states, acts, y, lengths))
    w_t, a, out = w_hh.T, cupy.zeros(4 * H, dtype), cupy.zeros(4 * H, dtype)
    rows = {
        "Numba launch (dispatcher), gemm path's update": lambda: launch(*arrays, 0, 0, 0),
        "cupy.matmul [1, 256] x [256, 1024], out=": lambda: cupy.matmul(h_states[0], w_t, out=rec),
        "CuPy elementwise launch (cupy.add, out=)": lambda: cupy.add(a, b_hh, out=out),
    }
    device = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)["name"].decode()
    print(f"{device}; median of {args.repeats} timings of {args.calls} back-to-back calls; CuPy {cupy.__version__}")
    print()
    print("| call | host us per call | GPU us per call |")
    print("|---|---:|---:|")
    for name, call in rows.items():
        call()
        cupy.cuda.Device().synchronize()
        host, gpu = [], []
        for _ in range(args.repeats):
            start_event, stop_event = cupy.cuda.Event(), cupy.cuda.Event()
            start_event.record()
            start = time.perf_counter()
            for _ in range(args.calls):
                call()
            host.append((time.perf_counter() - start) / args.calls * 1e6)
            stop_event.record()
            stop_event.synchronize()
            gpu.append(cupy.cuda.get_elapsed_time(start_event, stop_event) / args.calls * 1e3)
        print(f"| {name} | {np.median(host):.1f} | {np.median(gpu):.1f} |", flush=True)


if __name__ == "__main__":
    main()
