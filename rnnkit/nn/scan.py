"""The layout around the kernels: directions and layers over time-major, padded input, and padding handling.

Everything is time-major and padded: x (T, B, I), lengths (B,) or None. Each layer-direction's recurrence runs
behind the kernel boundary (rnnkit/kernels: the C++ kernels or their slow twin, the pure-torch scan); this
file holds what every backend shares, so no backend repeats it:

- the input projection of all steps as one GEMM (kernels.input_projection, oneDNN's on CPU; its twin is
  cells.input_projection), before the recurrence;
- the backward direction runs the forward recurrence over each sequence reversed *within its length*
  (`reverse_padded`), so it starts at the last real step and never reads padding;
- layers stacked, directions concatenated, dropout between layers;
- padding zeroed once at a layer's entry (`zero_padding`) and packed outputs re-packed (`pack_like`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

from .. import kernels
from ..kernels.scan import Zoneout, valid_steps
from .cells import CellParams

__all__ = ["pack_like", "reverse_padded", "scan_layers", "zero_padding"]


def zero_padding(x: Tensor, lengths: Tensor | None, time_dim: int = 0) -> Tensor:
    """x (T, B, ...) (or (B, T, ...) with time_dim=1) with every padded position set to 0.

    Done once at a layer's entry, before any computation reads x: masking *afterwards* (torch.where) keeps the
    values out of the forward pass but not out of the backward one, where NaN * 0 = NaN reaches the weights.
    """
    if lengths is None:
        return x
    valid = valid_steps(lengths, x.shape[time_dim], x.device)           # (T, B)
    valid = valid.T if time_dim == 1 else valid
    return x.masked_fill(~valid.view(*valid.shape, *([1] * (x.dim() - 2))), 0)


def pack_like(output: Tensor, packed: PackedSequence, lengths: Tensor) -> PackedSequence:
    """Pack a padded, time-major output (T, B, ...) in original batch order as the input `packed` was."""
    order = packed.sorted_indices
    output = output if order is None else output.index_select(1, order)
    sorted_lengths = lengths if order is None else lengths[order.to(lengths.device)]
    data = pack_padded_sequence(output, sorted_lengths.cpu(), enforce_sorted=True).data
    return PackedSequence(data, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices)


def reverse_padded(x: Tensor, lengths: Tensor | None) -> Tensor:
    """Reverse each sequence of x (T, B, ...) within its own length; padding stays where it is."""
    if lengths is None:
        return x.flip(0)
    T, B = x.shape[:2]
    t = torch.arange(T, device=x.device).unsqueeze(1)     # (T, 1)
    lengths = lengths.to(x.device).unsqueeze(0)           # (1, B)
    index = torch.where(t < lengths, lengths - 1 - t, t)  # (T, B)
    index = index.view(T, B, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(0, index)


def scan_layers(
    mode: str,
    x: Tensor,
    states: list[tuple[Tensor, ...]],
    params: list[CellParams],
    recurrent_masks: list[Tensor | None],
    zoneouts: list[Sequence[Zoneout]],
    lengths: Tensor | None,
    num_layers: int,
    num_directions: int,
    dropout: float,
    training: bool,
) -> tuple[Tensor, list[tuple[Tensor, ...]]]:
    """Stack layers and directions of cell `mode` ("LSTM", "GRU", "RNN_TANH", "RNN_RELU"). Lists are indexed
    by k = layer * D + direction, as torch's h_n.

    Returns the last layer's outputs (T, B, D * H_out) and the final state of every layer-direction.
    """
    finals = []
    for layer in range(num_layers):
        outputs = []
        for direction in range(num_directions):
            k = layer * num_directions + direction
            flip = (lambda v: reverse_padded(v, lengths)) if direction else (lambda v: v)
            zoneout = [d if not isinstance(d, Tensor) else flip(d) for d in zoneouts[k]]
            xp = kernels.input_projection(flip(x), params[k])     # (T, B, G)
            y, final = kernels.run(mode, xp, states[k], params[k], recurrent_masks[k], zoneout, lengths)
            outputs.append(flip(y))
            finals.append(final)
        x = torch.cat(outputs, dim=-1)                    # (T, B, D * H_out)
        if dropout > 0 and training and layer < num_layers - 1:
            x = F.dropout(x, dropout, training=True)
    return x, finals
