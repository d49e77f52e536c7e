"""Fused LSTM / GRU / RNN kernels: ``reference`` (plain NumPy, the spec), ``cpu`` (Numba), ``cuda`` (Numba CUDA).

Every backend module exposes the same functions with the same shapes; ``reference``'s docstring is the
contract. ``backend(device)`` returns the module for a device name.

The functional kernels the layers call on the CPU are also names of this package: ``lstm_forward``,
``lstm_backward``, ``gru_forward``, ``gru_backward``, ``rnn_forward`` and ``rnn_backward`` are ``cpu``'s. They,
and the submodules, are imported on first use, so importing ``lstmzoo.kernels`` does not import Numba.
"""

import importlib

from . import reference

FUNCTIONS = ("lstm_forward", "lstm_backward", "gru_forward", "gru_backward", "rnn_forward", "rnn_backward")
_SUBMODULES = ("arguments", "cpu", "ctc", "cuda", "displace", "memory")

__all__ = [
    "arguments",
    "backend",
    "cpu",
    "ctc",
    "cuda",
    "displace",
    "gru_backward",
    "gru_forward",
    "lstm_backward",
    "lstm_forward",
    "memory",
    "reference",
    "rnn_backward",
    "rnn_forward",
]


_backends = {}     # device -> its module once imported: the layers look theirs up at every call


def backend(device):
    """The kernel module for ``device`` ("cpu", "cuda" or "reference")."""
    module = _backends.get(device) if isinstance(device, str) else None
    if module is None:
        module = _backends[device] = _import_backend(device)
    return module


def _import_backend(device):
    if device == "cpu":
        from . import cpu
        return cpu
    if device == "cuda":
        from . import cuda
        return cuda
    if device == "reference":
        return reference
    raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")


def __getattr__(name):
    if name in FUNCTIONS:
        return getattr(backend("cpu"), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
