"""`rnnkit demo`: the rnnkit.nn job end to end through cli.main (tiny sizes), and the --numpy job."""

import csv
import math

import pytest

from rnnkit.cli import main
from rnnkit.data.datasets import python_docs
from rnnkit.demo import DEMO, demo_config, write_corpus

TINY = ["--steps", "5", "--hidden-size", "16", "--batch-size", "8", "--bptt", "32", "--sample-length", "40"]


def test_python_docs_is_the_bundled_pydoc_text():
    from pydoc_data.topics import topics

    text = python_docs()
    assert len(text) > 100_000 and text == python_docs()  # the same text on every call
    assert all(topics[key] in text for key in ("if", "while", "assert"))


def test_demo_trains_with_the_engine_and_samples_from_its_checkpoint(tmp_path, capsys):
    code = main(["demo", *TINY, "--output-dir", str(tmp_path), "--prompt", "def ", "--seed", "3"])
    out, err = capsys.readouterr()
    assert code == 0, err
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert run_dir.name.startswith("demo-")
    for name in ("config.yaml", "command.txt", "metrics.csv", "plots/loss.png", "model.safetensors"):
        assert (run_dir / name).is_file(), name
    assert (tmp_path / "python_docs.txt").read_text(encoding="utf-8") == python_docs()
    config = (run_dir / "config.yaml").read_text()
    assert "hidden_size: 16" in config and "max_steps: 5" in config and "bptt: 32" in config
    assert (run_dir / "command.txt").read_text().startswith("rnnkit demo --steps 5 --seed 3 --hidden-size 16")

    # the table: step 1 and the validation at step 5, with bits/char = valid loss / ln 2
    rows = [line.split() for line in out.splitlines() if line.split()[:1] in (["1"], ["5"])]
    assert [r[0] for r in rows] == ["1", "5"]
    valid_loss, bits = float(rows[1][2]), float(rows[1][3])
    assert bits == pytest.approx(valid_loss / math.log(2), abs=2e-3)
    with open(run_dir / "metrics.csv", newline="") as f:
        logged = [float(r["valid_loss"]) for r in csv.DictReader(f) if r.get("valid_loss")]
    assert logged[-1] == pytest.approx(valid_loss, abs=5e-4)

    # the sample is streamed after the prompt, and `rnnkit generate` reloads the same model file
    sample_line = out.split("temperature 0.8):\n\n", 1)[1]
    assert sample_line.startswith("def ")
    demo_sample = sample_line[: len("def ") + 40]
    assert f"rnnkit generate {run_dir} --prompt" in out
    corpus = tmp_path / "python_docs.txt"
    assert f"rnnkit evaluate {run_dir} --data {corpus}" in out

    code = main(["generate", str(run_dir / "model.safetensors"), "--prompt", "def ", "--max-new-tokens", "40",
                 "--temperature", "0.8", "--seed", "3"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out == demo_sample + "\n"  # same file, same seed: the same text


def test_demo_config_sizes_and_errors(tmp_path):
    config = demo_config(steps=30, seed=2, hidden_size=8, batch_size=4, bptt=16, output_dir=str(tmp_path))
    assert (config.model.encoder.hidden_size, config.data.batch_size, config.data.bptt) == (8, 4, 16)
    assert (config.trainer.max_steps, config.trainer.seed, config.trainer.val_check_interval) == (30, 2, 30)
    assert demo_config().trainer.max_steps == DEMO.trainer.max_steps
    with pytest.raises(ValueError, match="steps must be >= 1, got 0"):
        demo_config(steps=0)
    path = write_corpus(tmp_path)
    stamp = path.stat().st_mtime_ns
    assert write_corpus(tmp_path) == path and path.stat().st_mtime_ns == stamp  # not rewritten


def test_demo_numpy_runs_the_reference_model(capsys):
    code = main(["demo", "--numpy", "--steps", "2", "--hidden-size", "8", "--batch-size", "4", "--bptt", "8"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "character LSTM in NumPy" in out and "validation loss" in out and "sample:" in out


def test_demo_numpy_has_no_output_dir(tmp_path, capsys):
    code = main(["demo", "--numpy", "--steps", "1", "--output-dir", str(tmp_path)])
    _, err = capsys.readouterr()
    assert code == 2 and "--output-dir belongs to the rnnkit.nn demo" in err
