"""rnnkit.nn layers and cells against torch.nn (and the NumPy reference): values and every gradient, float64.

One helper, `run`, feeds the same fresh inputs to a layer and returns outputs, final states and the gradients
of a random linear loss with respect to every parameter, the input and hx. Each test runs it on ours (the
fused path, and the pure-torch scan twin with `use_scan=True`) and on torch.nn, and demands equality.
"""

import itertools

import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnkit import nn as rnn
from rnnkit import reference

KINDS = {  # name: (ours, torch's, extra kwargs)
    "rnn_tanh": (rnn.RNN, torch.nn.RNN, {}),
    "rnn_relu": (rnn.RNN, torch.nn.RNN, {"nonlinearity": "relu"}),
    "lstm": (rnn.LSTM, torch.nn.LSTM, {}),
    "lstm_proj": (rnn.LSTM, torch.nn.LSTM, {"proj_size": 2}),
    "gru": (rnn.GRU, torch.nn.GRU, {}),
}
I, H, T, B = 3, 4, 5, 3
LENGTHS = [3, 5, 1]        # unsorted on purpose
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")



pytestmark = pytest.mark.usefixtures("torch_float64")  # every test here runs in float64


def pair(kind, seed=0, **kwargs):
    """Ours and torch's with identical weights (ours loads torch's state_dict as-is)."""
    ours_cls, torch_cls, extra = KINDS[kind]
    theirs = torch_cls(I, H, **extra, **kwargs)
    ours = ours_cls(I, H, **extra, **kwargs)
    ours.load_state_dict(theirs.state_dict())
    return ours, theirs


def make_inputs(layer, form, with_hx, seed):
    """x (requires grad), hx (or None), and how to call: form in batched, unbatched, packed, lengths..."""
    g = torch.Generator().manual_seed(seed)
    batched = form != "unbatched"
    shape = ((B, T, I) if layer.batch_first else (T, B, I)) if batched else (T, I)
    x = torch.randn(shape, generator=g, requires_grad=True)
    hx = None
    if with_hx:
        D = 2 if layer.bidirectional else 1
        lead = (layer.num_layers * D, B) if batched else (layer.num_layers * D,)
        sizes = [layer.proj_size or H, H] if isinstance(layer, torch.nn.LSTM) else [H]
        hs = [torch.randn(*lead, n, generator=g, requires_grad=True) for n in sizes]
        hx = tuple(hs) if len(hs) == 2 else hs[0]
    return x, hx


def run(layer, form, x, hx, seed):
    """Forward in the given input form, then grads of a random linear loss. Returns a flat list of tensors."""
    lengths = torch.tensor(LENGTHS)
    if form in ("packed_sorted", "packed_unsorted"):
        xs, ls = (x, lengths) if form == "packed_unsorted" else (x, lengths.sort(descending=True)[0])
        packed = pack_padded_sequence(xs, ls, layer.batch_first, enforce_sorted=form == "packed_sorted")
        out, h_n = layer(packed, hx)
        out = pad_packed_sequence(out, layer.batch_first, total_length=T)[0]
    elif form.startswith("lengths"):
        ls = LENGTHS if form == "lengths_list" else lengths
        if isinstance(layer, rnn.RNN | rnn.LSTM | rnn.GRU):
            out, h_n = layer(x, hx, lengths=ls)
        else:   # torch.nn: pack by hand
            packed = pack_padded_sequence(x, lengths, layer.batch_first, enforce_sorted=False)
            out, h_n = layer(packed, hx)
            out = pad_packed_sequence(out, layer.batch_first, total_length=T)[0]
    else:
        out, h_n = layer(x, hx)
    results = [out, *(h_n if isinstance(h_n, tuple) else (h_n,))]
    g = torch.Generator().manual_seed(seed + 1)
    loss = sum((r * torch.randn(r.shape, generator=g)).sum() for r in results)
    wrt = [x, *layer.parameters(), *([] if hx is None else (hx if isinstance(hx, tuple) else (hx,)))]
    return results + list(torch.autograd.grad(loss, wrt))


def assert_close(ours, theirs, rtol=1e-10, atol=1e-12):
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=rtol, atol=atol)


FORMS = ["batched", "unbatched", "packed_sorted", "packed_unsorted", "lengths_list", "lengths_tensor"]


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("kind", list(KINDS))
def test_equals_torch_nn(kind, form):
    """Fused path and scan twin vs torch.nn, over layers, directions, batch_first and hx given or not."""
    grid = itertools.product((1, 2), *[(False, True)] * 3)
    for seed, (layers, bidir, batch_first, with_hx) in enumerate(grid):
        ours, theirs = pair(kind, num_layers=layers, bidirectional=bidir, batch_first=batch_first)
        x, hx = make_inputs(theirs, form, with_hx, seed)
        expected = run(theirs, form, x, hx, seed)
        assert_close(run(ours, form, x, hx, seed), expected)
        ours.use_scan = True
        assert_close(run(ours, form, x, hx, seed), expected)


@pytest.mark.parametrize("kind", ["rnn_tanh", "lstm", "gru"])
def test_equals_numpy_reference(kind):
    """A second oracle: rnnkit.reference's hand-written BPTT: lengths, 2 layers, both ways."""
    ours, _ = pair(kind, num_layers=2, bidirectional=True)
    ref = getattr(reference, kind.split("_")[0].upper())(I, H, num_layers=2, bidirectional=True)
    ref.params = {k: v.detach().numpy().copy() for k, v in ours.state_dict().items()}
    x = torch.randn(T, B, I, requires_grad=True)
    out, _ = ours(x, lengths=LENGTHS)
    d_out = torch.randn(out.shape)
    grads = torch.autograd.grad((out * d_out).sum(), [x, *ours.parameters()])
    ref_out, _ = ref.forward(x.detach().numpy(), lengths=np.array(LENGTHS))
    ref_grads = ref.backward(d_out.numpy())
    np.testing.assert_allclose(out.detach().numpy(), ref_out, rtol=1e-10, atol=1e-12)
    names = ["input", *(name for name, _ in ours.named_parameters())]
    for name, grad in zip(names, grads, strict=True):
        np.testing.assert_allclose(grad.numpy(), ref_grads[name], rtol=1e-9, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("kind", list(KINDS))
def test_init_and_state_dict_match_torch(kind):
    """Same seed, same weights; state_dicts load both ways; the repr and flatten_parameters are torch's."""
    ours_cls, torch_cls, extra = KINDS[kind]
    torch.manual_seed(7)
    ours = ours_cls(I, H, num_layers=2, bidirectional=True, **extra)
    torch.manual_seed(7)
    theirs = torch_cls(I, H, num_layers=2, bidirectional=True, **extra)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for key, value in theirs.state_dict().items():
        assert torch.equal(ours.state_dict()[key], value), key
    theirs.load_state_dict(ours.state_dict())
    assert isinstance(ours, torch_cls)
    ours.flatten_parameters()


def test_bidirectional_lengths_never_read_padding():
    """Whatever sits in the padding, outputs and h_n of a bidirectional layer with lengths do not change."""
    for kind in KINDS:
        layer, _ = pair(kind, bidirectional=True, num_layers=2)
        x = torch.randn(T, B, I)
        noisy = x.clone()
        for b, n in enumerate(LENGTHS):
            noisy[n:, b] = 1e3 * torch.randn(T - n, I)
        for use_scan in (False, True):
            layer.use_scan = use_scan
            a, b = layer(x, lengths=LENGTHS), layer(noisy, lengths=LENGTHS)
            torch.testing.assert_close(a[0], b[0], rtol=0, atol=0)
            torch.testing.assert_close(a[1], b[1], rtol=0, atol=0)


def test_eval_mode_gradients():
    layer, _ = pair("lstm", num_layers=2, dropout=0.5)
    layer.eval()
    x = torch.randn(T, B, I, requires_grad=True)
    layer(x)[0].sum().backward()
    assert x.grad is not None and layer.weight_hh_l1.grad is not None


@pytest.mark.parametrize("kind", ["rnn_tanh", "lstm", "gru"])
def test_cells_match_torch(kind):
    ours_cls = {"rnn_tanh": rnn.RNNCell, "lstm": rnn.LSTMCell, "gru": rnn.GRUCell}[kind]
    torch.manual_seed(3)
    ours = ours_cls(I, H)
    torch.manual_seed(3)
    theirs = getattr(torch.nn, ours_cls.__name__)(I, H)
    for shape in ((B, I), (I,)):
        x = torch.randn(shape)
        for a, b in zip(*(torch.atleast_1d(*((m(x),) if kind != "lstm" else m(x))) for m in (ours, theirs)),
                        strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    with pytest.raises(ValueError, match="Expected 3, got 4"):
        ours(torch.randn(B, 4))
    with pytest.raises(ValueError, match=r"expected \(3, 4\), got \(2, 4\)"):
        ours(torch.randn(B, I), torch.randn(2, H) if kind != "lstm" else (torch.randn(2, H),) * 2)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: rnn.LSTM(3, 4, proj_size=4), "expected < 4, got 4"),
        (lambda: rnn.LSTM(3, 0), "hidden_size must be a positive integer, got 0"),
        (lambda: rnn.GRU(3, 4, dropout=1.5), r"\[0, 1\], got 1.5"),
        (lambda: rnn.RNN(3, 4, nonlinearity="gelu"), "'tanh' or 'relu', got 'gelu'"),
        (lambda: rnn.LSTM(3, 4, zoneout=1.0), r"zoneout must be a probability in \[0, 1\), got 1.0"),
        (lambda: rnn.GRU(3, 4, recurrent_dropout=-0.1), r"recurrent_dropout .* got -0.1"),
        (lambda: rnn.RNN(3, 4, weight_drop=2), r"weight_drop .* got 2"),
    ],
)
def test_constructor_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_forward_errors():
    lstm = rnn.LSTM(I, H, num_layers=2)
    x = torch.randn(T, B, I)
    cases = [
        (lambda: lstm(torch.randn(T, B, I + 1)), "Expected 3, got 4"),
        (lambda: lstm(torch.randn(T, B, I, 1)), "got 4-D"),
        (lambda: lstm(x.float()), "expected torch.float64, got torch.float32"),
        (lambda: lstm(x.to("meta")), "device must match .* expected cpu, got meta"),
        (lambda: lstm(x, (torch.randn(2, B, H), torch.randn(2, B, H, device="meta"))),
         "c_0 device .* got meta"),
        (lambda: lstm(x, (torch.randn(2, B + 1, H), torch.randn(2, B, H))),
         r"Expected h_0 of shape \(2, 3, 4\), got \(2, 4, 4\)"),
        (lambda: lstm(x, lengths=[5, 4]), "expected 3, got 2"),
        (lambda: lstm(x, lengths=[6, 4, 1]), r"\[1, 5\] .* got \[6, 4, 1\]"),
        (lambda: lstm(x, lengths=LENGTHS, enforce_sorted=True), r"decreasing .* got \[3, 5, 1\]"),
        (lambda: lstm(x, lengths=torch.tensor([True, True, False])), "integers, got torch.bool"),
        (lambda: lstm(x[:0]), r"at least one time step, got shape \(0, 3, 3\) \(T = 0\)"),
        (lambda: rnn.LSTM(I, H, layer_norm=True).double()(x[:0]), r"at least one time step"),
        (lambda: rnn.MinGRU(I, H).double()(x[:0]), r"at least one time step"),
        (lambda: lstm(x, masks={"zoneout_h_l0": torch.ones(T, B, H)}), "unknown mask 'zoneout_h_l0'"),
        (lambda: lstm.step(torch.randn(1, B, I)), "got 3-D"),
        (lambda: rnn.GRU(I, H, zoneout=0.1).eval()(x, masks={"zoneout_h_l0": torch.ones(T, B, H)}),
         r"training mode only .* got \['zoneout_h_l0'\]"),
        (lambda: rnn.GRU(I, H, zoneout=0.1)(x, masks={"zoneout_h_l0": torch.ones(T, B + 1, H)}),
         r"expected shape \(5, 3, 4\), got \(5, 4, 4\)"),
    ]
    for call, match in cases:
        with pytest.raises(ValueError, match=match):
            call()


@needs_cuda
@pytest.mark.parametrize("kind", list(KINDS))
def test_cuda_equals_cpu(kind):
    """On the GPU (cuDNN): same results as on the CPU, lengths on either device, eval-mode gradients."""
    ours, _ = pair(kind, num_layers=2, bidirectional=True)
    gpu = pair(kind, num_layers=2, bidirectional=True)[0].cuda()
    gpu.load_state_dict(ours.state_dict())
    for train, lengths in ((True, LENGTHS), (False, torch.tensor(LENGTHS).cuda())):
        ours.train(train)
        gpu.train(train)
        x = torch.randn(T, B, I, requires_grad=True)
        xg = x.detach().cuda().requires_grad_()
        a, b = ours(x, lengths=LENGTHS)[0], gpu(xg, lengths=lengths)[0]
        torch.testing.assert_close(a, b.cpu())
        a.sum().backward()
        b.sum().backward()
        torch.testing.assert_close(x.grad, xg.grad.cpu())
