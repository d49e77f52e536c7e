"""Time lstmzoo's CTC loss (Numba forward-backward, loss and gradient) against torch.nn.functional.ctc_loss and
print a Markdown table.

    python benchmarks/ctc.py                  # the default shapes, one thread each
    python benchmarks/ctc.py --threads 2

Both compute the loss and the gradient with respect to the scores, in the same process, alternating, each after
an idle pause (lstmzoo.bench's timing). torch is given log-softmax outputs and back-propagates through the
log-softmax, which lstmzoo's CTCLoss applies itself, so the two do the same work.
"""

import argparse

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
    samples = [[] for _ in calls]
    for _ in range(repeats):
        for call, times in zip(calls, samples):
            times.append(bench._time_after_idle(call))
    return [float(np.median(t)) for t in samples]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="threads for both libraries (default 1)")
    parser.add_argument("--repeats", type=int, default=5, help="timings per shape, of which the median is shown")
    args = parser.parse_args()
    import numba
    numba.set_num_threads(args.threads)
    torch = bench._import_torch()
    if torch is not None:
        torch.set_num_threads(args.threads)
    print(f"float32 scores, loss + gradient, median of {args.repeats} timings, {args.threads} thread(s); torch "
          f"{torch.__version__ if torch is not None else 'not installed'}; load average before: "
          f"{bench._load_average()}")
    print()
    print("| T | B | C | target length | lstmzoo ms | torch ms | lstmzoo / torch |")
    print("|---|---|---|---|---:|---:|---:|")
    for shape in SHAPES:
        times = time_shape(torch, shape, args.repeats)
        peer, ratio = (f"{times[1] * 1e3:.2f}", f"{times[0] / times[1]:.2f}") if len(times) > 1 else ("n/a", "n/a")
        print(f"| {' | '.join(map(str, shape))} | {times[0] * 1e3:.2f} | {peer} | {ratio} |")
    print()
    print(f"load average after: {bench._load_average()}")


if __name__ == "__main__":
    main()
