"""The Moving-MNIST recipes' models. This module imports the layers: recipes import it inside their methods only.

All read videos time-major with pixel values in [0, 1]: the predictors ``[T, B, F]`` with each frame flattened
to ``F`` pixels, the classifier ``[T, B, H, W, C]`` (channels last).
"""

from lstmzoo.array import array_module
from lstmzoo.nn import LSTM, Linear, Module, ReLU, Sequential, Unfold
from lstmzoo.nn.displace import displace, displace_backward
from lstmzoo.nn.layers import require_cache, softmax, softmax_backward


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
    """Reads frames ``[T, B, H, W, C]`` (channels last): a small convolutional network shared by all frames,
    so a digit is recognised wherever it is (per layer ``Unfold`` + ``Linear`` + ReLU, ``layers`` giving each
    one's ``(kernel, stride, channels)``), the largest response of each of its last layer's channels over the
    positions, an LSTM over the frames, and a Linear layer from its last hidden state to ``num_outputs`` scores.

    The convolutions start from He et al.'s initialisation (uniform within ``sqrt(6 / fan_in)``, zero bias):
    from PyTorch's default, a third of that, four layers of them pass the LSTM almost nothing and training
    stalls for the first epochs."""

    def __init__(self, layers, hidden_size, num_outputs, in_channels=1, dtype="float32", device="cpu"):
        super().__init__()
        if not layers:
            raise ValueError("VideoClassifier needs at least one convolution in layers")
        convolutions, channels = [], in_channels
        for kernel, stride, out in layers:
            linear = Linear(kernel * kernel * channels, out, dtype=dtype, device=device)
            linear.parameters()["weight"][...] *= linear.dtype.type(6 ** 0.5)
            linear.parameters()["bias"][...] = 0
            convolutions += [Unfold(kernel, stride), linear, ReLU()]
            channels = out
        self.encoder = Sequential(*convolutions)
        self.pool = MaxOverPositions()
        self.lstm = LSTM(channels, hidden_size, dtype=dtype, device=device)
        self.head = Linear(hidden_size, num_outputs, dtype=dtype, device=device)
        self._shapes = None

    def forward(self, x):
        maps = self.encoder(x)
        y, (h_n, _) = self.lstm(self.pool(maps.reshape(maps.shape[:-3] + (-1, maps.shape[-1]))))
        self._shapes = maps.shape, y.shape
        return self.head(h_n[-1])

    def backward(self, dout):
        maps_shape, y_shape = self._shapes
        xp = array_module(dout)
        dh_n = self.head.backward(dout)[None]
        # Only the final state feeds the head, so the per-step outputs get no gradient.
        d_features = self.lstm.backward(xp.zeros(y_shape, dtype=dout.dtype), dh_n=dh_n)
        return self.encoder.backward(self.pool.backward(d_features).reshape(maps_shape))


class _EncoderPredictor(Module):
    """Srivastava et al.'s encoder-predictor LSTMs, which both frame predictors share: the reader LSTM reads the
    ``frame_encoder`` features of the input frames; the predictor LSTM starts from the reader's final state and
    reads the reader's final hidden state at each of ``future`` steps (a copy of what it has seen, so it needs
    no generated frames as input). A subclass turns the predictor's outputs into frames."""

    def __init__(self, frame_size, embed_size, hidden_size, future, dtype, device):
        super().__init__()
        self.future = int(future)
        self.encoder = frame_encoder(frame_size, embed_size, dtype, device)
        self.reader = LSTM(embed_size, hidden_size, dtype=dtype, device=device)
        self.predictor = LSTM(hidden_size, hidden_size, dtype=dtype, device=device)
        self._shape = None

    def _lstms(self, x):
        """The predictor's outputs ``[future, B, H]`` and the reader's final hidden state ``[1, B, H]``."""
        y, (h_n, c_n) = self.reader(self.encoder(x))
        xp = array_module(x)
        predicted, _ = self.predictor(xp.broadcast_to(h_n, (self.future,) + h_n.shape[1:]).copy(),
                                      state=(h_n, c_n))
        self._shape = y.shape
        return predicted, h_n

    def _lstms_backward(self, d_predicted, dh_n=0):
        """The input gradient, from the gradients of ``_lstms``' two outputs."""
        xp = array_module(d_predicted)
        d_input = self.predictor.backward(d_predicted)
        dh0, dc0 = self.predictor.initial_state_grad
        dh_n = dh0 + d_input.sum(axis=0, keepdims=True) + dh_n
        d_features = self.reader.backward(xp.zeros(self._shape, dtype=d_predicted.dtype), dh_n=dh_n, dc_n=dc0)
        return self.encoder.backward(d_features)


class FuturePredictor(_EncoderPredictor):
    """Srivastava et al.'s / Shi et al.'s FC-LSTM encoder-predictor: a Linear layer turns each of the predictor's
    outputs into one frame's pixel logits."""

    def __init__(self, frame_size, embed_size, hidden_size, future, dtype="float32", device="cpu"):
        super().__init__(frame_size, embed_size, hidden_size, future, dtype, device)
        self.decoder = Linear(hidden_size, frame_size, dtype=dtype, device=device)

    def forward(self, x):
        return self.decoder(self._lstms(x)[0])

    def backward(self, dout):
        return self._lstms_backward(self.decoder.backward(dout))


class DisplacementPredictor(_EncoderPredictor):
    """Finn et al. 2016's CDNA transform driven by the encoder-predictor LSTMs.

    Rather than drawing each future frame's 4,096 pixels from a Linear layer (which must learn every digit at
    every position, and blurs), the model moves what it saw. From the reader LSTM's final state a Linear layer
    gives a per-pixel softmax over ``layers`` masks that split the last input frame into that many layers (one
    per moving object: two digits here). At each future step the predictor LSTM gives, through a Linear layer
    and a softmax, one ``kernel_size`` x ``kernel_size`` displacement kernel per layer
    (``lstmzoo.nn.displace``); each layer moves on from where the previous step left it. A frame is its layers
    combined as ``1 - prod(1 - layer)`` (a soft maximum: the generator combines digits by maximum), squeezed
    into ``[eps, 1 - eps]`` and returned as logits, so the loss, metric and callers are those of
    ``FuturePredictor``.
    """

    def __init__(self, side, embed_size, hidden_size, future, layers=2, kernel_size=9, eps=0.01, dtype="float32",
                 device="cpu"):
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and positive, got {kernel_size}")
        if not 0 < eps < 0.5:
            raise ValueError(f"eps must lie in (0, 0.5), got {eps}")
        if layers < 1:
            raise ValueError(f"layers must be at least 1, got {layers}")
        super().__init__(side * side, embed_size, hidden_size, future, dtype, device)
        self.side, self.layers = int(side), int(layers)
        self.kernel_size, self.eps = int(kernel_size), float(eps)
        self.masks = Linear(hidden_size, layers * side * side, dtype=dtype, device=device)
        self.kernels = Linear(hidden_size, layers * kernel_size ** 2, dtype=dtype, device=device)
        # Start near "stay still": the kernels' logits a Gaussian bump (1.5 pixels wide) around no shift.
        xp, bias = self.kernels.xp, self.kernels.parameters()["bias"]
        shift = xp.arange(kernel_size, dtype=bias.dtype) - kernel_size // 2
        bump = -(shift[:, None] ** 2 + shift[None, :] ** 2) / (2 * 1.5 ** 2)
        bias[...] = xp.tile(bump.reshape(-1), layers)
        self._cache = None

    def forward(self, x):
        xp = array_module(x)
        _, batch, pixels = x.shape
        side, layers, size = self.side, self.layers, self.kernel_size
        if pixels != side * side:
            raise ValueError(f"frames have {pixels} pixels, the model expects {side}x{side}")
        hidden, h_n = self._lstms(x)
        masks = softmax(self.masks(h_n[-1]).reshape(batch, layers, side, side), axis=1)
        kernels = softmax(self.kernels(hidden).reshape(self.future, batch * layers, size * size), axis=-1)
        kernels = kernels.reshape(self.future, batch * layers, size, size)

        last = x[-1].reshape(batch, 1, side, side)
        moved = [(masks * last).reshape(batch * layers, side, side)]
        for step in range(self.future):
            moved.append(displace(moved[-1], kernels[step]))
        moved = xp.stack(moved).reshape(self.future + 1, batch, layers, side, side)
        probability = 1 - xp.prod(1 - moved[1:], axis=2)
        squeezed = self.eps + (1 - 2 * self.eps) * probability
        self._cache = (last, masks, kernels, moved, squeezed) if self.training else None
        return (xp.log(squeezed) - xp.log1p(-squeezed)).reshape(self.future, batch, pixels)

    def backward(self, dout):
        last, masks, kernels, moved, squeezed = require_cache(self)
        self._cache = None
        xp = array_module(dout)
        future, batch, layers, side = self.future, last.shape[0], self.layers, self.side
        dprobability = dout.reshape(squeezed.shape) * ((1 - 2 * self.eps) / (squeezed * (1 - squeezed)))
        complement = 1 - moved[1:]
        dmoved = xp.empty_like(complement)
        for layer in range(layers):
            others = dprobability
            for other in range(layers):
                if other != layer:
                    others = others * complement[:, :, other]
            dmoved[:, :, layer] = others
        dmoved = dmoved.reshape(future, batch * layers, side, side)
        moved = moved.reshape(future + 1, batch * layers, side, side)
        dkernels = xp.empty_like(kernels)
        dlayer = xp.zeros_like(dmoved[0])
        for step in reversed(range(future)):
            dlayer, dkernels[step] = displace_backward(moved[step], kernels[step], dmoved[step] + dlayer)
        dmasks = dlayer.reshape(batch, layers, side, side) * last
        dh_masks = self.masks.backward(softmax_backward(masks, dmasks, axis=1).reshape(batch, -1))
        flat = kernels.reshape(future, batch * layers, -1)
        dflat = softmax_backward(flat, dkernels.reshape(flat.shape), axis=-1)
        dx = self._lstms_backward(self.kernels.backward(dflat.reshape(future, batch, -1)), dh_masks[None])
        # The last frame also feeds the layers directly.
        dx[-1] += (dlayer.reshape(batch, layers, side, side) * masks).sum(axis=1).reshape(batch, -1)
        return dx
