"""The encoder factory: any rnnkit.nn recurrent layer (cell, stack, directions, variants) from one config.

Every task model (language model, classifier, forecaster, seq2seq) reads its sequence with the layer that
`make_encoder(config, input_size)` builds from a `RecurrentConfig` (the `model.encoder` section of a preset):

    cell       rnn      h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)                 torch.nn.RNN
               lstm     i, f, g, o gates; c_t = f c_{t-1} + i g, h_t = o tanh(c_t)         torch.nn.LSTM
               gru      r, z, n gates; h_t = (1 - z) n + z h_{t-1}                         torch.nn.GRU
               mingru   h_t = (1 - z_t) h_{t-1} + z_t g(W_h x_t), z_t = sigma(W_z x_t)     Feng et al. 2024
               minlstm  h_t = f'_t h_{t-1} + i'_t g(W_h x_t), gates from x_t only          Feng et al. 2024
    stack      num_layers L; `dropout` on the outputs of every layer but the last (torch.nn's dropout=)
    directions bidirectional: D = 2, outputs [forward; backward] concatenated, so output_size = D * H
    variants   rnn / lstm / gru only (rnnkit.nn.variants, docs/variants.md): layer_norm (Ba et al. 2016),
               recurrent_dropout (Gal & Ghahramani 2016), zoneout (Krueger et al. 2016), weight_drop
               (Merity et al. 2017)

The layers are batch first by default (B, T, I) -> (B, T, D * H), and the state is torch.nn's: h (L * D, B, H)
and, for the LSTM, (h, c). MinGRU / MinLSTM start from h_0 = g(0) = 0.5 when given None (their log-space scan
needs h > 0); `init_state` returns the state that None stands for, for every cell.

    >>> import torch
    >>> config = RecurrentConfig(cell="lstm", hidden_size=8, num_layers=2, layer_norm=True, zoneout=0.1)
    >>> encoder = make_encoder(config, input_size=3)
    >>> out, (h_n, c_n) = encoder(torch.randn(4, 7, 3))            # (B, T, I)
    >>> out.shape, h_n.shape, config.output_size
    (torch.Size([4, 7, 8]), torch.Size([2, 4, 8]), 8)
    >>> encoder.variants.zoneout
    0.1
    >>> min_gru = make_encoder(RecurrentConfig(cell="mingru", hidden_size=8), input_size=3)
    >>> init_state(RecurrentConfig(cell="mingru", hidden_size=8), 4, like=out)[0, 0, 0].item()
    0.5
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rnnkit import nn as layers
from rnnkit.nn.minimal import g

__all__ = ["CELLS", "TORCH_CELLS", "MIN_CELLS", "RecurrentConfig", "make_encoder", "init_state"]

TORCH_CELLS = ("rnn", "lstm", "gru")  # torch.nn-compatible layers, with every variant
MIN_CELLS = ("mingru", "minlstm")  # parallel-scan layers, no variants
CELLS = TORCH_CELLS + MIN_CELLS
_VARIANTS = ("layer_norm", "recurrent_dropout", "zoneout", "weight_drop")
_PREFIX = "model.encoder."


def _layer_class(cell: str) -> type[nn.Module]:
    return {"rnn": layers.RNN, "lstm": layers.LSTM, "gru": layers.GRU,
            "mingru": layers.MinGRU, "minlstm": layers.MinLSTM}[cell]  # fmt: skip


@dataclass(frozen=True)
class RecurrentConfig:
    """Which recurrent layer reads a sequence (`model.encoder` in a preset); see the module docstring.

    Args:
        cell: "rnn" (tanh), "lstm", "gru", "mingru" or "minlstm".
        hidden_size: H, width of each layer (per direction).
        num_layers: L, stacked layers.
        bidirectional: D = 2 directions, outputs concatenated (a language model must stay at False).
        dropout: dropout probability between stacked layers (ignored by a single layer).
        layer_norm: layer-normalised gates (rnn / lstm / gru).
        recurrent_dropout: one dropout mask on h_{t-1} per sequence (rnn / lstm / gru).
        zoneout: probability of keeping each unit's previous value per step (rnn / lstm / gru).
        weight_drop: DropConnect on W_hh, one mask per forward call (rnn / lstm / gru).
    """

    cell: str = "lstm"
    hidden_size: int = 256
    num_layers: int = 2
    bidirectional: bool = False
    dropout: float = 0.0
    layer_norm: bool = False
    recurrent_dropout: float = 0.0
    zoneout: float = 0.0
    weight_drop: float = 0.0

    def __post_init__(self):
        if self.cell not in CELLS:
            raise ValueError(f"{_PREFIX}cell must be one of {CELLS}, got {self.cell!r}")
        for name in ("hidden_size", "num_layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{_PREFIX}{name} must be an integer >= 1, got {value!r}")
        for name in ("bidirectional", "layer_norm"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{_PREFIX}{name} must be true or false, got {getattr(self, name)!r}")
        for name in ("dropout", "recurrent_dropout", "zoneout", "weight_drop"):
            p = getattr(self, name)
            if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= p < 1.0:
                raise ValueError(f"{_PREFIX}{name} must be a probability in [0, 1), got {p!r}")
            object.__setattr__(self, name, float(p))
        if self.cell in MIN_CELLS:
            self._check_min_cell()

    def _check_min_cell(self):
        for name in _VARIANTS:
            value, off = getattr(self, name), False if name == "layer_norm" else 0.0
            if value != off:
                raise ValueError(
                    f"{_PREFIX}{name} applies to the rnn, lstm and gru cells only: expected {off} for "
                    f"cell {self.cell!r}, got {value}"
                )

    @property
    def directions(self) -> int:
        """D: 2 when bidirectional, else 1."""
        return 2 if self.bidirectional else 1

    @property
    def output_size(self) -> int:
        """D * H, the width of the encoder's output at each step."""
        return self.directions * self.hidden_size

    @property
    def variants(self) -> dict[str, bool | float]:
        """The rnnkit.nn variant keyword arguments (all off for the min cells)."""
        return {name: getattr(self, name) for name in _VARIANTS}


def make_encoder(config: RecurrentConfig, input_size: int, batch_first: bool = True) -> nn.Module:
    """Build the rnnkit.nn layer that `config` describes, reading inputs of width `input_size`.

    Args:
        config: the cell, sizes and variants.
        input_size: I, the width of each input step.
        batch_first: inputs and outputs (B, T, .) (True) or (T, B, .).
    Returns:
        rnnkit.nn.RNN / LSTM / GRU (torch.nn's contract, with the variants) or rnnkit.nn.MinGRU / MinLSTM:
        `layer(x, state) -> (output (B, T, D * H), state)` and `layer.step(x_t, state) -> (y_t, state)`.
    """
    dropout = config.dropout if config.num_layers > 1 else 0.0  # torch warns on dropout for one layer
    kwargs = {"num_layers": config.num_layers, "batch_first": batch_first, "dropout": dropout,
              "bidirectional": config.bidirectional}
    if config.cell in TORCH_CELLS:
        kwargs.update(config.variants)  # RecurrentConfig refused variants for the min cells
    return _layer_class(config.cell)(input_size, config.hidden_size, **kwargs)


def init_state(config: RecurrentConfig, batch_size: int, like: Tensor):
    """The initial state that None stands for, on `like`'s device and dtype.

    Returns:
        h (L * D, B, H): zeros for rnn / gru, g(0) = 0.5 for mingru / minlstm; (h, c) of zeros for lstm.
    """
    shape = (config.num_layers * config.directions, batch_size, config.hidden_size)
    h = like.new_zeros(shape)  # (L * D, B, H)
    if config.cell in MIN_CELLS:
        return g(h)  # the min cells' default h_0: positive, as their log-space scan needs
    return (h, torch.zeros_like(h)) if config.cell == "lstm" else h
