"""One time step of each recurrent cell as a pure function, and the torch.nn-compatible cell modules.

A step maps (xp_t, state) -> new state, where xp_t = x_t W_ih^T + b_ih was projected for all steps at once by
`input_projection` (one matrix product over (T, B, I)). States are tuples: (h,) for RNN and GRU, (h, c) for
LSTM.
Layer norm (when the layer-direction has its gamma/beta) and recurrent dropout (a mask on the h that enters
W_hh) act inside the projections, so the three step functions read as the textbook equations:

    RNN:  h' = tanh(xp + hp)                                  (or relu)
    LSTM: i, f, g, o = split(xp + hp); c' = sigma(f) c + sigma(i) tanh(g); h' = sigma(o) tanh(LN_c(c'))
    GRU:  r = sigma(xp_r + hp_r); z = sigma(xp_z + hp_z); n = tanh(xp_n + r hp_n); h' = (1 - z) n + z h

with hp = LN_hh((h * m) W_hh^T) + b_hh. Gate order as torch: LSTM i, f, g, o; GRU r, z, n.

The cell modules (RNNCell, LSTMCell, GRUCell) are torch.nn's own (same init, state_dict, fused kernels), with
the input checked at the boundary: errors name the expected and the given sizes, dtypes and devices.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .variants import layer_norm

__all__ = ["CellParams", "GRUCell", "LSTMCell", "RNNCell", "STEPS", "gru_step", "input_projection",
           "lstm_step", "rnn_step"]


class CellParams(NamedTuple):
    """The weights of one layer-direction. Optional entries are None (bias=False, no proj, no layer norm)."""

    W_ih: Tensor                    # (G, I)
    W_hh: Tensor                    # (G, H_out), already multiplied by the weight_drop mask
    b_ih: Tensor | None             # (G,)
    b_hh: Tensor | None             # (G,)
    W_hr: Tensor | None             # (P, H) LSTM projection
    ln_ih: tuple[Tensor, Tensor] | None   # gamma, beta (G,)
    ln_hh: tuple[Tensor, Tensor] | None   # gamma, beta (G,)
    ln_c: tuple[Tensor, Tensor] | None    # gamma, beta (H,)
    relu: bool = False              # RNN nonlinearity


def input_projection(x: Tensor, p: CellParams) -> Tensor:
    """xp = LN_ih(x W_ih^T) + b_ih for all steps at once: (T, B, I) -> (T, B, G).

    b_ih is added inside another kernel, not as a pass of its own: the GEMM's (F.linear), or the layer
    norm's shift (LN_ih(v) + b_ih = xhat gamma + (beta + b_ih))."""
    if p.ln_ih is None:
        return F.linear(x, p.W_ih, p.b_ih)                # (T, B, G)
    gamma, beta = p.ln_ih
    return layer_norm(x @ p.W_ih.T, gamma, beta if p.b_ih is None else beta + p.b_ih)


def hidden_projection(h: Tensor, p: CellParams, mask: Tensor | None) -> Tensor:
    """hp = LN_hh((h * m) W_hh^T) + b_hh: (B, H_out) -> (B, G). The mask is recurrent dropout's m."""
    if mask is not None:
        h = h * mask                                      # (B, H_out)
    if p.ln_hh is None and p.b_hh is not None:
        return torch.addmm(p.b_hh, h, p.W_hh.T)           # (B, G), one kernel
    hp = h @ p.W_hh.T                                     # (B, G)
    if p.ln_hh is not None:
        hp = layer_norm(hp, *p.ln_hh)
    return hp if p.b_hh is None else hp + p.b_hh


def rnn_step(xp_t: Tensor, state: tuple[Tensor], p: CellParams, mask: Tensor | None) -> tuple[Tensor]:
    a = xp_t + hidden_projection(state[0], p, mask)       # (B, H)
    return (torch.relu(a) if p.relu else torch.tanh(a),)


def lstm_step(xp_t: Tensor, state: tuple[Tensor, Tensor], p: CellParams, mask: Tensor | None):
    h, c = state
    a = xp_t + hidden_projection(h, p, mask)              # (B, 4H)
    i, f, _, o = torch.sigmoid(a).chunk(4, dim=-1)        # (B, H) each; one kernel for the three gates
    g = torch.tanh(a[:, 2 * c.shape[-1]: 3 * c.shape[-1]])
    c = f * c + i * g
    c_out = c if p.ln_c is None else layer_norm(c, *p.ln_c)
    h = o * torch.tanh(c_out)                             # (B, H)
    if p.W_hr is not None:
        h = h @ p.W_hr.T                                  # (B, P)
    return h, c


def gru_step(xp_t: Tensor, state: tuple[Tensor], p: CellParams, mask: Tensor | None) -> tuple[Tensor]:
    h = state[0]
    hp = hidden_projection(h, p, mask)                    # (B, 3H), b_hn inside: n uses r * (W_hn h + b_hn)
    xr, xz, xn = xp_t.chunk(3, dim=-1)
    hr, hz, hn = hp.chunk(3, dim=-1)
    r = torch.sigmoid(xr + hr)
    z = torch.sigmoid(xz + hz)
    n = torch.tanh(xn + r * hn)
    return ((1 - z) * n + z * h,)


STEPS = {"RNN_TANH": rnn_step, "RNN_RELU": rnn_step, "LSTM": lstm_step, "GRU": gru_step}


# ----------------------------------------------------------------------------------------- cell modules


def check_cell_input(cell: nn.RNNCellBase, input: Tensor, hx) -> None:
    """Boundary check shared by the cells: rank, feature size, dtype, device, state shapes, with numbers."""
    weight = cell.weight_ih
    if not isinstance(input, Tensor):
        raise ValueError(f"input must be a torch.Tensor, got {type(input).__name__}")
    if input.dim() not in (1, 2):
        raise ValueError(f"{type(cell).__name__}: expected input to be 1-D or 2-D, got {input.dim()}-D")
    if input.size(-1) != cell.input_size:
        raise ValueError(f"input.size(-1) must be equal to input_size. Expected {cell.input_size}, "
                         f"got {input.size(-1)}")
    if input.dtype != weight.dtype:
        raise ValueError(f"input dtype must match the weights: expected {weight.dtype}, got {input.dtype}")
    if input.device != weight.device:
        raise ValueError(f"input device must match the weights: expected {weight.device}, got {input.device}")
    states = () if hx is None else (hx if isinstance(hx, tuple) else (hx,))
    expected = tuple(input.shape[:-1]) + (cell.hidden_size,)
    for state in states:
        if tuple(state.shape) != expected:
            raise ValueError(f"hidden state shape: expected {expected}, got {tuple(state.shape)}")
        if state.dtype != weight.dtype or state.device != weight.device:
            raise ValueError(f"hidden state must be {weight.dtype} on {weight.device}, "
                             f"got {state.dtype} on {state.device}")


class RNNCell(nn.RNNCell):
    """torch.nn.RNNCell (h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh)) with checked inputs.

    Example: `RNNCell(3, 5)(torch.randn(4, 3)).shape == (4, 5)`.
    """

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        check_cell_input(self, input, hx)
        return super().forward(input, hx)


class LSTMCell(nn.LSTMCell):
    """torch.nn.LSTMCell (gates i, f, g, o; c' = f c + i g; h' = o tanh(c')) with checked inputs.

    Example: `h, c = LSTMCell(3, 5)(torch.randn(4, 3))`.
    """

    def forward(self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        check_cell_input(self, input, hx)
        return super().forward(input, hx)


class GRUCell(nn.GRUCell):
    """torch.nn.GRUCell (gates r, z, n; h' = (1 - z) n + z h) with checked inputs.

    Example: `GRUCell(3, 5)(torch.randn(4, 3)).shape == (4, 5)`.
    """

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        check_cell_input(self, input, hx)
        return super().forward(input, hx)
