"""Placeholder until the fused Numba kernels land: the reference, same signatures."""
from .reference import (lstm_forward, lstm_backward, gru_forward, gru_backward,  # noqa: F401
                        rnn_forward, rnn_backward)
