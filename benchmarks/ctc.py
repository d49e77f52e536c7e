"""Time lstmzoo's CTC loss (Numba forward-backward, loss and gradient) against torch.nn.functional.ctc_loss and
print a Markdown table.

    python benchmarks/ctc.py                  # the default shapes, one thread each
    python benchmarks/ctc.py --threads 2

Both compute the loss and the gradient with respect to the scores, in the same process, alternating, each after
an idle pause (lstmzoo.bench's timing). torch is given log-softmax outputs and back-propagates through the
log-softmax, which lstmzoo's CTCLoss applies itself, so the two do the same work.
"""

import numpy as np

from lstmzoo import bench
from lstmzoo.nn import CTCLoss

# (T, B, C, target length): the spoken-digit-strings and pendigits-strings shapes, then longer speech-like ones.
SHAPES = [(80, 16, 11, 5), (200, 32, 30, 40), (600, 16, 80, 100)]


def time_shape(torch, shape, repeats):
    steps, batch, classes, target_length = shape
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((steps, batch, classes)).astype(np.float32)
    targets = rng.integers(1, classes, (batch, target_length))
    input_lengths = np.full(batch, steps)
    target_lengths = np.full(batch, target_length)
    loss = CTCLoss()

    def ours():
        loss(logits, targets, input_lengths, target_lengths)
        loss.backward()

    calls = [ours]
    if torch is not None:
        scores = torch.from_numpy(logits).requires_grad_(True)
        tt, ti, tl = (torch.from_numpy(a) for a in (targets, input_lengths, target_lengths))

        def theirs():
            scores.grad = None
            torch.nn.functional.ctc_loss(scores.log_softmax(2), tt, ti, tl, reduction="mean").backward()
        calls.append(theirs)
    return bench.median_times(calls, repeats)


def main(argv=None):
    bench.peer_table(__doc__.splitlines()[0], "float32 scores, loss + gradient",
                     ("T", "B", "C", "target length"), SHAPES, time_shape, argv)


if __name__ == "__main__":
    main()
