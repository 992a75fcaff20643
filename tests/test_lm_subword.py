"""Subword (BPE) language models: the tokenizer trained on the training text only, stored in the model file,
read back by evaluate and generate; and metric names that say their unit (bpc / bpw / bpt)."""

from __future__ import annotations

import csv
import json
import math
import random

import pytest
import torch

from rnnkit.cli import main
from rnnkit.data.corpus import TextDataConfig, evaluation_ids, token_ids
from rnnkit.data.text import UNK, Vocabulary
from rnnkit.tasks.language_model import BITS, CrossEntropy, load_language_model, units
from rnnkit.train.metrics import StepOutput


def tiny_text(lines: int = 120, seed: int = 0) -> str:
    rng = random.Random(seed)
    words = "the cat sat on a mat while dogs ran over hills and cats slept".split()
    rows = (" ".join(rng.choice(words) for _ in range(rng.randint(3, 8))) for _ in range(lines))
    return "\n".join(rows) + "\n"


def test_bpe_vocabulary_round_trips_text_and_json():
    text = tiny_text()
    vocab = Vocabulary.build(text, level="subword", max_size=50)
    assert vocab.level == "subword" and vocab.unk == UNK and vocab.tokens[0] == UNK
    assert len(set(text)) < len(vocab) <= 50 and "▁" in vocab and set(text) - {" "} <= set(vocab.tokens)
    ids = vocab.encode(text)
    assert len(ids) < len(text) / 2  # merges: fewer tokens than characters
    assert vocab.decode(ids) == text and "".join(vocab.piece(i) for i in ids) == text  # streamable pieces
    assert "\n" in vocab and vocab.piece(vocab.index["\n"]) == "\n"
    assert Vocabulary.build(text, level="subword", max_size=50) == vocab  # the same text, the same BPE
    data = json.loads(json.dumps(vocab.to_json()))
    assert json.loads(data["tokenizer"])["model"]["type"] == "BPE"  # tokenizers' own JSON (to_str)
    again = Vocabulary.from_json(data)
    assert again == vocab and again.encode(text) == ids


def test_char_and_word_vocabulary_json_is_unchanged():
    for level in ("char", "word"):
        vocab = Vocabulary.build("a b a\n", level=level)
        assert json.dumps(vocab.to_json()) == json.dumps(
            {"tokens": list(vocab.tokens), "level": level, "unk": None})


def test_a_character_the_bpe_never_saw():
    vocab = Vocabulary.build(tiny_text(), level="subword", max_size=50)
    tokens = vocab.tokenize("the cat Zaqs")
    assert "Z" in tokens and "Z" not in vocab  # kept as itself, so it can be named
    ids = vocab.encode("the cat Zaqs")
    assert ids[tokens.index("Z")] == vocab.index[UNK]
    with pytest.raises(ValueError, match=r"the text holds 2 characters \(2 distinct\) .*'Z' \(U\+005A\) x1, "
                       r"'q' \(U\+0071\) x1 .*--unknown unk maps them to <unk>"):
        vocab.encode_known(tokens)
    kept, unseen = vocab.encode_known(tokens, "skip")
    assert unseen == {"Z": 1, "q": 1} and len(kept) == len(ids) - 2
    assert vocab.encode_known(tokens, "unk")[0] == ids


def test_subword_config_and_vocabulary_errors():
    with pytest.raises(ValueError, match="data.level must be 'char', 'word' or 'subword', got 'bpe'"):
        TextDataConfig(level="bpe")
    with pytest.raises(ValueError, match="a subword one is sized by data.subword_vocab_size, got min_freq=2"):
        TextDataConfig(level="subword", min_freq=2)
    with pytest.raises(ValueError, match="data.subword_vocab_size must be >= 2, got 0"):
        TextDataConfig(level="subword", subword_vocab_size=0)
    with pytest.raises(ValueError, match="a subword vocabulary needs its size: give max_size"):
        Vocabulary.build("abc", level="subword")
    with pytest.raises(ValueError, match="needs its tokenizer .* got level 'subword' without a tokenizer"):
        Vocabulary(("a", "b"), level="subword")
    vocab = Vocabulary.build(tiny_text(), level="subword", max_size=40)
    with pytest.raises(ValueError, match="got level 'char' with a tokenizer"):
        Vocabulary(tuple("ab"), level="char", tokenizer=vocab.tokenizer)
    with pytest.raises(ValueError, match="tokenizer's 40 tokens are not the vocabulary's 39 tokens"):
        Vocabulary(vocab.tokens[:-1], "subword", UNK, vocab.tokenizer)
    with pytest.raises(ValueError, match="tokenizer JSON cannot be read"):
        Vocabulary(vocab.tokens, "subword", UNK, "{not json")


def test_the_bpe_learns_from_the_training_text_only(tmp_path):
    text = tiny_text(100) + "Qat Qat Qat\n"  # Q only in the held-out last part
    (tmp_path / "t.txt").write_text(text)
    data = TextDataConfig(path=str(tmp_path / "t.txt"), level="subword", subword_vocab_size=60)
    train, valid, vocab = token_ids(data, None)
    cut = int(len(text) * (1 - data.valid_fraction))  # cut in characters, before the BPE is trained
    assert vocab == Vocabulary.build(text[:cut], level="subword", max_size=60) and "Q" not in vocab
    assert vocab.decode(train) == text[:cut] and (valid == vocab.index[UNK]).sum() == 3
    ids, unseen = evaluation_ids(data, vocab, split_name="valid", unknown="unk")
    assert torch.equal(ids, valid) and unseen == {"Q": 3}
    with pytest.raises(ValueError, match=r"'Q' \(U\+0051\) x3"):
        evaluation_ids(data, vocab, split_name="valid")
    assert torch.equal(evaluation_ids(data, vocab, split_name="train")[0], train)


def test_train_evaluate_generate_a_subword_model(tmp_path, capsys):
    (tmp_path / "t.txt").write_text(tiny_text(300))
    argv = ["train", "--data", tmp_path / "t.txt", "--accelerator", "cpu", "--no-progress-bar",
            "--batch-size", "4", "--bptt", "8", "--hidden-size", "16", "--max-steps", "4",
            "--set", "model.embedding_size=8", "--set", "data.level=subword",
            "--set", "data.subword_vocab_size=60", "--set", "trainer.val_check_interval=2",
            "--output-dir", tmp_path / "runs", "--run-name", "s"]  # fmt: skip
    assert main([str(a) for a in argv]) == 0, capsys.readouterr().err
    run = tmp_path / "runs" / "s"
    with open(run / "metrics.csv", newline="") as f:
        header = next(csv.reader(f))
    assert "valid_bpt" in header and "valid_bpc" not in header
    _, vocab, meta = load_language_model(run / "model.safetensors")
    assert vocab.level == "subword" and vocab.tokenizer == meta["vocabulary"]["tokenizer"]
    assert Vocabulary.load(run / "vocabulary.json") == vocab
    capsys.readouterr()

    evaluate = ["evaluate", str(run), "--data", str(tmp_path / "t.txt"), "--accelerator", "cpu"]
    assert main([*evaluate, "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["bpt"] == pytest.approx(metrics["loss"] / math.log(2)) and "bpc" not in metrics
    assert main(evaluate) == 0
    assert "bits per token" in capsys.readouterr().out

    assert main(["generate", str(run), "--prompt", "the cat", "--max-new-tokens", "7", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    continuation = out.removeprefix("the cat").removesuffix("\n")
    assert out.startswith("the cat") and continuation
    assert len(vocab.encode(continuation)) <= 7 + 1  # 7 subword tokens (re-tokenising may merge them)


@pytest.mark.parametrize("level, bits, unit", [("char", "bpc", "bits per character"),
                                               ("word", "bpw", "bits per word"),
                                               ("subword", "bpt", "bits per token")])
def test_the_bits_metric_is_named_after_the_level(level, bits, unit):
    metric = CrossEntropy(level)
    metric.update(StepOutput(torch.tensor(math.log(4.0)), None, 10))
    assert metric.compute() == pytest.approx({"loss": math.log(4.0), bits: 2.0, "ppl": 4.0})
    assert BITS[level] == (bits, unit) and units(level)[bits] == unit
