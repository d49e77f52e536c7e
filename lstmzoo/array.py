"""NumPy or CuPy: the array module of an array or a device name, so one code path serves both."""

import os

import numpy as np


def array_module(x):
    """``cupy`` for a CuPy array, else ``numpy``."""
    if type(x).__module__.startswith("cupy"):
        import cupy
        return cupy
    return np


def device_module(device):
    """The array module for a device name ("cpu" or "cuda"); a clear error when CUDA is unusable."""
    if device == "cpu":
        return np
    if device != "cuda":
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if cuda_simulator():
        return np  # Numba's CUDA simulator runs the CUDA kernels on NumPy arrays (tests without a GPU)
    try:
        import cupy
    except ImportError:
        raise RuntimeError("device='cuda' needs CuPy: install the extra with pip install 'lstmzoo[cuda]'") from None
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            raise RuntimeError
    except Exception:
        raise RuntimeError("device='cuda' needs an NVIDIA GPU with a working driver, and none was found") from None
    return cupy


def cuda_simulator():
    """True when Numba's CUDA simulator is switched on (``NUMBA_ENABLE_CUDASIM=1``)."""
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") == "1"


def to_numpy(x):
    """A NumPy array from a NumPy or CuPy array."""
    return x.get() if hasattr(x, "get") and not isinstance(x, np.ndarray) else np.asarray(x)
