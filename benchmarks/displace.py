"""Time lstmzoo's per-sample displacement kernels (Numba, forward and backward) against torch's grouped
convolution doing the same work, and print a Markdown table.

    python benchmarks/displace.py                 # the moving-mnist shapes, one thread each
    python benchmarks/displace.py --threads 2

Each image ``x[n]`` is correlated with its own flipped ``S x S`` kernel: in torch, ``conv2d`` of ``[1, N, H, W]``
with weights ``[N, 1, S, S]``, ``groups=N`` and zero padding ``S // 2``, then ``backward`` for the gradients of
both. Both run in the same process, alternating, each after an idle pause (lstmzoo.bench's timing).
"""

import numpy as np

from lstmzoo import bench
from lstmzoo.nn.displace import displace, displace_backward

# (N images, side, kernel side): the moving-mnist step (32 videos x 2 layers, 64x64, 9x9), then a larger batch
# and a smaller kernel.
SHAPES = [(64, 64, 9), (256, 64, 9), (64, 64, 5)]


def time_shape(torch, shape, repeats):
    count, side, size = shape
    rng = np.random.default_rng(0)
    x = rng.random((count, side, side)).astype(np.float32)
    kernels = rng.random((count, size, size)).astype(np.float32)
    grad = rng.standard_normal(x.shape).astype(np.float32)

    def ours():
        displace(x, kernels)
        displace_backward(x, kernels, grad)

    calls = [ours]
    if torch is not None:
        images = torch.from_numpy(x)[None].requires_grad_(True)
        # displace moves content by +shift, a correlation reads -shift: flip the kernels.
        weights = torch.from_numpy(np.ascontiguousarray(kernels[:, ::-1, ::-1]))[:, None].requires_grad_(True)
        upstream = torch.from_numpy(grad)[None]

        def theirs():
            images.grad = weights.grad = None
            torch.nn.functional.conv2d(images, weights, padding=size // 2, groups=count).backward(upstream)
        with torch.no_grad():
            same = torch.nn.functional.conv2d(images, weights, padding=size // 2, groups=count)[0].numpy()
        np.testing.assert_allclose(same, displace(x, kernels), rtol=1e-4, atol=1e-3)
        calls.append(theirs)
    return bench.median_times(calls, repeats)


def main(argv=None):
    bench.peer_table(__doc__.splitlines()[0], "float32, forward + backward",
                     ("images", "side", "kernel"), SHAPES, time_shape, argv)


if __name__ == "__main__":
    main()
