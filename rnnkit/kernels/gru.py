"""The fused C++ GRU (csrc/gru.cpp) behind the kernel boundary: `run`, its autograd, and its fake tensors.

One layer-direction over the whole sequence, time-major, as kernels/scan.py runs nn/cells.gru_step
(docs/variants.md), with hp = LN_hh((h * m) W_hh^T) + b_hh (b_hn inside, so r gates W_hn h + b_hn):

    r = sigma(xp_r + hp_r);  z = sigma(xp_z + hp_z);  n = tanh(xp_n + r hp_n)
    h~ = (1 - z) n + z h_{t-1};  h_t = d_t h_{t-1} + (1 - d_t) h~          (zoneout; d = 0 when off)
    y_t = h_t;  t >= lengths[b]: h_t = h_{t-1} and y_t = 0

    xp              (T, B, 3H)  the projected input, LN_ih(x W_ih^T) + b_ih
    state           (h0,): h0 (B, H)
    p               CellParams: W_hh (3H, H), b_hh (3H,) or None, ln_hh (gamma, beta) each (3H,) or None
    recurrent_mask  (B, H) or None: the pre-scaled m
    zoneout         () or [h entry]: a (T, B, H) 0/1 mask (1 = keep), a float p (eval), or None
    lengths         (B,) int64 or None
    returns         y (T, B, H), (h_n (B, H),)

torch.ops.rnnkit.gru_forward returns y, h_n and what the backward reads (the states h_0 ... h_T, the GEMM
outputs u = (h * m) W_hh^T, the gates r, z, n, LN_hh's mean and 1 / sigma, (0,) without layer norm);
torch.ops.rnnkit.gru_backward is the BPTT of rnnkit.reference in one loop. Both have fake implementations,
so `run` works under autograd and torch.compile(fullgraph=True).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..nn.cells import CellParams
from .build import load_library
from .scan import Zoneout, split_zoneout, widened

__all__ = ["run"]

if not load_library("gru"):
    raise ImportError("rnnkit: the C++ GRU kernel could not be built (see the warning above)")
_forward = torch.ops.rnnkit.gru_forward
_backward = torch.ops.rnnkit.gru_backward


def run(
    xp: Tensor,
    state: tuple[Tensor],
    p: CellParams,
    recurrent_mask: Tensor | None = None,
    zoneout: tuple[Zoneout, ...] | list[Zoneout] = (),
    lengths: Tensor | None = None,
) -> tuple[Tensor, tuple[Tensor]]:
    """One GRU layer-direction over the whole sequence (see the module doc): y (T, B, H), (h_n,)."""
    zoneout_mask, zoneout_p = split_zoneout(zoneout[0] if len(zoneout) else None)
    lengths = None if lengths is None else lengths.to(device=xp.device, dtype=torch.int64)
    wide = widened(xp)                            # bfloat16: float32 but for W_hh
    y, h_n, *_ = _forward(wide(xp), wide(state[0]), p.W_hh, wide(p.b_hh), *map(wide, p.ln_hh or (None, None)),
                          wide(recurrent_mask), wide(zoneout_mask), zoneout_p, lengths)
    return y.to(xp.dtype), (h_n.to(xp.dtype),)


# ------------------------------------------------------------------------------------------ fake tensors


@torch.library.register_fake("rnnkit::gru_forward")
def _forward_fake(xp, h0, W_hh, b_hh, ln_gamma, ln_beta, recurrent_mask, zoneout_mask, zoneout_p, lengths):
    T, B, G = xp.shape
    H = G // 3
    stats = (T, B, 2) if ln_gamma is not None else (0,)
    return (xp.new_empty(T, B, H), xp.new_empty(B, H), xp.new_empty(T + 1, B, H),   # y, h_n, hs
            xp.new_empty(T, B, G), xp.new_empty(T, B, G), xp.new_empty(stats))      # u, gates, stats


@torch.library.register_fake("rnnkit::gru_backward")
def _backward_fake(dy, dh_n, W_hh, b_hh, ln_gamma, ln_beta, recurrent_mask, zoneout_mask, zoneout_p, lengths,
                   hs, u, gates, stats):
    T, B, G = u.shape
    return (u.new_empty(T, B, G), u.new_empty(dh_n.shape), W_hh.new_empty(W_hh.shape), u.new_empty(G),
            u.new_empty(G if ln_gamma is not None else 0))        # dxp, dh0, dW_hh, dbias, dgamma


# ---------------------------------------------------------------------------------------------- autograd


def _setup_context(ctx, inputs, output):
    _, _, W_hh, b_hh, ln_gamma, ln_beta, recurrent_mask, zoneout_mask, ctx.zoneout_p, lengths = inputs
    ctx.set_materialize_grads(False)      # no zero tensors for the saved outputs nobody differentiates
    ctx.save_for_backward(W_hh, b_hh, ln_gamma, ln_beta, recurrent_mask, zoneout_mask, lengths, *output[2:])


def _backward_rule(ctx, dy, dh_n, *_):
    W_hh, b_hh, ln_gamma, ln_beta, recurrent_mask, zoneout_mask, lengths, hs, u, gates, stats = (
        ctx.saved_tensors)
    dy = hs.new_zeros(hs[1:].shape) if dy is None else dy
    dh_n = hs.new_zeros(hs[0].shape) if dh_n is None else dh_n
    dxp, dh0, dW_hh, dbias, dgamma = _backward(dy, dh_n, W_hh, b_hh, ln_gamma, ln_beta, recurrent_mask,
                                               zoneout_mask, ctx.zoneout_p, lengths, hs, u, gates, stats)
    db_hh = None if b_hh is None else dbias
    dbeta = None if ln_gamma is None else (dbias if b_hh is None else dbias.clone())   # b_hh, beta: one sum
    return dxp, dh0, dW_hh, db_hh, None if ln_gamma is None else dgamma, dbeta, None, None, None, None


torch.library.register_autograd("rnnkit::gru_forward", _backward_rule, setup_context=_setup_context)
