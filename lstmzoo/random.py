"""One seeded NumPy generator for everything random in lstmzoo (weight init, dropout, shuffling).

``seed(s)`` makes a run deterministic; ``get_state()`` / ``set_state()`` (JSON-serialisable) let a resumed
run continue with exactly the draws an uninterrupted run would have made.
"""

import numpy as np

_rng = np.random.default_rng(0)


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
