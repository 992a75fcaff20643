"""Padding is never read, forward or backward: a padded batch with `lengths=` equals each sequence run alone.

For every layer (RNN, LSTM, GRU on the fused kernel, on the scan twin, with layer norm, with the stochastic
variants in eval and in training with fixed masks; MinGRU, MinLSTM), one layer and two bidirectional ones,
the padded positions are filled with NaN, 1e30 or random values. The outputs (0 at padded steps), the final
states, and the gradients of every weight, of h_0 and of the input (0 at padded steps) must equal those of the
sequences run one by one, cut to their lengths (float64), and every gradient must be finite: a torch.where
after the fact would keep NaN out of the forward pass but let NaN * 0 = NaN into the weights' gradients.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from oracle import compare

from rnnkit import nn as rnn
from rnnkit.kernels.scan import valid_steps

I, H, T = 3, 4, 6
LENGTHS = [4, 6, 1, 3]  # unsorted, one full, one of length 1
B = len(LENGTHS)
TORCH_LAYERS = {"rnn": rnn.RNN, "lstm": rnn.LSTM, "gru": rnn.GRU}
MIN_LAYERS = {"mingru": rnn.MinGRU, "minlstm": rnn.MinLSTM}
VARIANTS = {  # name: (layer kwargs, training mode); training draws fixed masks (between-layer dropout is 0)
    "fused": ({}, False),
    "scan": ({}, False),  # the same equations on the pure-torch scan (use_scan=True)
    "layer_norm": ({"layer_norm": True}, False),
    "variants_eval": ({"zoneout": 0.3, "recurrent_dropout": 0.3, "weight_drop": 0.3}, False),
    "weight_drop_train": ({"weight_drop": 0.4}, True),  # the fused kernel on the dropped W_hh
    "variants_train": ({"layer_norm": True, "zoneout": 0.3, "recurrent_dropout": 0.3, "weight_drop": 0.3},
                       True),
}
SHAPES = {"1_layer": {"num_layers": 1}, "2_layers_bidirectional": {"num_layers": 2, "bidirectional": True}}
FILLS = ["nan", "1e30", "random"]

pytestmark = pytest.mark.usefixtures("torch_float64")  # every test here runs in float64


def padded_input(layer, fill: str, seed: int = 0):
    """x in the layer's layout, random where valid, `fill` at every padded step; a leaf that requires grad."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(T, B, I, generator=gen)  # (T, B, I)
    pad = ~valid_steps(torch.tensor(LENGTHS), T)  # (T, B)
    filler = {"nan": torch.full_like(x, math.nan), "1e30": torch.full_like(x, 1e30),
              "random": 10 * torch.randn(T, B, I, generator=gen)}[fill]  # fmt: skip
    x = torch.where(pad.unsqueeze(-1), filler, x)
    x = x.transpose(0, 1).contiguous() if layer.batch_first else x
    return x.requires_grad_()


def initial_state(layer, seed: int = 1):
    """Random h_0 (positive for the min layers), and c_0 for the LSTM: (L * D, B, .)."""
    gen = torch.Generator().manual_seed(seed)
    D = 2 if layer.bidirectional else 1
    if isinstance(layer, rnn.MinGRU | rnn.MinLSTM):
        return (torch.rand(layer.num_layers * D, B, H, generator=gen) + 0.1).requires_grad_()
    sizes = [getattr(layer, "proj_size", 0) or H] + ([H] if isinstance(layer, rnn.LSTM) else [])
    hx = tuple(torch.randn(layer.num_layers * D, B, n, generator=gen).requires_grad_() for n in sizes)
    return hx if isinstance(layer, rnn.LSTM) else hx[0]


def states(hx) -> tuple:
    return hx if isinstance(hx, tuple) else (hx,)


def call(layer, x, hx, masks, lengths=None):
    """The layer's forward as a dict of named results; masks only for the torch.nn layers."""
    kwargs = {} if masks is None else {"masks": masks}
    out, h_n = layer(x, hx, lengths=lengths, **kwargs)
    return {"output": out, **{f"state {i}": s for i, s in enumerate(states(h_n))}}


def one_sequence(layer, x, hx, masks, b: int, n: int):
    """Sequence b alone, cut to its n valid steps, with its rows of the initial state and of the masks."""
    x_b = x[b : b + 1, :n] if layer.batch_first else x[:n, b : b + 1]
    hx_b = tuple(h[:, b : b + 1] for h in states(hx))
    hx_b = hx_b if isinstance(hx, tuple) else hx_b[0]
    masks_b = None
    if masks is not None:  # recurrent_dropout (B, .), zoneout (T, B, .), weight_drop (G, .): one per layer
        rows = {"recurrent_dropout": lambda m: m[b : b + 1], "zoneout": lambda m: m[:n, b : b + 1]}
        masks_b = {key: next((cut(m) for kind, cut in rows.items() if key.startswith(kind)), m)
                   for key, m in masks.items()}
    return call(layer, x_b, hx_b, masks_b)


def each_sequence_alone(layer, x, hx, masks):
    """The reference: every sequence run alone, outputs padded with 0 back to T, states side by side."""
    time_dim = 1 if layer.batch_first else 0
    runs = [one_sequence(layer, x, hx, masks, b, n) for b, n in enumerate(LENGTHS)]
    pad_spec = lambda n: (0, 0, 0, T - n) if layer.batch_first else (0, 0, 0, 0, 0, T - n)  # noqa: E731
    out = torch.cat([F.pad(r["output"], pad_spec(n)) for r, n in zip(runs, LENGTHS, strict=True)],
                    dim=1 - time_dim)  # (T, B, D * H) or batch first
    results = {"output": out}
    for key in runs[0]:
        if key != "output":
            results[key] = torch.cat([r[key] for r in runs], dim=1)  # (L * D, B, .)
    return results


def check_padding_is_never_read(layer, fill, masks=None):
    x, hx = padded_input(layer, fill), initial_state(layer)
    leaves = {"input": x, **{f"h0 {i}": h for i, h in enumerate(states(hx))},
              **dict(layer.named_parameters())}
    ours, _ = compare(lambda: call(layer, x, hx, masks, lengths=torch.tensor(LENGTHS)),
                      lambda: each_sequence_alone(layer, x, hx, masks), leaves)
    pad = ~valid_steps(torch.tensor(LENGTHS), T)  # (T, B)
    pad = pad.T if layer.batch_first else pad
    assert not ours["output"][pad].any() and not ours["grad input"][pad].any()   # 0 at every padded step


@pytest.mark.parametrize("fill", FILLS)
@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("kind", list(TORCH_LAYERS))
def test_torch_layers_never_read_padding(kind, variant, shape, fill):
    kwargs, training = VARIANTS[variant]
    torch.manual_seed(0)
    layer = TORCH_LAYERS[kind](I, H, batch_first=shape != "1_layer", **SHAPES[shape], **kwargs)
    layer.use_scan = variant == "scan"
    layer.train(training)
    masks = layer.sample_masks(T, B, torch.Generator().manual_seed(2)) if training else None
    check_padding_is_never_read(layer, fill, masks)


@pytest.mark.parametrize("fill", FILLS)
def test_lstm_with_projection_never_reads_padding(fill):
    torch.manual_seed(0)
    layer = rnn.LSTM(I, H, proj_size=2, num_layers=2, bidirectional=True, layer_norm=True, zoneout=0.2)
    check_padding_is_never_read(layer.eval(), fill)


@pytest.mark.parametrize("fill", FILLS)
@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("kind", list(MIN_LAYERS))
def test_min_layers_never_read_padding(kind, shape, fill):
    torch.manual_seed(0)
    layer = MIN_LAYERS[kind](I, H, batch_first=shape != "1_layer", **SHAPES[shape])
    with torch.no_grad():  # wider weights than the init: both branches of g, saturated gates
        for p in layer.parameters():
            p.mul_(3.0)
    check_padding_is_never_read(layer, fill)


def test_bidirectional_layer_norm_lstm_with_nan_padding_has_finite_weight_gradients():
    """The reported case: NaN in the padding of a bidirectional layer_norm LSTM with lengths=."""
    torch.manual_seed(0)
    layer = rnn.LSTM(I, H, bidirectional=True, layer_norm=True)
    x = padded_input(layer, "nan")
    out, (h_n, c_n) = layer(x, lengths=LENGTHS)
    (out.sum() + h_n.sum() + c_n.sum()).backward()
    for name, p in layer.named_parameters():
        assert torch.isfinite(p.grad).all(), name
    assert torch.isfinite(x.grad).all()
