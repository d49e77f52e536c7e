"""A/B of session 10's pack (kernels/microkernel.py ``pack_into``: whole tiles of a transposed matrix transposed in
vector registers) against the element-by-element pack it replaced (``microkernel._pack_blocks``, which still packs
arrays whose rows are not unit-strided), inside the LSTM forward (and backward) on 2 threads, against torch 2.13.0,
interleaved in one process (``bench.median_times``: wall time after an idle pause, median of 5). Only ``cpu.pack``
is swapped (the input projection's W_ih^T, the row split's W_hh^T, the fused [W_ih | W_hh]^T); the unit split's
threads pack with the new code in both columns. Prints a Markdown table. T = 100, float32, I = H and H/4, B 1-16,
H 128-1024.

    env -u OPENBLAS_CORETYPE python benchmarks/ab_pack.py inference
    env -u OPENBLAS_CORETYPE python benchmarks/ab_pack.py training
"""
import sys

import numba
import numpy as np
import torch
from lstmzoo.kernels import cpu, microkernel

from lstmzoo import bench

T = 100


def old_pack(b, bits=None):
    K, N = b.shape
    pw = microkernel.panel_width(b.dtype, bits)
    packed = np.empty((-(-N // pw), K, pw), b.dtype)
    microkernel._pack_blocks(b, packed)  # the element-by-element blocks (before session 10)
    packed[-1, :, N - (len(packed) - 1) * pw:] = 0  # the last panel's padding
    return packed


def main(mode):
    numba.set_num_threads(2)
    cpu.set_num_threads(2)
    torch.set_num_threads(2)
    new_pack = cpu.pack
    training = mode == "training"
    print(f"{bench.cpu_model()}; LSTM {mode}, 2 threads, T = {T}, float32; load average before: "
          f"{' '.join(open('/proc/loadavg').read().split()[:3])}")
    print()
    print("| B | I | H | old pack ms | new pack ms | torch ms | new / old | new / torch |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for H in (128, 256, 512, 1024):
        for n_in in (H, H // 4):
            for B in (1, 2, 4, 8, 16):
                rng = np.random.default_rng(0)
                params = {"w_ih": rng.uniform(-.05, .05, (4 * H, n_in)), "w_hh": rng.uniform(-.05, .05, (4 * H, H)),
                          "b_ih": np.zeros(4 * H), "b_hh": np.zeros(4 * H)}
                params = {k: v.astype(np.float32) for k, v in params.items()}
                x = rng.standard_normal((T, B, n_in)).astype(np.float32)
                h0 = np.zeros((B, H), np.float32)
                dy = rng.standard_normal((T, B, H)).astype(np.float32)

                def ours(pack):
                    def call():
                        cpu.pack = pack
                        try:
                            *_, cache = cpu.lstm_forward(x, h0, h0, **params, training=training)
                            if training:
                                cpu.lstm_backward(dy, None, None, cache)
                        finally:
                            cpu.pack = new_pack
                    return call

                t = bench.median_times([ours(old_pack), ours(new_pack),
                                        bench.torch_call(torch, params, x, dy, training)], 5)
                print(f"| {B} | {n_in} | {H} | {t[0] * 1e3:.2f} | {t[1] * 1e3:.2f} | {t[2] * 1e3:.2f} | "
                      f"{t[1] / t[0]:.2f} | {t[1] / t[2]:.2f} |", flush=True)
    print()
    print(f"load average after: {' '.join(open('/proc/loadavg').read().split()[:3])}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "inference")
