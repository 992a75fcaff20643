"""MinGRU / MinLSTM under the rnnkit.nn layer contract: lengths, PackedSequence, bidirectional, dropout
between layers. The log-space parallel scan against its NumPy twin (hand-written BPTT, step by step with a
length mask) on the same fresh float64 inputs: outputs, h_n and every gradient (weights, input, h_0)."""

import numpy as np
import pytest
import torch
from oracle import compare, probes
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnkit.nn import MinGRU, MinLSTM
from rnnkit.reference import minimal as ref

CLASSES = {"MinGRU": (MinGRU, ref.MinGRU), "MinLSTM": (MinLSTM, ref.MinLSTM)}
I, H, T = 3, 4, 6
LENGTHS = [4, 6, 1, 3]
B = len(LENGTHS)
LAYOUTS = {  # name: constructor kwargs, lengths or None
    "plain": ({}, None),
    "lengths": ({}, LENGTHS),
    "2_layers_lengths": ({"num_layers": 2}, LENGTHS),
    "bidirectional": ({"bidirectional": True}, None),
    "2_layers_bidirectional_lengths_bf_nobias": (
        {"num_layers": 2, "bidirectional": True, "batch_first": True, "bias": False}, LENGTHS),
}

pytestmark = pytest.mark.usefixtures("torch_float64")  # every test here runs in float64


def fresh(name, seed=0, **kwargs):
    """Ours with wider weights than the init (both branches of g, saturated gates), x and a positive h_0."""
    torch.manual_seed(seed)
    layer = CLASSES[name][0](I, H, **kwargs)
    with torch.no_grad():
        for p in layer.parameters():
            p.mul_(3.0)
    D = 2 if layer.bidirectional else 1
    x = torch.randn((B, T, I) if layer.batch_first else (T, B, I), requires_grad=True)
    h0 = (torch.rand(layer.num_layers * D, B, H) + 0.1).requires_grad_()
    return layer, x, h0


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("name", list(CLASSES))
def test_equals_numpy_twin(name, layout):
    kwargs, lengths = LAYOUTS[layout]
    layer, x, h0 = fresh(name, **kwargs)
    twin = CLASSES[name][1](I, H, **kwargs)
    twin.load_state_dict(layer.state_dict())
    out, h_n = twin.forward(x.detach().numpy(), h0.detach().numpy(), lengths)
    results = {"output": torch.tensor(out), "h_n": torch.tensor(h_n)}
    weights = probes(results)
    grads = twin.backward(weights["output"].numpy(), weights["h_n"].numpy())
    theirs = {**results, "grad input": torch.tensor(grads["input"]), "grad h0": torch.tensor(grads["h0"]),
              **{f"grad {n}": torch.tensor(grads[n]) for n, _ in layer.named_parameters()}}
    leaves = {"input": x, "h0": h0, **dict(layer.named_parameters())}
    ours = lambda: dict(zip(("output", "h_n"), layer(x, h0, lengths=lengths), strict=True))  # noqa: E731
    compare(ours, theirs, leaves, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", list(CLASSES))
def test_packed_input_equals_lengths(name):
    layer, x, h0 = fresh(name, num_layers=2, bidirectional=True)
    out, h_n = layer(x, h0, lengths=torch.tensor(LENGTHS))
    packed_out, packed_h = layer(pack_padded_sequence(x, LENGTHS, enforce_sorted=False), h0)
    torch.testing.assert_close(pad_packed_sequence(packed_out, total_length=T)[0], out, rtol=0, atol=0)
    torch.testing.assert_close(packed_h, h_n, rtol=0, atol=0)
    assert out.shape == (T, B, 2 * H) and h_n.shape == (4, B, H)


@pytest.mark.parametrize("name", list(CLASSES))
def test_bidirectional_is_forward_and_reversed_backward(name):
    """The backward direction = a one-way layer with the _reverse weights over the reversed sequence."""
    layer, x, h0 = fresh(name, bidirectional=True)
    forward_only = CLASSES[name][0](I, H)
    backward_only = CLASSES[name][0](I, H)
    state = layer.state_dict()
    forward_only.load_state_dict({k: v for k, v in state.items() if not k.endswith("_reverse")})
    backward_only.load_state_dict({k.removesuffix("_reverse"): v for k, v in state.items()
                                   if k.endswith("_reverse")})
    out, h_n = layer(x, h0)
    out_f, h_f = forward_only(x, h0[:1])
    out_b, h_b = backward_only(x.flip(0), h0[1:])
    torch.testing.assert_close(out, torch.cat([out_f, out_b.flip(0)], dim=-1), rtol=1e-13, atol=1e-14)
    torch.testing.assert_close(h_n, torch.cat([h_f, h_b]), rtol=1e-13, atol=1e-14)
    assert sorted(state) == ["bias_ih_l0", "bias_ih_l0_reverse", "weight_ih_l0", "weight_ih_l0_reverse"]
    assert layer.weight_ih_l0.shape == (CLASSES[name][0].gates * H, I)
    assert CLASSES[name][0](I, H, num_layers=2, bidirectional=True).weight_ih_l1_reverse.shape[1] == 2 * H


@pytest.mark.parametrize("name", list(CLASSES))
def test_dropout_between_layers_in_training_only(name):
    layer, x, _ = fresh(name, num_layers=2, dropout=0.5)
    x = x.detach()
    eval_out = layer.eval()(x)[0]
    torch.manual_seed(1)
    train_out = layer.train()(x)[0]
    assert not torch.allclose(train_out, eval_out)
    torch.manual_seed(1)
    torch.testing.assert_close(layer(x)[0], train_out, rtol=0, atol=0)  # the draw is torch's RNG
    no_dropout = CLASSES[name][0](I, H, num_layers=2)
    no_dropout.load_state_dict(layer.state_dict())
    torch.testing.assert_close(eval_out, no_dropout(x)[0], rtol=0, atol=0)
    one_layer = CLASSES[name][0](I, H, dropout=0.5).train()
    assert torch.equal(one_layer(x)[0], one_layer(x)[0])  # no layer above to drop into
    assert "dropout=0.5" in repr(layer)
    assert "bidirectional=True" in repr(CLASSES[name][0](I, H, bidirectional=True))


def test_errors_name_expected_and_given_values():
    layer = MinGRU(I, H, bidirectional=True)
    x = torch.randn(T, B, I)
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, 6\] \(the padded length\), got \[7, 1, "):
        layer(x, lengths=[7, 1, 1, 1])
    with pytest.raises(ValueError, match="lengths must have one entry per sequence: expected 4, got 2"):
        layer(x, lengths=[2, 2])
    with pytest.raises(ValueError, match="lengths must be None for a PackedSequence input"):
        layer(pack_padded_sequence(x, LENGTHS, enforce_sorted=False), lengths=LENGTHS)
    with pytest.raises(ValueError, match=r"h0: expected shape \(2, 4, 4\), got \(1, 4, 4\)"):
        layer(x, torch.ones(1, B, H))
    with pytest.raises(ValueError, match="expected bidirectional=False, got True"):
        layer.step(x[0])
    with pytest.raises(ValueError, match=r"dropout must be a probability in \[0, 1\], got 1.5"):
        MinLSTM(I, H, dropout=1.5)
    with pytest.raises(ValueError, match="lengths must be sorted in decreasing order"):
        layer(x, lengths=LENGTHS, enforce_sorted=True)


@pytest.mark.parametrize("name", list(CLASSES))
def test_numpy_twin_with_lengths_finite_differences(name):
    """The twin's masked BPTT against central differences (lengths, two bidirectional layers)."""
    twin = CLASSES[name][1](2, 2, num_layers=2, bidirectional=True, seed=3)
    rng = np.random.default_rng(4)
    for p in twin.params.values():
        p *= 3.0
    lengths = [3, 1, 4]
    x, h0 = rng.normal(size=(4, 3, 2)), rng.uniform(0.1, 1.0, size=(4, 3, 2))
    r, s = rng.normal(size=(4, 3, 4)), rng.normal(size=(4, 3, 2))

    def loss():
        out, h_n = twin.forward(x, h0, lengths)
        return (out * r).sum() + (h_n * s).sum()

    loss()
    grads = twin.backward(r, s)
    eps = 1e-6
    for key, arr in {**twin.params, "input": x, "h0": h0}.items():
        numeric = np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):
            old = arr[idx]
            arr[idx] = old + eps
            up = loss()
            arr[idx] = old - eps
            down = loss()
            arr[idx] = old
            numeric[idx] = (up - down) / (2 * eps)
        assert np.abs(numeric - grads[key]).max() <= 1e-8 * max(1.0, np.abs(numeric).max()), key
