"""Multi-layer, optionally bidirectional LSTM, GRU and RNN layers over the functional kernels.

The three classes share one implementation (``_Recurrent``); they differ only in which kernel family they
call, how many gates the weights stack and whether the state carries a cell (LSTM: ``(h, c)``).

Conventions follow PyTorch's ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN``: parameter names, shapes, order and
initialisation; ``y`` is ``[T, B, D*H]`` (``[B, T, D*H]`` with ``batch_first``), the state ``[L*D, B, H]``
with layer-major, direction-minor rows. ``lengths`` plays the role of a packed sequence: each sequence runs
over its own first ``lengths[b]`` steps only, ``y`` is zero beyond them and the final state is taken at the
last valid step; the reverse direction starts at each sequence's own last valid step.

``stateful=True`` carries the state across calls, like Keras' stateful RNNs, for truncated back-propagation
through time over one long stream cut into consecutive chunks (``lstmzoo.batching.tbptt_batches``): a
``forward`` given ``state=None`` starts from the final state of the previous ``forward`` when the batch size is
the same (zeros otherwise, and after ``reset_state()``). The carried state is a copy taken as a constant, so
``backward`` stops at the chunk boundary: its gradient with respect to it is left in ``initial_state_grad``
and goes no further back.
"""

import functools
import math

import numpy as np

from .. import kernels
from .. import random as lz_random
from ..array import to_numpy
from .layers import DeviceModule, check_array, dropout_mask, require_cache


class _Recurrent(DeviceModule):
    kind = None  # kernel family: kernels.<kind>_forward / <kind>_backward
    num_gates = None  # weight rows are num_gates * hidden_size
    num_states = 1  # arrays in the recurrent state: 2 for LSTM (h, c)

    def __init__(
        self,
        input_size,
        hidden_size,
        num_layers=1,
        bidirectional=False,
        batch_first=False,
        dropout=0.0,
        dtype="float32",
        device="cpu",
        rng=None,
        stateful=False,
        proj_size=0,
    ):
        super().__init__(dtype, device)
        for name, value in (
            ("input_size", input_size),
            ("hidden_size", hidden_size),
            ("num_layers", num_layers),
        ):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"dropout must be in [0, 1], got {dropout!r}")
        if proj_size and self.kind != "lstm":
            raise ValueError(f"proj_size is only supported by LSTM, not by {type(self).__name__}")
        if (not isinstance(proj_size, (int, np.integer)) or isinstance(proj_size, bool)
                or not 0 <= proj_size < hidden_size):
            raise ValueError(
                f"proj_size must be an integer from 0 (no projection) to hidden_size - 1 = {hidden_size - 1}, "
                f"got {proj_size!r}"
            )
        if proj_size and device == "cuda":
            raise ValueError("proj_size is not supported on the GPU yet")
        self.input_size, self.hidden_size, self.num_layers = (
            int(input_size),
            int(hidden_size),
            int(num_layers),
        )
        self.bidirectional, self.batch_first, self.dropout = (
            bool(bidirectional),
            bool(batch_first),
            float(dropout),
        )
        self.num_directions = 2 if bidirectional else 1
        self.proj_size = int(proj_size)
        self._h_size = self.proj_size or self.hidden_size  # width of h and of each direction's output
        self._rng = rng  # None: draw from lstmzoo.random.rng() at each use (it may be reseeded)
        self._cache = None
        self.initial_state_grad = None
        self.stateful = bool(stateful)
        self._carried_state = None  # stateful: the previous forward's final state, a tuple like _initial_state's
        self._zero_buffer = None  # (device, flat zeros): the output gradient of a backward given dy=None

        bound = 1.0 / math.sqrt(self.hidden_size)
        generator = self._generator()
        for layer in range(self.num_layers):
            layer_input = self.input_size if layer == 0 else self._h_size * self.num_directions
            for direction in range(self.num_directions):
                shapes = (
                    (self.num_gates * self.hidden_size, layer_input),
                    (self.num_gates * self.hidden_size, self._h_size),
                    (self.num_gates * self.hidden_size,),
                    (self.num_gates * self.hidden_size,),
                    (self.proj_size, self.hidden_size),  # weight_hr: named (and so made) only with proj_size
                )
                for name, shape in zip(self._weight_names(layer, direction), shapes):
                    values = generator.uniform(-bound, bound, size=shape).astype(self.dtype)
                    self.add_parameter(name, self.xp.asarray(values))

    # ------------------------------------------------------------------------------------ helpers
    def _generator(self):
        return self._rng if self._rng is not None else lz_random.rng()

    def _weight_names(self, layer, direction):
        return _weight_names(layer, direction, bool(self.proj_size))

    def _kernel(self, which):
        return getattr(kernels.backend(self.device), f"{self.kind}_{which}")

    def _kernel_options(self):
        """Extra keyword arguments of the forward kernel (RNN: the nonlinearity)."""
        return {}

    def _state_shape(self, batch, index=0):
        """Shape of state array ``index``: 0 for h, 1 for LSTM's c (wider than h with a projection)."""
        return (self.num_layers * self.num_directions, batch, self.hidden_size if index else self._h_size)

    def extra_repr(self):
        return (
            f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
            f"bidirectional={self.bidirectional}, batch_first={self.batch_first}, "
            f"dropout={self.dropout}, dtype={self.dtype}, device={self.device!r}"
            + (", stateful=True" if self.stateful else "")
            + (f", proj_size={self.proj_size}" if self.proj_size else "")
        )

    def reset_state(self):
        """Forget the carried state (``stateful``): the next ``forward`` without a state starts from zeros."""
        self._carried_state = None

    # --------------------------------------------------------------------------------- validation
    def _check_array(self, name, value, shape):
        check_array(name, value, self.dtype, self.xp, shape, finite=True)

    def _check_input(self, x):
        if not hasattr(x, "shape"):
            raise ValueError(f"x must be an array, got {type(x).__name__}")
        layout = "[B, T, input_size]" if self.batch_first else "[T, B, input_size]"
        if x.ndim != 3:
            raise ValueError(f"x must have 3 dimensions {layout}, got shape {tuple(x.shape)}")
        if x.shape[2] != self.input_size:
            raise ValueError(
                f"x has {x.shape[2]} features (shape {tuple(x.shape)}), expected "
                f"input_size={self.input_size} in {layout}"
            )
        if x.shape[0] == 0 or x.shape[1] == 0:
            raise ValueError(f"x must have at least one step and one sequence, got shape {tuple(x.shape)}")
        self._check_array("x", x, x.shape)

    def _check_lengths(self, lengths, steps, batch):
        """Host int64 array of per-sequence lengths in 1..steps, or None: for no ``lengths``, and for lengths that
        are all ``steps`` (every sequence runs every step, which is what the kernels do without lengths)."""
        if lengths is None:
            return None
        values = to_numpy(lengths) if hasattr(lengths, "shape") else np.asarray(lengths)
        if values.dtype.kind not in "iu" and (values.dtype == bool or not np.issubdtype(values.dtype, np.integer)):
            raise ValueError(f"lengths must hold integers, got dtype {values.dtype}")
        if values.shape != (batch,):
            raise ValueError(
                f"lengths has shape {values.shape}, expected ({batch},): one length per sequence"
            )
        low, high = values.min(), values.max()
        if low < 1 or high > steps:
            raise ValueError(
                f"lengths must be in 1..{steps} (the number of steps), got values from "
                f"{low} to {high}"
            )
        return None if low == steps else values.astype(np.int64)

    def _initial_state(self, state, batch):
        """The initial state as a tuple of ``num_states`` arrays [L*D, B, H] (zeros when None)."""
        shapes = tuple(self._state_shape(batch, k) for k in range(self.num_states))
        carried = self._carried_state
        if state is None and carried is not None and carried[0].shape[1] == batch:
            return carried
        if state is None:
            return tuple(self.xp.zeros(shape, dtype=self.dtype) for shape in shapes)
        names = ("h0", "c0")[: self.num_states]
        if self.num_states == 1:
            state = (state,)
        elif not isinstance(state, (tuple, list)) or len(state) != self.num_states:
            raise ValueError(
                f"state must be a tuple (h0, c0) of two arrays {shapes[0]} and {shapes[1]}, got "
                f"{type(state).__name__}"
            )
        for name, value, shape in zip(names, state, shapes):
            if hasattr(value, "shape") and value.ndim == 3 and value.shape[1] != batch:
                raise ValueError(
                    f"batch mismatch: {name} has batch size {value.shape[1]} (shape "
                    f"{tuple(value.shape)}) but x has {batch} sequences"
                )
            self._check_array(f"state {name}", value, shape)
        return tuple(state)

    # -------------------------------------------------------------------------------- computation
    def _reverse_index(self, steps, lengths):
        """[T, B] time index that reverses each sequence within its length and leaves padding in place.

        It is its own inverse, so the same gather turns the reverse direction's results back.
        """
        t = np.arange(steps)[:, None]
        valid = np.full(1, steps) if lengths is None else lengths
        return self.xp.asarray(np.where(t < valid[None, :], valid[None, :] - 1 - t, t))

    def _gather_time(self, values, index):
        return values[index, self.xp.arange(values.shape[1])[None, :]]

    def _zeros(self, shape):
        """A C-contiguous zero array of ``shape`` for a kernel to read (the kernels never write their ``dy``): a view
        of one buffer the layer keeps, grown when a larger one is needed."""
        size = math.prod(shape)
        kept = self._zero_buffer
        if kept is None or kept[0] != self.device or kept[1].dtype != self.dtype or kept[1].size < size:
            kept = self._zero_buffer = (self.device, self.xp.zeros(size, dtype=self.dtype))
        return kept[1][:size].reshape(shape)

    def _reversed(self, values, index):
        """``values`` [T, B, ...] with each sequence's steps reversed (its own inverse), as a new C-contiguous array:
        the gather by ``_reverse_index``'s ``index``, or, for ``index`` None (every sequence runs all T steps),
        the steps read backwards, the same values without an index."""
        if index is None:
            return self.xp.ascontiguousarray(values[::-1])
        return self._gather_time(values, index)

    def _forward(self, x, state, lengths):
        xp = self.xp
        self._check_input(x)
        if self.batch_first:
            x = xp.ascontiguousarray(x.transpose(1, 0, 2))
        steps, batch = x.shape[:2]
        # None when every sequence runs all the steps: the kernels get no lengths and the reverse direction reads
        # the steps backwards, without a gather (the same values either way).
        lengths = self._check_lengths(lengths, steps, batch)
        state = self._initial_state(state, batch)
        training = self.training
        forward = self._kernel("forward")
        directions, width = self.num_directions, self._h_size
        reverse_index = None if lengths is None or not self.bidirectional else self._reverse_index(steps, lengths)
        final = tuple(
            xp.empty(self._state_shape(batch, k), dtype=self.dtype) for k in range(self.num_states)
        )
        options = self._kernel_options()
        caches, masks = [], []
        layer_input = x
        for layer in range(self.num_layers):
            # Each direction's output goes into its columns of the layer's output.
            layer_output = None if directions == 1 else xp.empty((steps, batch, directions * width), self.dtype)
            for direction in range(directions):
                row = layer * directions + direction
                sequence = self._reversed(layer_input, reverse_index) if direction else layer_input
                weights = [self._params[name] for name in self._weight_names(layer, direction)]
                projection = {"w_hr": weights.pop()} if self.proj_size else {}  # a keyword of the kernel
                output, *state_n, cache = forward(
                    sequence,
                    *(s[row] for s in state),
                    *weights,
                    lengths=lengths,
                    training=training,
                    **projection,
                    **options,
                )
                if directions == 1:
                    layer_output = output
                elif not direction:
                    layer_output[:, :, :width] = output
                else:   # the reverse direction's results back in time order
                    columns = layer_output[:, :, direction * width:(direction + 1) * width]
                    columns[...] = output[::-1] if reverse_index is None else self._gather_time(output, reverse_index)
                for buffer, value in zip(final, state_n):
                    buffer[row] = value
                caches.append(cache)
            mask = None
            if training and self.dropout > 0 and layer < self.num_layers - 1:  # PyTorch: not after the last
                mask = dropout_mask(self._generator(), layer_output.shape, self.dropout, self.dtype, xp)
                layer_output = layer_output * mask
            masks.append(mask)
            layer_input = layer_output
        self._cache = (caches, masks, reverse_index, layer_input.shape) if training else None
        if self.stateful:
            self._carried_state = tuple(buffer.copy() for buffer in final)  # the caller may write into `final`
        y = xp.ascontiguousarray(layer_input.transpose(1, 0, 2)) if self.batch_first else layer_input
        return y, final

    # GRU and RNN carry one state array; LSTM overrides these two with (h, c).
    def forward(self, x, state=None, lengths=None):
        y, (h_n,) = self._forward(x, state, lengths)
        return y, h_n

    def backward(self, dy, dh_n=None):
        return self._backward(dy, (dh_n,))

    def _backward(self, dy, final_grads):
        """``final_grads``: one gradient (or None) per state array, each [L*D, B, H]. ``dy`` None: the outputs get
        no gradient (a model that reads only the final state), which is a zero ``dy`` without building one."""
        caches, masks, reverse_index, y_shape = require_cache(self)
        xp = self.xp
        steps, batch, _ = y_shape
        if dy is not None:
            self._check_array("dy", dy, (batch, steps, y_shape[2]) if self.batch_first else y_shape)
            if self.batch_first:
                dy = xp.ascontiguousarray(dy.transpose(1, 0, 2))
        for k, (name, grad) in enumerate(zip(("dh_n", "dc_n"), final_grads)):
            if grad is not None:
                self._check_array(name, grad, self._state_shape(batch, k))
        backward = self._kernel("backward")
        initial = tuple(
            xp.empty(self._state_shape(batch, k), dtype=self.dtype) for k in range(self.num_states)
        )
        hidden = self._h_size
        grads = self._grads
        grad_output = dy    # None: zero (0 * a dropout mask is zero too); the kernels read one shared zero array
        for layer in reversed(range(self.num_layers)):
            if masks[layer] is not None and grad_output is not None:
                grad_output = grad_output * masks[layer]
            grad_input = None
            for direction in range(self.num_directions):
                row = layer * self.num_directions + direction
                if grad_output is None:
                    grad_y = self._zeros((steps, batch, hidden))
                else:
                    grad_y = grad_output[:, :, direction * hidden : (direction + 1) * hidden]
                    grad_y = self._reversed(grad_y, reverse_index) if direction else xp.ascontiguousarray(grad_y)
                dx, *rest = backward(
                    grad_y, *(None if g is None else g[row] for g in final_grads), caches[row]
                )
                for buffer, value in zip(initial, rest[: self.num_states]):
                    buffer[row] = value
                for name, value in zip(self._weight_names(layer, direction), rest[self.num_states :]):
                    grads[name] += value
                if grad_input is None:
                    grad_input = dx
                else:   # the reverse direction's gradient back in time order
                    grad_input = grad_input + (dx[::-1] if reverse_index is None
                                               else self._gather_time(dx, reverse_index))
            grad_output = grad_input
        self._cache = None  # like PyTorch without retain_graph: one backward per forward
        self.initial_state_grad = initial if self.num_states > 1 else initial[0]
        return xp.ascontiguousarray(grad_output.transpose(1, 0, 2)) if self.batch_first else grad_output


@functools.cache
def _weight_names(layer, direction, projected):
    """The parameter names of one layer and direction, PyTorch's: ``weight_ih_l0``, ..., ``bias_hh_l1_reverse``
    (and ``weight_hr_...`` with a projection)."""
    suffix = f"l{layer}" + ("_reverse" if direction else "")
    names = (f"weight_ih_{suffix}", f"weight_hh_{suffix}", f"bias_ih_{suffix}", f"bias_hh_{suffix}")
    return names + (f"weight_hr_{suffix}",) if projected else names


class LSTM(_Recurrent):
    """Long short-term memory, PyTorch's ``nn.LSTM`` contract (gate order i, f, g, o).

    ``forward(x, state=None, lengths=None) -> (y, (h_n, c_n))``; ``state`` is ``(h0, c0)``. With the keyword
    ``stateful=True`` a call without ``state`` continues from the previous call's final state (see the module
    docstring; ``reset_state()`` starts over from zeros).
    ``backward(dy, dh_n=None, dc_n=None) -> dx``; gradients accumulate into ``grads()`` and the gradient
    with respect to the initial state is left in ``initial_state_grad`` as ``(dh0, dc0)``. ``dy`` None (for GRU and
    RNN too) says the outputs ``y`` get no gradient, as a zero ``dy`` would, without one being built or checked.

    ``proj_size=P`` (0 < P < hidden_size; CPU only) is PyTorch's LSTM with projections: ``h = (o * tanh(c))
    W_hr^T`` with one more parameter ``weight_hr_l{k}[_reverse]`` [P, H] per layer and direction, so ``y`` is
    ``[T, B, D*P]``, h0 and h_n ``[L*D, B, P]`` while c0 and c_n stay ``[L*D, B, H]``.
    """

    kind, num_gates, num_states = "lstm", 4, 2

    def forward(self, x, state=None, lengths=None):
        y, (h_n, c_n) = self._forward(x, state, lengths)
        return y, (h_n, c_n)

    def backward(self, dy, dh_n=None, dc_n=None):
        return self._backward(dy, (dh_n, dc_n))


class GRU(_Recurrent):
    """Gated recurrent unit, PyTorch's ``nn.GRU`` contract (gate order r, z, n).

    ``forward(x, state=None, lengths=None) -> (y, h_n)``; ``backward(dy, dh_n=None) -> dx``;
    ``initial_state_grad`` holds dh0. ``stateful=True`` carries the state across calls, as for LSTM.
    """

    kind, num_gates = "gru", 3


class RNN(_Recurrent):
    """Elman RNN, PyTorch's ``nn.RNN`` contract; ``nonlinearity`` (keyword) is "tanh" or "relu".

    Same forward/backward (and ``stateful``) as GRU.
    """

    kind, num_gates = "rnn", 1

    def __init__(self, *args, nonlinearity="tanh", **kwargs):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(*args, **kwargs)
        self.nonlinearity = nonlinearity

    def _kernel_options(self):
        return {"nonlinearity": self.nonlinearity}

    def extra_repr(self):
        return super().extra_repr() + f", nonlinearity={self.nonlinearity!r}"
