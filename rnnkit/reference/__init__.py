"""The equations in NumPy: cells, layers, hand-written BPTT. The oracle the rest of rnnkit is tested against.

This package never imports torch.
"""

from .cells import CELLS, sigmoid
from .layers import GRU, LSTM, RNN, RecurrentLayer

__all__ = ["CELLS", "GRU", "LSTM", "RNN", "RecurrentLayer", "sigmoid"]
