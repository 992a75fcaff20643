"""LanguageModel with an adaptive softmax (torch.nn.AdaptiveLogSoftmaxWithLoss): log-probabilities against a
float64 hand-written oracle, loss == -mean log p(target), step == forward, tying, config, and a model file
trained by the engine that `rnnkit evaluate` and `rnnkit generate` read."""

import dataclasses
import json
import math
import random

import pytest
import torch
import torch.nn.functional as F

from rnnkit.cli import main
from rnnkit.models import LanguageModel, LanguageModelConfig, RecurrentConfig
from rnnkit.presets import find_preset
from rnnkit.tasks.language_model import LanguageModelRunConfig, load_language_model
from rnnkit.train.config import apply_overrides, from_dict

V, CUTOFFS = 50, (10, 30)


def tiny(cell="lstm", seed=0, **kw) -> LanguageModel:
    torch.manual_seed(seed)
    config = LanguageModelConfig(
        vocab_size=V, embedding_size=8, encoder=RecurrentConfig(cell=cell, hidden_size=8, num_layers=2),
        adaptive_softmax_cutoffs=CUTOFFS, adaptive_softmax_div_value=2.0, **kw,
    )  # fmt: skip
    return LanguageModel(config).double().eval()


def oracle_log_probs(model: LanguageModel, tokens: torch.Tensor) -> torch.Tensor:
    """Grave et al. 2017 by hand from the decoder's weights: p(w) = p_head(w) for the shortlist, else
    p_head(cluster i) * p_i(w); -> (B, T, V) log p, float64."""
    h, _ = model.rnn(model.embedding(tokens))  # (B, T, H)
    head = model.decoder.head(h)  # (B, T, c_1 + 2)
    p_head = torch.exp(head) / torch.exp(head).sum(-1, keepdim=True)
    parts = [p_head[..., : CUTOFFS[0]]]
    for i, (i2h, h2o) in enumerate(model.decoder.tail):
        z = h @ i2h.weight.T @ h2o.weight.T  # (B, T, cluster size): U_i V_i h, no biases
        parts.append(p_head[..., CUTOFFS[0] + i, None] * torch.exp(z) / torch.exp(z).sum(-1, keepdim=True))
    return torch.log(torch.cat(parts, -1))  # (B, T, V)


@pytest.mark.parametrize("cell, tie", [("lstm", False), ("gru", True), ("rnn", False), ("mingru", True)])
def test_log_probs_match_the_hand_written_adaptive_softmax(cell, tie):
    model = tiny(cell, tie_weights=tie)
    tokens = torch.randint(0, V, (3, 7))
    log_probs, state = model(tokens)  # no targets: the full (B, T, V) log-probabilities
    assert log_probs.shape == (3, 7, V)
    torch.testing.assert_close(log_probs, oracle_log_probs(model, tokens), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(3, 7, dtype=torch.float64))


@pytest.mark.parametrize("tie", [False, True])
def test_loss_is_minus_mean_log_prob_of_the_targets(tie):
    model = tiny("lstm", tie_weights=tie)
    tokens = torch.randint(0, V, (4, 6))
    targets = torch.randint(0, V, (4, 6))
    targets[0] = torch.tensor([0, 9, 10, 29, 30, 49])  # every cluster and its edges
    nothing, _, loss = model(tokens, targets=targets)  # the training path: only the targets' rows
    assert nothing is None
    full = oracle_log_probs(model, tokens)  # (B, T, V)
    expected = -full.gather(-1, targets[..., None]).mean()
    torch.testing.assert_close(loss, expected, rtol=1e-12, atol=1e-12)
    log_probs, _, loss_again = model(tokens, targets=targets, return_logits=True)
    torch.testing.assert_close(log_probs, full, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(loss_again, loss)


def test_gradients_of_the_loss_match_the_oracle_and_reach_every_part():
    model = tiny("lstm", tie_weights=True)
    tokens, targets = torch.randint(0, V, (2, 5)), torch.randint(0, V, (2, 5))
    targets[0, :3] = torch.tensor([3, 15, 40])  # one target in each cluster
    model(tokens, targets=targets)[2].backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad()
    (-oracle_log_probs(model, tokens).gather(-1, targets[..., None]).mean()).backward()
    for name, p in model.named_parameters():
        torch.testing.assert_close(grads[name], p.grad, rtol=1e-10, atol=1e-12, msg=name)
        assert grads[name].abs().sum() > 0, name


@pytest.mark.parametrize("cell", ["lstm", "gru", "minlstm"])
def test_step_log_probs_equal_forward(cell):
    model = tiny(cell)
    tokens = torch.randint(0, V, (2, 8))
    log_probs, final = model(tokens)
    state = None
    for t in range(8):
        step_log_probs, state = model.step(tokens[:, t], state)  # (B, V)
        torch.testing.assert_close(step_log_probs, log_probs[:, t], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(state, final)


def test_tied_head_shortlist_rows_are_the_embedding_rows():
    model = tiny("lstm", tie_weights=True)
    assert model.decoder.head.embedding is model.embedding
    with torch.no_grad():
        model.embedding.weight[3] += 1.0  # moving an embedding row moves the head's shortlist row with it
    h = torch.randn(4, 8, dtype=torch.float64)
    expected = h @ model.embedding.weight[3] + model.decoder.head.bias[3]
    torch.testing.assert_close(model.decoder.head(h)[:, 3], expected)
    untied = sum(p.numel() for p in tiny("lstm").parameters())
    # tied: the shortlist's c_1 x H head rows are the embedding's; the 2 cluster rows and the bias remain
    assert sum(p.numel() for p in model.parameters()) == untied - CUTOFFS[0] * 8


def test_config_errors_name_the_values():
    base = dict(vocab_size=V, embedding_size=8, encoder=RecurrentConfig(hidden_size=8))
    with pytest.raises(ValueError, match=r"increase strictly within \(0, vocab_size=50\), got \[30, 10\]"):
        LanguageModelConfig(**base, adaptive_softmax_cutoffs=(30, 10))
    with pytest.raises(ValueError, match=r"got \[10, 10\]"):
        LanguageModelConfig(**base, adaptive_softmax_cutoffs=(10, 10))
    with pytest.raises(ValueError, match=r"vocab_size=50\), got \[10, 50\]"):
        LanguageModelConfig(**base, adaptive_softmax_cutoffs=(10, 50))
    with pytest.raises(ValueError, match=r"got \[0, 10\]"):
        LanguageModelConfig(**base, adaptive_softmax_cutoffs=(0, 10))
    with pytest.raises(ValueError, match="must be integers"):
        LanguageModelConfig(**base, adaptive_softmax_cutoffs=(10.5,))
    with pytest.raises(ValueError, match="div_value must be a number >= 1, got 0.5"):
        LanguageModelConfig(**base, adaptive_softmax_cutoffs=(10,), adaptive_softmax_div_value=0.5)
    with pytest.raises(
        ValueError, match=r"encoder.hidden_size // div\^2 = 0 units \(encoder.hidden_size=8\)"
    ):
        LanguageModelConfig(**base, adaptive_softmax_cutoffs=(10, 30), adaptive_softmax_div_value=4.0)
    # vocab_size 0 (from the data) defers the upper bound until the vocabulary is known
    deferred = LanguageModelConfig(adaptive_softmax_cutoffs=[2000, 10000])
    assert deferred.adaptive_softmax_cutoffs == (2000, 10000)


def test_cutoffs_come_from_yaml_lists_and_overrides():
    config = apply_overrides(LanguageModelRunConfig(), ["model.adaptive_softmax_cutoffs=[20, 40]"])
    assert config.model.adaptive_softmax_cutoffs == (20, 40)
    config = from_dict(LanguageModelRunConfig, {"model": {"adaptive_softmax_cutoffs": [5]}})
    assert config.model.adaptive_softmax_cutoffs == (5,)
    with pytest.raises(ValueError, match=r"'model.adaptive_softmax_cutoffs' expects a list, got 20 \(int\)"):
        apply_overrides(LanguageModelRunConfig(), ["model.adaptive_softmax_cutoffs=20"])
    with pytest.raises(ValueError, match=r"'model.adaptive_softmax_cutoffs\[1\]' expects int, got 'x'"):
        apply_overrides(LanguageModelRunConfig(), ["model.adaptive_softmax_cutoffs=[20, x]"])


def word_text(lines=120, seed=0) -> str:
    """~50 distinct words with a skewed (Zipf-like) frequency, so the vocabulary has > 30 tokens."""
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(48)]
    weights = [1.0 / (i + 1) for i in range(48)]
    return "\n".join(" ".join(rng.choices(words, weights, k=rng.randint(4, 9))) for _ in range(lines)) + "\n"


@pytest.mark.parametrize("tie", [False, True])
def test_train_evaluate_generate_through_the_cli(tmp_path, capsys, tie):
    (tmp_path / "t.txt").write_text(word_text())
    argv = [
        "train", "--data", str(tmp_path / "t.txt"), "--accelerator", "cpu", "--no-progress-bar",
        "--batch-size", "4", "--bptt", "8", "--set", "model.encoder.hidden_size=16", "--max-steps", "8",
        "--output-dir", str(tmp_path / "runs"), "--run-name", "x",
        "--set", "data.level=word", "--set", "model.embedding_size=16", "--set", f"model.tie_weights={tie}",
        "--set", "model.adaptive_softmax_cutoffs=[10, 30]", "--set", "optim.lr=0.01",
    ]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    model_file = tmp_path / "runs/x/model.safetensors"
    assert "adaptive_softmax_cutoffs:\n  - 10\n  - 30" in (tmp_path / "runs/x/config.yaml").read_text()
    model, vocab, _ = load_language_model(model_file)
    assert model.config.adaptive_softmax_cutoffs == (10, 30) and len(vocab) > 30
    assert (getattr(model.decoder.head, "embedding", None) is model.embedding) == tie
    # the file round-trips: the weights loaded are the ones trained (not a fresh init) and score the text
    ids = torch.tensor(vocab.encode(word_text()))[: 4 * 9].view(4, 9)
    with torch.no_grad():
        _, _, loss = model(ids[:, :-1], targets=ids[:, 1:])
        fresh = LanguageModel(model.config).eval()
        _, _, fresh_loss = fresh(ids[:, :-1], targets=ids[:, 1:])
    assert loss < fresh_loss

    capsys.readouterr()
    argv = ["evaluate", str(model_file), "--data", str(tmp_path / "t.txt"), "--json",
            "--accelerator", "cpu", "--split", "all"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["ppl"] == pytest.approx(torch.tensor(metrics["loss"]).exp().item(), rel=1e-6)
    assert metrics["bpw"] == pytest.approx(metrics["loss"] / math.log(2)) and "bpc" not in metrics  # per word
    assert "valid_bpw," in (tmp_path / "runs/x/metrics.csv").read_text().splitlines()[0] + ","
    assert 0 < metrics["loss"] < torch.log(torch.tensor(float(len(vocab)))).item()  # learnt something

    argv = ["generate", str(model_file), "--prompt", "w0 w1", "--max-new-tokens", "12", "--seed", "3"]
    assert main(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert out.startswith("w0 w1") and len(vocab.encode(out.removesuffix("\n"))) == 2 + 12
    assert main(["generate", str(model_file), "--beam", "3", "--max-new-tokens", "4", "--prompt", "w0"]) == 0


def test_bf16_autocast_training_step_runs():
    model = LanguageModel(
        LanguageModelConfig(
            vocab_size=V,
            embedding_size=16,
            encoder=RecurrentConfig(hidden_size=16),
            adaptive_softmax_cutoffs=CUTOFFS,
        )
    )
    tokens = torch.randint(0, V, (2, 5))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, state, loss = model(tokens, targets=tokens)
    loss.backward()
    assert torch.isfinite(loss) and model.embedding.weight.grad.abs().sum() > 0
    assert F.softmax(model.step(tokens[:, 0])[0], -1).sum().item() == pytest.approx(2.0)


def test_wikitext2_preset_is_an_adaptive_softmax_run_that_stops_within_its_budget():

    from rnnkit.train.config import load_yaml

    config = load_yaml(LanguageModelRunConfig, find_preset("wikitext2_word"))
    assert config.model.adaptive_softmax_cutoffs == (2000, 10000) and config.model.tie_weights
    assert config.optim.schedule == "cosine" and config.trainer.max_time_minutes == 40
    steps_per_epoch = 2_088_628 // (config.data.batch_size * config.data.bptt)  # WikiText-2 train tokens
    assert 1.5 <= config.trainer.max_steps / steps_per_epoch <= 3  # the measured 1.09 s/step: ~35 minutes
    assert config.trainer.max_epochs * steps_per_epoch > config.trainer.max_steps  # max_steps is what binds
    model = LanguageModel(dataclasses.replace(config.model, vocab_size=33_278))
    assert model.decoder.head.shortlist_size == 2000 and model.decoder.tail[1][0].out_features == 400 // 16
