"""The input projection through torch.ops.rnnkit.product (rnnkit/kernels/linear.py, csrc/linear.cpp) against
its twin, nn/cells.input_projection, and float64 autograd: values and the gradients of x, W_ih, b_ih and the
layer norm's parameters, at shapes on both sides of the oneDNN threshold (2^24 multiply-adds)."""

import pytest
import torch
from built import require
from oracle import torch_threads

from rnnkit import kernels
from rnnkit import nn as rnn
from rnnkit.kernels import linear
from rnnkit.nn import cells
from rnnkit.nn.cells import CellParams

require("linear op", linear.op_available)


def leaves(T, B, I, G, layer_norm, bias, seed):
    gen = torch.Generator().manual_seed(seed)
    rand = lambda *shape: torch.randn(shape, generator=gen, dtype=torch.float64).requires_grad_()  # noqa: E731
    out = {"x": rand(T, B, I), "W_ih": rand(G, I)}
    if bias:
        out["b_ih"] = rand(G)
    if layer_norm:
        out["gamma"], out["beta"] = rand(G), rand(G)
    return out


def project(projection, values, dtype):
    cast = {name: v.detach().to(dtype).requires_grad_() for name, v in values.items()}
    ln = (cast["gamma"], cast["beta"]) if "gamma" in cast else None
    p = CellParams(cast["W_ih"], None, cast.get("b_ih"), None, None, ln, None, None, False)
    xp = projection(cast["x"], p)
    weights = torch.randn(xp.shape, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    (xp.double() * weights).sum().backward()
    return xp.detach().double(), {name: v.grad.double() for name, v in cast.items()}


# (T, B, I, G): 3 * 5 * 7 * 8 multiply-adds (ATen's mm), 64 * 32 * 128 * 64 = 2^24 (oneDNN's matmul)
@pytest.mark.parametrize("shape", [(3, 5, 7, 8), (64, 32, 128, 64)])
@pytest.mark.parametrize("layer_norm, bias", [(False, True), (False, False), (True, True), (True, False)])
def test_equals_float64_autograd(shape, layer_norm, bias):
    values = leaves(*shape, layer_norm, bias, seed=sum(shape) + 2 * layer_norm + bias)
    expected, expected_grads = project(cells.input_projection, values, torch.float64)
    with torch_threads(2):
        got, grads = project(linear.input_projection, values, torch.float32)
    scale = expected.abs().max().item()
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5 * scale)
    assert sorted(grads) == sorted(expected_grads)
    for name, grad in grads.items():
        torch.testing.assert_close(grad, expected_grads[name], rtol=1e-4,
                                   atol=1e-5 * expected_grads[name].abs().max().item(), msg=name)


def test_runs_the_op_only_where_it_should():
    """float32 on CPU runs the op; float64 and backend "scan" run the twin, the very same numbers."""
    values = leaves(4, 3, 5, 8, False, True, seed=1)
    W, b = values["W_ih"].detach(), values["b_ih"].detach()
    p = lambda dtype: CellParams(W.to(dtype), None, b.to(dtype), None, None, None, None, None, False)  # noqa: E731
    x64 = values["x"].detach()
    p64 = p(torch.float64)
    assert torch.equal(linear.input_projection(x64, p64), cells.input_projection(x64, p64))
    x32 = x64.float()
    with kernels.use("scan"):
        assert torch.equal(linear.input_projection(x32, p(torch.float32)),
                           cells.input_projection(x32, p(torch.float32)))
    assert linear._use_op("cpu", torch.float32) and not linear._use_op("cpu", torch.float64)


def test_product_op():
    a, b = torch.randn(40, 30), torch.randn(20, 30)
    torch.testing.assert_close(torch.ops.rnnkit.product(a, b.t()), a @ b.t())
    torch.library.opcheck(torch.ops.rnnkit.product.default, (a, b.t()))
    with pytest.raises(RuntimeError, match=r"expected a \(M, K\) and b \(K, N\), got a \[40, 30\] and b"):
        torch.ops.rnnkit.product(a, b)
    with pytest.raises(RuntimeError, match="expected a and b of one dtype"):
        torch.ops.rnnkit.product(a, b.t().double())


def test_layer_float32_matches_float64():
    """A whole two-layer bidirectional LSTM with layer norm, float32 (the op) against float64 (the twin)."""
    torch.manual_seed(4)
    layer = rnn.LSTM(6, 8, num_layers=2, bidirectional=True, layer_norm=True).double()
    x = torch.randn(7, 3, 6, dtype=torch.float64)
    expected = layer(x)[0]
    got = layer.float()(x.float())[0]
    torch.testing.assert_close(got.double(), expected, rtol=1e-4, atol=1e-5)


def test_autocast_keeps_the_twin():
    """Under CPU autocast the projection is F.linear's, cast to bfloat16 as torch.nn's layers are."""
    values = leaves(4, 3, 5, 8, False, True, seed=2)
    W, b = values["W_ih"].detach().float(), values["b_ih"].detach().float()
    p = CellParams(W, None, b, None, None, None, None, None, False)
    x = values["x"].detach().float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got, expected = linear.input_projection(x, p), cells.input_projection(x, p)
    assert got.dtype == expected.dtype == torch.bfloat16
    assert torch.equal(got, expected)
