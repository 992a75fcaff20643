"""torch.nn-compatible recurrent cells and layers, with the variants torch.nn lacks. What users import.

    >>> from rnnkit import nn as rnn
    >>> lstm = rnn.LSTM(3, 8, layer_norm=True, zoneout=0.1)   # a torch.nn.LSTM with two variants on
"""

from .cells import GRUCell, LSTMCell, RNNCell
from .layers import GRU, LSTM, RNN
from .minimal import MinGRU, MinLSTM
from .variants import Variants

__all__ = ["GRU", "GRUCell", "LSTM", "LSTMCell", "MinGRU", "MinLSTM", "RNN", "RNNCell", "Variants"]
