"""The models the tasks (and the zoo's recipes built on them) train. This module imports the layers: a task or
recipe imports it inside its methods only, so that listing them stays light."""

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
        y_shape, h_shape = self._shapes
        directions = self.lstm.num_directions
        xp = array_module(dout)
        d_features = self.dropout.backward(self.head.backward(dout))
        dh_n = xp.zeros(h_shape, dtype=d_features.dtype)
        dh_n[-directions:] = d_features.reshape(h_shape[1], directions, h_shape[2]).transpose(1, 0, 2)
        # Only the final state feeds the head, so the per-step outputs get no gradient.
        return self.lstm.backward(xp.zeros(y_shape, dtype=d_features.dtype), dh_n=dh_n)
