"""`rnnkit translate MODEL "sentence" ...`: `rnnkit predict` of a translate model under the task's own name
(the same flags and output, translations on stdout and logs on stderr); a model of another task is a
one-line error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_translate_cli import CONFIG  # the translate CLI tests' tiny model

from rnnkit.cli import main
from rnnkit.data.synthetic_pairs import date_pairs, write_pairs
from rnnkit.tasks.translate import TrainedTranslator
from rnnkit.train.checkpoint import save_model


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A tiny date-normalising translator: test_translate_cli's config, 10 steps (a few seconds)."""
    root = tmp_path_factory.mktemp("alias")
    data = write_pairs(date_pairs(450, seed=0), root / "dates.tsv")
    config = root / "dates.yaml"
    config.write_text(CONFIG.format(path=data, out=root), encoding="utf-8")
    argv = ["train", "--config", str(config), "--max-steps", "10", "--set", "trainer.val_check_interval=10"]
    assert main(argv) == 0
    return root / "dates"


def test_translate_in_a_subprocess_prints_translations_on_stdout_and_logs_on_stderr(run_dir, tmp_path):
    png = tmp_path / "map.png"
    rnnkit = Path(sys.executable).parent / "rnnkit"
    done = subprocess.run([str(rnnkit), "translate", str(run_dir), "3rd of Brumaire 2021", "--beam", "2",
                           "--attention-map", str(png)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    expected = TrainedTranslator.from_file(run_dir).translate("3rd of Brumaire 2021", beam=2)
    assert done.stdout.splitlines() == expected  # the translation, and nothing else
    note = "rnnkit translate: note: 1 source tokens unknown to the model, read as <unk>: 'Brumaire'"
    assert note in done.stderr
    assert f"attention map: {png}" in done.stderr and png.stat().st_size > 1000


def test_translate_is_predict_with_the_same_flags_and_output(run_dir, capsys, tmp_path):
    lines = tmp_path / "in.txt"
    lines.write_text("May 5, 1999\n\n1/2/2003\n", encoding="utf-8")
    outputs = []
    for command in ("predict", "translate"):
        argv = [command, str(run_dir), "3rd of March 2021", "--input", str(lines), "--beam", "3", "--n-best",
                "2", "--length-penalty", "0"]
        assert main(argv) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1] and len(outputs[0].splitlines()) == 6  # 3 sentences x 2 best


def test_translate_help_lists_the_predict_flags(capsys):
    with pytest.raises(SystemExit) as e:
        main(["translate", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "`rnnkit predict` for a translate model" in out
    flags = ("--input", "--beam", "--n-best", "--length-penalty", "--attention-map", "--allow-long-source")
    assert all(flag in out for flag in flags)


@pytest.mark.parametrize("task", ["language_model", "classifier"])
def test_a_model_of_another_task_is_a_one_line_error_naming_its_task(task, tmp_path, capsys):
    path = tmp_path / f"{task}.safetensors"
    save_model(path, torch.nn.Linear(2, 2), task=task, config={})
    assert main(["translate", str(path), "3rd of March 2021"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"rnnkit translate: error: {path} holds a model for task {task!r}; `rnnkit translate` "
                   "takes a 'translate' model (for this one: rnnkit predict)")


def test_a_missing_model_or_no_model_is_an_error(tmp_path, capsys):
    assert main(["translate", str(tmp_path / "nothing"), "hello"]) == 2
    assert capsys.readouterr().err.startswith("rnnkit translate: error: no such model file or run directory")
    with pytest.raises(SystemExit) as e:
        main(["translate"])
    assert e.value.code == 2 and "the following arguments are required: MODEL" in capsys.readouterr().err
