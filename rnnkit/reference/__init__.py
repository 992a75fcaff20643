"""The equations in NumPy: cells, layers, hand-written BPTT, losses, optimisers, gradcheck, diagnostics.

The oracle the rest of rnnkit is tested against. This package never imports torch.
"""

from .cells import CELLS, sigmoid
from .diagnostics import gradient_flow, hidden_grad_norms
from .gradcheck import check_layer, gradcheck
from .layers import GRU, LSTM, RNN, RecurrentLayer
from .losses import log_softmax, mse, softmax_cross_entropy
from .optim import SGD, Adam, clip_grad_norm

__all__ = [
    "CELLS", "GRU", "LSTM", "RNN", "SGD", "Adam", "RecurrentLayer", "check_layer", "clip_grad_norm",
    "gradcheck", "gradient_flow", "hidden_grad_norms", "log_softmax", "mse", "sigmoid",
    "softmax_cross_entropy",
]
