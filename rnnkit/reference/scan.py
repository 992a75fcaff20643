"""Run one cell over time, forward and backward (backpropagation through time).

`scan` applies a cell's step to every time step of the projected input; `scan_backward` walks the same steps
in the opposite order, mirroring the forward line by line. Variable lengths are a mask: where `mask[t, b]` is
0 the sequence b has ended, its state passes through unchanged and its output is 0, so padding never touches
the final state. In the reverse direction the same mask makes each sequence start at its own last element.

Shapes: T time, B batch, H hidden, G = gates * H.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class ScanCache:
    """What the backward pass needs from the forward pass of one direction of one layer."""

    steps: list  # per processed step: the cell's cache
    h_prev: np.ndarray  # (T, B, H) the hidden state entering each time step (for dW_hh)
    order: list  # time indices in processing order


def scan(cell, xp, state0, W_hh, b_hh, mask=None, reverse=False):
    """Forward over time.

    Args:
        cell: a cell from `cells.CELLS`.
        xp: (T, B, G) input projections x_t W_ih^T + b_ih.
        state0: tuple of (B, H) initial states.
        W_hh: (G, H); b_hh: (G,) (zeros when the layer has no bias).
        mask: (T, B, 1) of 0/1, or None when every sequence has length T.
        reverse: process t = T-1 ... 0.

    Returns:
        ys: (T, B, H) outputs (0 past each sequence's end); final state tuple; ScanCache.
    """
    T = xp.shape[0]
    order = list(range(T - 1, -1, -1)) if reverse else list(range(T))
    state = state0
    W_hh = np.asfortranarray(W_hh)  # same values, laid out so that W_hh.T (used by each step) is contiguous
    B, H = state0[0].shape
    ys = np.empty((T, B, H), dtype=xp.dtype)
    h_prev = np.empty((T, B, H), dtype=xp.dtype)
    steps = []
    for t in order:
        h_prev[t] = state[0]
        new_state, step_cache = cell.step(xp[t], state, W_hh, b_hh)
        if mask is None:
            state = new_state
            ys[t] = new_state[0]
        else:
            m = mask[t]  # (B, 1)
            state = tuple(np.where(m, s_new, s) for s_new, s in zip(new_state, state, strict=True))
            ys[t] = new_state[0] * m
        steps.append(step_cache)
    return ys, state, ScanCache(steps, h_prev, order)


def scan_backward(cell, d_ys, d_state_final, cache, W_hh, mask=None, truncate=None):
    """Backward over time: the forward loop, reversed.

    Args:
        d_ys: (T, B, H) gradient of the loss with respect to the outputs.
        d_state_final: tuple of (B, H) gradients with respect to the final state.
        truncate: if given, backpropagate through the last `truncate` steps of each sequence only (truncated
            BPTT), counted in processing order from that sequence's own last element: t = length-k ...
            length-1 forward, t = k-1 ... 0 in reverse. The state entering those steps is treated as a
            constant, so earlier steps get no gradient, and d_state0 is 0 for every sequence longer than
            `truncate`.

    Returns:
        d_xp: (T, B, G) gradients of the input projections; d_hp: (T, B, G) of the recurrent projections;
        d_state0: tuple of (B, H); dh: (T, B, H), dL/dh_t, the total gradient reaching each hidden state.
    """
    T, B, H = d_ys.shape
    G = cell.gates * H
    d_xp = np.zeros((T, B, G), dtype=d_ys.dtype)
    d_hp = None  # a separate buffer only for cells whose d_hp differs from d_xp (GRU); otherwise d_hp is d_xp
    dh_history = np.zeros((T, B, H), dtype=d_ys.dtype)
    d_state = d_state_final
    window = None if truncate is None else _truncation_window(mask, cache.order, truncate)
    first = 0 if window is None else int(np.argmax(window.any(axis=(1, 2))))  # earlier steps get nothing
    for k in range(len(cache.order) - 1, first - 1, -1):
        t = cache.order[k]
        m = None if mask is None else mask[t]  # (B, 1)
        dy = d_ys[t] if m is None else d_ys[t] * m  # outputs past a sequence's end are constant zeros
        if window is not None and not window[k].all():  # sequences whose window starts later: cut here
            dy = dy * window[k]
            d_state = tuple(d * window[k] for d in d_state)
        d_state = (d_state[0] + dy,) + d_state[1:]  # h_t feeds both the output and the next step
        if m is None:
            d_through = d_state
        else:
            d_through = tuple(d * m for d in d_state)  # past a sequence's end the step was the identity
        dh_history[t] = d_through[0]
        d_xp_t, d_hp_t, d_prev = cell.step_backward(d_through, cache.steps[k], W_hh, out=d_xp[t])
        if d_hp_t is not d_xp_t:
            d_hp = np.zeros_like(d_xp) if d_hp is None else d_hp
            d_hp[t] = d_hp_t
        if m is None:
            d_state = d_prev
        else:
            d_state = tuple(dp + d * (1 - m) for dp, d in zip(d_prev, d_state, strict=True))
    if first > 0:
        d_state = tuple(np.zeros_like(d) for d in d_state)
    return d_xp, d_xp if d_hp is None else d_hp, d_state, dh_history


def _truncation_window(mask, order, truncate):
    """(T, B, 1) in processing order: 1 where a step is among its sequence's last `truncate` real steps, or
    is padding processed after them (the identity, through which the final state's gradient flows back)."""
    T = len(order)
    real = np.ones((T, 1, 1)) if mask is None else mask[order]  # (T, B|1, 1) in processing order
    real_from_here = np.cumsum(real[::-1], axis=0)[::-1]  # real steps at this processing index or later
    return real_from_here <= truncate
