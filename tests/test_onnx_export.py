"""rnnkit.export: models with rnnkit layers as ONNX's own LSTM / GRU / RNN operators, or as ONNX Scan for
the cells those cannot express (layer norm, zoneout, projection) and for padded batches (lengths=), dynamic
B and T.

Each model is exported once from one example, then run by onnxruntime on fresh inputs of other lengths T and
batch sizes B and compared with the eager model (float32, 1e-5).
"""

from __future__ import annotations

import warnings

import pytest
import torch

import rnnkit.nn as rn

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxscript")
from rnnkit.export import export  # noqa: E402  (needs onnxscript)

I, H = 3, 5
SIZES = [(7, 2), (1, 6), (12, 1)]   # fresh (T, B), none of them the example's (4, 3)


def _flat(outputs) -> list[torch.Tensor]:
    if isinstance(outputs, torch.Tensor):
        return [outputs]
    return [t for o in outputs for t in _flat(o)]


def check_export(model, make_inputs, tmp_path) -> set[str]:
    """Export from make_inputs(4, 3); onnxruntime equals the eager model (eval) at every (T, B) of SIZES.
    Returns the ONNX operator types of the graph's top level."""
    training = model.training
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export(model, make_inputs(4, 3), tmp_path / "model.onnx")
    assert model.training == training, "export leaves the model as it was (it exports an eval-mode copy)"
    model.eval()
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    for T, B in SIZES:
        inputs = make_inputs(T, B)
        got = session.run(None, {n: x.numpy() for n, x in zip(names, _flat(inputs), strict=True)})
        with torch.no_grad():
            expected = _flat(model(*inputs))
        assert len(got) == len(expected)
        for g, e in zip(got, expected, strict=True):
            torch.testing.assert_close(torch.from_numpy(g), e, rtol=1e-5, atol=1e-5, msg=f"T={T}, B={B}")
    return {node.op_type for node in onnx.load(str(tmp_path / "model.onnx")).graph.node}


LAYERS = [
    (rn.LSTM, {"num_layers": 2, "bidirectional": True}),
    (rn.LSTM, {"batch_first": True, "bias": False, "recurrent_dropout": 0.2, "weight_drop": 0.3}),
    (rn.GRU, {"num_layers": 2, "bidirectional": True, "batch_first": True}),
    (rn.GRU, {"bias": False}),
    (rn.RNN, {"nonlinearity": "tanh", "bidirectional": True}),
    (rn.RNN, {"nonlinearity": "relu", "num_layers": 2, "batch_first": True}),
    # ONNX's operators cannot express these: they go through the scan operator (ONNX Scan)
    (rn.LSTM, {"proj_size": 2, "num_layers": 2, "bidirectional": True}),
    (rn.LSTM, {"layer_norm": True, "zoneout": 0.2, "bidirectional": True, "batch_first": True}),
    (rn.LSTM, {"layer_norm": True, "recurrent_dropout": 0.2, "zoneout": 0.1, "weight_drop": 0.3,
               "proj_size": 3, "num_layers": 2}),
    (rn.GRU, {"layer_norm": True, "num_layers": 2, "bidirectional": True}),
    (rn.GRU, {"zoneout": 0.3, "bias": False}),
    (rn.RNN, {"nonlinearity": "relu", "layer_norm": True, "zoneout": 0.1, "bidirectional": True}),
]


@pytest.mark.parametrize("cls,config", LAYERS, ids=[f"{c.__name__}-{'-'.join(k)}" for c, k in LAYERS])
def test_layers_match_onnxruntime_at_other_lengths_and_batch_sizes(cls, config, tmp_path):
    torch.manual_seed(0)
    layer = cls(I, H, **config)
    batch_first = config.get("batch_first", False)
    shape = lambda T, B: (B, T, I) if batch_first else (T, B, I)  # noqa: E731
    ops = check_export(layer, lambda T, B: (torch.randn(*shape(T, B)),), tmp_path)
    native = {"LSTM": "LSTM", "GRU": "GRU"}.get(layer.mode, "RNN")
    variant = any(config.get(k) for k in ("layer_norm", "zoneout", "proj_size"))
    assert (native not in ops and "Scan" in ops) if variant else (native in ops and "Scan" not in ops), ops


def test_initial_state_is_an_input(tmp_path):
    torch.manual_seed(0)
    layer = rn.LSTM(I, H, bidirectional=True)
    check_export(layer, lambda T, B: (torch.randn(T, B, I), (torch.randn(2, B, H), torch.randn(2, B, H))),
                 tmp_path)


def test_initial_state_of_a_projected_lstm_is_an_input(tmp_path):
    torch.manual_seed(0)
    layer = rn.LSTM(I, H, proj_size=2, bidirectional=True, layer_norm=True)
    check_export(layer, lambda T, B: (torch.randn(T, B, I), (torch.randn(2, B, 2), torch.randn(2, B, H))),
                 tmp_path)


def test_a_model_around_the_layers(tmp_path):
    class Tagger(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = torch.nn.Embedding(11, I)
            self.encoder = rn.GRU(I, H, bidirectional=True, batch_first=True, dropout=0.5, num_layers=2)
            self.decoder = rn.LSTM(2 * H, H, batch_first=True)
            self.head = torch.nn.Linear(H, 4)

        def forward(self, tokens):
            return self.head(self.decoder(self.encoder(self.embedding(tokens))[0])[0])   # (B, T, 4)

    torch.manual_seed(0)
    model = Tagger().train()
    check_export(model, lambda T, B: (torch.randint(0, 11, (B, T)),), tmp_path)


PADDED = [
    (rn.GRU, {"num_layers": 2, "bidirectional": True}),
    (rn.LSTM, {"bidirectional": True, "batch_first": True}),
    (rn.LSTM, {"layer_norm": True, "zoneout": 0.1, "proj_size": 2, "bidirectional": True}),
    (rn.RNN, {"nonlinearity": "relu", "num_layers": 2}),
]


@pytest.mark.parametrize("cls,config", PADDED, ids=[f"{c.__name__}-{'-'.join(k)}" for c, k in PADDED])
def test_lengths_are_an_input(cls, config, tmp_path):
    """A padded batch with lengths (B,) as a second input: the same outputs and final states as the eager
    layer, whose padded steps are never read (the padding here is random numbers, not zeros)."""
    class Padded(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = cls(I, H, **config)

        def forward(self, x, lengths):
            return self.rnn(x, lengths=lengths)

    batch_first = config.get("batch_first", False)

    def make_inputs(T, B):
        lengths = torch.randint(1, T + 1, (B,))
        lengths[0] = T                              # the longest fills the batch, as a padded batch's does
        return torch.randn(*((B, T, I) if batch_first else (T, B, I))), lengths

    torch.manual_seed(0)
    ops = check_export(Padded(), make_inputs, tmp_path)
    assert "Scan" in ops, ops


def test_packed_sequences_are_not_supported():
    class Packed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = rn.GRU(I, H)

        def forward(self, x):
            return self.rnn(torch.nn.utils.rnn.pack_padded_sequence(x, [4, 2, 1]))[1]

    with pytest.raises(Exception, match="needs a batched 3-D tensor input .*got PackedSequence"):
        export(Packed(), (torch.randn(4, 3, I),))


def test_a_sequence_classifier_with_padded_batches(tmp_path):
    """rnnkit's text classifier (embedding, bidirectional LSTM with lengths, attention pooling over the valid
    steps, head) exports whole: token ids and lengths in, class logits out."""
    from rnnkit.models.classifier import ClassifierConfig, SequenceClassifier
    from rnnkit.models.recurrent import RecurrentConfig

    torch.manual_seed(0)
    encoder = RecurrentConfig(cell="lstm", hidden_size=H, num_layers=1, bidirectional=True)
    model = SequenceClassifier(ClassifierConfig(vocab_size=13, num_classes=3, embedding_size=I,
                                                pooling="attention", encoder=encoder))

    def make_inputs(T, B):
        lengths = torch.randint(1, T + 1, (B,))
        lengths[0] = T
        return torch.randint(0, 13, (B, T)), lengths

    check_export(model, make_inputs, tmp_path)
