"""LanguageModel: loss vs a float64 oracle, step == forward, carried state == one long sequence (every cell),
and the flat model configs of earlier rnnkit upgraded to the nested encoder form."""

import math

import pytest
import torch
import torch.nn.functional as F

from rnnkit.models import LanguageModel, LanguageModelConfig, RecurrentConfig, language_model_metrics
from rnnkit.models.language_model import upgrade_model_config
from rnnkit.nn.state import detach_state
from rnnkit.train.config import from_dict

CELLS = ["rnn", "lstm", "gru", "mingru", "minlstm"]


def tiny(cell="lstm", encoder=None, **kw) -> LanguageModel:
    torch.manual_seed(0)
    encoder = RecurrentConfig(cell=cell, hidden_size=6, num_layers=2, **(encoder or {}))
    config = LanguageModelConfig(vocab_size=13, embedding_size=6, encoder=encoder, **kw)
    return LanguageModel(config).double().eval()


@pytest.mark.parametrize("cell", CELLS)
def test_loss_is_mean_cross_entropy_in_nats(cell):
    model = tiny(cell)
    tokens, targets = torch.randint(0, 13, (3, 7)), torch.randint(0, 13, (3, 7))
    logits, state, loss = model(tokens, targets=targets)
    assert logits.shape == (3, 7, 13)
    # oracle: -log p(target) from an explicit softmax, averaged over all B*T positions
    p = torch.exp(logits) / torch.exp(logits).sum(-1, keepdim=True)
    expected = -torch.log(p.gather(-1, targets[..., None])).mean()
    torch.testing.assert_close(loss, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cell", CELLS)
def test_step_matches_forward_token_by_token(cell):
    model = tiny(cell)
    tokens = torch.randint(0, 13, (2, 9))
    logits, final_state = model(tokens)
    state = None
    for t in range(9):
        step_logits, state = model.step(tokens[:, t], state)
        torch.testing.assert_close(step_logits, logits[:, t], rtol=1e-10, atol=1e-12)
    for a, b in zip(*(s if cell == "lstm" else [s] for s in (state, final_state)), strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("cell", CELLS)
def test_carried_state_continues_the_sequence(cell):
    """TBPTT: two windows with the (detached) state carried over give the logits of one long window."""
    model = tiny(cell)
    tokens = torch.randint(0, 13, (4, 10))
    whole, _ = model(tokens)
    first, state = model(tokens[:, :6])
    second, _ = model(tokens[:, 6:], detach_state(state))
    torch.testing.assert_close(torch.cat([first, second], 1), whole, rtol=1e-10, atol=1e-12)


def test_init_state_is_zero_and_equivalent_to_none():
    model = tiny("lstm")
    tokens = torch.randint(0, 13, (2, 4))
    h, c = model.init_state(2)
    assert h.shape == c.shape == (2, 2, 6) and h.dtype == torch.float64 and not h.any()
    torch.testing.assert_close(model(tokens, (h, c))[0], model(tokens)[0])
    assert tiny("gru").init_state(3).shape == (2, 3, 6)


@pytest.mark.parametrize("cell", CELLS)
def test_init_state_is_what_none_stands_for(cell):
    """MinGRU / MinLSTM start from g(0) = 0.5, not 0: init_state gives the same outputs as None."""
    model = tiny(cell)
    tokens = torch.randint(0, 13, (2, 4))
    state = model.init_state(2)
    torch.testing.assert_close(model(tokens, state)[0], model(tokens)[0], rtol=0, atol=0)
    torch.testing.assert_close(model.step(tokens[:, 0], state)[0], model.step(tokens[:, 0])[0])
    if cell.startswith("min"):
        assert state.shape == (2, 2, 6) and bool((state == 0.5).all())


def test_variants_train_and_reach_the_layer():
    model = tiny("lstm", encoder={"layer_norm": True, "zoneout": 0.1, "dropout": 0.2}).train()
    assert model.rnn.variants.layer_norm and model.rnn.variants.zoneout == 0.1 and model.rnn.dropout == 0.2
    tokens = torch.randint(0, 13, (2, 5))
    model(tokens, targets=tokens)[2].backward()
    assert model.rnn.layer_norm_ih_weight_l0.grad.abs().sum() > 0


def test_detach_state_cuts_the_graph_and_keeps_values():
    x = torch.randn(2, 3, requires_grad=True)
    state = (x * 2, x * 3)
    cut = detach_state(state)
    assert isinstance(cut, tuple) and all(not t.requires_grad for t in cut)
    torch.testing.assert_close(cut[0], state[0])
    assert detach_state(None) is None and not detach_state(x * 2).requires_grad


def test_gradients_reach_the_embedding():
    model = tiny("gru")
    tokens = torch.randint(0, 13, (2, 5))
    model(tokens, targets=tokens)[2].backward()
    assert model.embedding.weight.grad.abs().sum() > 0 and model.rnn.weight_hh_l0.grad.abs().sum() > 0


def test_tied_weights_share_one_matrix():
    model = tiny("lstm", tie_weights=True)
    assert model.decoder.weight is model.embedding.weight
    n_untied = sum(p.numel() for p in tiny("lstm").parameters())
    assert sum(p.numel() for p in model.parameters()) == n_untied - 13 * 6


def test_config_errors_name_the_values():
    with pytest.raises(ValueError, match="embedding_size=8, encoder.hidden_size=6"):
        LanguageModelConfig(
            vocab_size=5, embedding_size=8, encoder=RecurrentConfig(hidden_size=6), tie_weights=True
        )
    with pytest.raises(ValueError, match="model.encoder.cell must be one of .*got 'transformer'"):
        LanguageModelConfig(vocab_size=5, encoder=RecurrentConfig(cell="transformer"))
    with pytest.raises(
        ValueError, match="model.encoder.bidirectional: a language model .*expected false, got true"
    ):
        LanguageModelConfig(vocab_size=5, encoder=RecurrentConfig(bidirectional=True))
    with pytest.raises(ValueError, match="vocab_size must be >= 1"):
        LanguageModel(LanguageModelConfig(vocab_size=0))
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        tiny()(torch.zeros(3, dtype=torch.long))


def test_metrics_by_hand():
    m = language_model_metrics(math.log(4.0))  # uniform over 4 tokens: 2 bits, perplexity 4
    assert m["bpc"] == pytest.approx(2.0, abs=1e-12) and m["ppl"] == pytest.approx(4.0, abs=1e-12)


def test_untrained_uniform_decoder_gives_log_v():
    model = tiny("rnn")
    with torch.no_grad():
        model.decoder.weight.zero_()
        model.decoder.bias.zero_()
    tokens = torch.randint(0, 13, (2, 5))
    loss = model(tokens, targets=tokens)[2]
    assert loss.item() == pytest.approx(math.log(13), abs=1e-12)
    assert F.softmax(model.step(tokens[:, 0])[0], -1)[0, 0].item() == pytest.approx(1 / 13)


def test_carried_state_from_autocast_reenters_in_the_input_dtype():
    """bf16-mixed training: the layer returns a bf16 state under autocast; the next window still runs."""
    encoder = RecurrentConfig(cell="lstm", hidden_size=6)
    model = LanguageModel(LanguageModelConfig(vocab_size=13, embedding_size=6, encoder=encoder))
    tokens = torch.randint(0, 13, (2, 5))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, state, loss = model(tokens, targets=tokens)
        _, state, loss = model(tokens, detach_state(state), targets=tokens)
    assert torch.isfinite(loss)
    _, fp32_state = model(tokens, tuple(s.bfloat16() for s in state))
    assert fp32_state[0].dtype == torch.float32


def test_return_logits_false_skips_the_logits_and_keeps_the_loss():
    model = tiny("lstm")
    tokens, targets = torch.randint(0, 13, (2, 5)), torch.randint(0, 13, (2, 5))
    logits, _, loss = model(tokens, targets=targets)
    nothing, _, same = model(tokens, targets=targets, return_logits=False)
    assert nothing is None and logits.shape == (2, 5, 13)
    torch.testing.assert_close(same, loss)
    assert model.config.adaptive_softmax_cutoffs == () and isinstance(model.decoder, torch.nn.Linear)


# ---- model configs of earlier rnnkit ----------------------------------------------------------------------

OLD_MODEL = {  # the model section of a config.yaml / model file written before model.encoder
    "vocab_size": 13, "embedding_size": 6, "hidden_size": 6, "num_layers": 2, "cell": "gru", "dropout": 0.3,
    "tie_weights": True, "adaptive_softmax_cutoffs": [4, 8], "adaptive_softmax_div_value": 2.0,
}  # fmt: skip
# the state_dict keys such a model had (rnnkit.nn.GRU as `rnn`, a tied adaptive softmax as `decoder`)
OLD_KEYS = {
    "embedding.weight",
    *(f"rnn.{w}_l{k}" for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh") for k in (0, 1)),
    "decoder.head.embedding.weight", "decoder.head.cluster_weight", "decoder.head.bias",
    *(f"decoder.tail.{i}.{j}.weight" for i in (0, 1) for j in (0, 1)),
}  # fmt: skip


def test_old_flat_model_config_upgrades_to_the_same_model():
    new = upgrade_model_config(OLD_MODEL)
    assert new["encoder"] == {"cell": "gru", "hidden_size": 6, "num_layers": 2, "dropout": 0.3}
    assert new["dropout"] == 0.3 and "cell" not in new
    assert OLD_MODEL["cell"] == "gru"  # the input is untouched
    config = from_dict(LanguageModelConfig, new, prefix="model.")
    assert config.encoder == RecurrentConfig(cell="gru", hidden_size=6, num_layers=2, dropout=0.3)
    model = LanguageModel(config)
    assert set(model.state_dict()) == OLD_KEYS and model.rnn.dropout == 0.3 and model.dropout.p == 0.3
    assert upgrade_model_config(new) == new  # idempotent
    nested = {"vocab_size": 5, "dropout": 0.1, "encoder": {"cell": "mingru"}}
    assert upgrade_model_config(nested) is nested  # today's form passes through
    assert upgrade_model_config({"vocab_size": 5}) == {"vocab_size": 5}


def test_old_flat_model_config_without_dropout_or_with_one_layer():
    new = upgrade_model_config({"vocab_size": 5, "cell": "lstm", "num_layers": 1, "dropout": 0.2})
    model = LanguageModel(from_dict(LanguageModelConfig, new))
    assert model.rnn.dropout == 0.0 and model.dropout.p == 0.2  # one layer: nothing between layers
    assert upgrade_model_config({"hidden_size": 8}) == {"encoder": {"hidden_size": 8}}
    with pytest.raises(ValueError, match=r"mixes the flat keys \['cell'\] with model.encoder"):
        upgrade_model_config({"cell": "gru", "encoder": {"cell": "lstm"}})
