"""Reference training utilities vs torch; losses, optimisers, clipping, gradcheck, diagnostics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import relative_error, torch_twin

from rnnkit.reference.diagnostics import gradient_flow, hidden_grad_norms
from rnnkit.reference.gradcheck import check_layer, gradcheck
from rnnkit.reference.layers import GRU, LSTM, RNN
from rnnkit.reference.losses import log_softmax, mse, softmax_cross_entropy
from rnnkit.reference.optim import SGD, Adam, clip_grad_norm

TOL = 1e-12

# ------------------------------------------------------------------------------------ losses


@pytest.mark.parametrize("scale", [1.0, 1e3])  # 1e3: exp would overflow without the log-sum-exp shift
def test_softmax_cross_entropy_matches_torch(scale):
    rng = np.random.default_rng(0)
    logits, targets = scale * rng.normal(size=(7, 5)), rng.integers(0, 5, size=7)
    loss, d_logits = softmax_cross_entropy(logits, targets)
    z = torch.tensor(logits, requires_grad=True)
    loss_t = F.cross_entropy(z, torch.tensor(targets))
    loss_t.backward()
    assert np.isfinite(loss)
    assert abs(loss - loss_t.item()) <= TOL * abs(loss_t.item())
    assert relative_error(d_logits, z.grad) <= TOL
    assert relative_error(log_softmax(logits), F.log_softmax(torch.tensor(logits), dim=-1)) <= TOL


def test_softmax_cross_entropy_keeps_float32():
    logits = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    loss, d = softmax_cross_entropy(logits, np.array([0, 1, 2, 0]))
    assert d.dtype == np.float32 and isinstance(loss, float)
    ref, d64 = softmax_cross_entropy(logits.astype(np.float64), np.array([0, 1, 2, 0]))
    assert abs(loss - ref) < 1e-6 and np.abs(d - d64).max() < 1e-6


def test_mse_matches_torch():
    rng = np.random.default_rng(1)
    pred, target = rng.normal(size=(3, 4, 2)), rng.normal(size=(3, 4, 2))
    loss, d_pred = mse(pred, target)
    p = torch.tensor(pred, requires_grad=True)
    loss_t = F.mse_loss(p, torch.tensor(target))
    loss_t.backward()
    assert abs(loss - loss_t.item()) <= TOL * loss_t.item()
    assert relative_error(d_pred, p.grad) <= TOL


def test_losses_reject_bad_input_with_the_numbers():
    logits = np.zeros((3, 4))
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 4\).*max 4"):
        softmax_cross_entropy(logits, np.array([0, 1, 4]))
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 4\).*min -1"):
        softmax_cross_entropy(logits, np.array([0, -1, 2]))
    with pytest.raises(ValueError, match=r"targets: expected shape \(3,\).*got \(2,\)"):
        softmax_cross_entropy(logits, np.array([0, 1]))
    with pytest.raises(ValueError, match="targets must be integers, got dtype float64"):
        softmax_cross_entropy(logits, np.array([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match="logits must have 2 dimensions, got 3"):
        softmax_cross_entropy(np.zeros((2, 3, 4)), np.array([0, 1]))
    with pytest.raises(ValueError, match="logits must be finite, got nan"):
        softmax_cross_entropy(np.full((3, 4), np.nan), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match=r"target: expected shape \(3, 4\).*got \(4, 3\)"):
        mse(np.zeros((3, 4)), np.zeros((4, 3)))


# ------------------------------------------------------------------------------------ optimisers


def toy_loss_grads(params):
    """L = sum(sin(A) * C) + 0.5 * ||b||^2 * 3, with its gradient by hand; C fixed."""
    C = np.linspace(-1.0, 2.0, params["A"].size).reshape(params["A"].shape)
    return {"A": np.cos(params["A"]) * C, "b": 3.0 * params["b"], "input": np.ones(5)}  # "input": ignored


def toy_loss_torch(params):
    C = torch.linspace(-1.0, 2.0, params["A"].numel(), dtype=torch.float64).reshape(params["A"].shape)
    return (torch.sin(params["A"]) * C).sum() + 1.5 * (params["b"] ** 2).sum()


OPTIMISERS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.5, dampening=0.3, weight_decay=0.1)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.1, betas=(0.5, 0.9), eps=1e-6, weight_decay=0.05)),
]


@pytest.mark.parametrize("name, kwargs", OPTIMISERS, ids=[f"{n}-{sorted(k)}" for n, k in OPTIMISERS])
def test_optimiser_trajectory_matches_torch(name, kwargs):
    rng = np.random.default_rng(3)
    params = {"A": rng.normal(size=(3, 4)), "b": rng.normal(size=5)}
    params_t = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    arrays = dict(params)  # the optimiser must update these very arrays
    ours = {"SGD": SGD, "Adam": Adam}[name](params, **kwargs)
    theirs = getattr(torch.optim, name)(list(params_t.values()), **kwargs)
    for _ in range(8):
        ours.step(toy_loss_grads(params))
        theirs.zero_grad()
        toy_loss_torch(params_t).backward()
        theirs.step()
        for k in params:
            assert params[k] is arrays[k]
            assert relative_error(params[k], params_t[k]) <= TOL, k


def test_optimiser_skips_params_without_grads_and_rejects_bad_shapes():
    params = {"w": np.ones(3), "v": np.ones(2)}
    opt = Adam(params, lr=0.1)
    opt.step({"w": np.ones(3)})
    assert np.all(params["v"] == 1.0) and np.all(params["w"] < 1.0)
    with pytest.raises(ValueError, match=r"grads\['w'\]: expected shape \(3,\).*got \(4,\)"):
        opt.step({"w": np.ones(4)})
    with pytest.raises(ValueError, match="lr must lie in"):
        SGD(params, lr=0.0)
    with pytest.raises(ValueError, match="nesterov needs momentum > 0"):
        SGD(params, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match=r"betas\[1\] must lie in \[0.0, 1.0\), got 1.0"):
        Adam(params, betas=(0.9, 1.0))


@pytest.mark.parametrize("max_norm", [0.5, 100.0])  # clipping, and a norm already below the limit
def test_clip_grad_norm_matches_torch(max_norm):
    rng = np.random.default_rng(4)
    grads = {"w": rng.normal(size=(3, 4)), "b": rng.normal(size=4), "input": rng.normal(size=(2, 2)) * 100}
    tensors = [torch.zeros(3, 4, dtype=torch.float64), torch.zeros(4, dtype=torch.float64)]
    for t, k in zip(tensors, ("w", "b"), strict=True):
        t.grad = torch.tensor(grads[k])
    input_before = grads["input"].copy()
    total = clip_grad_norm(grads, max_norm)  # names=None: parameters only, not "input"
    total_t = torch.nn.utils.clip_grad_norm_(tensors, max_norm)
    assert abs(total - total_t.item()) <= TOL * total_t.item()
    for t, k in zip(tensors, ("w", "b"), strict=True):
        assert relative_error(grads[k], t.grad) <= TOL
    np.testing.assert_array_equal(grads["input"], input_before)
    if max_norm < total:
        assert np.sqrt(sum((grads[k] ** 2).sum() for k in ("w", "b"))) == pytest.approx(max_norm, rel=1e-5)
    with pytest.raises(ValueError, match=r"names \['nope'\] are not in grads"):
        clip_grad_norm(grads, 1.0, names=["nope"])


def test_a_training_run_matches_torch():
    """Layer + MSE + clipping + Adam, five steps, against the same loop in torch (params updated in place)."""
    rng = np.random.default_rng(5)
    ref = GRU(3, 4, num_layers=2, seed=0)
    module = torch_twin(ref)
    x, y = rng.normal(size=(6, 2, 3)), rng.normal(size=(6, 2, 4))
    opt, opt_t = Adam(ref.params, lr=0.05), torch.optim.Adam(module.parameters(), lr=0.05)
    losses = []
    for _ in range(5):
        out, _ = ref.forward(x)
        loss, d_out = mse(out, y)
        grads = ref.backward(d_out)
        clip_grad_norm(grads, 0.5)
        opt.step(grads)
        losses.append(loss)
        opt_t.zero_grad()
        loss_t = F.mse_loss(module(torch.tensor(x))[0], torch.tensor(y))
        loss_t.backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), 0.5)
        opt_t.step()
        assert abs(loss - loss_t.item()) <= 1e-10 * loss_t.item()
    for name, p in module.named_parameters():
        assert relative_error(ref.params[name], p) <= 1e-10, name
    assert losses[-1] < losses[0]


# ------------------------------------------------------------------------------------ gradcheck


def test_gradcheck_passes_on_a_known_gradient():
    rng = np.random.default_rng(6)
    inputs = {"x": rng.normal(size=(3, 2)), "y": rng.normal(size=4)}
    f = lambda v: np.sum(v["x"] ** 3) + np.sum(np.sin(v["y"]))
    analytic = {"x": 3 * inputs["x"] ** 2, "y": np.cos(inputs["y"])}
    before = {k: v.copy() for k, v in inputs.items()}
    assert gradcheck(f, inputs, analytic) < 1e-6
    assert gradcheck(f, inputs, analytic, max_checks=2) < 1e-6
    for k in inputs:
        np.testing.assert_array_equal(inputs[k], before[k])


@pytest.mark.parametrize("layer_class", [RNN, LSTM, GRU])
def test_gradcheck_catches_a_wrong_gradient(layer_class):
    """One entry off by 1e-4 relative, or a backward that forgets dL/dh0, must fail, naming the entry."""
    rng = np.random.default_rng(7)
    layer = layer_class(2, 3, seed=0)
    x = rng.normal(size=(4, 2, 2))
    out, _ = layer.forward(x)
    R = rng.normal(size=out.shape)

    def loss(_):
        out, _ = layer.forward(x)
        return np.sum(out * R)

    grads = layer.backward(R)
    params = dict(layer.params)
    assert gradcheck(loss, params, grads) < 1e-6
    grads["weight_hh_l0"][1, 2] *= 1 + 1e-4
    with pytest.raises(AssertionError, match=r"weight_hh_l0\[1, 2\]"):
        gradcheck(loss, params, grads)

    correct_backward = layer.backward

    def forgetful_backward(*args, **kwargs):
        grads = correct_backward(*args, **kwargs)
        grads["h0"] = np.zeros_like(grads["h0"])
        return grads

    layer.backward = forgetful_backward
    with pytest.raises(AssertionError, match=r"gradient check failed for h0\["):
        check_layer(layer, x)


def test_gradcheck_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match=r"analytic\['x'\]: expected shape \(2,\), got \(3,\)"):
        gradcheck(lambda v: 0.0, {"x": np.zeros(2)}, {"x": np.zeros(3)})
    with pytest.raises(ValueError, match="analytic has no gradient for 'x'"):
        gradcheck(lambda v: 0.0, {"x": np.zeros(2)}, {})
    with pytest.raises(ValueError, match="float64"):
        gradcheck(lambda v: 0.0, {"x": np.zeros(2, np.float32)}, {"x": np.zeros(2)})


# ------------------------------------------------------------------------------------ diagnostics


@pytest.mark.parametrize("layer_class", [RNN, LSTM, GRU])
def test_hidden_grads_match_torch(layer_class):
    """dL/dh_t = d_out[t] + (the gradient of the loss with respect to the initial state of a torch run on
    x[t+1:] started from h_t), checked for every t; hidden_grad_norms is its norm."""
    rng = np.random.default_rng(8)
    T, B, I, H = 5, 2, 3, 4
    layer = layer_class(I, H, seed=1)
    x = rng.normal(size=(T, B, I))
    out, _ = layer.forward(x)
    d_out = rng.normal(size=out.shape)
    layer.backward(d_out)
    dh = layer.hidden_grads["_l0"]
    module = torch_twin(layer)
    is_lstm = layer_class is LSTM
    states = []  # (h_t, c_t) after each step, from torch
    with torch.no_grad():
        state = None
        for t in range(T):
            _, state = module(torch.tensor(x[t : t + 1]), state)
            states.append(state)
    for t in range(T - 1):
        start = tuple(s.clone().requires_grad_(True) for s in states[t]) if is_lstm else states[t].clone()
        if not is_lstm:
            start.requires_grad_(True)
        rest, _ = module(torch.tensor(x[t + 1 :]), start)
        (rest * torch.tensor(d_out[t + 1 :])).sum().backward()
        h_grad = (start[0] if is_lstm else start).grad[0].numpy()
        assert relative_error(dh[t], d_out[t] + h_grad) <= 1e-10, t
    np.testing.assert_allclose(dh[T - 1], d_out[T - 1], rtol=1e-15)
    norms = hidden_grad_norms(layer)
    np.testing.assert_allclose(norms, [np.linalg.norm(dh[t]) for t in range(T)], rtol=1e-14)


def test_hidden_grad_norms_errors():
    layer = RNN(2, 3, num_layers=2, bidirectional=True)
    with pytest.raises(RuntimeError, match="backward"):
        hidden_grad_norms(layer)
    out, _ = layer.forward(np.ones((3, 1, 2)))
    layer.backward(np.ones_like(out))
    assert hidden_grad_norms(layer, "_l1_reverse").shape == (3,)
    with pytest.raises(ValueError, match=r"one of \['_l0', '_l0_reverse', '_l1', '_l1_reverse'\], got '_l2'"):
        hidden_grad_norms(layer, "_l2")


def test_vanishing_gradients_rnn_decays_faster_than_lstm():
    """Loss on the last of 50 outputs: the share of the gradient reaching t = 0, ||dL/dh_0|| / ||dL/dh_49||,
    is smaller for a tanh RNN than for an LSTM on every seed, and by over 10x in the median (measured: 9x to
    6e4x)."""
    decay = {k: [] for k in ("RNN", "LSTM")}
    for seed in range(5):
        for kind in decay:
            norms = gradient_flow(kind, seq_len=50, hidden_size=32, seed=seed)
            assert norms.shape == (50,) and np.all(np.isfinite(norms))
            decay[kind].append(norms[0] / norms[-1])
    rnn, lstm = np.array(decay["RNN"]), np.array(decay["LSTM"])
    assert np.all(rnn < lstm), (rnn, lstm)
    assert np.median(lstm / rnn) > 10, (rnn, lstm)
    assert np.all(rnn < 1e-9) and np.all(lstm < 1e-6)  # both vanish at torch's default initialisation
    with_forget_bias = gradient_flow("LSTM", seq_len=50, hidden_size=32, seed=0, forget_bias=1.0)
    assert with_forget_bias[0] / with_forget_bias[-1] > 1e3 * lstm[0]  # a forget bias of 1 keeps far more


def test_gradient_flow_errors():
    with pytest.raises(ValueError, match=r"kind must be one of .*got 'Transformer'"):
        gradient_flow("Transformer")
    with pytest.raises(ValueError, match="forget_bias applies to kind 'LSTM' only"):
        gradient_flow("GRU", forget_bias=1.0)
