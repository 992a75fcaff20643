"""The Lightning engine on a tiny language model: run directory, learning, evaluation, exact resume."""

import csv
import math
import random

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from rnnkit.data.text import TokenStream
from rnnkit.models.gradient_flow import gradient_norms_through_time, plot_gradient_norms
from rnnkit.tasks.language_model import (
    LanguageModelRunConfig,
    evaluate_language_model,
    load_language_model,
    train_language_model,
)
from rnnkit.train.config import apply_overrides


def tiny_text(lines=150, seed=0) -> str:
    rng = random.Random(seed)
    words = ["the", "cat", "sat", "on", "a", "mat", "dog", "ran"]
    return (
        "\n".join(" ".join(rng.choice(words) for _ in range(rng.randint(3, 7))) for _ in range(lines)) + "\n"
    )


def tiny_config(tmp_path, *overrides) -> LanguageModelRunConfig:
    (tmp_path / "text.txt").write_text(tiny_text())
    return apply_overrides(
        LanguageModelRunConfig(),
        [
            f"data.path={tmp_path / 'text.txt'}",
            "data.batch_size=4",
            "data.bptt=16",
            "model.embedding_size=8",
            "model.encoder.hidden_size=16",
            "model.encoder.num_layers=1",
            "optim.lr=0.01",
            "trainer.accelerator=cpu",
            "trainer.progress_bar=false",
            f"trainer.output_dir={tmp_path / 'runs'}",
            "trainer.log_every_n_steps=5",
            *overrides,
        ],
    )


def read_metrics(run_dir):
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_fit_writes_the_run_directory_and_learns(tmp_path):
    config = tiny_config(
        tmp_path, "trainer.max_steps=40", "trainer.val_check_interval=10", "trainer.run_name=r"
    )
    result = train_language_model(config, argv=["rnnkit", "train", "--max-steps", "40"])
    run = result.run_dir
    assert result.global_step == 40
    for name in [
        "config.yaml",
        "command.txt",
        "metrics.csv",
        "vocabulary.json",
        "model.safetensors",
        "model-last.safetensors",
        "checkpoints/last.safetensors",
        "plots/loss.png",
    ]:
        assert (run / name).is_file(), name
    assert (run / "plots/loss.png").read_bytes()[:4] == b"\x89PNG"
    assert (run / "command.txt").read_text() == "rnnkit train --max-steps 40\n"
    vocab_size = len(set(tiny_text()))
    assert f"vocab_size: {vocab_size}" in (run / "config.yaml").read_text()
    valid = [float(r["valid_loss"]) for r in read_metrics(run) if r["valid_loss"]]
    assert len(valid) == 4 and valid[-1] < valid[0] - 0.2 and valid[-1] < math.log(vocab_size) - 0.3
    assert result.metrics["valid_bpc"] == pytest.approx(valid[-1] / math.log(2), rel=1e-6)
    with pytest.raises(ValueError, match="already exists and is not empty"):
        train_language_model(config)


def test_evaluate_matches_a_plain_torch_loop(tmp_path):
    config = tiny_config(tmp_path, "trainer.max_steps=5", "trainer.run_name=e", "model.encoder.cell=gru")
    run = train_language_model(config).run_dir
    metrics = evaluate_language_model(
        run / "model.safetensors", tmp_path / "text.txt", "valid", progress_bar=False
    )
    # oracle: the last 10% of the text as one stream, summed cross-entropy with the state carried over
    model, vocab, _ = load_language_model(run / "model.safetensors")
    ids = torch.tensor(vocab.encode(tiny_text()))
    valid = ids[int(len(ids) * 0.9) :]
    total, count, state = 0.0, 0, None
    with torch.no_grad():
        for inputs, targets in TokenStream(valid, 4, 16):
            logits, state = model(inputs, state)
            total += F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]).double(), targets.reshape(-1), reduction="sum"
            ).item()
            count += targets.numel()
    assert metrics["valid_tokens"] == count
    assert metrics["valid_loss"] == pytest.approx(total / count, rel=1e-5)
    assert metrics["valid_ppl"] == pytest.approx(math.exp(total / count), rel=1e-5)


def test_resume_continues_exactly_across_an_epoch_boundary(tmp_path):
    """Stop mid-epoch at step 10, resume to 30 (an epoch is 22 batches): same weights as 30 steps straight.

    Dropout and two layers make the RNG state and the carried (h, c) matter; the cosine schedule, its state.
    """
    common = [
        "optim.schedule=cosine",
        "optim.decay_steps=30",
        "model.encoder.num_layers=2",
        "model.encoder.dropout=0.3",
        "model.dropout=0.3",
        "trainer.checkpoint_every_n_steps=5",
        "trainer.seed=3",
    ]
    straight = train_language_model(
        tiny_config(tmp_path, *common, "trainer.max_steps=30", "trainer.run_name=a")
    )
    first = train_language_model(tiny_config(tmp_path, *common, "trainer.max_steps=10", "trainer.run_name=b"))
    assert first.global_step == 10
    before = load_file(first.run_dir / "model-last.safetensors")
    resumed = train_language_model(
        tiny_config(tmp_path, *common, "trainer.max_steps=30"), resume_dir=first.run_dir
    )
    assert resumed.global_step == 30
    a = load_file(straight.run_dir / "model-last.safetensors")
    b = load_file(resumed.run_dir / "model-last.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    steps = [int(r["step"]) for r in read_metrics(resumed.run_dir) if r["train_loss"]]
    assert steps == sorted(steps) and steps[-1] == 29  # earlier rows kept, continued rows appended
    # the resumed run did move on from step 10
    assert not all(torch.equal(before[k], b[k]) for k in a)


def test_resume_errors(tmp_path):
    config = tiny_config(tmp_path, "trainer.max_steps=2")
    with pytest.raises(FileNotFoundError, match="vocabulary.json not found"):
        train_language_model(config, resume_dir=tmp_path)
    (tmp_path / "vocabulary.json").write_text('{"tokens": ["a"], "level": "char"}')
    with pytest.raises(ValueError, match="unknown char"):
        train_language_model(config, resume_dir=tmp_path)


def test_gradient_norms_through_time_match_hand_written_bptt():
    """One-layer tanh RNN: dL/dh_t = W_hh^T diag(1 - h_{t+1}^2) dL/dh_{t+1}, by hand in float64."""
    torch.manual_seed(0)
    config = apply_overrides(
        LanguageModelRunConfig(),
        [
            "model.vocab_size=5",
            "model.encoder.cell=rnn",
            "model.encoder.num_layers=1",
            "model.encoder.hidden_size=6",
            "model.embedding_size=3",
        ],
    ).model
    from rnnkit.models import LanguageModel

    model = LanguageModel(config).double()
    tokens, target = torch.randint(0, 5, (1, 8)), torch.randint(0, 5, (1,))
    norms = gradient_norms_through_time(model, tokens, target)
    with torch.no_grad():
        logits, _ = model(tokens)
        hs, _ = model.rnn(model.embedding(tokens))  # (1, T, H)
        p = torch.softmax(logits[0, -1], -1)
        dlogits = p - F.one_hot(target[0], 5).double()
        dh = model.decoder.weight.T @ dlogits  # (H,)
        expected = []
        for t in range(6, -1, -1):  # h_t for t = 6..0, states that feed a later step
            dh = model.rnn.weight_hh_l0.T @ ((1 - hs[0, t + 1] ** 2) * dh)
            expected.append(dh.norm())
    torch.testing.assert_close(norms, torch.stack(expected[::-1]), rtol=1e-10, atol=1e-14)


def test_gradient_norm_plot_for_three_cells(tmp_path):
    norms = {}
    for cell in ["rnn", "gru", "lstm"]:
        torch.manual_seed(0)
        config = apply_overrides(
            LanguageModelRunConfig(), ["model.vocab_size=7", f"model.encoder.cell={cell}"]
        ).model
        from rnnkit.models import LanguageModel

        norms[cell] = gradient_norms_through_time(
            LanguageModel(config), torch.randint(0, 7, (4, 30)), torch.randint(0, 7, (4,))
        )
        assert norms[cell].shape == (29,) and (norms[cell] > 0).all()
    out = plot_gradient_norms(norms, tmp_path / "g.png")
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_gradient_norm_figure_from_model_files(tmp_path):
    from rnnkit.data.text import Vocabulary
    from rnnkit.models import LanguageModel
    from rnnkit.tasks.language_model import gradient_norm_figure
    from rnnkit.train.checkpoint import save_model
    from rnnkit.train.config import to_dict

    (tmp_path / "t.txt").write_text(tiny_text())
    vocab = Vocabulary.build(tiny_text())
    files = {}
    for cell in ["rnn", "gru", "lstm"]:
        config = apply_overrides(
            LanguageModelRunConfig(), [f"model.vocab_size={len(vocab)}", f"model.encoder.cell={cell}"]
        )
        files[cell] = tmp_path / f"{cell}.safetensors"
        save_model(
            files[cell],
            LanguageModel(config.model),
            "language_model",
            config=to_dict(config),
            vocabulary=vocab.to_json(),
        )
    norms = gradient_norm_figure(files, tmp_path / "t.txt", tmp_path / "g.png", steps=20, batch_size=3)
    assert set(norms) == {"rnn", "gru", "lstm"} and all(n.shape == (19,) for n in norms.values())
    assert (tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"


def test_early_stopping_stops_when_valid_loss_stalls(tmp_path):
    """lr = 1e-30 (Adam's steps are below float32's resolution of the weights): validation loss never
    improves, so with patience 2 training stops at the third validation."""
    stalled = tiny_config(
        tmp_path,
        "optim.lr=1e-30",
        "trainer.val_check_interval=2",
        "trainer.early_stopping_patience=2",
        "trainer.max_steps=40",
        "trainer.run_name=s",
    )
    result = train_language_model(stalled)
    assert result.global_step == 6 and result.end["reason"] == "early_stopping"
    # and a run that ends mid-epoch before any validation is no error
    short = tiny_config(
        tmp_path, "trainer.early_stopping_patience=2", "trainer.max_steps=3", "trainer.run_name=t"
    )
    assert train_language_model(short).global_step == 3


def test_cosine_schedule_decays_from_lr_to_its_final_fraction():
    from rnnkit.train.config import OptimConfig
    from rnnkit.train.module import Task, TaskModule

    task = Task(name="t", model=torch.nn.Linear(2, 2), loss=None, train_batches=None)
    config = OptimConfig(lr=0.1, schedule="cosine", decay_steps=10, final_lr_fraction=0.2)
    configured = TaskModule(task, config).configure_optimizers()
    optimizer, scheduler = configured["optimizer"], configured["lr_scheduler"]["scheduler"]
    assert configured["lr_scheduler"]["interval"] == "step"
    lrs = []
    for _ in range(10):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    expected = [0.02 + 0.5 * (0.1 - 0.02) * (1 + math.cos(math.pi * k / 10)) for k in range(10)]
    assert lrs == pytest.approx(expected, rel=1e-12)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.02)
    with pytest.raises(ValueError, match="optim.schedule"):
        OptimConfig(schedule="linear")
