"""Connectionist temporal classification (Graves et al. 2006): the loss, and greedy and beam-search decoding.

Shapes follow PyTorch's ``nn.CTCLoss``: scores ``[T, B, C]`` (time first, classes last), ``targets`` either
padded ``[B, S]`` or 1-D, all targets concatenated; ``input_lengths`` ``[B]`` in 1..T, ``target_lengths``
``[B]``. Unlike PyTorch, ``CTCLoss`` takes **unnormalised** scores and applies log-softmax itself, and its
``backward()`` returns the gradient with respect to those scores.

``ctc_loss_reference`` below is the plain NumPy specification; ``CTCLoss`` runs its Numba twin in
``lstmzoo.kernels.ctc`` (the tests hold the two to 1e-10 in float64). Both compute in float64.
"""

import numpy as np

from ..array import array_module, to_numpy
from .losses import _Loss

# ----------------------------------------------------------------------------------------- reference

def ctc_loss_reference(log_probs, targets, input_lengths, target_lengths, blank=0):
    """Per-sequence CTC losses ``[B]`` and their gradients with respect to the logits ``[T, B, C]``.

    ``log_probs`` ``[T, B, C]`` is ``log_softmax(logits)``; ``targets`` is padded ``[B, S]``. The loss of
    sequence b is ``-log p(targets[b, :target_lengths[b]] | log_probs[:input_lengths[b], b])``, summed over
    every alignment by the forward-backward algorithm in log space. Its gradient with respect to the logits
    at time t is ``softmax - (1/p) * sum over the states s labelled c of alpha_t(s) * beta_t(s)``, zero at and
    past ``input_lengths[b]``. An impossible target (too long for its input) gives an infinite loss and a NaN
    gradient, as in PyTorch.
    """
    T, B, C = log_probs.shape
    losses = np.empty(B)
    grads = np.zeros((T, B, C))
    for b in range(B):
        lp = np.asarray(log_probs[:input_lengths[b], b], dtype=np.float64)
        labels = np.asarray(targets[b, :target_lengths[b]])
        # The extended sequence: a blank before, between and after the labels.
        ext = np.full(2 * len(labels) + 1, blank)
        ext[1::2] = labels
        # A path may jump from s-2 to s, skipping a blank, only between two different labels.
        skip = np.zeros(len(ext), bool)
        skip[2:] = (ext[2:] != blank) & (ext[2:] != ext[:-2])

        with np.errstate(invalid="ignore"):  # logaddexp(-inf, -inf) is -inf, as wanted
            alpha = np.full((len(lp), len(ext)), -np.inf)
            alpha[0, :2] = lp[0, ext[:2]]
            for t in range(1, len(lp)):
                a = alpha[t - 1].copy()
                a[1:] = np.logaddexp(a[1:], alpha[t - 1, :-1])
                a[2:] = np.where(skip[2:], np.logaddexp(a[2:], alpha[t - 1, :-2]), a[2:])
                alpha[t] = a + lp[t, ext]

            # beta[t, s]: log-probability of the rest of the path after time t, given state s at time t.
            beta = np.full_like(alpha, -np.inf)
            beta[-1, -2:] = 0.0
            for t in range(len(lp) - 2, -1, -1):
                emitted = beta[t + 1] + lp[t + 1, ext]
                v = emitted.copy()
                v[:-1] = np.logaddexp(v[:-1], emitted[1:])
                v[:-2] = np.where(skip[2:], np.logaddexp(v[:-2], emitted[2:]), v[:-2])
                beta[t] = v

            log_likelihood = np.logaddexp.reduce(alpha[-1, -2:])
            occupancy = np.full((len(lp), C), -np.inf)
            for c in np.unique(ext):
                occupancy[:, c] = np.logaddexp.reduce((alpha + beta)[:, ext == c], axis=1)
            losses[b] = -log_likelihood
            grads[:len(lp), b] = np.exp(lp) - np.exp(occupancy - log_likelihood)
    return losses, grads


# ---------------------------------------------------------------------------------------------- loss

class CTCLoss(_Loss):
    """CTC loss from unnormalised scores ``logits [T, B, C]``; ``backward()`` returns ``dlogits``.

    ``reduction="mean"`` divides each sequence's loss by its target length (at least 1) and averages over
    the batch, like PyTorch; ``"sum"`` adds them. With ``zero_infinity`` an impossible target (longer than its
    input allows, counting the blank needed between repeated labels) contributes loss 0 and gradient 0
    instead of an infinite loss and a NaN gradient.
    """

    def __init__(self, blank=0, reduction="mean", zero_infinity=True):
        super().__init__(reduction)
        self.blank = blank  # checked against the number of classes in forward
        self.zero_infinity = bool(zero_infinity)

    def __call__(self, logits, targets, input_lengths, target_lengths):
        return self.forward(logits, targets, input_lengths, target_lengths)

    def forward(self, logits, targets, input_lengths, target_lengths):
        from ..kernels import ctc as kernel  # imports Numba, so only when a CTC loss is computed

        xp = array_module(logits)
        z = _check_logits(logits, float_only=True)
        input_lengths = _check_input_lengths(input_lengths, z.shape)
        targets, target_lengths = _check_targets(targets, target_lengths, z.shape, self.blank)
        losses, grads = kernel.ctc_loss(_log_softmax(z), targets, input_lengths, target_lengths, self.blank)

        if self.zero_infinity:
            impossible = np.isinf(losses)
            losses[impossible] = 0.0
            grads[:, impossible] = 0.0
        if self.reduction == "mean":
            weights = 1.0 / (np.maximum(target_lengths, 1) * len(losses))
        else:
            weights = np.ones(len(losses))
        grads *= weights[None, :, None]
        self._grad = xp.asarray(grads.astype(z.dtype, copy=False))
        return float(losses @ weights)


# ------------------------------------------------------------------------------------------ decoding

def ctc_greedy_decode(logits, input_lengths, blank=0):
    """Best-path decoding: the most likely class per step, repeats collapsed, blanks dropped.

    ``logits [T, B, C]`` (scores or log-probabilities), ``input_lengths [B]``; returns B lists of labels.
    """
    z = _check_logits(logits)
    lengths = _check_input_lengths(input_lengths, z.shape)
    _check_blank(blank, z.shape[2])
    best = z.argmax(axis=2)
    decoded = []
    for b, length in enumerate(lengths):
        path = best[:length, b]
        keep = np.ones(length, bool)
        keep[1:] = path[1:] != path[:-1]
        decoded.append([int(c) for c in path[keep] if c != blank])
    return decoded


def ctc_beam_decode(logits, input_lengths, beam_width=10, blank=0):
    """CTC prefix beam search (Hannun et al. 2014, without a language model).

    Keeps the ``beam_width`` labellings (prefixes) with the highest probability summed over all the paths
    that collapse to them so far, each split into paths ending in a blank and in a label. The search's
    scores are lower bounds (pruning drops paths), and with a narrow beam it can even lose the best-path
    labelling, so the final beams and the greedy labelling are rescored with their exact probability (the CTC
    forward pass) and the most probable one is returned: never less probable than ``ctc_greedy_decode``'s,
    and the most probable labelling of all when the beam is wide enough. ``logits [T, B, C]`` are scores
    (log-softmax is applied), ``input_lengths [B]``; returns B lists of labels.
    """
    if isinstance(beam_width, bool) or not isinstance(beam_width, (int, np.integer)) or beam_width < 1:
        raise ValueError(f"beam_width must be a positive integer, got {beam_width!r}")
    z = _check_logits(logits)
    lengths = _check_input_lengths(input_lengths, z.shape)
    _check_blank(blank, z.shape[2])
    log_probs = _log_softmax(z)
    greedy = ctc_greedy_decode(z, lengths, blank)
    decoded = []
    for b, length in enumerate(lengths):
        beams = _prefix_beam_search(log_probs[:length, b], int(beam_width), blank)
        decoded.append(_most_probable(log_probs[:length, b], [*beams, tuple(greedy[b])], blank))
    return decoded


def _most_probable(log_probs, labellings, blank):
    """The labelling with the highest exact CTC probability under ``log_probs [T, C]``."""
    from ..kernels import ctc as kernel

    lengths = np.array([len(labels) for labels in labellings])
    targets = np.zeros((len(labellings), lengths.max()), np.int64)
    for k, labels in enumerate(labellings):
        targets[k, :len(labels)] = labels
    T, C = log_probs.shape
    repeated = np.broadcast_to(log_probs[:, None, :], (T, len(labellings), C))
    losses, _ = kernel.ctc_loss(repeated, targets, np.full(len(labellings), T), lengths, blank)
    return [int(c) for c in labellings[int(np.argmin(losses))]]


def _prefix_beam_search(log_probs, beam_width, blank):
    """One sequence's final beams under ``log_probs [T, C]``: {tuple of labels: log-probability}, best first.

    Without pruning (a beam as wide as the number of labellings) the log-probabilities are exact.
    """
    C = log_probs.shape[1]
    prefixes = [()]
    ends_blank = np.array([0.0])  # log p(the paths so far collapse to the prefix and end in a blank)
    ends_label = np.array([-np.inf])  # ... and end in the prefix's last label
    for lp in log_probs:
        total = np.logaddexp(ends_blank, ends_label)
        nonempty = np.array([len(p) > 0 for p in prefixes])
        last = np.array([p[-1] if p else blank for p in prefixes])

        # The prefix stays the same: a blank, or its last label repeated (which collapses into it).
        stay_blank = total + lp[blank]
        stay_label = np.where(nonempty, ends_label + lp[last], -np.inf)
        # The prefix grows by label c; repeating its last label counts only after a blank.
        grown = total[:, None] + lp[None, :]
        grown[nonempty, last[nonempty]] = ends_blank[nonempty] + lp[last[nonempty]]
        grown[:, blank] = -np.inf
        # A grown prefix that is already a beam adds to it rather than competing with it.
        index = {p: i for i, p in enumerate(prefixes)}
        for i, p in enumerate(prefixes):
            parent = index.get(p[:-1]) if p else None
            if parent is not None:
                stay_label[i] = np.logaddexp(stay_label[i], grown[parent, p[-1]])
                grown[parent, p[-1]] = -np.inf
        # Of the other grown prefixes, only the best beam_width can survive the pruning below.
        flat = grown.ravel()
        top = np.argpartition(-flat, min(beam_width, flat.size) - 1)[:beam_width]
        top = top[flat[top] > -np.inf]

        candidates = prefixes + [prefixes[f // C] + (int(f % C),) for f in top]
        ends_blank = np.concatenate([stay_blank, np.full(len(top), -np.inf)])
        ends_label = np.concatenate([stay_label, flat[top]])
        keep = np.argsort(-np.logaddexp(ends_blank, ends_label), kind="stable")[:beam_width]
        prefixes = [candidates[i] for i in keep]
        ends_blank, ends_label = ends_blank[keep], ends_label[keep]
    return {p: float(score) for p, score in zip(prefixes, np.logaddexp(ends_blank, ends_label))}


# ---------------------------------------------------------------------------------------- validation

def _log_softmax(z):
    z = z.astype(np.float64)
    shifted = z - z.max(axis=2, keepdims=True)  # log-sum-exp without overflow
    return shifted - np.log(np.exp(shifted).sum(axis=2, keepdims=True))


def _is_integer_array(a):
    return a.dtype != bool and np.issubdtype(a.dtype, np.integer)


def _check_logits(logits, float_only=False):
    if not hasattr(logits, "shape") or not hasattr(logits, "dtype"):
        raise ValueError(f"logits must be an array [T, B, C], got {type(logits).__name__}")
    z = to_numpy(logits)
    if z.ndim != 3 or min(z.shape) < 1:
        raise ValueError(f"logits must have shape [T, B, C] with no empty dimension, got {z.shape}")
    allowed = (np.float32, np.float64) if float_only else (np.floating,)
    if not any(np.issubdtype(z.dtype, d) for d in allowed):
        raise ValueError(f"logits must be {'float32 or float64' if float_only else 'floating point'}, "
                         f"got dtype {z.dtype}")
    return z


def _check_lengths(name, lengths, batch):
    lengths = to_numpy(lengths) if hasattr(lengths, "dtype") else np.asarray(lengths)
    if lengths.shape != (batch,):
        raise ValueError(f"{name} must have shape ({batch},), one length per sequence, got {lengths.shape}")
    if not _is_integer_array(lengths):
        raise ValueError(f"{name} must hold integers, got dtype {lengths.dtype}")
    return lengths.astype(np.int64)


def _check_input_lengths(input_lengths, shape):
    T, B, _ = shape
    lengths = _check_lengths("input_lengths", input_lengths, B)
    if ((lengths < 1) | (lengths > T)).any():
        raise ValueError(f"input_lengths must be in 1..{T} (the logits' T), got {lengths.tolist()}")
    return lengths


def _check_blank(blank, classes):
    if isinstance(blank, bool) or not isinstance(blank, (int, np.integer)) or not 0 <= blank < classes:
        raise ValueError(f"blank must be a class index in 0..{classes - 1}, got {blank!r}")


def _check_targets(targets, target_lengths, shape, blank):
    """Padded int64 targets ``[B, max(target_lengths)]`` and the lengths, from either of PyTorch's forms."""
    _, B, C = shape
    _check_blank(blank, C)
    lengths = _check_lengths("target_lengths", target_lengths, B)
    if (lengths < 0).any():
        raise ValueError(f"target_lengths must be >= 0, got {lengths.tolist()}")
    targets = to_numpy(targets) if hasattr(targets, "dtype") else np.asarray(targets)
    if not _is_integer_array(targets) and targets.size:
        raise ValueError(f"targets must hold integer class indices, got dtype {targets.dtype}")
    if targets.ndim == 2:
        if targets.shape[0] != B or targets.shape[1] < lengths.max():
            raise ValueError(f"padded targets must have shape [B={B}, S >= {lengths.max()}] "
                             f"(the longest target length), got {targets.shape}")
        padded = targets.astype(np.int64)
    elif targets.ndim == 1:
        if targets.shape[0] != lengths.sum():
            raise ValueError(f"concatenated targets must have sum(target_lengths) = {lengths.sum()} entries, "
                             f"got {targets.shape[0]}")
        padded = np.zeros((B, lengths.max()), np.int64)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        for b, (start, length) in enumerate(zip(starts, lengths)):
            padded[b, :length] = targets[start:start + length]
    else:
        raise ValueError(f"targets must be padded [B, S] or concatenated 1-D, got shape {targets.shape}")
    used = padded[np.arange(padded.shape[1])[None, :] < lengths[:, None]]
    if ((used < 0) | (used >= C) | (used == blank)).any():
        raise ValueError(f"target labels must be in 0..{C - 1} and differ from blank={blank}")
    return padded, lengths
