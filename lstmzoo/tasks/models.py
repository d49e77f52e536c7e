"""The models the tasks and the recipes built on them (the zoo's, a plugin's) train: ``SequenceModel`` (one
vector per sequence), ``TextClassifier`` (token indices -> class scores), ``FrameModel`` (one vector per step).
This module imports the layers: a task or recipe imports it inside its methods only, so listing them stays light."""

from lstmzoo.array import array_module
from lstmzoo.nn import LSTM, Dropout, Linear, Module


class SequenceModel(Module):
    """Sequence in, one vector out: LSTM over ``x [T, B, F]``, the last layer's final hidden state (both
    directions when bidirectional, each taken at the sequence's own last step when ``lengths`` is given),
    dropout, then a linear layer to ``output_size`` (forecast values, a regression target, or class scores)."""

    def __init__(self, input_size, hidden_size, output_size, num_layers=1, bidirectional=False, dropout=0.0,
                 device="cpu"):
        super().__init__()
        self.lstm = LSTM(input_size, hidden_size, num_layers, bidirectional=bidirectional, dropout=dropout,
                         device=device)
        self.dropout = Dropout(dropout)
        self.head = Linear(hidden_size * self.lstm.num_directions, output_size, device=device)
        self._shapes = None

    def forward(self, x, lengths=None):
        y, (h_n, _) = self.lstm(x, lengths=lengths)
        directions, batch, hidden = self.lstm.num_directions, h_n.shape[1], h_n.shape[2]
        # h_n rows are layer-major, direction-minor: the last `directions` rows belong to the top layer.
        features = h_n[-directions:].transpose(1, 0, 2).reshape(batch, directions * hidden)
        self._shapes = (y.shape, h_n.shape)
        return self.head(self.dropout(features))

    def backward(self, dout):
        _, h_shape = self._shapes
        directions = self.lstm.num_directions
        xp = array_module(dout)
        d_features = self.dropout.backward(self.head.backward(dout))
        dh_n = xp.zeros(h_shape, dtype=d_features.dtype)
        dh_n[-directions:] = d_features.reshape(h_shape[1], directions, h_shape[2]).transpose(1, 0, 2)
        # Only the final state feeds the head, so the per-step outputs get no gradient (dy None: zero).
        return self.lstm.backward(None, dh_n=dh_n)


class TextClassifier(Module):
    """Token indices ``[T, B]`` -> embedding -> dropout -> LSTM -> max over each text's own steps of the outputs
    (or its final states, ``pooling="last"``) -> dropout -> linear -> class scores. Index 0 is padding."""

    def __init__(self, vocab_size, embedding_dim, hidden_size, num_classes, num_layers=1, bidirectional=True,
                 dropout=0.0, embedding_dropout=0.0, embedding_scale=0.1, pooling="max", device="cpu"):
        super().__init__()
        from lstmzoo.nn import Embedding
        self.embedding = Embedding(vocab_size, embedding_dim, padding_idx=0, device=device)
        self.embedding.parameters()["weight"][...] *= embedding_scale      # N(0, scale^2): small random vectors
        self.embedding_dropout = Dropout(embedding_dropout)
        self.lstm = LSTM(embedding_dim, hidden_size, num_layers, bidirectional=bidirectional, dropout=dropout,
                         device=device)
        self.dropout = Dropout(dropout)
        self.head = Linear(hidden_size * self.lstm.num_directions, num_classes, device=device)
        self.pooling = pooling
        self._cache = None

    def forward(self, tokens, lengths=None):
        import numpy as np
        xp = array_module(self.embedding.parameters()["weight"])
        steps, batch = tokens.shape
        if lengths is None:
            lengths = np.full(batch, steps, dtype=np.int64)
        y, (h_n, _) = self.lstm(self.embedding_dropout(self.embedding(tokens)), lengths=lengths)
        if self.pooling == "max":
            valid = xp.asarray(np.arange(steps)[:, None] < np.asarray(lengths)[None, :])     # [T, B]
            where = xp.where(valid[:, :, None], y, -xp.inf).argmax(axis=0)                 # [B, F]
            features = xp.take_along_axis(y, where[None], axis=0)[0]
        else:
            directions, hidden = self.lstm.num_directions, h_n.shape[2]
            features = h_n[-directions:].transpose(1, 0, 2).reshape(batch, directions * hidden)
            where = None
        self._cache = (y.shape, where, h_n.shape)
        return self.head(self.dropout(features))

    def backward(self, dout):
        y_shape, where, h_shape = self._cache
        xp = array_module(dout)
        d_features = self.dropout.backward(self.head.backward(dout))
        if where is not None:           # each feature's gradient goes to the step it was taken from
            batch, features = where.shape
            dy = xp.zeros(y_shape, dtype=d_features.dtype)
            dy[where, xp.arange(batch)[:, None], xp.arange(features)[None, :]] = d_features
            dx = self.lstm.backward(dy)
        else:                           # the final states alone: the per-step outputs get no gradient (None)
            directions = self.lstm.num_directions
            dh_n = xp.zeros(h_shape, dtype=d_features.dtype)
            dh_n[-directions:] = d_features.reshape(h_shape[1], directions, h_shape[2]).transpose(1, 0, 2)
            dx = self.lstm.backward(None, dh_n=dh_n)
        self.embedding.backward(self.embedding_dropout.backward(dx))     # indices have no gradient


class FrameModel(Module):
    """Sequence in, one vector per step out (CTC, tagging): LSTM over ``x [T, B, F]``, dropout, then a linear
    layer applied to every step: ``[T, B, output_size]``. Steps past a sequence's ``lengths`` hold the bias only
    (the LSTM's output is zero there); a loss must ignore them."""

    def __init__(self, input_size, hidden_size, output_size, num_layers=1, bidirectional=False, dropout=0.0,
                 dtype="float32", device="cpu"):
        super().__init__()
        self.lstm = LSTM(input_size, hidden_size, num_layers, bidirectional=bidirectional, dropout=dropout,
                         dtype=dtype, device=device)
        self.dropout = Dropout(dropout)
        self.head = Linear(hidden_size * self.lstm.num_directions, output_size, dtype=dtype, device=device)

    def forward(self, x, lengths=None):
        y, _ = self.lstm(x, lengths=lengths)
        return self.head(self.dropout(y))

    def backward(self, dout):
        return self.lstm.backward(self.dropout.backward(self.head.backward(dout)))
