"""The slow twin of every kernel: one cell step at a time over the sequence, in pure torch, autograd for BPTT.

This is the oracle the fused kernels are tested against and the fallback where they cannot run (no compiler,
another device or dtype). It takes the arguments of the kernel boundary (rnnkit/kernels/__init__.py):
xp (T, B, G) already projected, the state at t = 0, the layer-direction's CellParams, its masks, lengths.

Padding never leaks into a result: past its length a sequence's state is frozen (the final state is the state
at its last valid step) and its output is 0, as torch's PackedSequence path gives after `pad_packed_sequence`.

Zoneout sits here, between the cell and the scan, because it mixes the old state into the new one:
state_t = d_t * state_{t-1} + (1 - d_t) * step(...), with d_t a mask (training) or the scalar p (eval).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from ..nn.cells import CellParams

__all__ = ["Zoneout", "scan", "split_zoneout", "valid_steps", "widened"]

Zoneout = Tensor | float | None     # (T, B, size) mask with 1 = keep the old value, or p in eval mode


def split_zoneout(d: Zoneout) -> tuple[Tensor | None, float]:
    """A zoneout entry as the C++ kernels take it: (mask or None, p); p = 0 is off."""
    if isinstance(d, Tensor):
        return d, 0.0
    return None, 0.0 if d is None else float(d)


def widened(xp: Tensor) -> Callable[[Tensor | None], Tensor | None]:
    """The cast the C++ kernels need for a call in xp's dtype: for bfloat16 they take W_hh (and W_hr) in
    bfloat16 and every other tensor in float32 (their GEMMs run in bfloat16, the rest in float32); for
    float32 / float64 nothing. The results go back with `.to(xp.dtype)`."""
    if xp.dtype != torch.bfloat16:
        return lambda v: v
    return lambda v: v if v is None else v.float()


def valid_steps(lengths: Tensor, T: int, device=None) -> Tensor:
    """(T, B) bool: valid[t, b] = t < lengths[b], whether step t lies inside sequence b."""
    lengths = lengths.to(device)
    return torch.arange(T, device=lengths.device).unsqueeze(1) < lengths.unsqueeze(0)


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
