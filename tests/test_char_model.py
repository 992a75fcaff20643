"""The demo's NumPy character model: gradients equal torch autograd's, and training makes the loss fall."""

import numpy as np
import pytest
import torch

from rnnkit.reference.char_model import CharModel, DemoConfig, run_demo
from rnnkit.reference.losses import softmax_cross_entropy


def test_char_model_gradients_match_torch_autograd():
    rng = np.random.default_rng(3)
    V, E, H, B, T = 11, 4, 6, 3, 5
    model = CharModel(V, E, H, seed=1, dtype=np.float64)
    tokens = rng.integers(0, V, size=(B, T))
    targets = rng.integers(0, V, size=(B, T))
    h0 = (rng.normal(size=(1, B, H)), rng.normal(size=(1, B, H)))

    logits, _ = model.forward(tokens, h0)
    loss, d_logits = softmax_cross_entropy(logits.reshape(-1, V), targets.reshape(-1))
    grads = model.backward(d_logits.reshape(logits.shape))

    params = {k: torch.tensor(v, requires_grad=True) for k, v in model.params.items()}
    lstm = torch.nn.LSTM(E, H, batch_first=True).double()  # run with our weights via functional_call
    x = params["embedding.weight"][torch.tensor(tokens)]
    out, _ = torch.func.functional_call(
        lstm, {n: params[f"rnn.{n}"] for n, _ in lstm.named_parameters()}, (x, tuple(map(torch.tensor, h0)))
    )
    t_logits = out @ params["decoder.weight"].T + params["decoder.bias"]
    t_loss = torch.nn.functional.cross_entropy(t_logits.reshape(-1, V), torch.tensor(targets).reshape(-1))
    t_loss.backward()

    assert loss == pytest.approx(t_loss.item(), rel=1e-12)
    for name, p in params.items():
        np.testing.assert_allclose(grads[name], p.grad.numpy(), rtol=1e-8, atol=1e-12, err_msg=name)


def test_demo_loss_falls_on_repetitive_text():
    text = "the quick brown fox jumps over the lazy dog. " * 120
    config = DemoConfig(steps=60, batch_size=8, seq_len=16, hidden_size=32, embedding_size=8,
                        learning_rate=1e-2, log_every=20, sample_length=40)
    lines = []
    result = run_demo(config, text=text, log=lines.append)
    uniform = np.log(len(set(text)))
    assert np.mean(result["train_loss"][:5]) > 0.9 * uniform
    assert np.mean(result["train_loss"][-10:]) < 0.5 * uniform
    assert result["valid_loss"] < 0.5 * uniform
    assert len(result["sample"]) == 40 and set(result["sample"]) <= set(text)
    assert any("validation loss" in line for line in lines)


def test_demo_rejects_text_too_short():
    with pytest.raises(ValueError, match="text too short"):
        run_demo(DemoConfig(batch_size=8, seq_len=16), text="abc" * 10, log=lambda _: None)
