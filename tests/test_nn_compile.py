"""torch.compile(fullgraph=True) of rnnkit layers: no graph break, and the eager numbers and gradients.

Compiled, every configuration (plain cells included, whose eager forward is torch's fused kernel, which Dynamo
cannot trace) runs the kernel boundary: the C++ custom op where it is built, else the scan, which Dynamo
unrolls. Most tests use backend="aot_eager" (Dynamo + AOT autograd, no code generation) to stay fast; one
runs inductor in float32.
"""

from __future__ import annotations

import pytest
import torch
from built import require_kernel
from oracle import compare

import rnnkit.nn as rn
from rnnkit import kernels

T, B, I, H = 5, 3, 3, 4


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _require_built(backend: str, mode: str) -> None:
    if backend == "cpu":
        require_kernel(mode)


def _results(layer, x, **kwargs) -> dict:
    output, state = layer(x, **kwargs)
    state = state if isinstance(state, tuple) else (state,)
    return {"output": output, **{f"state {i}": s for i, s in enumerate(state)}}


def check_compiled(layer, x, *, compile_backend="aot_eager", rtol=1e-10, atol=1e-12, **kwargs) -> None:
    """Compiled (fullgraph) and eager `layer` give the same outputs, states and gradients (oracle.compare)."""
    compiled = torch.compile(layer, backend=compile_backend, fullgraph=True)
    leaves = {"x": x, **dict(layer.named_parameters())}
    compare(lambda: _results(compiled, x, **kwargs), lambda: _results(layer, x, **kwargs), leaves,
            rtol=rtol, atol=atol)


def _input(batch_first=False, dtype=torch.float64):
    shape = (B, T, I) if batch_first else (T, B, I)
    return torch.randn(*shape, dtype=dtype, requires_grad=True)


CONFIGS = [
    ("LSTM", {}),
    ("LSTM", {"num_layers": 2, "bidirectional": True, "batch_first": True}),
    ("LSTM", {"proj_size": 2, "bidirectional": True}),
    ("GRU", {"num_layers": 2, "bidirectional": True}),
    ("GRU", {"bias": False, "batch_first": True}),
    ("RNN_TANH", {"bidirectional": True}),
    ("RNN_RELU", {"num_layers": 2}),
]


def _layer(mode: str, **kwargs):
    cls = {"LSTM": rn.LSTM, "GRU": rn.GRU, "RNN_TANH": rn.RNN, "RNN_RELU": rn.RNN}[mode]
    if mode.startswith("RNN"):
        kwargs["nonlinearity"] = mode[4:].lower()
    torch.manual_seed(0)
    return cls(I, H, dtype=torch.float64, **kwargs)


@pytest.mark.parametrize("backend", ["scan", "cpu"])
@pytest.mark.parametrize("mode,config", CONFIGS, ids=[f"{m}-{'-'.join(c) or 'plain'}" for m, c in CONFIGS])
def test_plain_configs_compile_to_the_eager_numbers(mode, config, backend):
    _require_built(backend, mode)
    layer = _layer(mode, **config)
    with kernels.use(backend):
        check_compiled(layer, _input(config.get("batch_first", False)))


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
@pytest.mark.parametrize("backend", ["scan", "cpu"])
def test_variants_and_lengths_in_training_with_injected_masks(mode, backend):
    _require_built(backend, mode)
    layer = _layer(mode, num_layers=2, bidirectional=True, batch_first=True, layer_norm=True, zoneout=0.2,
                   recurrent_dropout=0.3, weight_drop=0.25).train()
    masks = layer.sample_masks(T, B, torch.Generator().manual_seed(1))     # the same masks in both runs
    hx = torch.randn(4, B, H, dtype=torch.float64)
    hx = (hx, torch.randn_like(hx)) if mode == "LSTM" else hx
    with kernels.use(backend):
        check_compiled(layer, _input(batch_first=True), hx=hx, masks=masks, lengths=[5, 2, 4])


@pytest.mark.parametrize("variant", [{"zoneout": 0.3}, {"recurrent_dropout": 0.3, "weight_drop": 0.2},
                                     {"layer_norm": True}], ids=["zoneout", "dropouts", "layer_norm"])
def test_variants_in_eval_mode(variant):
    layer = _layer("LSTM", bidirectional=True, **variant).eval()
    with kernels.use("scan"):
        check_compiled(layer, _input(), lengths=torch.tensor([2, 5, 3]))


def test_no_graph_break_in_a_model_of_rnnkit_layers():
    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = rn.GRU(I, H, num_layers=2, bidirectional=True, batch_first=True)
            self.decoder = rn.LSTM(2 * H, H, layer_norm=True, batch_first=True)
            self.head = torch.nn.Linear(H, 2)

        def forward(self, x, lengths):
            y, _ = self.encoder(x, lengths=lengths)
            return self.head(self.decoder(y, lengths=lengths)[0])

    with kernels.use("scan"):
        explanation = torch._dynamo.explain(Model())(torch.randn(B, T, I), torch.tensor([5, 1, 3]))
    assert (explanation.graph_count, explanation.graph_break_count) == (1, 0), explanation.break_reasons


def test_torch_nn_lstm_still_graph_breaks_as_before():
    """Only rnnkit's layers pass Dynamo's RNN refusal; torch.nn's own are left as torch has them."""
    explanation = torch._dynamo.explain(torch.nn.LSTM(I, H))(torch.randn(T, B, I))
    assert explanation.graph_count == 0


def test_lengths_out_of_range_fail_when_the_compiled_graph_runs():
    layer = _layer("GRU")
    compiled = torch.compile(layer, backend="aot_eager", fullgraph=True)
    with kernels.use("scan"), pytest.raises(RuntimeError, match=r"lengths must lie in \[1, T\]"):
        compiled(torch.randn(T, B, I, dtype=torch.float64), lengths=torch.tensor([5, 6, 1]))


def test_eager_errors_are_unchanged():
    layer = _layer("GRU")
    message = r"lengths must lie in \[1, 5\] \(the padded length\), got \[5, 6, 1\]"
    with pytest.raises(ValueError, match=message):
        layer(torch.randn(T, B, I, dtype=torch.float64), lengths=[5, 6, 1])


@pytest.mark.parametrize("backend", ["scan", "cpu"])
def test_inductor_float32(backend):
    _require_built(backend, "LSTM")
    layer = _layer("LSTM", bidirectional=True).float()     # small: inductor compiles the unrolled scan slowly
    with kernels.use(backend):
        check_compiled(layer, _input(dtype=torch.float32), compile_backend="inductor", rtol=1e-5, atol=1e-6)
