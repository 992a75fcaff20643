"""Run a cell step over time, then over directions and layers: the slow, pure-torch twin of the fused kernels.

Everything is time-major and padded: x (T, B, I), lengths (B,) or None. Padding never leaks into a result:

- past its length a sequence's state is frozen (h_n is the state at its last valid step) and its output is 0,
  as torch's PackedSequence path gives after `pad_packed_sequence`;
- the backward direction runs the forward scan over each sequence reversed *within its length*
  (`reverse_padded`), so it starts at the last real step and never reads padding.

Zoneout sits here, between the cell and the scan, because it mixes the old state into the new one:
state_t = d_t * state_{t-1} + (1 - d_t) * step(...), with d_t a mask (training) or the scalar p (eval).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

from .cells import CellParams, input_projection

__all__ = ["pack_like", "reverse_padded", "scan", "scan_layers", "valid_steps", "zero_padding"]

Zoneout = Tensor | float | None     # (T, B, size) mask with 1 = keep the old value, or p in eval mode


def valid_steps(lengths: Tensor, T: int, device=None) -> Tensor:
    """(T, B) bool: valid[t, b] = t < lengths[b], whether step t lies inside sequence b."""
    lengths = lengths.to(device)
    return torch.arange(T, device=lengths.device).unsqueeze(1) < lengths.unsqueeze(0)


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


def scan(
    step: Callable,
    xp: Tensor,
    state: tuple[Tensor, ...],
    p: CellParams,
    recurrent_mask: Tensor | None = None,
    zoneout: Sequence[Zoneout] = (),
    lengths: Tensor | None = None,
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Scan `step` over xp (T, B, G) from `state`. Returns outputs (T, B, H_out) and the final state.

    zoneout holds one entry per state component (h, then c): a (T, B, size) mask, a float p, or None.
    """
    outputs = []
    valid = None if lengths is None else valid_steps(lengths, xp.shape[0], xp.device)   # (T, B)
    zoneout = [d.unbind(0) if isinstance(d, Tensor) else d for d in zoneout]   # (B, size) per step
    for t, xp_t in enumerate(xp.unbind(0)):                # unbind: one backward node, not T full-size copies
        new = step(xp_t, state, p, recurrent_mask)
        if zoneout:
            new = tuple(_zoneout(d, t, old, fresh) for d, old, fresh in zip(zoneout, state, new, strict=True))
        if valid is None:
            state = new
            outputs.append(new[0])
        else:
            keep = valid[t].unsqueeze(1)                  # (B, 1): is step t inside the sequence?
            state = tuple(torch.where(keep, fresh, old) for fresh, old in zip(new, state, strict=True))
            outputs.append(torch.where(keep, new[0], torch.zeros_like(new[0])))
    return torch.stack(outputs), state                    # (T, B, H_out)


def _zoneout(d, t: int, old: Tensor, fresh: Tensor) -> Tensor:
    """d_t * old + (1 - d_t) * fresh, as one lerp kernel (fresh + d_t * (old - fresh))."""
    if d is None:
        return fresh
    return torch.lerp(fresh, old, d if isinstance(d, float) else d[t])   # d[t]: (B, size)


def scan_layers(
    step: Callable,
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
    """Stack layers and directions. Lists are indexed by k = layer * D + direction, as torch's h_n.

    Returns the last layer's outputs (T, B, D * H_out) and the final state of every layer-direction.
    """
    finals = []
    for layer in range(num_layers):
        outputs = []
        for direction in range(num_directions):
            k = layer * num_directions + direction
            flip = (lambda v: reverse_padded(v, lengths)) if direction else (lambda v: v)
            zoneout = [d if not isinstance(d, Tensor) else flip(d) for d in zoneouts[k]]
            xp = input_projection(flip(x), params[k])     # (T, B, G)
            y, final = scan(step, xp, states[k], params[k], recurrent_masks[k], zoneout, lengths)
            outputs.append(flip(y))
            finals.append(final)
        x = torch.cat(outputs, dim=-1)                    # (T, B, D * H_out)
        if dropout > 0 and training and layer < num_layers - 1:
            x = F.dropout(x, dropout, training=True)
    return x, finals
