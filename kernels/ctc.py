"""Numba CPU kernel for the CTC loss: the fast twin of ``lstmzoo.nn.ctc.ctc_loss_reference``.

Same arguments, shapes and results as the reference (read its docstring for the contract): log-space
alpha/beta over the label sequence extended with blanks, one sequence after another, and the gradient with
respect to the logits written straight into the output. It lives here rather than beside the reference so
that ``import lstmzoo.nn`` does not import Numba.

One thread: a ``prange`` over the batch won 1.6x on the 2-core machine when lightly loaded ([T, B, C] =
[200, 32, 30], 40 labels) but lost on the shared, loaded one (1.1 -> 23 ms at [100, 8, 30], 231 -> 245 ms
at [600, 16, 80]), waiting for its second thread; the loss is a small part of a training step either way.
"""

import numpy as np
from numba import njit

from .arguments import check_ctc

# No fastmath: -inf (an unreachable state) must add and compare exactly, and impossible alignments must give
# inf losses and NaN gradients as the reference (and PyTorch) do.
_JIT = {"cache": True, "error_model": "numpy"}


def ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=0):
    """Per-sequence losses ``[B]`` and their gradients with respect to the logits ``[T, B, C]`` (float64).

    ``targets`` padded ``[B, S]``; its arguments are checked first (``arguments.check_ctc``)."""
    targets, input_lengths, target_lengths = check_ctc(log_probs, targets, input_lengths, target_lengths, blank)
    log_probs = np.ascontiguousarray(log_probs, dtype=np.float64)
    losses = np.empty(log_probs.shape[1])
    grads = np.empty_like(log_probs)
    _ctc_batch(log_probs, np.ascontiguousarray(targets), input_lengths, target_lengths, int(blank), losses, grads)
    return losses, grads


@njit(**_JIT)
def _ctc_batch(log_probs, targets, input_lengths, target_lengths, blank, losses, grads):
    for b in range(log_probs.shape[1]):
        losses[b] = _ctc_sequence(log_probs[:, b, :], targets[b, :target_lengths[b]], input_lengths[b], blank,
                                  grads[:, b, :])


@njit(inline="always", **_JIT)
def _logsumexp3(a, b, c):
    """log(e^a + e^b + e^c) with one log: the recursions combine at most three states."""
    m = max(a, b, c)
    if m == -np.inf:
        return m
    return m + np.log(np.exp(a - m) + np.exp(b - m) + np.exp(c - m))


@njit(**_JIT)
def _ctc_sequence(log_probs, labels, length, blank, grad):
    """-log p(``labels`` | ``log_probs[:length]``); fills ``grad`` (zero from ``length`` on)."""
    S = 2 * labels.shape[0] + 1
    ext = np.full(S, blank, np.int64)
    for i in range(labels.shape[0]):
        ext[2 * i + 1] = labels[i]
    # A path may jump from s-2 to s, skipping a blank, only between two different labels.
    skip = np.zeros(S, np.bool_)
    for s in range(2, S):
        skip[s] = ext[s] != blank and ext[s] != ext[s - 2]

    alpha = np.full((length, S), -np.inf)
    alpha[0, 0] = log_probs[0, ext[0]]
    if S > 1:
        alpha[0, 1] = log_probs[0, ext[1]]
    for t in range(1, length):
        for s in range(S):
            previous = alpha[t - 1, s - 1] if s >= 1 else -np.inf
            skipped = alpha[t - 1, s - 2] if skip[s] else -np.inf
            alpha[t, s] = _logsumexp3(alpha[t - 1, s], previous, skipped) + log_probs[t, ext[s]]

    # beta[t, s]: log-probability of the rest of the path after time t, given state s at time t.
    beta = np.full((length, S), -np.inf)
    beta[length - 1, S - 1] = 0.0
    if S > 1:
        beta[length - 1, S - 2] = 0.0
    emitted = np.empty(S)
    for t in range(length - 2, -1, -1):
        for s in range(S):
            emitted[s] = beta[t + 1, s] + log_probs[t + 1, ext[s]]
        for s in range(S):
            following = emitted[s + 1] if s + 1 < S else -np.inf
            skipped = emitted[s + 2] if s + 2 < S and skip[s + 2] else -np.inf
            beta[t, s] = _logsumexp3(emitted[s], following, skipped)

    nll = -_logsumexp3(alpha[length - 1, S - 1], alpha[length - 1, S - 2] if S > 1 else -np.inf, -np.inf)

    C = log_probs.shape[1]
    occupancy = np.empty(C)
    for t in range(length):
        # Summed relative to the largest state: a term that underflows there is below 1e-300 of the result.
        largest = -np.inf
        for s in range(S):
            largest = max(largest, alpha[t, s] + beta[t, s])
        occupancy[:] = 0.0
        for s in range(S):
            occupancy[ext[s]] += np.exp(alpha[t, s] + beta[t, s] - largest)
        scale = np.exp(largest + nll)
        for c in range(C):
            grad[t, c] = np.exp(log_probs[t, c]) - occupancy[c] * scale
    for t in range(length, grad.shape[0]):
        grad[t, :] = 0.0
    return nll
