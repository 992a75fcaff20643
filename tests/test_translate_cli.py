"""rnnkit train -> evaluate -> predict of the translate task through rnnkit.cli.main; rnnkit.load; errors."""

from __future__ import annotations

import json
import shutil
import warnings

import pytest
import torch

import rnnkit
from rnnkit.cli import main
from rnnkit.data.synthetic_pairs import date_pairs, write_pairs
from rnnkit.tasks.translate import TrainedTranslator, plot_attention
from rnnkit.train.checkpoint import CheckpointError, save_model

CONFIG = """\
task: translate
model: {{embedding_size: 16, attention: general, encoder: {{cell: lstm, hidden_size: 16}},
         decoder: {{cell: lstm, hidden_size: 32}}, dropout: 0.1}}
data: {{path: {path}, levels: [word, char], batch_size: 32, valid_fraction: 0.1, test_fraction: 0.1}}
optim: {{lr: 0.01}}
trainer: {{max_steps: 40, val_check_interval: 20, accelerator: cpu, output_dir: {out}, run_name: dates,
          progress_bar: false, model_summary: false}}
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("translate")
    data = write_pairs(date_pairs(600, seed=0), root / "dates.tsv")
    config = root / "dates.yaml"
    config.write_text(CONFIG.format(path=data, out=root), encoding="utf-8")
    assert main(["train", "--config", str(config)]) == 0
    return root / "dates", data


def test_train_writes_the_vocabularies_into_the_model_file(run):
    run_dir, _ = run
    translator = TrainedTranslator.from_file(run_dir)
    assert translator.source_vocabulary.tokens[:4] == ("<pad>", "<bos>", "<eos>", "<unk>")
    assert "March" in translator.source_vocabulary and "-" in translator.target_vocabulary
    assert translator.metadata["max_source_length"] == 5  # "3 / 3 / 2021"; the others have 4
    saved = json.loads((run_dir / "vocabulary.json").read_text())
    assert saved["target"] == translator.target_vocabulary.to_json()


def test_evaluate_prints_bleu_chrf_and_length_buckets(run, capsys):
    run_dir, data = run
    assert main(["evaluate", str(run_dir), "--data", str(data), "--json", "--beam", "2"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["pairs"] == 60 and result["tokenize"] == "zh" and result["beam"] == 2
    assert 0.0 <= result["bleu"] <= 100.0 and 0.0 <= result["chrf"] <= 100.0
    assert sum(b["pairs"] for b in result["by_source_length"].values()) == 60
    assert main(["evaluate", str(run_dir), "--data", str(data), "--show", "1", "--limit", "10"]) == 0
    out = capsys.readouterr().out
    assert "BLEU" in out and "chrF" in out and "greedy" in out and "reference:" in out


def test_predict_with_beam_and_an_attention_map(run, capsys, tmp_path):
    run_dir, _ = run
    png = tmp_path / "map.png"
    argv = ["predict", str(run_dir), "3rd of March 2021", "--beam", "3", "--attention-map", str(png)]
    assert main(argv) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and png.is_file() and png.stat().st_size > 1000
    assert main(["predict", str(run_dir), "May 5, 1999", "1/2/2003", "--beam", "3", "--n-best", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4 and all(float(line.split("\t")[0]) <= 0 for line in lines)


def test_rnnkit_load_translates_and_evaluates(run):
    run_dir, data = run
    translator = rnnkit.load(run_dir)
    assert isinstance(translator, TrainedTranslator)
    greedy = translator.translate(["3rd of March 2021", "May 5, 1999"])
    assert len(greedy) == 2 and all(isinstance(t, str) for t in greedy)
    assert translator.translate("3rd of March 2021", beam=1) == greedy[:1]
    assert translator.evaluate(data, split="valid", limit=5)["pairs"] == 5
    sources, targets, weights = translator.attention("3rd of March 2021")
    assert sources == ["3rd", "of", "March", "2021"] and weights.shape == (len(targets), 4)
    torch.testing.assert_close(weights.sum(-1), torch.ones(len(targets)))


@pytest.mark.parametrize("sentence,message", [
    ("   ", "the source sentence is empty"),
    ("zzz qqq", "every token of the source is unknown to the model's vocabulary (2 tokens: 'zzz qqq')"),
    ("March " * 30, "the source has 30 tokens, more than the 5 of the longest training source"),
])
def test_bad_sources_are_one_line_errors(run, capsys, sentence, message):
    run_dir, _ = run
    assert main(["predict", str(run_dir), sentence]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rnnkit predict: error: ") and message in err and "\n" not in err


def test_a_long_source_can_be_allowed(run, capsys):
    run_dir, _ = run
    assert main(["predict", str(run_dir), "March " * 30, "--allow-long-source"]) == 0


def test_unknown_tokens_are_read_as_unk_with_a_note_and_input_files_are_read(run, capsys, tmp_path):
    run_dir, _ = run
    assert main(["predict", str(run_dir), "3rd of Brumaire 2021"]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 1 and "1 source tokens unknown" in captured.err
    lines = tmp_path / "in.txt"
    lines.write_text("May 5, 1999\n\n1/2/2003\n", encoding="utf-8")
    assert main(["predict", str(run_dir), "--input", str(lines)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    lines.write_bytes("caf\u00e9".encode("latin-1"))
    assert main(["predict", str(run_dir), "--input", str(lines)]) == 2
    assert "is not valid UTF-8" in capsys.readouterr().err


@pytest.mark.parametrize("content,message", [
    (b"3rd of March 2021\n", "line 1: expected 'source<TAB>target', got 1 column"),
    (b"May 5, 1999\t1999-05-05\n" + "caf\u00e9".encode("latin-1") + b"\tx\n", "line 2: not valid UTF-8"),
])
def test_bad_pair_files_are_one_line_errors(run, capsys, tmp_path, content, message):
    run_dir, _ = run
    path = tmp_path / "bad.tsv"
    path.write_bytes(content)
    assert main(["evaluate", str(run_dir), "--data", str(path), "--split", "all"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rnnkit evaluate: error: ") and message in err and "\n" not in err


def test_a_model_file_of_another_task_is_a_one_line_error(tmp_path):
    path = tmp_path / "lm.safetensors"
    save_model(path, torch.nn.Linear(2, 2), task="language_model", config={})
    expected = "holds a model for task 'language_model', expected 'translate'"
    with pytest.raises(CheckpointError, match=expected) as e:
        TrainedTranslator.from_file(path)
    assert "\n" not in str(e.value)


def test_attention_map_draws_chinese_with_the_shipped_font_on_a_machine_without_one(tmp_path, monkeypatch):
    from rnnkit import fonts

    weights = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]])
    monkeypatch.setattr(fonts, "_machine_cjk_font", lambda: None)   # as on a machine with no CJK font
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns "Glyph ... missing from font" when it draws boxes
        assert plot_attention(["I", "run"], ["我", "跑", "<eos>"], weights, tmp_path / "zh.png").is_file()
    # a character beyond the shipped subset: named in a warning and drawn as its code point, not as a box
    with pytest.warns(UserWarning, match="has no glyph for 龘; drawn as code points") as record:
        assert plot_attention(["dragons"], ["龘", "<eos>"], weights[:2, :1], tmp_path / "rare.png").is_file()
    assert not any("missing from font" in str(w.message) for w in record)


@pytest.mark.filterwarnings("ignore:The dirpath has changed")
def test_a_run_resumes_with_its_vocabularies(run, tmp_path, capsys):
    run_dir, _ = run
    copy = shutil.copytree(run_dir, tmp_path / "dates")
    before = TrainedTranslator.from_file(copy)
    assert main(["train", "--resume", str(copy), "--set", "trainer.max_steps=60"]) == 0
    assert "step 60" in capsys.readouterr().out
    after = TrainedTranslator.from_file(copy)
    assert after.source_vocabulary.tokens == before.source_vocabulary.tokens
    assert after.target_vocabulary.tokens == before.target_vocabulary.tokens
