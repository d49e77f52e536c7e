"""Plain NumPy forward and backward through time for LSTM, GRU and the tanh/ReLU RNN: the spec.

Every fast kernel (``cpu.py``, ``cuda.py``) has the same signatures and must match these functions
(float64 to 1e-10, float32 to 1e-5 relative). The code favours being obviously right over being fast.

One layer, one direction, time-major. PyTorch's formulation and gate order:

    LSTM  gates = x W_ih^T + b_ih + h W_hh^T + b_hh, split i, f, g, o
          c' = sigmoid(f) * c + sigmoid(i) * tanh(g);   h' = sigmoid(o) * tanh(c')
    GRU   r = sigmoid(x W_ir^T + b_ir + h W_hr^T + b_hr);  z likewise
          n = tanh(x W_in^T + b_in + r * (h W_hn^T + b_hn));  h' = (1 - z) * n + z * h
    RNN   h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh),  act = tanh or relu

Shapes (G = 4 for LSTM, 3 for GRU, 1 for RNN):

    x        [T, B, I]      input sequence
    h0, c0   [B, H]         initial state (c0 for LSTM only)
    w_ih     [G*H, I]       input weights, gates stacked in PyTorch's order
    w_hh     [G*H, H]       recurrent weights
    b_ih     [G*H]
    b_hh     [G*H]
    lengths  [B] ints in 1..T, or None for "all T": at steps t >= lengths[b] the state of
             sequence b stays as it was and its output is zero (PyTorch's packed-sequence rule)

LSTM with projections (PyTorch's ``proj_size = P``, 0 < P < H), when ``w_hr`` is given:

    h' = (sigmoid(o) * tanh(c')) W_hr^T, so the state h and the output are P wide, c stays H wide:
    w_hr     [P, H]         projection weights (no bias)
    h0       [B, P];  c0 [B, H];  w_hh [4*H, P];  y [T, B, P];  h_n [B, P];  c_n [B, H]

Calling convention shared by every backend (the state is one array for GRU/RNN, two for LSTM):

    lstm_forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths=None, training=True, w_hr=None)
        -> y [T, B, H], h_n [B, H], c_n [B, H], cache       (cache is None when training=False)
    lstm_backward(dy, dh_n, dc_n, cache)
        -> dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh         (then dw_hr when the forward had w_hr)
    gru_forward(x, h0, w_ih, w_hh, b_ih, b_hh, lengths=None, training=True) -> y, h_n, cache
    gru_backward(dy, dh_n, cache) -> dx, dh0, dw_ih, dw_hh, db_ih, db_hh
    rnn_forward(x, h0, w_ih, w_hh, b_ih, b_hh, lengths=None, training=True, nonlinearity="tanh")
        -> y, h_n, cache
    rnn_backward(dy, dh_n, cache) -> dx, dh0, dw_ih, dw_hh, db_ih, db_hh

``dh_n`` / ``dc_n`` may be None (no gradient flows into the final state). The cache is opaque: only the
backward of the same module reads it.

Every function checks its arguments first (``arguments.py``): a ValueError names a wrong shape, dtype or length.
"""

import numpy as np

from .arguments import check_backward, check_forward, require_cache


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def step_mask(T, B, lengths, dtype):
    """[T, B, 1] array: 1 where step t of sequence b is inside its length, else 0."""
    if lengths is None:
        return np.ones((T, B, 1), dtype=dtype)
    steps = np.arange(T)[:, None]
    return (steps < np.asarray(lengths)[None, :]).astype(dtype)[:, :, None]


def _zeros_if_none(grad, like):
    return np.zeros_like(like) if grad is None else grad


# ---------------------------------------------------------------------------------------------- LSTM

def lstm_forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths=None, training=True, w_hr=None):
    lengths = check_forward(4, x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, w_hr)
    T, B, _ = x.shape
    mask = step_mask(T, B, lengths, x.dtype)
    h, c = h0, c0
    y = np.zeros((T, B, h0.shape[1]), dtype=x.dtype)
    steps = []
    for t in range(T):
        a = x[t] @ w_ih.T + b_ih + h @ w_hh.T + b_hh
        a_i, a_f, a_g, a_o = np.split(a, 4, axis=1)
        i, f, g, o = sigmoid(a_i), sigmoid(a_f), np.tanh(a_g), sigmoid(a_o)
        c_new = f * c + i * g
        r = o * np.tanh(c_new)
        h_new = r if w_hr is None else r @ w_hr.T
        steps.append((h, c, i, f, g, o, c_new, r))
        m = mask[t]
        y[t] = m * h_new
        h = m * h_new + (1 - m) * h
        c = m * c_new + (1 - m) * c
    cache = (x, mask, w_ih, w_hh, w_hr, steps) if training else None
    return y, h, c, cache


def lstm_backward(dy, dh_n, dc_n, cache):
    x, mask, w_ih, w_hh, w_hr, steps = require_cache(cache)
    h0, c0 = steps[0][:2]
    check_backward(dy, dh_n, dc_n, *x.shape[:2], h0.shape[1], c0.shape[1], x.dtype)
    dh = _zeros_if_none(dh_n, steps[0][0])
    dc = _zeros_if_none(dc_n, steps[0][1])
    dx = np.zeros_like(x)
    dw_ih, dw_hh = np.zeros_like(w_ih), np.zeros_like(w_hh)
    dw_hr = None if w_hr is None else np.zeros_like(w_hr)
    db = np.zeros(w_ih.shape[0], dtype=x.dtype)
    for t in reversed(range(x.shape[0])):
        h_prev, c_prev, i, f, g, o, c_new, r = steps[t]
        m = mask[t]
        dh_new = m * (dy[t] + dh)  # gradient reaching this step's outputs (zero past the length)
        if w_hr is not None:
            dw_hr += dh_new.T @ r
            dh_new = dh_new @ w_hr  # now with respect to r = o * tanh(c')
        dc_new = m * dc
        tanh_c = np.tanh(c_new)
        dc_new = dc_new + dh_new * o * (1 - tanh_c**2)
        da = np.concatenate([
            dc_new * g * i * (1 - i),
            dc_new * c_prev * f * (1 - f),
            dc_new * i * (1 - g**2),
            dh_new * tanh_c * o * (1 - o),
        ], axis=1)
        dx[t] = da @ w_ih
        dw_ih += da.T @ x[t]
        dw_hh += da.T @ h_prev
        db += da.sum(axis=0)
        dh = da @ w_hh + (1 - m) * dh
        dc = dc_new * f + (1 - m) * dc
    grads = (dx, dh, dc, dw_ih, dw_hh, db, db.copy())
    return grads if w_hr is None else grads + (dw_hr,)


# ----------------------------------------------------------------------------------------------- GRU

def gru_forward(x, h0, w_ih, w_hh, b_ih, b_hh, lengths=None, training=True):
    lengths = check_forward(3, x, h0, None, w_ih, w_hh, b_ih, b_hh, lengths)
    T, B, _ = x.shape
    mask = step_mask(T, B, lengths, x.dtype)
    h = h0
    y = np.zeros((T, B, h0.shape[1]), dtype=x.dtype)
    steps = []
    for t in range(T):
        gi_r, gi_z, gi_n = np.split(x[t] @ w_ih.T + b_ih, 3, axis=1)
        gh_r, gh_z, gh_n = np.split(h @ w_hh.T + b_hh, 3, axis=1)
        r, z = sigmoid(gi_r + gh_r), sigmoid(gi_z + gh_z)
        n = np.tanh(gi_n + r * gh_n)
        h_new = (1 - z) * n + z * h
        steps.append((h, r, z, n, gh_n))
        m = mask[t]
        y[t] = m * h_new
        h = m * h_new + (1 - m) * h
    cache = (x, mask, w_ih, w_hh, steps) if training else None
    return y, h, cache


def gru_backward(dy, dh_n, cache):
    x, mask, w_ih, w_hh, steps = require_cache(cache)
    check_backward(dy, dh_n, None, *x.shape[:2], steps[0][0].shape[1], None, x.dtype)
    dh = _zeros_if_none(dh_n, steps[0][0])
    dx = np.zeros_like(x)
    dw_ih, dw_hh = np.zeros_like(w_ih), np.zeros_like(w_hh)
    db_ih = np.zeros(w_ih.shape[0], dtype=x.dtype)
    db_hh = np.zeros_like(db_ih)
    for t in reversed(range(x.shape[0])):
        h_prev, r, z, n, gh_n = steps[t]
        m = mask[t]
        dh_new = m * (dy[t] + dh)
        da_n = dh_new * (1 - z) * (1 - n**2)
        da_z = dh_new * (h_prev - n) * z * (1 - z)
        da_r = da_n * gh_n * r * (1 - r)
        dgi = np.concatenate([da_r, da_z, da_n], axis=1)
        dgh = np.concatenate([da_r, da_z, da_n * r], axis=1)
        dx[t] = dgi @ w_ih
        dw_ih += dgi.T @ x[t]
        dw_hh += dgh.T @ h_prev
        db_ih += dgi.sum(axis=0)
        db_hh += dgh.sum(axis=0)
        dh = dgh @ w_hh + dh_new * z + (1 - m) * dh
    return dx, dh, dw_ih, dw_hh, db_ih, db_hh


# ----------------------------------------------------------------------------------------------- RNN

def rnn_forward(x, h0, w_ih, w_hh, b_ih, b_hh, lengths=None, training=True, nonlinearity="tanh"):
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    lengths = check_forward(1, x, h0, None, w_ih, w_hh, b_ih, b_hh, lengths)
    T, B, _ = x.shape
    mask = step_mask(T, B, lengths, x.dtype)
    h = h0
    y = np.zeros((T, B, h0.shape[1]), dtype=x.dtype)
    steps = []
    for t in range(T):
        a = x[t] @ w_ih.T + b_ih + h @ w_hh.T + b_hh
        h_new = np.tanh(a) if nonlinearity == "tanh" else np.maximum(a, 0)
        steps.append((h, h_new))
        m = mask[t]
        y[t] = m * h_new
        h = m * h_new + (1 - m) * h
    cache = (x, mask, w_ih, w_hh, steps, nonlinearity) if training else None
    return y, h, cache


def rnn_backward(dy, dh_n, cache):
    x, mask, w_ih, w_hh, steps, nonlinearity = require_cache(cache)
    check_backward(dy, dh_n, None, *x.shape[:2], steps[0][0].shape[1], None, x.dtype)
    dh = _zeros_if_none(dh_n, steps[0][0])
    dx = np.zeros_like(x)
    dw_ih, dw_hh = np.zeros_like(w_ih), np.zeros_like(w_hh)
    db = np.zeros(w_ih.shape[0], dtype=x.dtype)
    for t in reversed(range(x.shape[0])):
        h_prev, h_new = steps[t]
        m = mask[t]
        dh_new = m * (dy[t] + dh)
        da = dh_new * (1 - h_new**2) if nonlinearity == "tanh" else dh_new * (h_new > 0)
        dx[t] = da @ w_ih
        dw_ih += da.T @ x[t]
        dw_hh += da.T @ h_prev
        db += da.sum(axis=0)
        dh = da @ w_hh + (1 - m) * dh
    return dx, dh, dw_ih, dw_hh, db, db.copy()


def dense_forward(x, weight, bias=None):
    """A dense layer, ``x [N, I] @ weight[O, I]^T + bias [O]`` (bias may be None): the spec of ``cpu``'s
    ``dense_forward``, which ``lstmzoo.nn.Linear`` calls on the CPU (on CUDA it is CuPy's ``@``)."""
    y = np.einsum("ni,oi->no", x, weight)
    return y if bias is None else y + bias


def dense_backward(dout, x, weight, bias=True):
    """``(dx, dweight, dbias)`` of ``dense_forward(x, weight, bias)`` for the gradient ``dout [N, O]`` of its
    output; ``dbias`` is None without ``bias``, ``dx`` where ``weight`` is None."""
    dx = None if weight is None else np.einsum("no,oi->ni", dout, weight)
    dweight = np.einsum("no,ni->oi", dout, x)
    return dx, dweight, dout.sum(axis=0) if bias else None
