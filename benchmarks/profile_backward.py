"""Where the CPU LSTM backward's time goes: CPU time of each phase of ``kernels.cpu._backward``, 1 thread.

    NUMBA_NUM_THREADS=1 python benchmarks/profile_backward.py --shapes 128x1024x1024 16x128x512 --repeats 3

Shapes are BxIxH (T = --steps). Each phase is timed on its own (process CPU time, median of --repeats), with the
arrays a real forward pass saved: the whole forward, the whole backward, and inside the backward the allocation of
the gradient buffers, the packing of W_hh, the recurrence (``_backward_sequence``), and separately its two parts as
loops of their own (the per-step ``da @ W_hh`` GEMMs alone, the cell passes alone), the three GEMMs after the
loop (dx, dW_ih, dW_hh) and the bias sums. torch.nn.LSTM forward + backward on the same shape for comparison.
"""

import argparse
import time

import numpy as np
from lstmzoo.kernels import cpu
from lstmzoo.kernels.microkernel import matmul_packed
from numba import njit


@njit(nogil=True, cache=True)
def _steps_gemm_only(da_h, w_hh_packed, T, B, H):
    dh_rec = np.empty((B, H), da_h.dtype)
    for t in range(T - 1, -1, -1):
        matmul_packed(da_h[t], w_hh_packed, dh_rec)
    return dh_rec


@njit(nogil=True, cache=True)
def _steps_cell_only(kind, dy, dh, dc, hs, cs, saved, da_x, da_h, lengths):
    T, B, H = dy.shape
    dr = np.empty((0, 0), dy.dtype)
    no_dh = np.zeros(H, dy.dtype)
    for t in range(T - 1, -1, -1):
        cpu._cells_backward(kind, t, 0, B, lengths, False, dr, dy, dh, no_dh, dc, cs, hs, saved, da_x, da_h, 0, H)


def cpu_time(call, repeats):
    times = []
    for _ in range(repeats):
        start = time.process_time()
        call()
        times.append(time.process_time() - start)
    return float(np.median(times)) * 1e3


def profile(T, B, width, H, repeats, torch):
    rng = np.random.default_rng(0)
    bound = 1 / np.sqrt(H)
    f32 = np.float32
    w_ih = rng.uniform(-bound, bound, (4 * H, width)).astype(f32)
    w_hh = rng.uniform(-bound, bound, (4 * H, H)).astype(f32)
    b_ih = rng.uniform(-bound, bound, 4 * H).astype(f32)
    b_hh = rng.uniform(-bound, bound, 4 * H).astype(f32)
    x = rng.standard_normal((T, B, width)).astype(f32)
    h0 = np.zeros((B, H), f32)
    dy = rng.standard_normal((T, B, H)).astype(f32)
    *_, cache = cpu.lstm_forward(x, h0, h0, w_ih, w_hh, b_ih, b_hh)
    cpu.lstm_backward(dy, None, None, cache)  # compile
    kind, x2d, w_ih_, w_hh_, lengths, hs, cs, saved, w_hr, r = cache
    GH = 4 * H
    da = np.zeros((T, B, GH), f32)
    packed = cpu._packed_c(cpu.plan(B).blocks, w_hh)[0]
    out = {}
    out["forward (training)"] = cpu_time(lambda: cpu.lstm_forward(x, h0, h0, w_ih, w_hh, b_ih, b_hh), repeats)
    out["backward"] = cpu_time(lambda: cpu.lstm_backward(dy, None, None, cache), repeats)
    out["  alloc da (zeros T*B*4H) + touch"] = cpu_time(lambda: np.zeros((T, B, GH), f32).fill(1), repeats)
    out["  pack W_hh"] = cpu_time(lambda: cpu._packed_c(cpu.plan(B).blocks, w_hh), repeats)

    def recurrence():
        dh = np.zeros((B, H), f32)
        dc = np.zeros((B, H), f32)
        cpu._backward_sequence(kind, dy, dh, dc, w_hh, packed, lengths, hs, cs, saved, da, da, w_hr,
                               np.empty((0, 0, 0), f32), np.zeros((0, 0, 0), f32), cpu._NOT_PIPED, 0,
                               B, B > 1)
    recurrence()
    out["  recurrence (_backward_sequence)"] = cpu_time(recurrence, repeats)
    _steps_gemm_only(da, packed, T, B, H)
    out["    per-step da @ W_hh alone"] = cpu_time(lambda: _steps_gemm_only(da, packed, T, B, H), repeats)
    scratch = np.zeros((T, B, GH), f32)

    def cells():
        _steps_cell_only(kind, dy, np.zeros((B, H), f32), np.zeros((B, H), f32), hs, cs, saved, scratch, scratch,
                         lengths)
    cells()
    out["    cell passes alone"] = cpu_time(cells, repeats)
    da2d = da.reshape(T * B, GH)
    h2d = hs[:T].reshape(T * B, H)
    out["  dx = da W_ih (micro-kernel GEMM)"] = cpu_time(lambda: cpu._big_matmul(da2d, w_ih, 1), repeats)
    out["  da^T [x | h], sums (pack + GEMM)"] = cpu_time(lambda: cpu._weight_gradients(da2d, x2d, h2d, True, 1),
                                                      repeats)
    out["  OpenBLAS: dx = da W_ih"] = cpu_time(lambda: cpu._matmul(da2d, w_ih), repeats)
    out["  OpenBLAS: dW_ih = da^T x"] = cpu_time(lambda: cpu._matmul(da2d.T, x2d), repeats)
    out["  OpenBLAS: dW_hh = da^T h"] = cpu_time(lambda: cpu._matmul(da2d.T, h2d), repeats)
    out["  bias sums as loops (x1)"] = cpu_time(lambda: cpu._column_sums(da2d), repeats)
    if torch is not None:
        from lstmzoo.bench import torch_call
        call = torch_call(torch, {"w_ih": w_ih, "w_hh": w_hh, "b_ih": b_ih, "b_hh": b_hh}, x, dy, True)
        call()
        out["torch forward+backward"] = cpu_time(call, repeats)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=["128x128x128"], help="BxIxH")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-torch", action="store_true")
    args = parser.parse_args()
    torch = None
    if not args.no_torch:
        import torch
        torch.set_num_threads(1)
    cpu.set_num_threads(1)
    for shape in args.shapes:
        B, width, H = map(int, shape.split("x"))
        with open("/proc/loadavg") as f:
            load = f.read().split()[:3]
        result = profile(args.steps, B, width, H, args.repeats, torch)
        print(f"\nT={args.steps} B={B} I={width} H={H} (load before {' '.join(load)}), CPU ms, median of {args.repeats}")
        for name, ms in result.items():
            print(f"  {name:<38} {ms:9.1f}")


if __name__ == "__main__":
    main()
