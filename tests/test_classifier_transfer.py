"""ULMFiT-style transfer: a classifier started from a word-level language model (model.init_from), a
bidirectional one from a forward and a backward model (model.init_from_backward), gradual unfreezing
(finetune.unfreeze_steps), and the errors of a language model that does not fit."""

import dataclasses
import json
import random

import pytest
import torch

from rnnkit.cli import main
from rnnkit.data.labelled import language_model_text, tokenizer_from_json
from rnnkit.tasks.classifier import (
    ClassifierDataConfig,
    ClassifierRunConfig,
    FinetuneConfig,
    build,
    load_classifier,
)
from rnnkit.tasks.language_model import load_language_model
from rnnkit.train.config import load_yaml

WORDS = ["the", "film", "was", "a", "plot", "and", "actor", "scene", "it", "story"]


def reviews(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(4, 10))]
        cue = rng.choice(["good", "great"] if i % 2 else ["bad", "awful"])
        words.insert(rng.randrange(len(words) + 1), cue)
        rows.append({"text": " ".join(words) + rng.choice([".", "!", "<br />"]), "label": i % 2})
    return rows


def lm_config(path, hidden_size=8, num_layers=2, embedding_size=8, max_vocab=30000):
    path.write_text("\n".join([
        "task: language_model", "model:", f"  embedding_size: {embedding_size}", "  encoder:",
        "    cell: lstm",
        f"    hidden_size: {hidden_size}", f"    num_layers: {num_layers}",
        "data:", "  level: word", "  batch_size: 4", "  bptt: 8", f"  max_vocab: {max_vocab}",
        "optim:", "  lr: 0.01", "trainer:", "  max_steps: 5", "  accelerator: cpu", "  progress_bar: false",
        "  model_summary: false"]) + "\n")
    return path


def classifier_config(path, init_from, hidden_size=8, unfreeze_steps=(), bidirectional="false",
                      embedding_size=8, init_from_backward="", **extra):
    lines = ["task: classifier", "model:", f"  embedding_size: {embedding_size}", "  pooling: mean",
             "  dropout: 0.0", f"  init_from: '{init_from}'", f"  init_from_backward: '{init_from_backward}'",
             "  encoder:", "    cell: lstm", f"    hidden_size: {hidden_size}",
             "    num_layers: 2", f"    bidirectional: {bidirectional}",
             "data:", "  batch_size: 8", "  valid_fraction: 0.2", *[f"  {k}: {v}" for k, v in extra.items()],
             "finetune:", f"  unfreeze_steps: {list(unfreeze_steps)}",
             "optim:", "  lr: 0.05", "trainer:", "  max_epochs: 100", "  accelerator: cpu",
             "  progress_bar: false", "  model_summary: false"]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A tiny word-level LSTM language model (2 x 8) trained through the CLI on the reviews' text."""
    tmp = tmp_path_factory.mktemp("ulmfit")
    rows = reviews(80, seed=0)
    (tmp / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp / "lm.txt").write_text(language_model_text([r["text"] for r in rows]))
    code = main(["train", "--config", str(lm_config(tmp / "lm.yaml")), "--data", str(tmp / "lm.txt"),
                 "--output-dir", str(tmp / "runs"), "--run-name", "lm"])
    assert code == 0
    return tmp


def train_classifier(tmp, name, max_steps, init_from="lm", **config):
    path = classifier_config(tmp / f"{name}.yaml", tmp / "runs" / init_from if init_from else "", **config)
    code = main(["train", "--config", str(path), "--data", str(tmp / "train.jsonl"), "--max-steps",
                 str(max_steps), "--output-dir", str(tmp / "runs"), "--run-name", name])
    assert code == 0
    model, _, _ = load_classifier(tmp / "runs" / name / "model-last.safetensors")
    return model


def lm_weights(tmp):
    lm, vocab, _ = load_language_model(tmp / "runs" / "lm" / "model.safetensors")
    return lm, vocab


def test_init_from_copies_the_weights_and_adopts_the_vocabulary(pretrained):
    path = classifier_config(pretrained / "c.yaml", pretrained / "runs" / "lm")
    config = load_yaml(ClassifierRunConfig, path)
    data = dataclasses.replace(config.data, path=str(pretrained / "train.jsonl"))
    config = dataclasses.replace(config, data=data)
    built = build(config, None)
    model, (lm, vocab) = built.task.model, lm_weights(pretrained)
    assert torch.equal(model.embedding.weight, lm.embedding.weight)  # step 0: exact copies
    theirs = lm.rnn.state_dict()
    assert all(torch.equal(w, theirs[k]) for k, w in model.encoder.state_dict().items())
    assert model.embedding.padding_idx is None  # id 0 is a word of the language model's vocabulary
    text = "The film was good!<br />A plot."
    stored = built.task.metadata["encoding"]["tokenizer"]
    assert stored["kind"] == "pretrained_word" and stored["vocabulary"] == list(vocab.tokens)
    tokenizer = tokenizer_from_json(stored)
    assert tokenizer.encode(text) == vocab.encode(language_model_text([text]).strip())  # the same token ids


def test_gradual_unfreezing_trains_the_top_first(pretrained):
    lm, _ = lm_weights(pretrained)
    theirs = lm.rnn.state_dict()

    def unchanged(model):
        layers = [all(torch.equal(w, theirs[k]) for k, w in model.encoder.state_dict().items() if
                      k.endswith(f"_l{layer}")) for layer in (0, 1)]
        return {"embedding": torch.equal(model.embedding.weight, lm.embedding.weight), "layer 0": layers[0],
                "layer 1": layers[1]}

    head_only = train_classifier(pretrained, "head_only", 4, unfreeze_steps=(5, 8))
    assert unchanged(head_only) == {"embedding": True, "layer 0": True, "layer 1": True}
    top = train_classifier(pretrained, "top", 7, unfreeze_steps=(5, 8))
    assert unchanged(top) == {"embedding": True, "layer 0": True, "layer 1": False}
    everything = train_classifier(pretrained, "all", 10, unfreeze_steps=(5, 8))
    assert unchanged(everything) == {"embedding": False, "layer 0": False, "layer 1": False}
    assert not torch.equal(head_only.head.weight, top.head.weight)


def test_a_resumed_run_keeps_the_unfreeze_steps(pretrained):
    """Steps 0-3, then a resume to step 7: the same weights as one run of 7 steps."""
    train_classifier(pretrained, "resumed", 4, unfreeze_steps=(5, 8))
    code = main(["train", "--resume", str(pretrained / "runs" / "resumed"), "--max-steps", "7"])
    assert code == 0
    resumed, _, _ = load_classifier(pretrained / "runs" / "resumed" / "model-last.safetensors")
    once = train_classifier(pretrained, "once", 7, unfreeze_steps=(5, 8))
    for (key, a), b in zip(resumed.state_dict().items(), once.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-6), key


@pytest.mark.parametrize("change, message", [
    ({"hidden_size": 16}, "the language model has encoder.hidden_size 8, the classifier's "
                          "model.encoder.hidden_size is 16: set it to 8"),
    ({"bidirectional": "true"}, "a language model reads forward only"),
    ({"tokenizer": "bpe"}, "data.tokenizer must be 'word'"),
    ({"unfreeze_steps": (1, 2, 3, 4)}, "the model has 4 layer groups"),
])
def test_a_language_model_that_does_not_fit_is_one_clear_error(pretrained, capsys, change, message):
    path = classifier_config(pretrained / "bad.yaml", pretrained / "runs" / "lm", **change)
    code = main(["train", "--config", str(path), "--data", str(pretrained / "train.jsonl"),
                 "--max-steps", "2", "--output-dir", str(pretrained / "runs"), "--run-name", "bad"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and message in err[-1], err
    assert not (pretrained / "runs" / "bad").exists()


def test_a_model_file_of_another_task_is_refused(pretrained, capsys):
    train_classifier(pretrained, "plain", 2, init_from="")  # a classifier file, not a language model
    path = classifier_config(pretrained / "c2.yaml", pretrained / "runs" / "plain")
    code = main(["train", "--config", str(path), "--data", str(pretrained / "train.jsonl"),
                 "--max-steps", "2", "--output-dir", str(pretrained / "runs"), "--run-name", "c2"])
    err = capsys.readouterr().err
    assert code == 2 and "holds a model for task 'classifier', expected 'language_model'" in err, err


def test_unfreeze_steps_need_a_pretrained_model(pretrained):
    config = ClassifierRunConfig(data=ClassifierDataConfig(path=str(pretrained / "train.jsonl")),
                                 finetune=FinetuneConfig(unfreeze_steps=(3,)))
    with pytest.raises(ValueError, match="finetune.unfreeze_steps .* needs model.init_from"):
        build(config, None)
    with pytest.raises(ValueError, match="must be increasing integers >= 1"):
        FinetuneConfig(unfreeze_steps=(3, 3))


@pytest.fixture(scope="module")
def backward(pretrained):
    """A backward language model (2 x 8, embedding 6) on the same reviews with their words reversed, with a
    smaller vocabulary than the forward model's, so that some of the forward words are missing from it."""
    rows = [json.loads(line) for line in (pretrained / "train.jsonl").read_text().splitlines()]
    (pretrained / "lm_reversed.txt").write_text(language_model_text([r["text"] for r in rows], reverse=True))
    config = lm_config(pretrained / "lm_b.yaml", embedding_size=6, max_vocab=10)
    code = main(["train", "--config", str(config), "--data", str(pretrained / "lm_reversed.txt"),
                 "--output-dir", str(pretrained / "runs"), "--run-name", "lm_b"])
    assert code == 0
    return pretrained / "runs" / "lm_b"


def bidirectional_config(tmp, backward_path, **change):
    settings = {"bidirectional": "true", "embedding_size": 14, "init_from_backward": backward_path, **change}
    path = classifier_config(tmp / "bi.yaml", tmp / "runs" / "lm", **settings)
    config = load_yaml(ClassifierRunConfig, path)
    return dataclasses.replace(config, data=dataclasses.replace(config.data, path=str(tmp / "train.jsonl")))


def test_a_bidirectional_classifier_starts_as_both_language_models(pretrained, backward):
    """At step 0 the classifier's forward outputs are the forward model's states on the text and its reverse
    outputs the backward model's states on the reversed text, for every sequence of a padded batch."""
    model = build(bidirectional_config(pretrained, backward), None).task.model.eval()
    lm_f, vocab_f = lm_weights(pretrained)
    lm_b, vocab_b, _ = load_language_model(backward / "model.safetensors")
    missing = [w for w in vocab_f.tokens if w not in vocab_b.tokens]
    assert missing and len(vocab_b) < len(vocab_f)  # the row mapping is exercised, <unk> included
    generator = torch.Generator().manual_seed(3)
    lengths = torch.tensor([7, 3, 5])
    ids = torch.randint(0, len(vocab_f), (3, 7), generator=generator)
    with torch.no_grad():
        outputs = model.encode(ids, lengths)  # (B, T, 2 H)
        for b, n in enumerate(lengths.tolist()):
            words = [vocab_f.tokens[i] for i in ids[b, :n].tolist()]
            rows_b = torch.tensor([vocab_b.tokens.index(w) if w in vocab_b.tokens else
                                   vocab_b.tokens.index(vocab_b.unk) for w in reversed(words)])
            forward, _ = lm_f.rnn(lm_f.embedding(ids[b:b + 1, :n]))
            backward_states, _ = lm_b.rnn(lm_b.embedding(rows_b[None]))
            torch.testing.assert_close(outputs[b, :n, :8], forward[0], rtol=0, atol=1e-6)
            torch.testing.assert_close(outputs[b, :n, 8:], backward_states[0].flip(0), rtol=0, atol=1e-6)
    assert model.embedding.padding_idx is None


@pytest.mark.parametrize("change, message", [
    ({"embedding_size": 16}, "the two language models' embeddings are 8 + 6 wide, this classifier's "
                             "model.embedding_size is 16: set it to 14"),
    ({"hidden_size": 16}, "the language model has encoder.hidden_size 8"),
    ({"init_from_backward": ""}, "a bidirectional classifier needs a backward one too"),
    ({"bidirectional": "false"}, "model.init_from_backward starts the reverse direction of a bidirectional"),
])
def test_a_backward_language_model_that_does_not_fit_is_one_clear_error(pretrained, backward, change,
                                                                        message):
    with pytest.raises(ValueError, match=message.replace(".", r"\.").replace("+", r"\+")):
        build(bidirectional_config(pretrained, backward, **change), None)
