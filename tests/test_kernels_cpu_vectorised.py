"""The CPU kernels' cell pass compiles to vectorised loops (kernels/cpu.py, _arguments_do_not_overlap).

Without the promise that the rows a cell pass reads and writes do not overlap, LLVM left the LSTM's forward cell
pass scalar (nine rows: above its limit of run-time overlap checks) and it ran 4-6x slower, one element and one
scalar division per activation at a time. The results were the same, so only the machine code shows it. Each
float32 activation (the rational tanh) divides once; a vectorised loop compiles to packed divisions (``divps``)
plus a scalar remainder loop (``divss``), a scalar loop to ``divss`` only. So with every activation's loop
vectorised (LSTM 5, GRU 3, RNN 1: the kind is a run-time argument) there are at least as many packed divisions
as scalar ones: 18 against 9 on an AVX-512 Xeon, and 8 against 11 without the promise. x86-64 only.
"""

import platform
import types

import numpy as np
import pytest
from lstmzoo.kernels import cpu
from numba import njit

pytestmark = pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                                reason="reads x86-64 machine code")


def divisions(function, *args):
    """(packed, scalar) float32 divisions in a fresh, uncached compilation of ``function`` with its own options
    (Numba shows no machine code for a function loaded from its cache)."""
    source = function.py_func
    options = {k: v for k, v in function.targetoptions.items() if k != "nopython"}
    fresh = njit(**dict(options, cache=False))(types.FunctionType(source.__code__, source.__globals__, "fresh"))
    fresh(*args)
    lines = "\n".join(fresh.inspect_asm().values()).splitlines()
    return sum("divps" in line for line in lines), sum("divss" in line for line in lines)


def assert_all_vectorised(packed, scalar):
    """Each division site compiles to one scalar division (the remainder loop, or the whole loop where it is not
    vectorised) and, where vectorised, to one or two packed ones (the vector body, and on AVX-512 a vectorised
    epilogue): all sites vectorised, the packed count is the same multiple of the scalar one for each."""
    assert scalar > 0 and packed >= scalar and packed % scalar == 0, (
        f"{packed} packed and {scalar} scalar divisions: a loop is not vectorised")


@pytest.mark.parametrize("training", [False, True])
def test_forward_cell_pass_is_vectorised(training):
    """The unfused cell pass (``_cell_forward``: a block of rows, one row's loop inlined from ``_cell_units``,
    ``training`` a run-time flag)."""
    B, H = 3, 64

    def rows(n):
        return np.zeros((B, n), np.float32)

    packed, scalar = divisions(cpu._cell_forward, cpu.LSTM, rows(4 * H), rows(4 * H), np.zeros(4 * H, np.float32),
                               np.zeros(4 * H, np.float32), rows(H), rows(H), rows(H), rows(H),
                               rows(5 * H if training else 0), rows(H), np.full(B, 2, np.int64), 0, training, 0, 0, H)
    assert_all_vectorised(packed, scalar)


@pytest.mark.parametrize("training", [False, True])
def test_fused_cell_pass_is_vectorised(training):
    """The fused step's cell pass (``_cells_forward``), whose LSTM loop is inlined twice (``_lstm_units``: training a
    constant in each copy), RNN tanh once: every copy vectorised."""
    B, H = 3, 64
    rows = np.zeros((B, H), np.float32)
    packed, scalar = divisions(cpu._cells_forward, cpu.LSTM, np.zeros((B, 4 * H), np.float32), rows, rows, rows.copy(),
                               rows.copy(), np.zeros((B, 5 * H if training else 0), np.float32), rows.copy(),
                               np.full(B, 2, np.int64), 0, training)
    assert_all_vectorised(packed, scalar)
