"""lstmzoo: fused LSTM/GRU/RNN kernels, a small training framework and a model zoo."""

__version__ = "0.1.0"
