"""Large arrays for the CPU kernels, recycled from one call to the next.

A training step asks for the same large arrays every time: at T = 100, B = 128, I = 256, H = 1024 (float32) the
LSTM's forward keeps about 440 MB (the states, the saved gates, the output) and its backward writes about 350 MB
more (the gates' gradients, the packed operands of its GEMMs, the gradients). Fresh memory is paid for in page
faults: the operating system maps and zeroes every page on its first touch, and on a virtual machine the host may
have to back it too. On a Zen 4 VM (benchmarks/RESULTS.md "Session 26") that took 0.4-1.8 s of system time a
forward and backward at that shape, against 4.2 s of computing; torch's own allocations, in the same process,
made it worse.

``empty(shape, dtype)`` (and ``zeros``) hands out an array over a *slab*, a 1-D byte array this module keeps,
when nothing else uses it, or a new slab. A slab is in use while any array over it lives: every such array (and
every view of one, and every array Numba made from one) holds a reference to the slab, since NumPy points a view's
``base`` at the array owning the memory, so a slab whose only references are this module's is seen by nobody and
can be handed out again (CPython's reference counts, read under a lock). What a caller gets is what
``np.empty`` gives: memory of unspecified contents.

Below ``MIN_BYTES`` a request goes to NumPy (its allocator reuses small blocks itself). A free slab is reused for a
request of at least half its size. Free slabs are kept up to ``limit`` bytes (default an eighth of the machine's
memory), the least recently used dropped first; ``release()`` drops them all, ``held()`` tells what is kept. With
``LSTMZOO_POISON_MEMORY=1`` in the environment (the test suite's) every array handed out is first filled with NaN,
so that a kernel reading memory it has not written shows in its results."""

import math
import os
import sys
import threading

import numpy as np

#: Requests of fewer bytes go to ``np.empty``.
MIN_BYTES = 1 << 20


def _default_limit():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 8
    except (ValueError, OSError, AttributeError):
        return 1 << 30


#: The most bytes of free slabs kept between calls.
limit = _default_limit()

_lock = threading.Lock()
_slabs = []  # [slab] each (a list, so that the slab has one reference from here), the most recently used last
# LSTMZOO_POISON_MEMORY=1 (the test suite sets it): every array handed out is filled with NaN (integers: their largest
# value), so that a kernel reading memory it did not write shows in its results.
_poison = os.environ.get("LSTMZOO_POISON_MEMORY", "") == "1"


def _references(entry):
    return sys.getrefcount(entry[0])


# What ``_references`` reads for a slab that only its entry holds: the entry's reference, and getrefcount's argument
# where the interpreter counts it (not every CPython version does), measured here once. Any array over the slab adds
# one.
_ALONE = _references([np.empty(1, np.uint8)])


def _free(entry):
    return _references(entry) == _ALONE


def empty(shape, dtype):
    """``np.empty(shape, dtype)``, C-ordered, over a recycled slab where it takes ``MIN_BYTES`` or more."""
    shape, dtype, size = _measured(shape, dtype)
    if size < MIN_BYTES:  # (the small ones of every call: no more than NumPy's own overhead here)
        out = np.empty(shape, dtype)
    else:
        with _lock:
            fits = [entry for entry in _slabs if size <= len(entry[0]) <= 2 * size and _free(entry)]
            if fits:
                entry = min(fits, key=lambda entry: len(entry[0]))
                _remove(entry)
            else:
                entry = [np.empty(size, np.uint8)]
            _slabs.append(entry)
            out = entry[0][:size].view(dtype).reshape(shape)
            _trim()
    if _poison and out.size:
        out.fill(np.nan if dtype.kind in "fc" else np.iinfo(dtype).max if dtype.kind in "iu" else 1)
    return out


def zeros(shape, dtype):
    """``np.zeros(shape, dtype)``, through ``empty`` where it takes ``MIN_BYTES`` or more."""
    shape, dtype, size = _measured(shape, dtype)
    if size < MIN_BYTES:
        return np.zeros(shape, dtype)
    out = empty(shape, dtype)
    out.fill(0)
    return out


def _measured(shape, dtype):
    """``(shape, dtype, bytes)`` with ``shape`` a tuple and ``dtype`` a NumPy dtype (in a few hundred ns: the small
    arrays of every call come here too)."""
    shape = tuple(shape) if isinstance(shape, (tuple, list)) else (shape,)
    dtype = np.dtype(dtype)
    return shape, dtype, math.prod(shape) * dtype.itemsize


def _trim():
    """Drop free slabs, least recently used first, while they hold more than ``limit`` bytes."""
    free = [entry for entry in _slabs if _free(entry)]  # in order of use
    kept = sum(len(entry[0]) for entry in free)
    for entry in free:
        if kept <= limit:
            break
        kept -= len(entry[0])
        _remove(entry)


def _remove(entry):
    # by identity (a list's ``remove`` would compare the arrays)
    del _slabs[next(i for i, e in enumerate(_slabs) if e is entry)]


def release():
    """Drop every free slab (their memory goes back to the system); slabs in use stay until their arrays go."""
    with _lock:
        _slabs[:] = [entry for entry in _slabs if not _free(entry)]


def held():
    """``(in_use, free)``: bytes of the slabs kept, those that arrays still use and those free for the next call."""
    with _lock:
        free = [_free(entry) for entry in _slabs]
        sizes = [len(entry[0]) for entry in _slabs]
    return sum(s for s, f in zip(sizes, free) if not f), sum(s for s, f in zip(sizes, free) if f)
