"""Layers with explicit forward and backward on NumPy (or CuPy) arrays."""

from .attention import LuongAttention
from .ctc import CTCLoss, ctc_beam_decode, ctc_greedy_decode
from .layers import Dropout, Embedding, Linear, ReLU, Sequential, Tanh, Unfold
from .losses import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss
from .module import Module
from .recurrent import GRU, LSTM, RNN

__all__ = ["Module", "LSTM", "GRU", "RNN", "Linear", "Embedding", "Dropout", "Sequential", "ReLU", "Tanh", "Unfold",
           "MSELoss", "CrossEntropyLoss", "LuongAttention", "BCEWithLogitsLoss",
           "CTCLoss", "ctc_greedy_decode", "ctc_beam_decode"]
