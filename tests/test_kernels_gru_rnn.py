"""The fused C++ GRU and Elman RNN kernels (kernels/gru.py, kernels/rnn.py) against their slow twin, the scan.

1. One layer-direction through the kernel boundary, `kernels.run` with use("cpu") vs use("scan"), on fresh
   seeded inputs: every combination of layer norm, recurrent mask, zoneout (mask, eval p, off), lengths
   (1 and T among them, unsorted) and bias, T = 1 and B = 1 included, the GEMM's small-batch loop and its
   at::mm path; outputs, h_n and the gradients of xp, h0, W_hh, b_hh and the layer-norm parameters, float64
   to 1e-10 (tests/oracle.compare), float32 within its precision.
2. The whole layer: rnnkit.nn.GRU / RNN (bidirectional, two layers, every variant, injected masks, lengths).
3. NaN in the padding reaches no result and no gradient.
4. torch.library.opcheck on the ops, and torch.compile(fullgraph=True) through `run`.
"""

import itertools

import pytest
import torch
from built import require_kernel
from oracle import as_bfloat16, assert_layer_within_bfloat16, assert_within_bfloat16, compare, torch_threads

from rnnkit import kernels
from rnnkit import nn as rnn
from rnnkit.nn.cells import CellParams

MODES = ("GRU", "RNN_TANH", "RNN_RELU")
GATES = {"GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}
ZONEOUTS = ("off", "mask", "p")
SHAPES = ((5, 4, 3), (1, 3, 5), (6, 1, 4), (4, 11, 9))   # (T, B, H): T = 1, B = 1, B > 8 (the at::mm path)

# the ops' autograd and fake tensors are registered by these modules (which need the build)
require_kernel("GRU")
require_kernel("RNN_TANH")
import rnnkit.kernels.gru as gru_kernel  # noqa: E402
import rnnkit.kernels.rnn as rnn_kernel  # noqa: E402


def inputs(mode, T, B, H, layer_norm, mask, zoneout, lengths, bias, dtype=torch.float64, seed=0):
    """Fresh random arguments of `kernels.run` and the leaves to differentiate (never zeros or ones)."""
    gen = torch.Generator().manual_seed(seed)
    randn = lambda *shape: torch.randn(shape, generator=gen, dtype=dtype)  # noqa: E731
    G = GATES[mode] * H
    leaves = {"xp": randn(T, B, G), "h0": randn(B, H), "W_hh": randn(G, H) / H ** 0.5}
    if bias:
        leaves["b_hh"] = randn(G)
    if layer_norm:
        leaves["gamma"], leaves["beta"] = 1 + 0.3 * randn(G), 0.3 * randn(G)
    for leaf in leaves.values():
        leaf.requires_grad_()
    ln = (leaves["gamma"], leaves["beta"]) if layer_norm else None
    p = CellParams(None, leaves["W_hh"], None, leaves.get("b_hh"), None, None, ln, None, mode == "RNN_RELU")
    m = torch.rand(B, H, generator=gen, dtype=dtype) * 2 if mask else None
    d = {"off": [], "p": [0.3],
         "mask": [torch.bernoulli(torch.full((T, B, H), 0.4, dtype=dtype), generator=gen)]}[zoneout]
    n = None
    if lengths:
        n = torch.randint(1, T + 1, (B,), generator=gen)
        n[0], n[-1] = T, 1          # the full length and 1; the rest random, unsorted
    return leaves, (leaves["xp"], (leaves["h0"],), p, m, d, n)


def results(backend, mode, args):
    """y and h_n of `kernels.run` with `backend` ("cpu": the C++ kernel, "scan": its slow twin)."""
    with kernels.use(backend):
        y, (h_n,) = kernels.run(mode, *args)
    return {"y": y, "h_n": h_n}


def compare_backends(mode, leaves, args, **tolerance):
    compare(lambda: results("cpu", mode, args), lambda: results("scan", mode, args), leaves, **tolerance)


# ---------------------------------------------------------------------------------------- the boundary


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "T{}-B{}-H{}".format(*s))
def test_kernel_equals_scan_float64(mode, shape):
    for seed, (layer_norm, mask, zoneout, lengths, bias) in enumerate(
            itertools.product((False, True), (False, True), ZONEOUTS, (False, True), (False, True))):
        leaves, args = inputs(mode, *shape, layer_norm, mask, zoneout, lengths, bias, seed=seed)
        compare_backends(mode, leaves, args, seed=seed)


@pytest.mark.parametrize("mode", MODES)
def test_kernel_equals_scan_float32(mode):
    for seed, (layer_norm, zoneout) in enumerate(itertools.product((False, True), ZONEOUTS)):
        leaves, args = inputs(mode, 7, 10, 13, layer_norm, True, zoneout, True, True, torch.float32, seed)
        compare_backends(mode, leaves, args, seed=seed, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mode", MODES)
def test_kernel_equals_scan_on_two_threads(mode):
    """Rows split across threads (B * G past the kernel's per-thread grain): dL/dgamma is per-thread partial
    sums added at the end."""
    leaves, args = inputs(mode, 3, 600, 64, True, True, "mask", True, True, seed=5)
    with torch_threads(2):
        compare_backends(mode, leaves, args, seed=5)


@pytest.mark.parametrize("mode", MODES)
def test_gradient_of_h_n_alone(mode):
    leaves, args = inputs(mode, 5, 3, 4, True, True, "mask", True, True)
    compare(lambda: {"h_n": results("cpu", mode, args)["h_n"]},
            lambda: {"h_n": results("scan", mode, args)["h_n"]}, leaves)


@pytest.mark.parametrize("mode", MODES)
def test_nan_in_padding_reaches_nothing(mode):
    leaves, args = inputs(mode, 6, 4, 5, True, True, "mask", True, True)
    xp, state, p, m, d, n = args
    padded = torch.arange(6).unsqueeze(1) >= n.unsqueeze(0)                  # (T, B)
    with torch.no_grad():
        xp[padded] = float("nan")
        d[0][padded] = float("nan")
    with kernels.use("cpu"):
        y, (h_n,) = kernels.run(mode, *args)
    (y.sum() + h_n.sum()).backward()
    assert torch.isfinite(y).all() and torch.isfinite(h_n).all() and (y[padded] == 0).all()
    for name, leaf in leaves.items():
        assert torch.isfinite(leaf.grad).all(), name
    assert (leaves["xp"].grad[padded] == 0).all()


# ---------------------------------------------------------------------------------------- the layers


@pytest.mark.parametrize("layer", ["GRU", "RNN_RELU"])
def test_layer_equals_scan(layer):
    torch.manual_seed(0)
    cls, extra = (rnn.GRU, {}) if layer == "GRU" else (rnn.RNN, {"nonlinearity": "relu"})
    T, B, I, H = 6, 4, 3, 5
    model = cls(I, H, num_layers=2, bidirectional=True, layer_norm=True, recurrent_dropout=0.3, zoneout=0.2,
                weight_drop=0.4, dtype=torch.float64, **extra)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.3 * torch.randn_like(param))       # layer-norm gamma, beta away from 1, 0
    x = torch.randn(T, B, I, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(4, B, H, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([6, 2, 5, 1])
    masks = model.sample_masks(T, B)

    leaves = {"x": x, "h0": h0, **dict(model.named_parameters())}

    def forward(backend):
        with kernels.use(backend):
            output, h_n = model(x, h0, lengths=lengths, masks=masks if model.training else None)
        return {"output": output, "h_n": h_n}

    compare(lambda: forward("cpu"), lambda: forward("scan"), leaves)
    model.eval()                                             # zoneout's expectation, no masks
    compare(lambda: forward("cpu"), lambda: forward("scan"), leaves)


@pytest.mark.parametrize("mode", MODES)
def test_bfloat16_within_its_rounding(mode):
    """bfloat16 (the GEMMs in bfloat16, the rest in float32) against the scan in float64 on the same values,
    with layer norm, recurrent dropout's mask, zoneout masks and lengths."""
    leaves, _ = inputs(mode, 8, 12, 6, True, True, "mask", True, True, seed=8)
    low, high = as_bfloat16(leaves)

    def args(v, dtype):
        _, (_, _, _, m, d, n) = inputs(mode, 8, 12, 6, True, True, "mask", True, True, seed=8)
        ln = (v["gamma"], v["beta"])
        p = CellParams(None, v["W_hh"], None, v["b_hh"], None, None, ln, None, mode == "RNN_RELU")
        return v["xp"], (v["h0"],), p, m.to(dtype), [d[0].to(dtype)], n

    assert_within_bfloat16(lambda: results("cpu", mode, args(low, torch.bfloat16)),
                           lambda: results("scan", mode, args(high, torch.float64)), low, high)


@pytest.mark.parametrize("layer", ["GRU", "RNN"])
def test_bfloat16_layer_runs_the_kernel(layer):
    """rnnkit.nn.GRU / RNN in bfloat16, layer norm and zoneout (training, masks shared), on the C++ kernel
    (use("cpu") refuses what it cannot run): against the same layer in float32 on the same bfloat16 values,
    no further off than the scan in bfloat16 (torch's own bfloat16 arithmetic) is; gradients in bfloat16."""
    torch.manual_seed(0)
    model = (rnn.GRU if layer == "GRU" else rnn.RNN)(4, 16, num_layers=2, layer_norm=True, zoneout=0.2)
    assert_layer_within_bfloat16(model)



# ---------------------------------------------------------------------------------------- the ops


@pytest.mark.parametrize("mode", ["GRU", "RNN_TANH"])
def test_opcheck(mode):
    cell = "gru" if mode == "GRU" else "rnn"
    op, backward = getattr(torch.ops.rnnkit, f"{cell}_forward"), getattr(torch.ops.rnnkit, f"{cell}_backward")
    for layer_norm, zoneout, lengths in ((True, "mask", True), (False, "p", False)):
        leaves, (xp, (h0,), p, m, d, n) = inputs(mode, 3, 2, 4, layer_norm, True, zoneout, lengths, True)
        mask, zoneout_p = (d[0], 0.0) if zoneout == "mask" else (None, d[0])
        args = (xp, h0, p.W_hh, p.b_hh, *(p.ln_hh or (None, None)), m, mask, zoneout_p, n)
        args += () if mode == "GRU" else (False,)          # relu
        torch.library.opcheck(op, args)
        y, h_n, *saved = op(*args)
        backward_args = (torch.randn_like(y), torch.randn_like(h_n), *args[2:], *saved)
        torch.library.opcheck(backward, tuple(a.detach() if isinstance(a, torch.Tensor) else a
                                              for a in backward_args))


@pytest.mark.parametrize("mode", ["GRU", "RNN_TANH"])
def test_compiled_run_equals_eager(mode):
    fused = gru_kernel.run if mode == "GRU" else rnn_kernel.run
    leaves, args = inputs(mode, 4, 3, 5, True, True, "mask", True, True)
    compiled = torch.compile(fused, fullgraph=True, backend="aot_eager")

    def ours():
        y, (h_n,) = compiled(*args)
        return {"y": y, "h_n": h_n}

    compare(ours, lambda: results("cpu", mode, args), leaves)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_nan_in_a_valid_step_stays_nan(mode, dtype):
    """NaN in a real step's input reaches that row's outputs from then on, as in the scan (the float32
    activations come from a polynomial exp that clamps its input: they must keep NaN, not hide it)."""
    leaves, args = inputs(mode, 5, 3, 4, False, False, "off", False, True, dtype=dtype, seed=6)
    xp = args[0].detach().clone()
    xp[2, 1, -1] = float("nan")                                    # the last gate's last unit, row 1, step 2
    ours = results("cpu", mode, (xp, *args[1:]))
    assert torch.isnan(ours["y"][2:, 1]).any(dim=-1).all() and torch.isnan(ours["h_n"][1]).any()
    assert torch.isfinite(ours["y"][:2]).all() and torch.isfinite(ours["y"][:, [0, 2]]).all()
