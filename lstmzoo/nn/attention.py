"""Luong (global) attention with explicit backward (Luong, Pham & Manning 2015, "Effective Approaches to
Attention-based Neural Machine Translation", section 3.1).

For each query ``h_t`` (a decoder state) and the keys ``h_s`` (encoder outputs, which are also the values):
``score(h_t, h_s) = h_t . h_s`` ("dot") or ``h_t^T W h_s`` ("general", ``W`` ``[query_size, key_size]``);
with ``scaled=True`` the score is divided by ``sqrt(key_size)`` (Vaswani et al. 2017's scaled dot product);
``a_t = softmax_s(score)`` over each source's own first ``key_lengths[b]`` positions (the rest get weight 0);
``context_t = sum_s a_t[s] h_s``.

Shapes are batch-first: ``query [B, Tq, Hq]``, ``keys [B, Tk, Hk]`` -> ``context [B, Tq, Hk]``,
``weights [B, Tq, Tk]``. "general" is computed as ``(h_t W) . h_s``: projecting the queries rather than the
keys costs ``Tq`` rather than ``Tk`` matrix-vector products, which is what step-by-step decoding (``Tq = 1``)
wants.
"""

import math

import numpy as np

from .. import random as lz_random
from ..array import to_numpy
from .layers import DeviceModule, check_array, require_cache, softmax, softmax_backward

SCORES = ("general", "dot")


def _times(x, weight, xp):
    """``x [..., n] @ weight.T`` (``weight`` [m, n]) as one 2-D GEMM, through ``kernels.cpu.dense_forward`` on the
    CPU (on the kernels' threads where large: NumPy's OpenBLAS would leave its workers spinning beside the LSTMs)."""
    flat = x.reshape(-1, x.shape[-1])
    if xp is np:
        from ..kernels.cpu import dense_forward
        y = dense_forward(flat, weight)
    else:
        y = flat @ weight.T
    return y.reshape(x.shape[:-1] + (weight.shape[0],))


def masked_softmax(scores, key_lengths, xp):
    """Softmax over the last axis of ``scores [B, Tq, Tk]``, restricted to the first ``key_lengths[b]`` keys
    (None: all); positions past a length get exactly 0."""
    if key_lengths is not None:
        valid = xp.asarray(np.arange(scores.shape[2])[None, :] < key_lengths[:, None])      # [B, Tk]
        scores = xp.where(valid[:, None, :], scores, -xp.inf)
    return softmax(scores, axis=2)


class LuongAttention(DeviceModule):
    """Luong global attention; ``forward(query, keys, key_lengths=None) -> (context, weights)``,
    ``backward(dcontext) -> (dquery, dkeys)`` (accumulating ``W``'s gradient for "general").

    ``hidden_size`` is the query size; ``key_size`` (default ``hidden_size``) the keys' size, which must equal
    it for "dot". Initialisation of ``weight`` follows ``Linear`` (uniform in +-1/sqrt(key_size)). ``scaled``
    divides the scores by sqrt(key_size): under Adam, whose steps do not grow with the scores' scale, the softmax
    then sharpens more slowly, which keeps it from locking onto wrong source positions early in training.
    """

    def __init__(self, hidden_size, score="general", key_size=None, scaled=False, dtype="float32", device="cpu",
                 rng=None):
        super().__init__(dtype, device)
        if score not in SCORES:
            raise ValueError(f"score must be one of {', '.join(SCORES)}, got {score!r}")
        self.hidden_size = int(hidden_size)
        self.key_size = self.hidden_size if key_size is None else int(key_size)
        if score == "dot" and self.key_size != self.hidden_size:
            raise ValueError(f"score='dot' needs key_size == hidden_size, got {self.key_size} and {self.hidden_size}")
        self.score = score
        self.scaled = bool(scaled)
        self._scale = 1.0 / math.sqrt(self.key_size) if self.scaled else None
        if score == "general":
            generator = rng if rng is not None else lz_random.rng()
            bound = 1.0 / math.sqrt(self.key_size)
            weight = generator.uniform(-bound, bound, (self.hidden_size, self.key_size)).astype(self.dtype)
            self.add_parameter("weight", self.xp.asarray(weight))
        self._cache = None

    def _check_lengths(self, key_lengths, batch, steps):
        if key_lengths is None:
            return None
        values = to_numpy(key_lengths) if hasattr(key_lengths, "shape") else np.asarray(key_lengths)
        if values.dtype == bool or not np.issubdtype(values.dtype, np.integer) or values.shape != (batch,):
            raise ValueError(f"key_lengths must be {batch} integers (one per source), got {values!r}")
        if values.min() < 1 or values.max() > steps:
            raise ValueError(f"key_lengths must be in 1..{steps}, got values from {values.min()} to {values.max()}")
        return values

    def forward(self, query, keys, key_lengths=None):
        xp = self.xp
        check_array("query", query, self.dtype, xp)
        check_array("keys", keys, self.dtype, xp)
        if query.ndim != 3 or query.shape[2] != self.hidden_size:
            raise ValueError(f"query has shape {tuple(query.shape)}, expected [B, Tq, {self.hidden_size}]")
        if keys.ndim != 3 or keys.shape[0] != query.shape[0] or keys.shape[2] != self.key_size:
            raise ValueError(f"keys has shape {tuple(keys.shape)}, expected [{query.shape[0]}, Tk, {self.key_size}]")
        key_lengths = self._check_lengths(key_lengths, keys.shape[0], keys.shape[1])
        projected = _times(query, self._params["weight"].T, xp) if self.score == "general" else query  # [B, Tq, Hk]
        scores = projected @ keys.transpose(0, 2, 1)
        if self._scale is not None:
            scores *= self.dtype.type(self._scale)
        weights = masked_softmax(scores, key_lengths, xp)
        context = weights @ keys
        self._cache = (query, projected, keys, weights) if self.training else None
        return context, weights

    def backward(self, dcontext):
        query, projected, keys, weights = require_cache(self)
        check_array("dcontext", dcontext, self.dtype, self.xp, query.shape[:2] + (self.key_size,))
        dweights = dcontext @ keys.transpose(0, 2, 1)
        dkeys = weights.transpose(0, 2, 1) @ dcontext
        # Softmax backward; masked positions have weight 0, so their score gradient is 0 too.
        dscores = softmax_backward(weights, dweights, axis=2)
        if self._scale is not None:
            dscores *= self.dtype.type(self._scale)
        dprojected = dscores @ keys
        dkeys += dscores.transpose(0, 2, 1) @ projected
        if self.score == "general":
            flat_query, flat_dprojected = query.reshape(-1, self.hidden_size), dprojected.reshape(-1, self.key_size)
            if self.xp is np:  # the kernels' GEMM, as Linear's (kernels.cpu.dense_forward says why)
                from ..kernels.cpu import dense_backward
                self._grads["weight"] += dense_backward(flat_query, flat_dprojected, None, False)[1]
            else:
                self._grads["weight"] += flat_query.T @ flat_dprojected
            dquery = _times(dprojected, self._params["weight"], self.xp)
        else:
            dquery = dprojected
        self._cache = None
        return dquery, dkeys

    def extra_repr(self):
        return f"{self.hidden_size}, score={self.score!r}, key_size={self.key_size}" + (", scaled=True" * self.scaled)
