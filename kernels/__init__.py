"""Fused LSTM / GRU / RNN kernels: ``reference`` (plain NumPy, the spec), ``cpu`` (Numba), ``cuda`` (Numba CUDA).

Every backend module exposes the same functions with the same shapes; ``reference``'s docstring is the
contract. ``backend(device)`` returns the module for a device name.
"""

from . import reference

__all__ = ["reference", "backend"]


def backend(device):
    """The kernel module for ``device`` ("cpu", "cuda" or "reference")."""
    if device == "cpu":
        from . import cpu
        return cpu
    if device == "cuda":
        from . import cuda
        return cuda
    if device == "reference":
        return reference
    raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
