"""NumPy variant layers (layer norm, recurrent dropout, zoneout, weight drop) vs torch autograd in float64.

The oracle is the straightforward torch loop over the spec's equations (torch's own layer_norm), run on the
same parameters, inputs and masks; outputs and every gradient must agree to rel. err 1e-8. Finite differences
check the hand-written backward independently of torch.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rnnkit import reference
from rnnkit.reference import variants

TOL = 1e-8
GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def rel_err(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return np.abs(a - b).max() / max(np.abs(b).max(), 1e-12)


def torch_oracle(mode, layer, params, x, h0, c0, masks, lengths):
    """The spec's equations as a plain torch loop: (output, h_n, c_n), time-major."""
    T, B, _ = x.shape
    D = layer.num_directions
    training = layer.training
    layer_input, h_n, c_n = x, [], []
    for k in range(layer.num_layers):
        outs = []
        for d in range(D):
            index, sfx = k * D + d, f"_l{k}" + ("_reverse" if d else "")
            W_ih, W_hh = params["weight_ih" + sfx], params["weight_hh" + sfx]
            zeros = torch.zeros(W_hh.shape[0], dtype=torch.float64)
            b_ih, b_hh = params.get("bias_ih" + sfx, zeros), params.get("bias_hh" + sfx, zeros)
            if training and layer.weight_drop > 0:
                W_hh = W_hh * masks["weight_drop" + sfx]  # already Bernoulli(1 - p) / (1 - p)

            def ln(v, part, sfx=sfx):
                if not layer.layer_norm:
                    return v
                w, b = params[f"layer_norm_{part}_weight{sfx}"], params[f"layer_norm_{part}_bias{sfx}"]
                return F.layer_norm(v, (v.shape[-1],), w, b, eps=1e-5)

            xp = ln(layer_input @ W_ih.T, "ih") + b_ih  # (T, B, G)
            h, c = h0[index], c0[index] if c0 is not None else None
            ys = [None] * T
            for t in reversed(range(T)) if d else range(T):
                h_in = h
                if training and layer.recurrent_dropout > 0:
                    h_in = h * masks["recurrent_dropout" + sfx]
                hp = ln(h_in @ W_hh.T, "hh") + b_hh
                c_new = None
                if mode == "LSTM":
                    i, f, g, o = (xp[t] + hp).chunk(4, dim=1)
                    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
                    c_new = f * c + i * g
                    h_new = o * torch.tanh(ln(c_new, "c"))
                elif mode == "GRU":
                    x_r, x_z, x_n = xp[t].chunk(3, dim=1)
                    h_r, h_z, h_n_ = hp.chunk(3, dim=1)
                    r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
                    n = torch.tanh(x_n + r * h_n_)
                    h_new = (1 - z) * n + z * h
                elif mode == "RNN_TANH":
                    h_new = torch.tanh(xp[t] + hp)
                else:
                    h_new = torch.relu(xp[t] + hp)
                if layer.zoneout > 0:
                    p = layer.zoneout
                    d_h = masks["zoneout_h" + sfx][t] if training else p
                    h_new = d_h * h + (1 - d_h) * h_new
                    if mode == "LSTM":
                        d_c = masks["zoneout_c" + sfx][t] if training else p
                        c_new = d_c * c + (1 - d_c) * c_new
                if lengths is None:
                    h, c, ys[t] = h_new, c_new, h_new
                else:
                    m = (t < lengths)[:, None]  # (B, 1)
                    h = torch.where(m, h_new, h)
                    c = torch.where(m, c_new, c) if mode == "LSTM" else None
                    ys[t] = h_new * m
            outs.append(torch.stack(ys))
            h_n.append(h)
            c_n.append(c)
        layer_input = torch.cat(outs, dim=2)
    return layer_input, torch.stack(h_n), torch.stack(c_n) if mode == "LSTM" else None


def check_against_torch(layer, T=5, B=3, lengths=None, masks=None, seed=0):
    """Run the NumPy layer and the torch oracle on fresh inputs; assert outputs and all gradients agree."""
    rng = np.random.default_rng(seed)
    mode, D, L, H = layer.mode, layer.num_directions, layer.num_layers, layer.hidden_size
    # Layer-norm parameters away from their init, so that gamma and beta are really tested.
    params = {name: p + rng.normal(scale=0.3, size=p.shape) if "layer_norm" in name else p
              for name, p in layer.state_dict().items()}
    layer.load_state_dict(params)
    x = rng.normal(size=(T, B, layer.input_size))
    h0 = rng.normal(scale=0.5, size=(L * D, B, H))
    c0 = rng.normal(scale=0.5, size=(L * D, B, H)) if mode == "LSTM" else None
    hx = (h0, c0) if mode == "LSTM" else h0
    x_in = x.transpose(1, 0, 2) if layer.batch_first else x
    out, state = layer.forward(x_in, hx, lengths=lengths, masks=masks)
    h_n, c_n = state if mode == "LSTM" else (state, None)
    used = layer.last_masks
    d_out = rng.normal(size=out.shape)
    d_h_n = rng.normal(size=h_n.shape)
    d_c_n = rng.normal(size=h_n.shape) if mode == "LSTM" else None
    grads = layer.backward(d_out, d_h_n, d_c_n)

    tp = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    tx, th0 = torch.tensor(x, requires_grad=True), torch.tensor(h0, requires_grad=True)
    tc0 = torch.tensor(c0, requires_grad=True) if c0 is not None else None
    tmasks = {k: torch.tensor(v) for k, v in used.items()}
    tlen = None if lengths is None else torch.tensor(lengths)
    t_out, t_h, t_c = torch_oracle(mode, layer, tp, tx, th0, tc0, tmasks, tlen)
    t_out_cmp = t_out.transpose(0, 1) if layer.batch_first else t_out
    assert rel_err(out, t_out_cmp.detach().numpy()) <= TOL
    assert rel_err(h_n, t_h.detach().numpy()) <= TOL
    loss = (t_out_cmp * torch.tensor(d_out)).sum() + (t_h * torch.tensor(d_h_n)).sum()
    if c0 is not None:
        assert rel_err(c_n, t_c.detach().numpy()) <= TOL
        loss = loss + (t_c * torch.tensor(d_c_n)).sum()
    leaves = {**tp, "input": tx, "h0": th0, **({"c0": tc0} if c0 is not None else {})}
    names = list(leaves)
    autograd = torch.autograd.grad(loss, [leaves[n] for n in names], allow_unused=True)
    assert sorted(grads) == sorted(names)
    for name, g in zip(names, autograd, strict=True):
        expected = np.zeros_like(grads[name]) if g is None else g.numpy()
        if name == "input" and layer.batch_first:
            expected = expected.transpose(1, 0, 2)
        assert grads[name].shape == expected.shape, name
        assert rel_err(grads[name], expected) <= TOL, (name, rel_err(grads[name], expected))
    return used


CLASSES = {"RNN_TANH": variants.VariantRNN, "LSTM": variants.VariantLSTM, "GRU": variants.VariantGRU}
OPTIONS = [
    dict(layer_norm=True),
    dict(recurrent_dropout=0.4),
    dict(zoneout=0.3),
    dict(weight_drop=0.5),
    dict(layer_norm=True, recurrent_dropout=0.3, zoneout=0.25, weight_drop=0.4),
]


@pytest.mark.parametrize("mode", ["RNN_TANH", "LSTM", "GRU"])
@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "+".join(o))
def test_each_option_matches_torch_autograd(mode, options):
    layer = CLASSES[mode](4, 3, seed=1, **options)
    check_against_torch(layer, seed=2)


@pytest.mark.parametrize("mode", ["RNN_TANH", "LSTM", "GRU"])
def test_stacked_bidirectional_lengths_batch_first_no_bias(mode):
    options = dict(layer_norm=True, recurrent_dropout=0.3, zoneout=0.2, weight_drop=0.3)
    layer = CLASSES[mode](
        4, 3, num_layers=2, bidirectional=True, batch_first=True, bias=False, seed=3, **options
    )
    check_against_torch(layer, T=5, B=3, lengths=np.array([5, 2, 4]), seed=4)


def test_relu_rnn_with_layer_norm():
    layer = variants.LayerNormRNN(4, 3, nonlinearity="relu", zoneout=0.3, seed=5)
    assert layer.mode == "RNN_RELU"
    check_against_torch(layer, seed=6)


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_eval_mode_is_deterministic_and_takes_the_zoneout_expectation(mode):
    layer = CLASSES[mode](4, 3, num_layers=2, layer_norm=True, recurrent_dropout=0.5, zoneout=0.3,
                          weight_drop=0.5, seed=7).eval()
    check_against_torch(layer, seed=8)  # the oracle uses m = 1, M = 1 and d = p in eval
    x = np.random.default_rng(9).normal(size=(4, 2, 4))
    out1, _ = layer.forward(x)
    out2, _ = layer.forward(x)
    assert np.array_equal(out1, out2)
    assert layer.last_masks == {}
    with pytest.raises(ValueError, match="training mode only"):
        layer.forward(x, masks={"zoneout_h_l0": np.ones((4, 2, 3))})


def test_given_masks_are_used_and_drawn_masks_are_reported():
    options = dict(recurrent_dropout=0.5, zoneout=0.4, weight_drop=0.5)
    layer = variants.VariantLSTM(4, 3, bidirectional=True, seed=10, **options)
    rng = np.random.default_rng(11)
    T, B = 6, 2
    masks = {}
    for sfx in ("_l0", "_l0_reverse"):
        masks["recurrent_dropout" + sfx] = (rng.random((B, 3)) < 0.5) * 2.0  # 0 or 1 / (1 - p)
        masks["weight_drop" + sfx] = (rng.random((12, 3)) < 0.5) * 2.0
        masks["zoneout_h" + sfx] = (rng.random((T, B, 3)) < 0.4) * 1.0
        masks["zoneout_c" + sfx] = (rng.random((T, B, 3)) < 0.4) * 1.0
    used = check_against_torch(layer, T=T, B=B, masks=masks, seed=12)
    for name in masks:
        assert np.array_equal(used[name], masks[name])
    x = rng.normal(size=(T, B, 4))
    out_drawn, _ = layer.forward(x)  # masks drawn from the layer's generator
    drawn = layer.last_masks
    assert sorted(drawn) == sorted(masks)
    assert set(np.unique(drawn["zoneout_h_l0"])) == {0.0, 1.0}
    assert set(np.unique(drawn["recurrent_dropout_l0_reverse"])) == {0.0, 2.0}
    assert set(np.unique(drawn["weight_drop_l0"])) == {0.0, 2.0}
    out_again, _ = layer.forward(x, masks=drawn)
    assert np.array_equal(out_drawn, out_again)
    out_other, _ = layer.forward(x, masks=masks)
    assert not np.allclose(out_drawn, out_other)


def test_mask_validation():
    layer = variants.VariantGRU(4, 3, zoneout=0.3, seed=0)
    x = np.zeros((5, 2, 4))
    with pytest.raises(ValueError, match="unexpected masks"):
        layer.forward(x, masks={"recurrent_dropout_l0": np.ones((2, 3))})
    with pytest.raises(ValueError, match="unexpected masks"):
        layer.forward(x, masks={"zoneout_h": np.ones((5, 2, 3))})
    with pytest.raises(ValueError, match=r"expected shape \(5, 2, 3\), got \(5, 2, 4\)"):
        layer.forward(x, masks={"zoneout_h_l0": np.ones((5, 2, 4))})
    with pytest.raises(ValueError, match="only 0 and 1"):
        layer.forward(x, masks={"zoneout_h_l0": np.full((5, 2, 3), 0.5)})
    with pytest.raises(ValueError, match=r"recurrent_dropout must be a probability in \[0, 1\), got 1.0"):
        variants.VariantLSTM(4, 3, recurrent_dropout=1.0)
    with pytest.raises(ValueError, match="zoneout must be a probability"):
        variants.VariantLSTM(4, 3, zoneout=-0.1)
    with pytest.raises(ValueError, match="zoneout must be a probability"):
        variants.VariantLSTM(4, 3, zoneout=1.0)
    with pytest.raises(ValueError, match=r"at least one time step and one sequence, got shape \(0, 2, 4\)"):
        layer.forward(np.zeros((0, 2, 4)))
    with pytest.raises(ValueError, match=r"\(h_0, c_0\), got a ndarray of shape \(1, 2, 3\)"):
        variants.VariantLSTM(4, 3).forward(x, np.zeros((1, 2, 3)))


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN_TANH"])
def test_no_options_equals_the_plain_reference_layer_including_truncation(mode):
    plain = {"LSTM": reference.LSTM, "GRU": reference.GRU, "RNN_TANH": reference.RNN}[mode](
        4, 3, num_layers=2, bidirectional=True, seed=13)
    layer = CLASSES[mode](4, 3, num_layers=2, bidirectional=True, seed=13)
    assert all(np.array_equal(layer.state_dict()[k], v) for k, v in plain.state_dict().items())
    rng = np.random.default_rng(14)
    x, lengths = rng.normal(size=(6, 3, 4)), np.array([6, 3, 5])
    out_a, _ = plain.forward(x, lengths=lengths)
    out_b, _ = layer.forward(x, lengths=lengths)
    assert rel_err(out_b, out_a) <= 1e-12
    d_out = rng.normal(size=out_a.shape)
    ga, gb = plain.backward(d_out, truncate=2), layer.backward(d_out, truncate=2)
    assert sorted(ga) == sorted(gb)
    for name in ga:
        assert rel_err(gb[name], ga[name]) <= 1e-12, name


def test_layer_norm_parameter_names_and_init():
    lstm = variants.LayerNormLSTM(3, 2, bidirectional=True)
    sd = lstm.state_dict()
    for sfx in ("_l0", "_l0_reverse"):
        for part, size in (("ih", 8), ("hh", 8), ("c", 2)):
            assert np.array_equal(sd[f"layer_norm_{part}_weight{sfx}"], np.ones(size))
            assert np.array_equal(sd[f"layer_norm_{part}_bias{sfx}"], np.zeros(size))
    gru_names = set(variants.LayerNormGRU(3, 2).state_dict())
    assert gru_names == {
        "weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0",
        "layer_norm_ih_weight_l0", "layer_norm_ih_bias_l0",
        "layer_norm_hh_weight_l0", "layer_norm_hh_bias_l0",
    }


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_finite_differences(mode):
    """Central differences on every parameter entry, the input and the initial state (all options on)."""
    layer = CLASSES[mode](2, 2, num_layers=2, bidirectional=True, layer_norm=True, recurrent_dropout=0.3,
                          zoneout=0.3, weight_drop=0.3, seed=15)
    rng = np.random.default_rng(16)
    for p in layer.state_dict().values():
        p += rng.normal(scale=0.2, size=p.shape)
    T, B = 3, 2
    x = rng.normal(size=(T, B, 2))
    h0 = rng.normal(scale=0.5, size=(4, B, 2))
    hx = (h0, rng.normal(scale=0.5, size=(4, B, 2))) if mode == "LSTM" else h0
    layer.forward(x, hx)
    masks = layer.last_masks
    d_out = rng.normal(size=(T, B, 4))

    def loss():
        out, _ = layer.forward(x, hx, masks=masks)
        return float((out * d_out).sum())

    loss()
    grads = layer.backward(d_out)
    arrays = {**layer.params, "input": x, "h0": h0}
    eps = 1e-6
    for name, arr in arrays.items():
        numeric = np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):
            old = arr[idx]
            arr[idx] = old + eps
            up = loss()
            arr[idx] = old - eps
            down = loss()
            arr[idx] = old
            numeric[idx] = (up - down) / (2 * eps)
        assert np.abs(numeric - grads[name]).max() <= 1e-7 * max(1.0, np.abs(numeric).max()), name
