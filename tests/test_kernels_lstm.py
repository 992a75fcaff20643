"""The fused C++ LSTM kernel (rnnkit/kernels/lstm.py, csrc/lstm.cpp) against its slow twin, the scan.

1. The kernel boundary, `kernels.run("LSTM", ...)` with use("cpu") vs use("scan"), float64 to 1e-10: outputs,
   final states and the gradients of xp, h0, c0, W_hh, b_hh, the layer-norm parameters and W_hr, over every
   combination of layer norm, recurrent mask, zoneout (masks, eval p), projection, lengths and bias, at
   B = 1 / T = 1 and larger; float32 within its rounding.
2. Padding: NaN in xp past each length reaches no result and no gradient.
3. The whole layer (two layers, bidirectional, every variant, injected masks, lengths) on both backends.
4. The ops themselves: torch.library.opcheck (schema, fake tensors, autograd), torch.compile(fullgraph=True).
"""

import itertools

import pytest
import torch
from built import require_kernel
from oracle import as_bfloat16, assert_layer_within_bfloat16, assert_within_bfloat16, compare, torch_threads

import rnnkit
from rnnkit import kernels
from rnnkit import nn as rnn
from rnnkit.nn.cells import CellParams

require_kernel("LSTM")
import rnnkit.kernels.lstm  # noqa: E402, F401  registers the ops' autograd and fake kernels, for the op tests

H, P, G = 5, 3, 20                                    # hidden, projection, gates
SHAPES = ((1, 1), (6, 3))                             # (T, B)
FLAGS = ("layer_norm", "recurrent_mask", "zoneout", "projection", "lengths", "bias")
ZONEOUT = ("off", "mask", "eval")


def make_case(T, B, layer_norm=False, recurrent_mask=False, zoneout="off", projection=False, lengths=False,
              bias=True, dtype=torch.float64, seed=0, sizes=(H, P)):
    """Fresh random leaves (xp, h0, c0, weights) and the constant arguments of one boundary call; sizes:
    the hidden and the projection size."""
    gen = torch.Generator().manual_seed(seed)
    H, P = sizes
    G = 4 * H
    out = P if projection else H
    rand = lambda *shape, scale=1.0: (torch.randn(shape, generator=gen, dtype=dtype) * scale)  # noqa: E731
    leaves = {"xp": rand(T, B, G), "h0": rand(B, out), "c0": rand(B, H), "W_hh": rand(G, out, scale=0.5)}
    if bias:
        leaves["b_hh"] = rand(G, scale=0.5)
    if layer_norm:
        leaves |= {"ln_hh_weight": 1 + rand(G, scale=0.5), "ln_hh_bias": rand(G, scale=0.5),
                   "ln_c_weight": 1 + rand(H, scale=0.5), "ln_c_bias": rand(H, scale=0.5)}
    if projection:
        leaves["W_hr"] = rand(out, H, scale=0.5)
    for leaf in leaves.values():
        leaf.requires_grad_(True)
    const = {"recurrent_mask": None, "zoneout": (), "lengths": None}
    if recurrent_mask:
        const["recurrent_mask"] = torch.empty(B, out, dtype=dtype).bernoulli_(0.7, generator=gen) / 0.7
    if zoneout == "mask":
        draw = lambda n: torch.empty(T, B, n, dtype=dtype).bernoulli_(0.3, generator=gen)  # noqa: E731
        const["zoneout"] = [draw(out), draw(H)]
    elif zoneout == "eval":
        const["zoneout"] = [0.3, 0.2]
    if lengths:   # unsorted, with the extremes 1 and T
        values = torch.randint(1, T + 1, (B,), generator=gen)
        values[0], values[-1] = (T, 1) if B > 1 else (values[0], values[-1])
        const["lengths"] = values[torch.randperm(B, generator=gen)]
    return leaves, const


def boundary(leaves, const, backend):
    """kernels.run("LSTM", ...) on `backend`: {"y", "h_n", "c_n"}."""
    get = leaves.get
    ln = lambda stem: (get(f"{stem}_weight"), get(f"{stem}_bias")) if f"{stem}_weight" in leaves else None  # noqa: E731
    p = CellParams(None, get("W_hh"), None, get("b_hh"), get("W_hr"), None, ln("ln_hh"), ln("ln_c"))
    with kernels.use(backend):
        y, (h_n, c_n) = kernels.run("LSTM", get("xp"), (get("h0"), get("c0")), p, const["recurrent_mask"],
                                    const["zoneout"], const["lengths"])
    return {"y": y, "h_n": h_n, "c_n": c_n}


CASES = [dict(zip(FLAGS, flags, strict=True)) for flags in itertools.product(
    (False, True), (False, True), ZONEOUT, (False, True), (False, True), (False, True))]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"T{s[0]}B{s[1]}")
@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(k if v is True else str(v) if v else "no_" + k
                                                               for k, v in c.items()))
def test_kernel_equals_scan_float64(shape, case):
    seed = hash(tuple(case.values())) % 1000
    leaves, const = make_case(*shape, **case, seed=seed)
    compare(lambda: boundary(leaves, const, "cpu"), lambda: boundary(leaves, const, "scan"), leaves,
            seed=seed, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("T,B", [(7, 2), (3, 9), (1, 6)])
def test_kernel_equals_scan_everything_on(T, B):
    """All variants at once, batch sizes on both sides of the kernel's small-GEMM path."""
    leaves, const = make_case(T, B, True, True, "mask", True, True, seed=T * B)
    compare(lambda: boundary(leaves, const, "cpu"), lambda: boundary(leaves, const, "scan"), leaves,
            seed=1, rtol=1e-10, atol=1e-12)


def test_kernel_equals_scan_on_two_threads():
    """Rows split across threads (B * 4H past the kernel's per-thread grain): the layer norms' weight
    gradients are per-thread partial sums added at the end."""
    leaves, const = make_case(3, 2000, True, True, "mask", False, True, seed=7)
    with torch_threads(2):
        compare(lambda: boundary(leaves, const, "cpu"), lambda: boundary(leaves, const, "scan"), leaves,
                seed=2, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("threads", [2, 3, 4])
@pytest.mark.parametrize("projection", [False, True])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_kernel_equals_scan_on_a_team(threads, projection, dtype):
    """The forward's team of threads: hidden units split among them in blocks of one vector (float64: 8
    lanes under AVX-512, 4 under AVX2), unevenly, the last block partial (H = 37, P = 21), more threads
    than blocks at 4 under AVX-512 float32; the layer norms' statistics combined across threads, h's
    units (P) split apart from the cell's (H). Everything on, lengths with padding."""
    leaves, const = make_case(6, 7, True, True, "mask", projection, True, dtype=dtype, seed=threads,
                              sizes=(37, 21))
    tolerance = {"rtol": 1e-10, "atol": 1e-12} if dtype == torch.float64 else {"rtol": 2e-4, "atol": 2e-5}
    with torch_threads(threads):
        compare(lambda: boundary(leaves, const, "cpu"), lambda: boundary(leaves, const, "scan"), leaves,
                seed=threads, **tolerance)


@pytest.mark.parametrize("case", [{}, {"layer_norm": True, "zoneout": "mask", "lengths": True},
                                  {"layer_norm": True, "recurrent_mask": True, "projection": True}])
def test_kernel_equals_scan_float32(case):
    leaves, const = make_case(8, 5, **case, dtype=torch.float32, seed=3)
    compare(lambda: boundary(leaves, const, "cpu"), lambda: boundary(leaves, const, "scan"), leaves,
            seed=3, rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize("projection", [False, True])
def test_nan_in_padding_reaches_nothing(projection):
    """Past each length xp holds NaN (and so do the zoneout masks); nothing of it reaches a result."""
    leaves, const = make_case(6, 4, True, True, "mask", projection, True, seed=5)
    valid = torch.arange(6).unsqueeze(1) < const["lengths"].unsqueeze(0)          # (T, B)
    padding = ~valid.unsqueeze(-1)                                                 # (T, B, 1)
    poisoned = dict(const, zoneout=[d.masked_fill(padding, float("nan")) for d in const["zoneout"]])
    clean = {name: leaf for name, leaf in leaves.items() if name != "xp"}
    xp = leaves["xp"]

    def with_xp(fill, args):
        return lambda: boundary({**clean, "xp": xp.masked_fill(padding, fill)}, args, "cpu")

    ours, scan = compare(with_xp(float("nan"), poisoned), with_xp(0.0, const), leaves, rtol=1e-10, atol=1e-12)
    assert all(torch.isfinite(value).all() for value in ours.values())
    assert (ours["grad xp"][~valid] == 0).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_nan_in_a_valid_step_stays_nan(dtype):
    """NaN in a real step's input reaches that row's outputs from then on, as in the scan (the float32
    activations come from a polynomial exp that clamps its input: they must keep NaN, not hide it), and no
    other row's; H = 37 splits the units among two threads."""
    leaves, const = make_case(5, 3, dtype=dtype, seed=4, sizes=(37, 21))
    xp = leaves["xp"].detach().clone()
    xp[2, 1, 3] = float("nan")                                     # gate i of unit 3, row 1, step 2
    with torch_threads(2):
        ours = boundary({**leaves, "xp": xp}, const, "cpu")
    assert torch.isnan(ours["y"][2:, 1]).any(dim=-1).all() and torch.isnan(ours["h_n"][1]).any()
    assert torch.isfinite(ours["y"][:2]).all() and torch.isfinite(ours["y"][:, [0, 2]]).all()


@pytest.mark.parametrize("proj_size", [0, 2])
def test_layer_on_both_backends(proj_size):
    """rnnkit.nn.LSTM, 2 layers, bidirectional, every variant, injected masks and lengths: cpu == scan."""
    torch.manual_seed(0)
    layer = rnn.LSTM(3, H, num_layers=2, bidirectional=True, proj_size=proj_size, layer_norm=True,
                     recurrent_dropout=0.3, zoneout=0.2, weight_drop=0.4, dtype=torch.float64)
    with torch.no_grad():
        for name, param in layer.named_parameters():
            if name.startswith("layer_norm_"):
                param.add_(torch.randn(param.shape, dtype=torch.float64) * 0.3)
    T, B = 6, 4
    x = torch.randn(T, B, 3, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([4, 6, 1, 3])
    masks = layer.sample_masks(T, B)
    leaves = {"x": x, **dict(layer.named_parameters())}

    def run(backend, training=True):
        layer.train(training)
        with kernels.use(backend):
            out, (h_n, c_n) = layer(x, lengths=lengths, masks=masks if training else None)
        return {"out": out, "h_n": h_n, "c_n": c_n}

    compare(lambda: run("cpu"), lambda: run("scan"), leaves, rtol=1e-10, atol=1e-12)
    compare(lambda: run("cpu", False), lambda: run("scan", False), leaves, rtol=1e-10, atol=1e-12)
    x_nan = x.detach().clone()
    x_nan[lengths[2]:, 2] = float("nan")           # padding of sequence 2
    layer.train()
    with kernels.use("cpu"):
        out, (h_n, c_n) = layer(x_nan.requires_grad_(), lengths=lengths, masks=masks)
    (out.sum() + h_n.sum() + c_n.sum()).backward()
    assert torch.isfinite(x_nan.grad).all() and torch.isfinite(out).all()
    assert all(torch.isfinite(param.grad).all() for param in layer.parameters())


def _op_args(projection, lengths):
    leaves, const = make_case(4, 3, True, True, "mask", projection, lengths, seed=7)
    get = leaves.get
    zoneout_h, zoneout_c = const["zoneout"]
    return (get("xp"), get("h0"), get("c0"), get("W_hh"), get("b_hh"), get("ln_hh_weight"), get("ln_hh_bias"),
            get("ln_c_weight"), get("ln_c_bias"), get("W_hr"), const["recurrent_mask"], zoneout_h, zoneout_c,
            0.0, 0.0, const["lengths"], True)


@pytest.mark.parametrize("projection,lengths", [(False, False), (True, True)])
def test_opcheck_forward(projection, lengths):
    torch.library.opcheck(torch.ops.rnnkit.lstm_forward.default, _op_args(projection, lengths))


def test_opcheck_backward():
    args = [a.detach() if isinstance(a, torch.Tensor) else a for a in _op_args(True, True)]
    outputs = torch.ops.rnnkit.lstm_forward(*args)
    d_y, d_h_n, d_c_n = (torch.randn_like(o) for o in outputs[:3])
    w_hh, _, ln_hh_weight, _, ln_c_weight, _, w_hr, mask, zoneout_h, zoneout_c, p_h, p_c, lengths = args[3:-1]
    torch.library.opcheck(torch.ops.rnnkit.lstm_backward.default,
                          (d_y, d_h_n, d_c_n, w_hh, ln_hh_weight, ln_c_weight, w_hr, mask, zoneout_h,
                           zoneout_c, p_h, p_c, lengths, *outputs[3:], True, True, True))


def test_torch_compile_fullgraph():
    """kernels/lstm.run itself (the boundary's backend choice stats files, outside any graph)."""
    leaves, const = make_case(5, 2, True, True, "eval", True, True, seed=9)
    ln = lambda stem: (leaves[f"{stem}_weight"], leaves[f"{stem}_bias"])  # noqa: E731
    p = CellParams(None, leaves["W_hh"], None, leaves["b_hh"], leaves["W_hr"], None, ln("ln_hh"), ln("ln_c"))

    def fused():
        y, (h_n, c_n) = rnnkit.kernels.lstm.run(leaves["xp"], (leaves["h0"], leaves["c0"]), p,
                                                const["recurrent_mask"], const["zoneout"], const["lengths"])
        return {"y": y, "h_n": h_n, "c_n": c_n}

    compiled = torch.compile(fused, fullgraph=True, backend="aot_eager")
    compare(compiled, lambda: boundary(leaves, const, "scan"), leaves, rtol=1e-10, atol=1e-12)


def test_only_needed_gradients():
    """A frozen W_hh gets no gradient (the kernel skips its GEMM); the rest are unchanged."""
    leaves, const = make_case(5, 2, projection=True, seed=11)
    leaves["W_hh"].requires_grad_(False)
    out = boundary(leaves, const, "cpu")
    out["y"].sum().backward()
    assert leaves["W_hh"].grad is None and leaves["W_hr"].grad is not None and leaves["xp"].grad is not None



@pytest.mark.parametrize("case", [{}, {"layer_norm": True, "zoneout": "mask", "lengths": True,
                                       "recurrent_mask": True},
                                  {"layer_norm": True, "projection": True, "zoneout": "eval"}])
def test_bfloat16_within_its_rounding(case):
    """bfloat16 (the GEMMs in bfloat16, the rest in float32) vs the scan in float64 on the same values."""
    leaves, const = make_case(8, 12, **case, seed=4)
    low, high = as_bfloat16(leaves)
    to = lambda v, dtype: v.to(dtype) if isinstance(v, torch.Tensor) and v.is_floating_point() else v  # noqa: E731
    const_low = {k: [to(d, torch.bfloat16) for d in v] if k == "zoneout" else to(v, torch.bfloat16)
                 for k, v in const.items()}
    const_high = {k: [to(d, torch.float64) for d in v] if k == "zoneout" else to(v, torch.float64)
                  for k, v in const_low.items()}
    assert_within_bfloat16(lambda: boundary(low, const_low, "cpu"),
                           lambda: boundary(high, const_high, "scan"), low, high)


def test_bfloat16_layer_runs_the_kernel():
    """rnnkit.nn.LSTM in bfloat16, layer norm and zoneout (training, masks shared), on the C++ kernel
    (use("cpu") refuses what it cannot run): against the same layer in float32 on the same bfloat16 values,
    no further off than the scan in bfloat16 (torch's own bfloat16 arithmetic) is; gradients in bfloat16."""
    torch.manual_seed(0)
    assert_layer_within_bfloat16(rnn.LSTM(4, 16, num_layers=2, layer_norm=True, zoneout=0.2))
