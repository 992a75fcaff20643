"""`rnnkit evaluate` on text with tokens the model never saw: an error naming them, or skip / map to <unk>."""

from __future__ import annotations

import json

import pytest
import torch

from rnnkit.cli import main
from rnnkit.data.corpus import TextDataConfig, evaluation_ids, token_ids
from rnnkit.data.text import UNK, Vocabulary
from rnnkit.models.language_model import LanguageModel, LanguageModelConfig
from rnnkit.models.recurrent import RecurrentConfig
from rnnkit.tasks.language_model import TASK, LanguageModelRunConfig, evaluate_language_model
from rnnkit.train.checkpoint import save_model
from rnnkit.train.config import to_dict

CHAR_TEXT = "the cat sat on the mat\nthe dog ran\n" * 6
WORD_TEXT = "the cat sat on the mat\nthe dog ran far\n" * 6


def model_file(path, vocab: Vocabulary, level: str):
    """A small untrained model file with the metadata `rnnkit train` writes (no training needed here)."""
    torch.manual_seed(0)
    config = LanguageModelConfig(vocab_size=len(vocab), embedding_size=8,
                                 encoder=RecurrentConfig(cell="gru", hidden_size=8))
    run = LanguageModelRunConfig(model=config, data=TextDataConfig(level=level, batch_size=2, bptt=4))
    save_model(path, LanguageModel(config), TASK, config=to_dict(run), vocabulary=vocab.to_json())
    return path


def evaluate(argv, capsys):
    code = main(["evaluate", *map(str, argv), "--accelerator", "cpu"])
    out, err = capsys.readouterr()
    return code, out.strip(), err.strip()


@pytest.fixture
def char_model(tmp_path):
    return model_file(tmp_path / "char.safetensors", Vocabulary.build(CHAR_TEXT, level="char"), "char")


def test_unseen_characters_are_an_error_that_names_them(tmp_path, char_model, capsys):
    (tmp_path / "new.txt").write_text(CHAR_TEXT + "café Zoë é\n", encoding="utf-8")
    code, out, err = evaluate([char_model, "--data", tmp_path / "new.txt", "--split", "all"], capsys)
    assert code == 2 and out == "" and len(err.splitlines()) == 1
    vocab_size = len(Vocabulary.build(CHAR_TEXT, level="char"))
    assert (f"the text holds 5 characters (4 distinct) outside the model's vocabulary of {vocab_size} "
            "tokens: 'f' (U+0066) x1, 'é' (U+00E9) x2, 'Z' (U+005A) x1, 'ë' (U+00EB) x1 (--unknown skip "
            "drops them)") in err  # fmt: skip
    assert "--unknown unk" not in err  # a character vocabulary has no <unk>

    many = CHAR_TEXT + "ABCDEFGH\n"
    (tmp_path / "many.txt").write_text(many)
    code, _, err = evaluate([char_model, "--data", tmp_path / "many.txt", "--split", "all"], capsys)
    assert code == 2 and "8 characters (8 distinct)" in err and "'E' (U+0045) x1 and 3 more" in err


def test_skip_drops_them_and_reports_the_count(tmp_path, char_model, capsys):
    (tmp_path / "new.txt").write_text(CHAR_TEXT + "Zone Qat X\n")
    (tmp_path / "clean.txt").write_text(CHAR_TEXT + "one at \n")  # the same text without Z, Q, X
    code, out, err = evaluate(
        [char_model, "--data", tmp_path / "new.txt", "--split", "all", "--unknown", "skip", "--json"], capsys
    )
    assert code == 0, err
    skipped = json.loads(out.splitlines()[-1])
    clean = evaluate_language_model(char_model, tmp_path / "clean.txt", "all", accelerator="cpu",
                                    progress_bar=False)
    assert skipped["unknown"] == 3 and clean["valid_unknown"] == 0
    assert skipped["loss"] == pytest.approx(clean["valid_loss"], rel=1e-9)
    assert skipped["tokens"] == clean["valid_tokens"]
    code, out, err = evaluate(
        [char_model, "--data", tmp_path / "new.txt", "--split", "all", "--unknown", "skip"], capsys
    )
    assert code == 0 and "3 unknown tokens skipped" in out and "bits per character" in out, err

    code, out, err = evaluate(
        [char_model, "--data", tmp_path / "new.txt", "--split", "all", "--unknown", "unk"], capsys
    )
    assert code == 2 and out == ""
    assert "this char-level vocabulary has no <unk> token to map the unknown 3 characters to" in err


def test_unk_maps_unseen_words_to_unk(tmp_path, capsys):
    vocab = Vocabulary.build(WORD_TEXT, level="word", min_freq=2)  # every word is frequent: no <unk> yet
    vocab = Vocabulary(vocab.tokens + (UNK,), "word", UNK)
    word_model = model_file(tmp_path / "word.safetensors", vocab, "word")
    (tmp_path / "new.txt").write_text(WORD_TEXT + "the emu ran to the yak\n")
    (tmp_path / "unk.txt").write_text(WORD_TEXT + "the <unk> ran <unk> the <unk>\n")
    code, _, err = evaluate([word_model, "--data", tmp_path / "new.txt", "--split", "all"], capsys)
    assert code == 2 and "the text holds 3 words (3 distinct)" in err and "'emu' x1, 'to' x1, 'yak' x1" in err
    assert "--unknown unk maps them to <unk>" in err

    code, out, err = evaluate(
        [word_model, "--data", tmp_path / "new.txt", "--split", "all", "--unknown", "unk", "--json"], capsys
    )
    assert code == 0, err
    mapped = json.loads(out.splitlines()[-1])
    literal = evaluate_language_model(word_model, tmp_path / "unk.txt", "all", accelerator="cpu",
                                      progress_bar=False)
    assert mapped["unknown"] == 3 and mapped["loss"] == pytest.approx(literal["valid_loss"], rel=1e-9)
    assert "bpw" in mapped and "bpc" not in mapped
    code, out, _ = evaluate([word_model, "--data", tmp_path / "new.txt", "--split", "all",
                             "--unknown", "unk"], capsys)
    assert code == 0 and "3 unknown tokens scored as <unk>" in out and "bits per word" in out


@pytest.mark.parametrize("level", ["char", "word"])
def test_evaluation_ids_cut_where_training_cut(tmp_path, level):
    (tmp_path / "t.txt").write_text(WORD_TEXT)
    data = TextDataConfig(path=str(tmp_path / "t.txt"), level=level, valid_fraction=0.3)
    train, valid, vocab = token_ids(data, None)
    for name, expected in [("train", train), ("valid", valid), ("all", torch.cat([train, valid]))]:
        ids, unseen = evaluation_ids(data, vocab, split_name=name)
        assert torch.equal(ids, expected) and not unseen
    with pytest.raises(ValueError, match="split must be 'valid', 'train' or 'all', got 'test'"):
        evaluation_ids(data, vocab, split_name="test")
    with pytest.raises(ValueError, match="unknown must be 'error', 'skip' or 'unk', got 'drop'"):
        evaluation_ids(data, vocab, unknown="drop")
