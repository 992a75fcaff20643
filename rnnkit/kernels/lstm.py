"""The fused C++ LSTM (csrc/lstm.cpp) behind the kernel boundary: `run`, its autograd, and its fake tensors.

One layer-direction over the whole sequence, time-major, as kernels/scan.py runs nn/cells.lstm_step
(docs/variants.md), with hp = LN_hh((h * m) W_hh^T) + b_hh:

    i, f, g, o = split(xp_t + hp);  c~ = sigma(f) c_{t-1} + sigma(i) tanh(g)
    h~ = (sigma(o) tanh(LN_c(c~))) W_hr^T                     (no W_hr: h~ = sigma(o) tanh(LN_c(c~)))
    h_t = d_h h_{t-1} + (1 - d_h) h~;  c_t = d_c c_{t-1} + (1 - d_c) c~     (zoneout; d = 0 when off)
    y_t = h_t;  t >= lengths[b]: (h_t, c_t) = (h_{t-1}, c_{t-1}) and y_t = 0

    xp              (T, B, 4H)  the projected input, LN_ih(x W_ih^T) + b_ih
    h0, c0          (B, P), (B, H);  P = proj_size with W_hr, else H
    W_hh            (4H, P);  b_hh (4H,) or None;  W_hr (P, H) or None
    ln_hh, ln_c     (gamma, beta) of shapes (4H,) and (H,), or None
    recurrent_mask  (B, P) or None: the pre-scaled m
    zoneout         () or [h entry, c entry], each a (T, B, P | H) 0/1 mask (1 = keep), a float p, or None
    lengths         (B,) int64 or None
    returns         y (T, B, P), (h_n (B, P), c_n (B, H))

torch.ops.rnnkit.lstm_forward returns y, h_n, c_n and, with save=True, what the backward reads (the
activated gates, the states, tanh(LN_c(c~)), the masked h, r, the layer norms' x-hat and 1 / std), empty (0,)
where unused (save=False: no gradient will be asked for, so nothing is kept beyond one step);
torch.ops.rnnkit.lstm_backward is the BPTT of rnnkit.reference in one loop. Both have fake (meta)
implementations, so `run` works under autograd and torch.compile(fullgraph=True).

bfloat16: the ops take W_hh and W_hr in bfloat16 with every other tensor in float32; `run` casts a bfloat16
call's xp, states, biases, layer-norm parameters and masks to float32 and its results back (scan.widened),
so the recurrent GEMMs run in bfloat16 (oneDNN) and the gates, layer norms and states in float32.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..nn.cells import CellParams
from .build import load_library
from .scan import Zoneout, split_zoneout, widened

__all__ = ["run"]

load_library("lstm")
_forward = torch.ops.rnnkit.lstm_forward
_backward = torch.ops.rnnkit.lstm_backward


def run(
    xp: Tensor,
    state: tuple[Tensor, Tensor],
    p: CellParams,
    recurrent_mask: Tensor | None = None,
    zoneout: tuple[Zoneout, ...] | list[Zoneout] = (),
    lengths: Tensor | None = None,
) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """One LSTM layer-direction over the whole sequence (see the module doc): y (T, B, P), (h_n, c_n)."""
    h0, c0 = state
    (zoneout_h, p_h), (zoneout_c, p_c) = (split_zoneout(d) for d in (*zoneout, None, None)[:2])
    ln_hh, ln_c = p.ln_hh or (None, None), p.ln_c or (None, None)
    lengths = None if lengths is None else lengths.to(device=xp.device, dtype=torch.int64)
    weights = (p.W_hh, p.b_hh, *ln_hh, *ln_c, p.W_hr)
    save = torch.is_grad_enabled() and any(v is not None and v.requires_grad for v in (xp, h0, c0, *weights))
    wide = widened(xp)                            # bfloat16: float32 but for W_hh and W_hr
    y, h_n, c_n, *_ = _forward(wide(xp), wide(h0), wide(c0), p.W_hh, *map(wide, weights[1:-1]), p.W_hr,
                               wide(recurrent_mask), wide(zoneout_h), wide(zoneout_c), p_h, p_c, lengths,
                               save)
    return y.to(xp.dtype), (h_n.to(xp.dtype), c_n.to(xp.dtype))


# ------------------------------------------------------------------------------------------ fake tensors


@torch.library.register_fake("rnnkit::lstm_forward")
def _forward_fake(xp, h0, c0, w_hh, b_hh, ln_hh_weight, ln_hh_bias, ln_c_weight, ln_c_bias, w_hr,
                  recurrent_mask, zoneout_h, zoneout_c, zoneout_h_p, zoneout_c_p, lengths, save):
    T, B, G = xp.shape
    H, P = G // 4, h0.shape[-1]
    new = lambda used, *shape: xp.new_empty(shape if used and save else (0,))  # noqa: E731
    ln_hh, ln_c = ln_hh_weight is not None, ln_c_weight is not None
    return (xp.new_empty(T, B, P), xp.new_empty(B, P), xp.new_empty(B, H),       # y, h_n, c_n
            new(True, T, B, G), new(True, T + 1, B, H), new(True, T, B, H), new(True, T + 1, B, P),
            new(recurrent_mask is not None, T, B, P), new(w_hr is not None, T, B, H),
            new(ln_hh, T, B, G), new(ln_hh, T, B), new(ln_c, T, B, H), new(ln_c, T, B))


@torch.library.register_fake("rnnkit::lstm_backward")
def _backward_fake(d_y, d_h_n, d_c_n, w_hh, ln_hh_weight, ln_c_weight, w_hr, recurrent_mask, zoneout_h,
                   zoneout_c, zoneout_h_p, zoneout_c_p, lengths, gates, cs, tanh_c, hs, h_in, r, xhat_hh,
                   rstd_hh, xhat_c, rstd_c, grad_w_hh, grad_w_hr, grad_b_hh):
    T, B, G = gates.shape
    H = G // 4
    new = lambda used, *shape: gates.new_empty(shape if used else (0,))  # noqa: E731
    ln_hh, ln_c = ln_hh_weight is not None, ln_c_weight is not None
    return (new(True, T, B, G), new(True, *d_h_n.shape), new(True, B, H),
            w_hh.new_empty(w_hh.shape if grad_w_hh else (0,)), new(grad_b_hh, G), new(ln_hh, G),
            new(ln_hh, G), new(ln_c, H), new(ln_c, H), (w_hr if w_hr is not None else w_hh).new_empty(
                w_hr.shape if grad_w_hr and w_hr is not None else (0,)))


# ---------------------------------------------------------------------------------------------- autograd

_SAVED = slice(3, 13)   # gates ... rstd_c among the forward's outputs


def _setup_context(ctx, inputs, output):
    (_, _, _, w_hh, b_hh, ln_hh_weight, _, ln_c_weight, _, w_hr, recurrent_mask, zoneout_h, zoneout_c,
     ctx.zoneout_h_p, ctx.zoneout_c_p, lengths, _) = inputs
    ctx.has_bias = b_hh is not None
    ctx.set_materialize_grads(False)      # no zero tensors for the saved outputs nobody differentiates
    ctx.save_for_backward(w_hh, ln_hh_weight, ln_c_weight, w_hr, recurrent_mask, zoneout_h, zoneout_c,
                          lengths, *output[_SAVED])


def _backward_rule(ctx, d_y, d_h_n, d_c_n, *_):
    w_hh, ln_hh_weight, ln_c_weight, w_hr, recurrent_mask, zoneout_h, zoneout_c, lengths, *saved = (
        ctx.saved_tensors)
    gates, hs = saved[0], saved[3]
    T, B, _ = gates.shape
    zeros = lambda grad, *shape: gates.new_zeros(shape) if grad is None else grad.contiguous()  # noqa: E731
    needs = ctx.needs_input_grad
    grads = _backward(zeros(d_y, T, B, hs.shape[-1]), zeros(d_h_n, B, hs.shape[-1]),
                      zeros(d_c_n, B, gates.shape[-1] // 4), w_hh, ln_hh_weight, ln_c_weight, w_hr,
                      recurrent_mask, zoneout_h, zoneout_c, ctx.zoneout_h_p, ctx.zoneout_c_p, lengths, *saved,
                      needs[3], w_hr is not None and needs[9], ctx.has_bias and needs[4])
    d_xp, d_h0, d_c0, d_w_hh, d_b_hh, d_ln_hh_weight, d_ln_hh_bias, d_ln_c_weight, d_ln_c_bias, d_w_hr = grads
    given = lambda grad, i: grad if needs[i] and grad.numel() > 0 else None  # noqa: E731
    return (d_xp, d_h0, d_c0, given(d_w_hh, 3), given(d_b_hh, 4), given(d_ln_hh_weight, 5),
            given(d_ln_hh_bias, 6), given(d_ln_c_weight, 7), given(d_ln_c_bias, 8), given(d_w_hr, 9),
            None, None, None, None, None, None, None)


torch.library.register_autograd("rnnkit::lstm_forward", _backward_rule, setup_context=_setup_context)
