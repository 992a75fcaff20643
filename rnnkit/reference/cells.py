"""One time step of each recurrent cell, forward and backward, in NumPy.

Exactly torch.nn's equations and gate order (LSTM i, f, g, o; GRU r, z, n). Each cell is two layers of pure
functions over one step. The cell's own equations take both projections:

    update(xp, hp, state)                  -> (state', cache)
    update_backward(d_state', cache, out)  -> (d_xp, d_hp, d_state_direct)

`xp = x_t W_ih^T + b_ih` is the input projection, computed for all time steps at once by the layer (one matrix
product instead of T), and `hp = h W_hh^T + b_hh` is the recurrent projection. `d_state_direct` is the
gradient reaching the old state by every path except hp (GRU's z * h, LSTM's f * c;
None where there is none).
`Cell` then adds the recurrent projection, giving the step protocol the scan runs:

    step(xp, state, W_hh, b_hh)                     -> (state', cache)
    step_backward(d_state', cache, W_hh, out=None)  -> (d_xp, d_hp, d_state)

The variants (layer norm, dropout, zoneout, weight drop; `variants.py`) wrap `update` with their own recurrent
projection. The backward returns the gradients of both projections, `d_xp` and `d_hp` (B, G), from which the
layer forms every weight gradient with one matrix product after the time loop. For RNN and LSTM
`d_xp == d_hp` (the same array is returned twice); GRU is the exception, because r gates only the recurrent
part of the candidate n. When `out` (B, G) is given, `d_xp` is written into it, so a scan fills its (T, B, G)
gradient buffer in place, one time step per call.

Speed without hiding the math: a step is a handful of whole-array NumPy operations. Pre-activations are summed
in place (`update` may overwrite hp, a fresh array), the three sigmoid gates of an LSTM are one call over
(B, 4H), and backward writes each gate's gradient into its slice of one (B, G) array instead of concatenating.
Python float constants keep the arrays' dtype (float32 stays float32).

A state is a tuple: `(h,)` for RNN and GRU, `(h, c)` for LSTM, each (B, H). Shapes: B batch, H hidden,
G = gates * H.
"""

from __future__ import annotations

import numpy as np


def sigmoid(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Logistic function, written with tanh so it never overflows: sigma(x) = (1 + tanh(x/2)) / 2.

    Args:
        x: any array (or scalar).
        out: optional array shaped as x to write the result into; it may be x itself.

    Returns:
        sigma(x), in `out` when given.
    """
    s = np.tanh(np.multiply(x, 0.5, out=out), out=out)  # tanh(x/2)
    s += 1.0
    s *= 0.5
    return s


class Cell:
    """A cell's `update` with the recurrent projection hp = h W_hh^T + b_hh around it: the scan's step."""

    gates = 1  # G / H
    num_states = 1

    @classmethod
    def step(cls, xp, state, W_hh, b_hh):
        hp = state[0] @ W_hh.T  # (B, G)
        hp += b_hh
        return cls.update(xp, hp, state)

    @classmethod
    def step_backward(cls, d_state, cache, W_hh, out=None):
        d_xp, d_hp, d_direct = cls.update_backward(d_state, cache, out)
        dh = d_hp @ W_hh  # (B, H) through hp = h W_hh^T + b_hh
        if d_direct[0] is not None:
            dh += d_direct[0]
        return d_xp, d_hp, (dh, *d_direct[1:])


class RNNTanh(Cell):
    """Elman RNN: h' = tanh(W_ih x + b_ih + W_hh h + b_hh)."""

    @staticmethod
    def update(xp, hp, state):
        hp += xp
        h_new = np.tanh(hp, out=hp)  # (B, H)
        return (h_new,), h_new

    @staticmethod
    def update_backward(d_state, h_new, out=None):
        (dh,) = d_state
        d_pre = np.multiply(dh, 1.0 - h_new * h_new, out=out)  # tanh' = 1 - tanh^2
        return d_pre, d_pre, (None,)


class RNNReLU(Cell):
    """Elman RNN with ReLU: h' = max(0, W_ih x + b_ih + W_hh h + b_hh)."""

    @staticmethod
    def update(xp, hp, state):
        hp += xp
        h_new = np.maximum(hp, 0.0, out=hp)  # (B, H)
        return (h_new,), h_new

    @staticmethod
    def update_backward(d_state, h_new, out=None):
        (dh,) = d_state
        d_pre = np.multiply(dh, h_new > 0, out=out)
        return d_pre, d_pre, (None,)


class LSTM(Cell):
    """Long short-term memory (Hochreiter and Schmidhuber 1997, with the forget gate of Gers et al. 2000).

        i = sigma(W_ii x + b_ii + W_hi h + b_hi)      input gate
        f = sigma(W_if x + b_if + W_hf h + b_hf)      forget gate
        g = tanh (W_ig x + b_ig + W_hg h + b_hg)      candidate cell
        o = sigma(W_io x + b_io + W_ho h + b_ho)      output gate
        c' = f * c + i * g
        h' = o * tanh(c')
    """

    gates = 4
    num_states = 2

    @staticmethod
    def update(xp, hp, state):
        h, c = state
        H = h.shape[1]
        a = hp  # (B, 4H) pre-activations a = xp + hp, summed in place
        a += xp
        g = np.tanh(a[:, 2 * H : 3 * H])  # (B, H), taken before the sigmoid below overwrites a
        gates = sigmoid(a, out=a)  # (B, 4H): one call for i, f, o; its g slice is not used
        i, f, o = gates[:, :H], gates[:, H : 2 * H], gates[:, 3 * H :]
        c_new = f * c + i * g
        tanh_c = np.tanh(c_new)
        h_new = o * tanh_c
        return (h_new, c_new), (c, gates, g, tanh_c)

    @staticmethod
    def update_backward(d_state, cache, out=None):
        dh, dc = d_state
        c, gates, g, tanh_c = cache
        o = gates[:, 3 * c.shape[1] :]
        dc = dc + dh * o * (1.0 - tanh_c * tanh_c)  # through h' = o tanh(c')
        return LSTM.gates_backward(dh, dc, cache, out)

    @staticmethod
    def gates_backward(dh, dc, cache, out=None):
        """From dL/dh' and the total dL/dc' back to the pre-activations a: (d_a, d_a, (None, dL/dc))."""
        c, gates, g, tanh_c = cache
        B, H = c.shape
        i, f = gates[:, :H], gates[:, H : 2 * H]
        d_a = np.empty((B, 4 * H), dtype=c.dtype) if out is None else out  # (B, 4H) d loss / d a
        di, df, dg, do = d_a[:, :H], d_a[:, H : 2 * H], d_a[:, 2 * H : 3 * H], d_a[:, 3 * H :]  # views of d_a
        np.multiply(dh, tanh_c, out=do)
        np.multiply(dc, g, out=di)
        np.multiply(dc, c, out=df)
        # Through the nonlinearities, so d_a holds the gradients of the pre-activations a:
        d_a *= gates * (1.0 - gates)  # sigma' = sigma (1 - sigma) for i, f, o; the g slice is written next
        np.multiply(dc * i, 1.0 - g * g, out=dg)  # tanh' = 1 - tanh^2
        return d_a, d_a, (None, dc * f)


class GRU(Cell):
    """Gated recurrent unit (Cho et al. 2014), as torch.nn.GRU writes it.

        r  = sigma(W_ir x + b_ir + W_hr h + b_hr)       reset gate
        z  = sigma(W_iz x + b_iz + W_hz h + b_hz)       update gate
        n  = tanh (W_in x + b_in + r * (W_hn h + b_hn)) candidate
        h' = (1 - z) * n + z * h
    """

    gates = 3

    @staticmethod
    def update(xp, hp, state):
        (h,) = state
        H = h.shape[1]
        r = sigmoid(xp[:, :H] + hp[:, :H])
        z = sigmoid(xp[:, H : 2 * H] + hp[:, H : 2 * H])
        hp_n = hp[:, 2 * H :]
        n = np.tanh(xp[:, 2 * H :] + r * hp_n)
        h_new = n + z * (h - n)  # == (1 - z) n + z h
        return (h_new,), (h, r, z, n, hp_n)

    @staticmethod
    def update_backward(d_state, cache, out=None):
        (dh,) = d_state
        h, r, z, n, hp_n = cache
        B, H = h.shape
        d_xp = np.empty((B, 3 * H), dtype=h.dtype) if out is None else out  # (B, 3H)
        dr_pre, dz_pre, dn_pre = d_xp[:, :H], d_xp[:, H : 2 * H], d_xp[:, 2 * H :]  # views into d_xp
        dn = dh * (1.0 - z)
        dz = dh * (h - n)
        np.multiply(dn, 1.0 - n * n, out=dn_pre)
        dr = dn_pre * hp_n
        np.multiply(dr, r * (1.0 - r), out=dr_pre)
        np.multiply(dz, z * (1.0 - z), out=dz_pre)
        d_hp = d_xp.copy()  # (B, 3H)
        d_hp[:, 2 * H :] *= r  # r multiplies W_hn h + b_hn
        return d_xp, d_hp, (dh * z,)


CELLS = {"RNN_TANH": RNNTanh, "RNN_RELU": RNNReLU, "LSTM": LSTM, "GRU": GRU}
