"""One seeded NumPy generator for everything random in lstmzoo (weight init, dropout, shuffling).

``seed(s)`` makes a run deterministic; ``get_state()`` / ``set_state()`` (JSON-serialisable) let a resumed
run continue with exactly the draws an uninterrupted run would have made.

Under data-parallel training (``lstmzoo.distributed``) a rank computes some rows of a global batch; inside
``batch_rows(items, rows)`` the draws made per batch item (dropout masks, ``random_for_batch``) are made for the
global batch and sliced, so every rank draws what a single process draws and keeps its own rows.
"""

import contextlib

import numpy as np

_rng = np.random.default_rng(0)
_batch_rows = None      # (items of the global batch, this rank's rows) inside batch_rows()


def seed(value):
    """Reset the shared generator to ``value``."""
    global _rng
    _rng = np.random.default_rng(value)
    return _rng


def rng():
    """The shared generator."""
    return _rng


def get_state():
    """The generator's state as a JSON-serialisable dict."""
    return _rng.bit_generator.state


def set_state(state):
    """Restore a state returned by ``get_state()``."""
    _rng.bit_generator.state = state


@contextlib.contextmanager
def batch_rows(items, rows):
    """While active, ``random_for_batch`` draws for a global batch of ``items`` items and keeps ``rows`` (a slice)."""
    global _batch_rows
    previous, _batch_rows = _batch_rows, (items, rows)
    try:
        yield
    finally:
        _batch_rows = previous


def random_for_batch(generator, shape, batch_axis):
    """``generator.random(shape)`` for an array whose axis ``batch_axis`` runs over the items of a batch; inside
    ``batch_rows`` the draw is made for the global batch and this rank's rows are returned."""
    if _batch_rows is None:
        return generator.random(shape)
    items, rows = _batch_rows
    local = rows.stop - rows.start
    if len(shape) <= batch_axis or shape[batch_axis] != local:
        raise ValueError(f"a random draw of shape {tuple(shape)} has not this rank's {local} items of the batch on "
                         f"axis {batch_axis}, so it cannot be drawn for the global batch of {items} items")
    whole = list(shape)
    whole[batch_axis] = items
    return generator.random(tuple(whole))[(slice(None),) * batch_axis + (rows,)]
