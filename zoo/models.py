"""Models the recipes share. This module imports the layers: recipes import it inside their methods only."""

from lstmzoo.nn import LSTM, Dropout, Linear, Module


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
