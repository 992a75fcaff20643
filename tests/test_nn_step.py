"""Streaming: layer.step(x_t, state) -> (y_t, state), T times, equals one full-sequence forward."""

import pytest
import torch

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
