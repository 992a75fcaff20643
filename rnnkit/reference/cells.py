"""One time step of each recurrent cell, forward and backward, in NumPy.

Exactly torch.nn's equations and gate order (LSTM i, f, g, o; GRU r, z, n). Each cell is a pair of pure
functions over one step:

    step(xp, state, W_hh, b_hh)              -> (state', cache)
    step_backward(d_state', cache, W_hh)     -> (d_xp, d_hp, d_state)

`xp = x_t W_ih^T + b_ih` is the input projection, computed for all time steps at once by the layer (one matrix
product instead of T), and `hp = h W_hh^T + b_hh` is the recurrent projection. The backward returns the
gradients of both projections, `d_xp` and `d_hp` (B, G), from which the layer forms every weight gradient with one
matrix product after the time loop. For RNN and LSTM `d_xp == d_hp`; GRU is the exception, because r gates only
the recurrent part of the candidate n.

A state is a tuple: `(h,)` for RNN and GRU, `(h, c)` for LSTM, each (B, H). Shapes: B batch, H hidden,
G = gates * H.
"""

from __future__ import annotations

import numpy as np


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function, written with tanh so it never overflows: sigma(x) = (1 + tanh(x/2)) / 2."""
    return 0.5 * (1.0 + np.tanh(0.5 * x))


class RNNTanh:
    """Elman RNN: h' = tanh(W_ih x + b_ih + W_hh h + b_hh)."""

    gates = 1
    num_states = 1

    @staticmethod
    def step(xp, state, W_hh, b_hh):
        (h,) = state
        h_new = np.tanh(xp + h @ W_hh.T + b_hh)  # (B, H)
        return (h_new,), (h_new,)

    @staticmethod
    def step_backward(d_state, cache, W_hh):
        (dh,), (h_new,) = d_state, cache
        d_pre = dh * (1.0 - h_new * h_new)  # tanh' = 1 - tanh^2
        return d_pre, d_pre, (d_pre @ W_hh,)


class RNNReLU:
    """Elman RNN with ReLU: h' = max(0, W_ih x + b_ih + W_hh h + b_hh)."""

    gates = 1
    num_states = 1

    @staticmethod
    def step(xp, state, W_hh, b_hh):
        (h,) = state
        h_new = np.maximum(xp + h @ W_hh.T + b_hh, 0.0)  # (B, H)
        return (h_new,), (h_new,)

    @staticmethod
    def step_backward(d_state, cache, W_hh):
        (dh,), (h_new,) = d_state, cache
        d_pre = dh * (h_new > 0)
        return d_pre, d_pre, (d_pre @ W_hh,)


class LSTM:
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
    def step(xp, state, W_hh, b_hh):
        h, c = state
        a = xp + h @ W_hh.T + b_hh  # (B, 4H) pre-activations
        H = h.shape[1]
        i = sigmoid(a[:, :H])
        f = sigmoid(a[:, H : 2 * H])
        g = np.tanh(a[:, 2 * H : 3 * H])
        o = sigmoid(a[:, 3 * H :])
        c_new = f * c + i * g
        tanh_c = np.tanh(c_new)
        h_new = o * tanh_c
        return (h_new, c_new), (c, i, f, g, o, tanh_c)

    @staticmethod
    def step_backward(d_state, cache, W_hh):
        dh, dc = d_state
        c, i, f, g, o, tanh_c = cache
        do = dh * tanh_c
        dc = dc + dh * o * (1.0 - tanh_c * tanh_c)  # through h' = o tanh(c')
        di, df, dg = dc * g, dc * c, dc * i
        d_pre = np.concatenate(
            [
                di * i * (1.0 - i),  # sigma' = sigma (1 - sigma)
                df * f * (1.0 - f),
                dg * (1.0 - g * g),
                do * o * (1.0 - o),
            ],
            axis=1,
        )  # (B, 4H)
        return d_pre, d_pre, (d_pre @ W_hh, dc * f)


class GRU:
    """Gated recurrent unit (Cho et al. 2014), as torch.nn.GRU writes it.

        r  = sigma(W_ir x + b_ir + W_hr h + b_hr)       reset gate
        z  = sigma(W_iz x + b_iz + W_hz h + b_hz)       update gate
        n  = tanh (W_in x + b_in + r * (W_hn h + b_hn)) candidate
        h' = (1 - z) * n + z * h
    """

    gates = 3
    num_states = 1

    @staticmethod
    def step(xp, state, W_hh, b_hh):
        (h,) = state
        hp = h @ W_hh.T + b_hh  # (B, 3H)
        H = h.shape[1]
        r = sigmoid(xp[:, :H] + hp[:, :H])
        z = sigmoid(xp[:, H : 2 * H] + hp[:, H : 2 * H])
        hp_n = hp[:, 2 * H :]
        n = np.tanh(xp[:, 2 * H :] + r * hp_n)
        h_new = n + z * (h - n)  # == (1 - z) n + z h
        return (h_new,), (h, r, z, n, hp_n)

    @staticmethod
    def step_backward(d_state, cache, W_hh):
        (dh,) = d_state
        h, r, z, n, hp_n = cache
        dn = dh * (1.0 - z)
        dz = dh * (h - n)
        dn_pre = dn * (1.0 - n * n)
        dr = dn_pre * hp_n
        dr_pre = dr * r * (1.0 - r)
        dz_pre = dz * z * (1.0 - z)
        d_xp = np.concatenate([dr_pre, dz_pre, dn_pre], axis=1)  # (B, 3H)
        d_hp = np.concatenate([dr_pre, dz_pre, dn_pre * r], axis=1)  # r multiplies W_hn h + b_hn
        return d_xp, d_hp, (dh * z + d_hp @ W_hh,)


CELLS = {"RNN_TANH": RNNTanh, "RNN_RELU": RNNReLU, "LSTM": LSTM, "GRU": GRU}
