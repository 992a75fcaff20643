"""rnnkit.nn variants (layer_norm, recurrent_dropout, zoneout, weight_drop) against independent oracles.

1. `spec_forward`: a straightforward per-step torch autograd loop written here from docs/variants.md (layer
   norm written out), fed the same masks: outputs, final states and every gradient, float64.
2. The NumPy twins in rnnkit.reference.variants (hand-written BPTT): the same masks, lengths, eval mode.
3. Statistics of the random masks in training mode (fractions, zoneout's mean, masks constant over time).
"""

import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnkit import nn as rnn
from rnnkit.reference import variants as twins

I, H, T, B = 3, 4, 4, 3
KINDS = {
    "rnn_tanh": (rnn.RNN, {}), "rnn_relu": (rnn.RNN, {"nonlinearity": "relu"}),
    "lstm": (rnn.LSTM, {}), "lstm_proj": (rnn.LSTM, {"proj_size": 2}), "gru": (rnn.GRU, {}),
}
VARIANT_SETS = {
    "layer_norm": {"layer_norm": True},
    "recurrent_dropout": {"recurrent_dropout": 0.4},
    "zoneout": {"zoneout": 0.3},
    "weight_drop": {"weight_drop": 0.5},
    "all": {"layer_norm": True, "recurrent_dropout": 0.3, "zoneout": 0.2, "weight_drop": 0.4},
}



pytestmark = pytest.mark.usefixtures("torch_float64")  # every test here runs in float64


def make(kind, seed=0, **kwargs):
    """A layer with random (not 1/0) layer-norm parameters, so they are exercised."""
    cls, extra = KINDS[kind]
    torch.manual_seed(seed)
    layer = cls(I, H, **extra, **kwargs)
    with torch.no_grad():
        for name, param in layer.named_parameters():
            if name.startswith("layer_norm_"):
                param.copy_(torch.randn(param.shape) * 0.5 + (1.0 if "_weight" in name else 0.0))
    return layer


def spec_forward(layer, x, masks):
    """The spec's equations, one step at a time, full-length sequences. x (T, B, I) -> out, h_n, c_n."""
    P, is_lstm = getattr(layer, "proj_size", 0) or layer.hidden_size, layer.mode == "LSTM"
    D, v = (2 if layer.bidirectional else 1), layer.variants
    get = lambda name: getattr(layer, name, None)  # noqa: E731

    def ln(value, stem, sfx):
        if not v.layer_norm:
            return value
        mean = value.mean(-1, keepdim=True)
        var = ((value - mean) ** 2).mean(-1, keepdim=True)      # biased
        return (value - mean) / torch.sqrt(var + 1e-5) * get(f"{stem}_weight{sfx}") + get(f"{stem}_bias{sfx}")

    def add(value, bias):
        return value if bias is None else value + bias

    inp, h_n, c_n = x, [], []
    for layer_index in range(layer.num_layers):
        outs = []
        for direction in range(D):
            sfx = f"_l{layer_index}" + ("_reverse" if direction else "")
            W_ih, W_hh, b_ih, b_hh = (get(n + sfx) for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
            W_hh = W_hh * masks[f"weight_drop{sfx}"] if f"weight_drop{sfx}" in masks else W_hh
            m = masks.get(f"recurrent_dropout{sfx}", 1.0)
            h, c, ys = x.new_zeros(x.shape[1], P), x.new_zeros(x.shape[1], layer.hidden_size), [None] * len(x)
            for t in (reversed(range(len(x))) if direction else range(len(x))):
                xp = add(ln(inp[t] @ W_ih.T, "layer_norm_ih", sfx), b_ih)
                hp = add(ln((h * m) @ W_hh.T, "layer_norm_hh", sfx), b_hh)
                if is_lstm:
                    i, f, g, o = (xp + hp).chunk(4, 1)
                    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                    h_new = torch.sigmoid(o) * torch.tanh(ln(c_new, "layer_norm_c", sfx))
                    h_new = h_new if get(f"weight_hr{sfx}") is None else h_new @ get(f"weight_hr{sfx}").T
                elif layer.mode == "GRU":
                    (xr, xz, xn), (hr, hz, hn) = xp.chunk(3, 1), hp.chunk(3, 1)
                    r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
                    h_new = (1 - z) * torch.tanh(xn + r * hn) + z * h
                else:
                    h_new = torch.relu(xp + hp) if layer.mode == "RNN_RELU" else torch.tanh(xp + hp)
                if v.zoneout > 0:
                    d_h = masks[f"zoneout_h{sfx}"][t] if f"zoneout_h{sfx}" in masks else v.zoneout
                    d_c = masks[f"zoneout_c{sfx}"][t] if f"zoneout_c{sfx}" in masks else v.zoneout
                    h_new = d_h * h + (1 - d_h) * h_new
                    c_new = d_c * c + (1 - d_c) * c_new if is_lstm else c
                h, c = h_new, (c_new if is_lstm else c)
                ys[t] = h
            outs.append(torch.stack(ys))
            h_n.append(h)
            c_n.append(c)
        inp = torch.cat(outs, -1)
    return [inp, torch.stack(h_n)] + ([torch.stack(c_n)] if is_lstm else [])


def outputs_and_grads(forward, layer, x, seed=1):
    results = forward(x)
    g = torch.Generator().manual_seed(seed)
    loss = sum((r * torch.randn(r.shape, generator=g)).sum() for r in results)
    return results + list(torch.autograd.grad(loss, [x, *layer.parameters()]))


def ours_forward(layer, masks):
    def forward(x):
        out, h_n = layer(x, masks=masks)
        return [out, *(h_n if isinstance(h_n, tuple) else (h_n,))]
    return forward


@pytest.mark.parametrize("variant", list(VARIANT_SETS))
@pytest.mark.parametrize("kind", list(KINDS))
def test_equals_spec_equations(kind, variant):
    """Train mode with fixed masks and eval mode, 2 layers, bidirectional: values and all gradients."""
    layer = make(kind, num_layers=2, bidirectional=True, **VARIANT_SETS[variant])
    x = torch.randn(T, B, I, requires_grad=True)
    for training in (True, False):
        layer.train(training)
        masks = layer.sample_masks(T, B) if training else {}
        ours = outputs_and_grads(ours_forward(layer, masks), layer, x)
        oracle = outputs_and_grads(lambda x: spec_forward(layer, x, masks), layer, x)  # noqa: B023
        for a, b in zip(ours, oracle, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_sampled_masks_are_the_ones_used():
    """A training forward records its masks; the same masks given back reproduce it; a new draw differs."""
    layer = make("lstm", num_layers=2, **VARIANT_SETS["all"])
    x = torch.randn(T, B, I)
    out, _ = layer(x)
    masks = layer.last_masks
    assert sorted(masks) == sorted(f"{k}_l{n}" for k in ("recurrent_dropout", "weight_drop", "zoneout_c",
                                                          "zoneout_h") for n in (0, 1))
    torch.testing.assert_close(layer(x, masks=masks)[0], out, rtol=0, atol=0)
    assert not torch.equal(layer(x)[0], out)
    layer.eval()
    torch.testing.assert_close(layer(x)[0], layer(x)[0], rtol=0, atol=0)   # eval is deterministic


@pytest.mark.parametrize("name, p", [("recurrent_dropout", 0.3), ("weight_drop", 0.6), ("zoneout_h", 0.25)])
def test_mask_statistics(name, p):
    """Inverted-dropout masks hold 0 and 1/(1-p) with P(0) = p; zoneout masks hold 0/1 with P(1) = p."""
    kwargs = {"zoneout" if name.startswith("zoneout") else name: p}
    layer = rnn.LSTM(8, 128, **kwargs)
    mask = layer.sample_masks(T=40, B=64, generator=torch.Generator().manual_seed(0))[name + "_l0"]
    shapes = {"recurrent_dropout": (64, 128), "weight_drop": (512, 128), "zoneout_h": (40, 64, 128)}
    assert mask.shape == shapes[name]
    n = mask.numel()
    if name.startswith("zoneout"):
        assert set(mask.unique().tolist()) == {0.0, 1.0}
        fraction = mask.mean().item()
    else:
        assert set(mask.unique().tolist()) == {0.0, 1 / (1 - p)}
        fraction = (mask == 0).double().mean().item()
    assert abs(fraction - p) < 5 * (p * (1 - p) / n) ** 0.5


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_zoneout_train_mean_is_eval(kind):
    """E[h_1] over training masks = p h_0 + (1 - p) h~_1 = the eval output (one step, many copies)."""
    layer, n = make(kind, zoneout=0.3, layer_norm=True), 20000
    x = torch.randn(1, 1, I).expand(1, n, I)
    h0 = torch.randn(1, 1, H).expand(1, n, H)
    hx = (h0, torch.randn(1, 1, H).expand(1, n, H)) if kind == "lstm" else h0
    with torch.no_grad():
        train_out = layer(x, hx)[0]
        eval_out = layer.eval()(x[:, :1], tuple(h[:, :1] for h in hx) if kind == "lstm" else hx[:, :1])[0]
    spread = train_out.std(1)                          # (1, H)
    assert ((train_out.mean(1) - eval_out[:, 0]).abs() <= 5 * spread / n**0.5 + 1e-12).all()


def test_recurrent_dropout_mask_constant_over_time():
    """One (B, H) mask per sequence: a mask varying over time would not match the spec loop with one m."""
    layer = make("gru", recurrent_dropout=0.5)
    x = torch.randn(6, B, I)
    out, _ = layer(x)
    (m,) = layer.last_masks.values()
    assert m.shape == (B, H)
    torch.testing.assert_close(out, spec_forward(layer, x, layer.last_masks)[0], rtol=1e-10, atol=1e-12)


def test_weight_drop_fused_path_equals_scan_and_keeps_parameters():
    """weight_drop alone runs the fused kernel on W_hh * M: equal to the scan twin, parameters untouched."""
    layer = make("lstm", num_layers=2, bidirectional=True, weight_drop=0.5)
    before = {k: v.clone() for k, v in layer.state_dict().items()}
    params = list(layer.parameters())
    x = torch.randn(T, B, I, requires_grad=True)
    masks = layer.sample_masks(T, B)
    fused = outputs_and_grads(ours_forward(layer, masks), layer, x)
    layer.use_scan = True
    scanned = outputs_and_grads(ours_forward(layer, masks), layer, x)
    for a, b in zip(fused, scanned, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert all(a is b for a, b in zip(layer.parameters(), params, strict=True))
    assert all(a is b for a, b in zip(layer._flat_weights, params, strict=True))
    for k, v in layer.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_recurrent_dropout_in_eval_is_torch_nn():
    layer = make("lstm", num_layers=2, recurrent_dropout=0.5, weight_drop=0.5).eval()
    plain = torch.nn.LSTM(I, H, num_layers=2)
    plain.load_state_dict(layer.state_dict())
    x = torch.randn(T, B, I)
    torch.testing.assert_close(layer(x)[0], plain(x)[0], rtol=0, atol=0)


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_tanh"])
def test_variants_with_lengths_equal_each_sequence_alone(kind):
    """Eval, all variants, bidirectional: a padded batch with lengths (and packed) = each sequence alone."""
    layer = make(kind, num_layers=2, bidirectional=True, **VARIANT_SETS["all"]).eval()
    lengths, x = [2, 4, 3], torch.randn(T, B, I)
    out, h_n = layer(x, lengths=torch.tensor(lengths))
    packed_out, packed_h = layer(pack_padded_sequence(x, lengths, enforce_sorted=False))
    torch.testing.assert_close(pad_packed_sequence(packed_out, total_length=T)[0], out, rtol=0, atol=0)
    for b, n in enumerate(lengths):
        alone, alone_h = layer(x[:n, b])                  # unbatched (n, I)
        torch.testing.assert_close(out[:n, b], alone, rtol=1e-12, atol=1e-13)
        assert (out[n:, b] == 0).all()
        tup = lambda s: s if isinstance(s, tuple) else (s,)  # noqa: E731
        for state, state_alone, packed in zip(tup(h_n), tup(alone_h), tup(packed_h), strict=True):
            torch.testing.assert_close(state[:, b], state_alone, rtol=1e-12, atol=1e-13)
            torch.testing.assert_close(packed[:, b], state[:, b], rtol=0, atol=0)


def test_layer_norm_parameters():
    layer = rnn.LSTM(I, H, num_layers=2, bidirectional=True, layer_norm=True)
    shapes = {k: tuple(v.shape) for k, v in layer.state_dict().items() if k.startswith("layer_norm")}
    assert shapes["layer_norm_ih_weight_l1_reverse"] == (4 * H,)
    assert shapes["layer_norm_hh_bias_l0"] == (4 * H,)
    assert shapes["layer_norm_c_weight_l1"] == (H,)
    assert len(shapes) == 6 * 4
    gru = rnn.GRU(I, H, layer_norm=True)
    assert sorted(k for k in gru.state_dict() if k.startswith("layer_norm")) == [
        f"layer_norm_{part}_{kind}_l0" for part in ("hh", "ih") for kind in ("bias", "weight")
    ]
    for name, param in layer.named_parameters():
        if name.startswith("layer_norm"):
            assert torch.equal(param, torch.full_like(param, 1.0 if "_weight" in name else 0.0)), name
    other = rnn.LSTM(I, H, num_layers=2, bidirectional=True, layer_norm=True)
    other.load_state_dict(make("lstm", num_layers=2, bidirectional=True, layer_norm=True).state_dict())


# ------------------------------------------------------------------------------ the NumPy twins



@pytest.mark.parametrize("kind", ["rnn_tanh", "lstm", "gru"])
def test_equals_numpy_twin(kind):
    """Same weights, same masks, lengths: outputs, h_n and every gradient (incl. input, h_0) to 1e-9."""
    options = VARIANT_SETS["all"]
    layer = make(kind, num_layers=2, bidirectional=True, **options)
    twin = {"rnn_tanh": twins.VariantRNN, "lstm": twins.VariantLSTM, "gru": twins.VariantGRU}[kind](
        I, H, num_layers=2, bidirectional=True, **options)
    twin.params = {k: v.detach().numpy().copy() for k, v in layer.state_dict().items()}
    lengths = [4, 2, 3]
    for training in (True, False):
        layer.train(training)
        twin.train(training)
        x = torch.randn(T, B, I, requires_grad=True)
        hx = torch.randn(4, B, H, requires_grad=True)
        hx = (hx, torch.randn(4, B, H, requires_grad=True)) if kind == "lstm" else hx
        states = hx if isinstance(hx, tuple) else (hx,)
        out, h_n = layer(x, hx, lengths=lengths)
        masks = layer.last_masks
        finals = h_n if isinstance(h_n, tuple) else (h_n,)
        d_out, d_finals = torch.randn(out.shape), [torch.randn(f.shape) for f in finals]
        loss = (out * d_out).sum() + sum((f * d).sum() for f, d in zip(finals, d_finals, strict=True))
        grads = torch.autograd.grad(loss, [x, *layer.parameters(), *states])
        np_masks = {k: v.numpy() for k, v in masks.items()} if training else None
        ref_out, ref_h_n = twin.forward(x.detach().numpy(), tuple(s.detach().numpy() for s in states)
                                        if kind == "lstm" else hx.detach().numpy(), lengths=np.array(lengths),
                                        masks=np_masks)
        np.testing.assert_allclose(out.detach().numpy(), ref_out, rtol=1e-9, atol=1e-12)
        for f, r in zip(finals, ref_h_n if kind == "lstm" else (ref_h_n,), strict=True):
            np.testing.assert_allclose(f.detach().numpy(), r, rtol=1e-9, atol=1e-12)
        ref_grads = twin.backward(d_out.numpy(), *(d.numpy() for d in d_finals))
        names = ["input", *(n for n, _ in layer.named_parameters()), "h0", "c0"][: len(grads)]
        for name, grad in zip(names, grads, strict=True):
            np.testing.assert_allclose(grad.numpy(), ref_grads[name], rtol=1e-9, atol=1e-12, err_msg=name)


def assert_same_mean(a: np.ndarray, b: np.ndarray, axis: int) -> None:
    """Sample means agree within 5 standard errors (two independent samples along `axis`)."""
    n_a, n_b = a.shape[axis], b.shape[axis]
    error = np.sqrt(a.var(axis) / n_a + b.var(axis) / n_b)
    assert (np.abs(a.mean(axis) - b.mean(axis)) <= 5 * error + 1e-12).all()


def assert_same_distribution(a: np.ndarray, b: np.ndarray, axis: int) -> None:
    """Same mean and same variance (the mean of the squared deviations), each within 5 standard errors."""
    assert_same_mean(a, b, axis)
    squares = [(v - v.mean(axis, keepdims=True)) ** 2 for v in (a, b)]
    assert_same_mean(*squares, axis)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_train_mode_statistics_match_twin(kind):
    """Masks drawn independently by each side (no injection): outputs have the same mean and variance.

    recurrent_dropout and zoneout draw per sequence, so 20000 copies of one sequence are 20000 samples;
    weight_drop draws one mask per call, so it is sampled over 300 calls.
    """
    twin_cls = {"lstm": twins.VariantLSTM, "gru": twins.VariantGRU}[kind]
    for options, calls, n in (({"layer_norm": True, "recurrent_dropout": 0.3, "zoneout": 0.2}, 1, 20000),
                              ({"weight_drop": 0.5}, 300, 1)):
        layer = make(kind, **options)
        twin = twin_cls(I, H, **options, seed=0)
        twin.params = {k: v.detach().numpy().copy() for k, v in layer.state_dict().items()}
        x = torch.randn(T, 1, I).expand(T, n, I)
        with torch.no_grad():
            ours = np.concatenate([layer(x)[0].numpy() for _ in range(calls)], axis=1)    # (T, samples, H)
        theirs = np.concatenate([twin.forward(x.numpy().copy())[0] for _ in range(calls)], axis=1)
        assert_same_distribution(ours, theirs, axis=1)
        assert ours[1:].std(1).min() > 1e-3      # the masks do vary the output (h_0 = 0 at t = 0)
