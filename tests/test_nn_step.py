"""Streaming: layer.step(x_t, state) -> (y_t, state), T times, equals one full-sequence forward."""

import pytest
import torch
from oracle import compare

from rnnkit import nn as rnn

I, H, T, B = 3, 4, 6, 2
KINDS = {
    "rnn_tanh": (rnn.RNN, {}), "rnn_relu": (rnn.RNN, {"nonlinearity": "relu"}),
    "lstm": (rnn.LSTM, {}), "lstm_proj": (rnn.LSTM, {"proj_size": 2}), "gru": (rnn.GRU, {}),
}
VARIANTS = {
    "plain": {}, "layer_norm": {"layer_norm": True}, "recurrent_dropout": {"recurrent_dropout": 0.3},
    "zoneout": {"zoneout": 0.3}, "weight_drop": {"weight_drop": 0.5},
    "all": {"layer_norm": True, "recurrent_dropout": 0.3, "zoneout": 0.2, "weight_drop": 0.4},
}
STOCHASTIC = [name for name in VARIANTS if name not in ("plain", "layer_norm")]

pytestmark = pytest.mark.usefixtures("torch_float64")  # every test here runs in float64


def states(state):
    return state if isinstance(state, tuple) else (state,)


def stream(layer, x, state, batch_first, batched):
    """Feed x one step at a time; returns the stacked outputs (shaped like forward's) and the last state."""
    time_dim = 1 if (batched and batch_first) else 0
    ys = []
    for x_t in x.unbind(time_dim):
        y_t, state = layer.step(x_t, state)
        ys.append(y_t)
    return torch.stack(ys, time_dim), state


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("kind", list(KINDS))
def test_step_equals_forward(kind, variant):
    cls, extra = KINDS[kind]
    stochastic = variant not in ("plain", "layer_norm")
    for batch_first, batched, with_state in ((False, True, False), (True, True, True), (False, False, True)):
        torch.manual_seed(0)
        layer = cls(I, H, num_layers=2, batch_first=batch_first, **extra, **VARIANTS[variant])
        layer.train(not stochastic)      # deterministic variants also stream in training mode
        shape = ((B, T, I) if batch_first else (T, B, I)) if batched else (T, I)
        x = torch.randn(shape)
        state = None
        if with_state:
            lead = (2, B) if batched else (2,)
            sizes = [extra.get("proj_size", H), H] if cls is rnn.LSTM else [H]
            state = tuple(torch.randn(*lead, n) for n in sizes)
            state = state if cls is rnn.LSTM else state[0]
        out, final = layer(x, state)
        streamed, streamed_final = stream(layer, x, state, batch_first, batched)
        torch.testing.assert_close(streamed, out, rtol=1e-12, atol=1e-13)
        for a, b in zip(states(streamed_final), states(final), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-13)


def test_step_streams_gradients_and_rejects_bidirectional():
    layer = rnn.GRU(I, H, layer_norm=True)
    x = torch.randn(T, B, I, requires_grad=True)
    streamed, _ = stream(layer, x, None, False, True)
    (g_stream,) = torch.autograd.grad(streamed.sum(), x)
    (g_full,) = torch.autograd.grad(layer(x)[0].sum(), x)
    torch.testing.assert_close(g_stream, g_full, rtol=1e-12, atol=1e-13)
    with pytest.raises(ValueError, match="expected bidirectional=False, got True"):
        rnn.LSTM(I, H, bidirectional=True).step(torch.randn(B, I))
    with pytest.raises(ValueError, match="Expected 3, got 5"):
        layer.step(torch.randn(B, 5))


def named(output, state) -> dict:
    return {"output": output, **{f"state {i}": s for i, s in enumerate(states(state))}}


def stream_with_masks(layer, x, masks, time_dim):
    """T calls of step, each given the sequence's masks and its step index t."""
    state, ys = None, []
    for t, x_t in enumerate(x.unbind(time_dim)):
        y_t, state = layer.step(x_t, state, masks, t=t)
        ys.append(y_t)
    return named(torch.stack(ys, time_dim), state)


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("variant", STOCHASTIC)
@pytest.mark.parametrize("kind", list(KINDS))
def test_step_with_the_sequence_masks_equals_forward_in_training(kind, variant, batch_first):
    """Masks drawn once per sequence and given to every step (zoneout's read at t): values and gradients."""
    cls, extra = KINDS[kind]
    torch.manual_seed(0)
    layer = cls(I, H, num_layers=2, batch_first=batch_first, **extra, **VARIANTS[variant]).train()
    x = torch.randn((B, T, I) if batch_first else (T, B, I), requires_grad=True)
    masks = layer.sample_masks(T, B)
    compare(lambda: stream_with_masks(layer, x, masks, 1 if batch_first else 0),
            lambda: named(*layer(x, masks=masks)),
            {"input": x, **dict(layer.named_parameters())}, rtol=1e-12, atol=1e-13)


def test_step_masks_without_t_are_one_steps_and_t_is_checked():
    torch.manual_seed(0)
    layer = rnn.LSTM(I, H, zoneout=0.5, recurrent_dropout=0.3).train()
    x, masks = torch.randn(T, B, I), layer.sample_masks(T, B)
    out, _ = layer(x[:1], masks={k: m[:1] if k.startswith("zoneout") else m for k, m in masks.items()})
    y_0, _ = layer.step(x[0], None, {k: m[:1] if k.startswith("zoneout") else m for k, m in masks.items()})
    torch.testing.assert_close(y_0, out[0], rtol=0, atol=0)
    torch.testing.assert_close(layer.step(x[0], None, masks, t=0)[0], out[0], rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"t must index the 6 steps of mask 'zoneout_h_l0': expected an "
                                         r"integer in \[0, 5\], got 6"):
        layer.step(x[0], None, masks, t=T)
    with pytest.raises(ValueError, match=r"mask 'zoneout_h_l0': expected shape \(1, 2, 4\), got \(6, 2, 4\)"):
        layer.step(x[0], None, masks)
    with pytest.raises(ValueError, match="masks apply in training mode only"):
        layer.eval().step(x[0], None, masks, t=0)
