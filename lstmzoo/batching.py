"""Minibatches of variable-length sequences: padding, index batches, and length bucketing.

The LSTM layer takes ``lengths`` beside a padded batch and ignores what lies past each sequence's end, so
padding costs time but not correctness; ``bucket_by_length`` groups similar lengths to cut that time.
"""

import numpy as np

from .array import array_module


def pad_sequences(seqs, dtype=None, pad_value=0, batch_first=False):
    """Stack sequences of shapes ``[T_i, ...]`` into one padded array.

    Returns ``(padded, lengths)``: ``padded`` is ``[T_max, B, ...]`` (``[B, T_max, ...]`` if ``batch_first``)
    in ``dtype`` (default: the sequences' common type) filled with ``pad_value`` past each end, on the same
    array module (NumPy or CuPy) as the sequences; ``lengths`` is a NumPy int64 array ``[B]`` of the ``T_i``.
    """
    if len(seqs) == 0:
        raise ValueError("pad_sequences needs at least one sequence")
    xp = array_module(seqs[0])
    seqs = [xp.asarray(s) for s in seqs]
    if any(s.ndim == 0 for s in seqs):
        raise ValueError("each sequence must have a time axis first, got a 0-d array")
    feature_shape = seqs[0].shape[1:]
    for i, s in enumerate(seqs):
        if s.shape[1:] != feature_shape:
            raise ValueError(f"sequence {i} has feature shape {s.shape[1:]}, sequence 0 has {feature_shape}")
    lengths = np.array([s.shape[0] for s in seqs], dtype=np.int64)
    dtype = dtype if dtype is not None else xp.result_type(*{s.dtype for s in seqs})
    padded = xp.full((len(seqs), int(lengths.max()), *feature_shape), pad_value, dtype=dtype)
    for i, s in enumerate(seqs):
        padded[i, :s.shape[0]] = s
    return (padded if batch_first else xp.ascontiguousarray(padded.swapaxes(0, 1))), lengths


def minibatch_indices(n, batch_size, rng=None, shuffle=True, drop_last=False):
    """Split ``range(n)`` into index arrays of ``batch_size`` (the last one shorter unless ``drop_last``).

    With ``shuffle`` the order is a permutation drawn from ``rng`` (a NumPy Generator), so a seeded rng gives
    the same batches every time.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if shuffle and rng is None:
        raise ValueError("shuffle=True needs an rng (a numpy.random.Generator)")
    order = rng.permutation(n) if shuffle else np.arange(n)
    stop = n - n % batch_size if drop_last else n
    return [order[start:start + batch_size] for start in range(0, stop, batch_size)]


def bucket_by_length(lengths, batch_size, rng, chunk_batches=50, drop_last=False):
    """Shuffled index batches whose members have similar lengths, so padded batches waste little.

    The indices are shuffled, cut into chunks of ``chunk_batches * batch_size``, sorted by length within each
    chunk, cut into batches, and the batches shuffled. Sorting only within chunks keeps batch contents random
    from epoch to epoch (sorting the whole set would give the same batches every time).
    """
    lengths = np.asarray(lengths)
    chunk = batch_size * chunk_batches
    order = rng.permutation(len(lengths))
    batches = []
    for start in range(0, len(order), chunk):
        part = order[start:start + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches.extend(part[i:i + batch_size] for i in range(0, len(part), batch_size))
    if drop_last:
        batches = [b for b in batches if len(b) == batch_size]
    return [batches[i] for i in rng.permutation(len(batches))]


def tbptt_batches(tokens, batch_size, steps):
    """Windows for truncated back-propagation through time over one long token stream (char-rnn's batching).

    ``tokens`` (1-D) is cut into ``batch_size`` contiguous streams of ``n = (len(tokens) - 1) // batch_size``
    steps each (the last ``len(tokens) - 1 - batch_size * n`` predictions, fewer than ``batch_size``, are left
    out); returns the windows ``(inputs, targets)``, both ``[batch_size, steps]`` (the last window shorter when ``steps``
    does not divide ``n``), targets being the inputs shifted one token ahead, as a list of views in order. Row ``b`` of window ``k + 1``
    continues row ``b`` of window ``k``, so a ``stateful`` layer carries each stream's state from window to
    window. Stream ``b`` predicts ``tokens[b * n + 1 : (b + 1) * n + 1]``.
    """
    tokens = np.asarray(tokens)
    if tokens.ndim != 1:
        raise ValueError(f"tokens must be a 1-D array, got shape {tokens.shape}")
    for name, value in (("batch_size", batch_size), ("steps", steps)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    n = (len(tokens) - 1) // batch_size
    if n < 1:
        raise ValueError(f"{len(tokens)} tokens are too few for {batch_size} streams (need at least "
                         f"{batch_size + 1})")
    inputs = tokens[:batch_size * n].reshape(batch_size, n)
    targets = tokens[1:batch_size * n + 1].reshape(batch_size, n)
    return [(inputs[:, start:start + steps], targets[:, start:start + steps]) for start in range(0, n, steps)]
