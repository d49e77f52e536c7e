"""What every public kernel accepts, checked in one place before any compiled code runs.

The compiled kernels index their arrays without bounds checks, so a wrong shape reads or writes memory that
is not the array's (a one-element ``b_ih`` crashed the process) and a wrong dtype surfaces as a Numba typing
error. Every public entry point (``reference``, ``cpu``, ``cuda``, ``ctc``, ``displace``) calls these checks
first; they read shapes and dtypes and, for lengths and labels, O(B) values, so they stay on.

A failed check is a ``ValueError`` naming the argument, what it got and what was expected, worded like the
layers' own checks (``lstmzoo.nn.recurrent``). Arrays are NumPy arrays, or CuPy arrays for the CUDA kernels;
the kernels never cast: every float array of a call has the dtype of its first one.
"""

import numpy as np

#: The dtypes the kernels compute in; anything else is refused, not cast.
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def float_dtype(name, value):
    """The dtype of the array ``value`` when the kernels compute in it (float32 or float64)."""
    if type(value) is not np.ndarray:
        _require_array(name, value)
    if value.dtype not in FLOAT_DTYPES:
        raise ValueError(f"{name} has dtype {value.dtype}, expected float32 or float64; convert it with "
                         f".astype('float32') or .astype('float64')")
    return np.dtype(value.dtype)


def check_array(name, value, dtype, shape=None, meaning=""):
    """``value`` is an array of ``dtype`` (and ``shape``, which ``meaning`` spells out, e.g. "[B, H]")."""
    if type(value) is not np.ndarray:   # every call of every step: the common case without a function call
        _require_array(name, value)
    if value.dtype != dtype:
        raise ValueError(f"{name} has dtype {value.dtype}, expected {dtype} (the dtype of x); the kernels do not cast")
    if shape is not None and value.shape != shape and tuple(value.shape) != tuple(shape):
        raise ValueError(f"{name} has shape {tuple(value.shape)}, expected {tuple(shape)} = {meaning}")


def check_lengths(name, lengths, steps, batch, minimum=1):
    """``lengths`` as a host int64 array of ``batch`` integers in ``minimum..steps``."""
    values = lengths.get() if hasattr(lengths, "get") and hasattr(lengths, "shape") else np.asarray(lengths)
    if values.dtype.kind not in "iu" and (values.dtype == bool or not np.issubdtype(values.dtype, np.integer)):
        raise ValueError(f"{name} must hold integers, got dtype {values.dtype}")
    if values.shape != (batch,):
        raise ValueError(f"{name} has shape {values.shape}, expected ({batch},): one per sequence")
    if batch:
        low, high = values.min(), values.max()
        if low < minimum or high > steps:
            raise ValueError(f"{name} must be in {minimum}..{steps} (the number of steps), got values from "
                             f"{low} to {high}")
    return values.astype(np.int64)


# ------------------------------------------------------------------------------------ recurrent kernels

def check_forward(gates, x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths=None, w_hr=None):
    """The arguments of ``lstm_forward`` / ``gru_forward`` / ``rnn_forward`` (``c0`` None but for the LSTM;
    shapes in ``reference.py``'s docstring); returns ``lengths`` as a host int64 array, or None."""
    dtype = float_dtype("x", x)
    if x.ndim != 3:
        raise ValueError(f"x must have 3 dimensions [T, B, I], got shape {tuple(x.shape)}")
    T, B, I = x.shape
    if 0 in x.shape:
        raise ValueError(f"x must have at least one step, one sequence and one feature, got shape {tuple(x.shape)}")
    _require_array("w_hh", w_hh)
    rows = w_hh.shape[0] if w_hh.ndim == 2 else 0
    if rows == 0 or rows % gates:
        raise ValueError(f"w_hh has shape {tuple(w_hh.shape)}, expected [{gates}*H, H]: {gates} gates of H rows each")
    H = rows // gates
    G = f"{gates}*H" if gates > 1 else "H"
    P, state = H, "H"  # the state's width: H, or the projection's P
    if w_hr is not None:
        check_array("w_hr", w_hr, dtype)
        if w_hr.ndim != 2 or w_hr.shape[0] == 0 or w_hr.shape[1] != H:
            raise ValueError(f"w_hr has shape {tuple(w_hr.shape)}, expected [P, H] with P >= 1 (H = {H})")
        P, state = w_hr.shape[0], "P"
    check_array("w_hh", w_hh, dtype, (rows, P), f"[{G}, {state}] (H = {H})")
    check_array("w_ih", w_ih, dtype, (rows, I), f"[{G}, I] (H = {H}, I = {I} from x)")
    check_array("b_ih", b_ih, dtype, (rows,), f"[{G}] (H = {H})")
    check_array("b_hh", b_hh, dtype, (rows,), f"[{G}] (H = {H})")
    check_array("h0", h0, dtype, (B, P), f"[B, {state}] (B = {B} from x, {state} = {P})")
    if gates == 4:
        check_array("c0", c0, dtype, (B, H), f"[B, H] (B = {B} from x, H = {H})")
    return None if lengths is None else check_lengths("lengths", lengths, T, B)


def check_backward(dy, dh_n, dc_n, steps, batch, state_width, cell_width, dtype):
    """The arguments of a backward: ``dy`` [T, B, P], ``dh_n`` [B, P] and (LSTM, ``cell_width`` not None)
    ``dc_n`` [B, H], the last two optional, all of the forward's dtype."""
    check_array("dy", dy, dtype, (steps, batch, state_width), "[T, B, H] like the forward's y")
    if dh_n is not None:
        check_array("dh_n", dh_n, dtype, (batch, state_width), "[B, H] like the forward's h_n")
    if dc_n is not None and cell_width is not None:
        check_array("dc_n", dc_n, dtype, (batch, cell_width), "[B, H] like the forward's c_n")


def require_cache(cache):
    """The forward's cache, which a forward with ``training=False`` does not keep."""
    if cache is None:
        raise ValueError("cache is None: the forward ran with training=False, which keeps nothing for backward")
    return cache


# ------------------------------------------------------------------------------------------------ CTC

def check_ctc(log_probs, targets, input_lengths, target_lengths, blank):
    """The arguments of ``ctc.ctc_loss``; returns ``(targets, input_lengths, target_lengths)`` as host int64
    arrays. ``targets`` is padded [B, S]; the labels within each target length are in 0..C-1 and not blank."""
    float_dtype("log_probs", log_probs)
    if log_probs.ndim != 3 or 0 in log_probs.shape:
        raise ValueError(f"log_probs must have shape [T, B, C] with T, B, C >= 1, got {tuple(log_probs.shape)}")
    T, B, C = log_probs.shape
    if isinstance(blank, bool) or not isinstance(blank, (int, np.integer)) or not 0 <= blank < C:
        raise ValueError(f"blank must be a class index in 0..{C - 1}, got {blank!r}")
    input_lengths = check_lengths("input_lengths", input_lengths, T, B)
    labels = np.asarray(targets)
    if labels.dtype == bool or not np.issubdtype(labels.dtype, np.integer) or labels.ndim != 2 \
            or labels.shape[0] != B:
        raise ValueError(f"targets must be integer labels padded to [B, S] = [{B}, S], got dtype {labels.dtype} "
                         f"and shape {labels.shape}")
    target_lengths = check_lengths("target_lengths", target_lengths, labels.shape[1], B, minimum=0)
    inside = np.arange(labels.shape[1])[None, :] < target_lengths[:, None]
    used = labels[inside]
    if used.size and (used.min() < 0 or used.max() >= C or (used == blank).any()):
        raise ValueError(f"target labels must be in 0..{C - 1} and differ from blank={blank}, got values from "
                         f"{used.min()} to {used.max()}")
    return labels.astype(np.int64), input_lengths, target_lengths


# --------------------------------------------------------------------------------------- displacement

def check_displace(x, kernels, dy_out=None):
    """The arguments of ``displace.displace`` / ``displace_backward``: images [N, H, W] (H, W >= 1), square
    kernels [N, S, S] with S odd, of one dtype, and the output gradient shaped like the images."""
    dtype = float_dtype("x", x)
    _require_array("kernels", kernels)
    if x.ndim != 3 or 0 in x.shape[1:] or kernels.ndim != 3 or kernels.shape[0] != x.shape[0] \
            or kernels.shape[1] != kernels.shape[2] or kernels.shape[1] % 2 == 0:
        raise ValueError(f"displace needs images [N, H, W] (H, W >= 1) and square kernels [N, S, S] with S odd, "
                         f"got {tuple(x.shape)} and {tuple(kernels.shape)}")
    check_array("kernels", kernels, dtype)
    if dy_out is not None:
        check_array("dy_out", dy_out, dtype, x.shape, "[N, H, W] like the images")


def _require_array(name, value):
    if not hasattr(value, "shape") or not hasattr(value, "dtype"):
        raise ValueError(f"{name} must be an array, got {type(value).__name__}")
