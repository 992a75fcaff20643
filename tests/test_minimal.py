"""MinGRU / MinLSTM: the torch log-space parallel scan against the sequential step (values and autograd
gradients), the NumPy twins' hand-written BPTT against torch autograd and finite differences, and a tiny
example worked by hand."""

import math

import numpy as np
import pytest
import torch

from rnnkit.nn.minimal import MinGRU, MinLSTM, g, log_g
from rnnkit.reference import minimal as ref

CLASSES = {"MinGRU": (MinGRU, ref.MinGRU), "MinLSTM": (MinLSTM, ref.MinLSTM)}
F64 = torch.float64


def rel_err(a, b):
    a = a.detach().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    b = b.detach().numpy() if isinstance(b, torch.Tensor) else np.asarray(b)
    return np.abs(a - b).max() / max(np.abs(b).max(), 1e-12)


def sequential(rnn, x, h0=None):
    """The step-by-step run (generation mode) over a time-major x."""
    h, ys = h0, []
    for t in range(x.shape[0]):
        y, h = rnn.step(x[t], h)
        ys.append(y)
    return torch.stack(ys), h


def fresh(name, L=2, I=4, H=5, T=7, B=3, seed=0, **kwargs):
    torch.manual_seed(seed)
    rnn = CLASSES[name][0](I, H, num_layers=L, dtype=F64, **kwargs)
    with torch.no_grad():  # wider weights than the init, so that both branches of g and saturated gates occur
        for p in rnn.parameters():
            p.mul_(3.0)
    x = torch.randn(T, B, I, dtype=F64, requires_grad=True)
    h0 = (torch.rand(L, B, H, dtype=F64) + 0.1).requires_grad_()
    return rnn, x, h0


@pytest.mark.parametrize("name", CLASSES)
def test_parallel_scan_equals_sequential_steps_values_and_gradients(name):
    rnn, x, h0 = fresh(name)
    out_p, h_p = rnn(x, h0)
    out_s, h_s = sequential(rnn, x, h0)
    assert rel_err(out_p, out_s) <= 1e-12 and rel_err(h_p, h_s) <= 1e-12
    assert torch.equal(h_p[-1], out_p[-1])
    r_out, r_h = torch.randn_like(out_p), torch.randn_like(h_p)
    leaves = [*rnn.parameters(), x, h0]
    grads_p = torch.autograd.grad((out_p * r_out).sum() + (h_p * r_h).sum(), leaves)
    grads_s = torch.autograd.grad((out_s * r_out).sum() + (h_s * r_h).sum(), leaves)
    for gp, gs in zip(grads_p, grads_s, strict=True):
        assert rel_err(gp, gs) <= 1e-10


@pytest.mark.parametrize("name", CLASSES)
def test_long_sequence_stays_finite_and_exact(name):
    rnn, x, h0 = fresh(name, L=1, T=400, B=2, seed=1)
    out_p, _ = rnn(x.detach(), h0.detach())
    out_s, _ = sequential(rnn, x.detach(), h0.detach())
    assert torch.isfinite(out_p).all() and rel_err(out_p, out_s) <= 1e-9


@pytest.mark.parametrize("name", CLASSES)
def test_default_h0_is_one_half_and_batch_first(name):
    rnn, x, _ = fresh(name)
    out, h_n = rnn(x)
    out_half, h_half = rnn(x, torch.full((2, 3, 5), 0.5, dtype=F64))
    assert torch.equal(out, out_half) and torch.equal(h_n, h_half)
    y, h = rnn.step(x[0])
    assert torch.allclose(y, out[0], rtol=1e-12, atol=0)
    bf = CLASSES[name][0](4, 5, num_layers=2, batch_first=True, dtype=F64)
    bf.load_state_dict(rnn.state_dict())
    out_bf, h_bf = bf(x.transpose(0, 1))
    assert out_bf.shape == (3, 7, 5)
    assert torch.allclose(out_bf.transpose(0, 1), out, rtol=1e-13, atol=0) and torch.allclose(h_bf, h_n)


@pytest.mark.parametrize("name", CLASSES)
def test_parameters_names_shapes_and_init(name):
    rnn = CLASSES[name][0](6, 4, num_layers=2)
    G = {"MinGRU": 2, "MinLSTM": 3}[name] * 4
    shapes = {k: tuple(v.shape) for k, v in rnn.state_dict().items()}
    assert shapes == {"weight_ih_l0": (G, 6), "bias_ih_l0": (G,), "weight_ih_l1": (G, 4), "bias_ih_l1": (G,)}
    assert rnn.weight_ih_l0.abs().max() <= 1 / math.sqrt(6) and rnn.bias_ih_l1.abs().max() <= 1 / math.sqrt(4)
    assert rnn.weight_ih_l0.dtype == torch.float32
    no_bias = CLASSES[name][0](6, 4, bias=False)
    assert set(no_bias.state_dict()) == {"weight_ih_l0"}


def test_errors_name_expected_and_given_values():
    rnn = MinGRU(3, 4, num_layers=2, dtype=F64)
    x = torch.randn(5, 2, 3, dtype=F64)
    with pytest.raises(ValueError, match=r"h0 must be positive"):
        rnn(x, torch.zeros(2, 2, 4, dtype=F64))
    with pytest.raises(ValueError, match=r"h0 must be positive"):
        rnn.step(x[0], -torch.ones(2, 2, 4, dtype=F64))
    with pytest.raises(ValueError, match=r"h0: expected shape \(2, 2, 4\), got \(1, 2, 4\)"):
        rnn(x, torch.ones(1, 2, 4, dtype=F64))
    with pytest.raises(ValueError, match="Expected 3, got 5"):
        rnn(torch.randn(5, 2, 5, dtype=F64))
    with pytest.raises(ValueError, match="Expected 3, got 2"):
        rnn.step(torch.randn(2, 2, dtype=F64))
    with pytest.raises(ValueError, match="must be 3-D, got 2-D"):
        rnn(torch.randn(5, 3, dtype=F64))
    with pytest.raises(ValueError, match="dtype"):
        rnn(torch.randn(5, 2, 3))
    with pytest.raises(ValueError, match="hidden_size must be a positive integer, got 0"):
        MinLSTM(3, 0)
    twin = ref.MinGRU(3, 4)
    with pytest.raises(ValueError, match="h0 must be positive"):
        twin.forward(np.ones((5, 2, 3)), np.zeros((1, 2, 4)))
    with pytest.raises(ValueError, match="Expected 3, got 5"):
        twin.forward(np.ones((5, 2, 5)))


def test_g_and_log_g():
    x = torch.tensor([-30.0, -2.0, -1e-9, 0.0, 1e-9, 0.7, 40.0], dtype=F64, requires_grad=True)
    assert torch.allclose(g(x), torch.where(x >= 0, x + 0.5, torch.sigmoid(x)))
    assert torch.allclose(log_g(x), torch.log(g(x)), rtol=1e-12, atol=0)
    (grad,) = torch.autograd.grad(log_g(x).sum(), x)
    assert torch.isfinite(grad).all()
    (grad_g,) = torch.autograd.grad(g(x).sum(), x)
    assert torch.allclose(grad, grad_g / g(x).detach(), rtol=1e-12, atol=0)  # d log g = g' / g, also at 0
    assert abs(g(torch.tensor(-1e-12, dtype=F64)) - 0.5) < 1e-12  # continuous at 0


@pytest.mark.parametrize("name", CLASSES)
@pytest.mark.parametrize("layout", [dict(), dict(batch_first=True, bias=False)], ids=["default", "bf-nobias"])
def test_numpy_twin_matches_torch(name, layout):
    rnn, x, h0 = fresh(name, seed=2, **layout)
    twin = CLASSES[name][1](4, 5, num_layers=2, **layout)
    twin.load_state_dict(rnn.state_dict())
    x_in = x.transpose(0, 1) if layout else x
    out, h_n = rnn(x_in, h0)
    out_np, h_np = twin.forward(x_in.detach().numpy(), h0.detach().numpy())
    assert rel_err(out_np, out) <= 1e-10 and rel_err(h_np, h_n) <= 1e-10
    r_out, r_h = torch.randn_like(out), torch.randn_like(h_n)
    names = [n for n, _ in rnn.named_parameters()]
    leaves = [p for _, p in rnn.named_parameters()] + [x, h0]
    autograd = torch.autograd.grad((out * r_out).sum() + (h_n * r_h).sum(), leaves)
    grads = twin.backward(r_out.numpy(), r_h.numpy())
    assert list(grads) == [*names, "input", "h0"]
    for key, expected in zip([*names, "input", "h0"], autograd, strict=True):
        if key == "input" and layout:
            expected = expected.transpose(0, 1)
        assert rel_err(grads[key], expected) <= 1e-10, key


@pytest.mark.parametrize("name", CLASSES)
def test_numpy_twin_finite_differences(name):
    twin = CLASSES[name][1](2, 2, num_layers=2, seed=3)
    rng = np.random.default_rng(4)
    for p in twin.params.values():
        p *= 3.0
    x, h0 = rng.normal(size=(4, 3, 2)), rng.uniform(0.1, 1.0, size=(2, 3, 2))
    r = rng.normal(size=(4, 3, 2))
    twin.forward(x, h0)
    grads = twin.backward(r)
    eps = 1e-6
    for key, arr in {**twin.params, "input": x, "h0": h0}.items():
        numeric = np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):
            old = arr[idx]
            arr[idx] = old + eps
            up = (twin.forward(x, h0)[0] * r).sum()
            arr[idx] = old - eps
            down = (twin.forward(x, h0)[0] * r).sum()
            arr[idx] = old
            numeric[idx] = (up - down) / (2 * eps)
        assert np.abs(numeric - grads[key]).max() <= 1e-8 * max(1.0, np.abs(numeric).max()), key


def test_hand_checked_min_gru_and_min_lstm():
    """H = I = 1. MinGRU with w_z = b_z = 0 (z = 1/2), w_h = 1, b_h = 0, h_0 = 1/2:
    x = 1:      h~ = 1 + 0.5 = 1.5,          h_1 = 0.5 * 0.5  + 0.5 * 1.5  = 1.0
    x = 0:      h~ = 0.5,                    h_2 = 0.5 * 1.0  + 0.5 * 0.5  = 0.75
    x = -ln 3:  h~ = sigma(-ln 3) = 1/4,     h_3 = 0.5 * 0.75 + 0.5 * 0.25 = 0.5
    L = h_3: dL/dx_3 = z g'(-ln 3) = 0.5 * (1/4)(3/4) = 3/32; dL/dx_2 = (1 - z) z g'(0) = 1/4;
             dL/dx_1 = (1 - z)^2 z g'(1) = 1/8; dL/dh_0 = (1 - z)^3 = 1/8.
    MinLSTM with b_f = ln 3 (f = 3/4), b_i = 0 (i = 1/2), so f' = 0.6, i' = 0.4; w_h = 1, b_h = 0:
    x = 1:      h_1 = 0.6 * 0.5 + 0.4 * 1.5 = 0.9
    x = 0:      h_2 = 0.6 * 0.9 + 0.4 * 0.5 = 0.74
    """
    x = torch.tensor([[[1.0]], [[0.0]], [[-math.log(3.0)]]], dtype=F64, requires_grad=True)  # (T=3, B=1, I=1)
    gru = MinGRU(1, 1, dtype=F64)
    gru.load_state_dict({"weight_ih_l0": torch.tensor([[0.0], [1.0]], dtype=F64),
                         "bias_ih_l0": torch.zeros(2, dtype=F64)})
    out, h_n = gru(x)
    assert torch.allclose(out.flatten(), torch.tensor([1.0, 0.75, 0.5], dtype=F64), rtol=1e-14, atol=0)
    (dx,) = torch.autograd.grad(h_n.sum(), x)
    assert torch.allclose(dx.flatten(), torch.tensor([1 / 8, 1 / 4, 3 / 32], dtype=F64), rtol=1e-12, atol=0)
    twin = ref.MinGRU(1, 1)
    twin.load_state_dict(gru.state_dict())
    out_np, _ = twin.forward(x.detach().numpy())
    assert np.allclose(out_np.ravel(), [1.0, 0.75, 0.5], rtol=1e-14, atol=0)
    grads = twin.backward(np.array([0.0, 0.0, 1.0]).reshape(3, 1, 1))
    assert np.allclose(grads["input"].ravel(), [1 / 8, 1 / 4, 3 / 32], rtol=1e-12, atol=0)
    assert np.allclose(grads["h0"].ravel(), [1 / 8], rtol=1e-12, atol=0)

    lstm = MinLSTM(1, 1, dtype=F64)
    lstm.load_state_dict({"weight_ih_l0": torch.tensor([[0.0], [0.0], [1.0]], dtype=F64),
                          "bias_ih_l0": torch.tensor([math.log(3.0), 0.0, 0.0], dtype=F64)})
    out, _ = lstm(x[:2])
    assert torch.allclose(out.flatten(), torch.tensor([0.9, 0.74], dtype=F64), rtol=1e-14, atol=0)
    twin = ref.MinLSTM(1, 1)
    twin.load_state_dict(lstm.state_dict())
    assert np.allclose(twin.forward(x[:2].detach().numpy())[0].ravel(), [0.9, 0.74], rtol=1e-14, atol=0)
