"""The Moving-MNIST recipes' models. This module imports the layers: recipes import it inside their methods only.

Both read videos time-major, ``[T, B, F]`` with each frame flattened to ``F`` pixel values in [0, 1].
"""

from lstmzoo.array import array_module
from lstmzoo.nn import LSTM, Linear, Module, ReLU, Sequential
from lstmzoo.nn.layers import require_cache


def frame_encoder(input_size, size, dtype, device):
    """A per-frame linear layer with ReLU, applied at every time step before the recurrence."""
    return Sequential(Linear(input_size, size, dtype=dtype, device=device), ReLU())


class MaxOverPositions(Module):
    """``[..., P, C] -> [..., C]``: each channel's largest value over the ``P`` positions (the gradient flows to
    that position only)."""

    def __init__(self):
        super().__init__()
        self._cache = None

    def forward(self, x):
        xp = array_module(x)
        where = x.argmax(axis=-2)[..., None, :]
        self._cache = (where, x.shape) if self.training else None
        return xp.take_along_axis(x, where, axis=-2)[..., 0, :]

    def backward(self, dout):
        where, shape = require_cache(self)
        self._cache = None
        xp = array_module(dout)
        dx = xp.zeros(shape, dtype=dout.dtype)
        xp.put_along_axis(dx, where, dout[..., None, :], axis=-2)
        return dx


class VideoClassifier(Module):
    """Sees each frame as ``P`` patches ``[T, B, P, D]``: one Linear + ReLU shared by all patches (a strided
    convolution, so a digit is recognised wherever it is), the largest response of each channel over the
    patches, an LSTM over the frames, and a Linear layer from its last hidden state to ``num_outputs`` scores."""

    def __init__(self, patch_size, channels, hidden_size, num_outputs, dtype="float32", device="cpu"):
        super().__init__()
        self.encoder = Sequential(Linear(patch_size, channels, dtype=dtype, device=device), ReLU(),
                                  MaxOverPositions())
        self.lstm = LSTM(channels, hidden_size, dtype=dtype, device=device)
        self.head = Linear(hidden_size, num_outputs, dtype=dtype, device=device)
        self._shape = None

    def forward(self, x):
        y, (h_n, _) = self.lstm(self.encoder(x))
        self._shape = y.shape
        return self.head(h_n[-1])

    def backward(self, dout):
        xp = array_module(dout)
        dh_n = self.head.backward(dout)[None]
        # Only the final state feeds the head, so the per-step outputs get no gradient.
        return self.encoder.backward(self.lstm.backward(xp.zeros(self._shape, dtype=dout.dtype), dh_n=dh_n))


class FuturePredictor(Module):
    """Srivastava et al.'s / Shi et al.'s FC-LSTM encoder-predictor.

    The encoder LSTM reads the ``frame_encoder`` features of the input frames; the predictor LSTM starts from
    the encoder's final state and reads the encoder's final hidden state at each of ``future`` steps (a copy of
    what it has seen, so the predictor needs no generated frames as input); a Linear layer turns each of its
    outputs into one frame's pixel logits.
    """

    def __init__(self, frame_size, embed_size, hidden_size, future, dtype="float32", device="cpu"):
        super().__init__()
        self.future = int(future)
        self.encoder = frame_encoder(frame_size, embed_size, dtype, device)
        self.reader = LSTM(embed_size, hidden_size, dtype=dtype, device=device)
        self.predictor = LSTM(hidden_size, hidden_size, dtype=dtype, device=device)
        self.decoder = Linear(hidden_size, frame_size, dtype=dtype, device=device)
        self._shape = None

    def forward(self, x):
        y, (h_n, c_n) = self.reader(self.encoder(x))
        xp = array_module(x)
        predicted, _ = self.predictor(xp.broadcast_to(h_n, (self.future,) + h_n.shape[1:]).copy(),
                                      state=(h_n, c_n))
        self._shape = y.shape
        return self.decoder(predicted)

    def backward(self, dout):
        xp = array_module(dout)
        d_input = self.predictor.backward(self.decoder.backward(dout))
        dh0, dc0 = self.predictor.initial_state_grad
        dh_n = dh0 + d_input.sum(axis=0, keepdims=True)
        d_features = self.reader.backward(xp.zeros(self._shape, dtype=dout.dtype), dh_n=dh_n, dc_n=dc0)
        return self.encoder.backward(d_features)
