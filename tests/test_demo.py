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


def test_demo_numpy_honours_prompt_and_sample_length(capsys):
    argv = ["demo", "--numpy", "--steps", "1", "--hidden-size", "8", "--batch-size", "4", "--bptt", "8",
            "--prompt", "def ", "--sample-length", "25"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    sample = out.split("sample:\n", 1)[1]
    assert sample.startswith("def ") and len(sample) == len("def ") + 25 + 1  # and print's line break
    code = main(argv[:-4] + ["--prompt", "€ x"])
    assert code == 2 and "prompt characters ['€'] are not in the text's" in capsys.readouterr().err


@pytest.mark.parametrize("numpy", [True, False])
@pytest.mark.parametrize("flags, message", [
    (["--bptt", "-5"], "--bptt must be >= 1, got -5"),
    (["--steps", "0"], "--steps must be >= 1, got 0"),
    (["--steps", "-3"], "--steps must be >= 1, got -3"),
    (["--hidden-size", "0"], "--hidden-size must be >= 1, got 0"),
    (["--batch-size", "0"], "--batch-size must be >= 1, got 0"),
    (["--batch-size", "-2"], "--batch-size must be >= 1, got -2"),
    (["--sample-length", "-1"], "--sample-length must be >= 0, got -1"),
    (["--seed", "-1"], "--seed must be >= 0, got -1"),
])  # fmt: skip
def test_demo_sizes_below_one_are_a_one_line_error(numpy, flags, message, capsys):
    code = main(["demo", *(["--numpy"] if numpy else []), *flags])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and err == f"rnnkit demo: error: {message}\n"


def test_demo_configs_check_their_sizes():
    from rnnkit.reference.char_model import DemoConfig

    for name in ("steps", "batch_size", "seq_len", "hidden_size"):
        with pytest.raises(ValueError, match=f"{name} must be >= 1, got 0"):
            DemoConfig(**{name: 0})
    with pytest.raises(ValueError, match="sample_length must be >= 0, got -4"):
        DemoConfig(sample_length=-4)
    for name in ("hidden_size", "batch_size", "bptt"):
        with pytest.raises(ValueError, match=f"{name} must be >= 1, got -1"):
            demo_config(**{name: -1})
    with pytest.raises(ValueError, match="hidden_size must be >= 1, got 0"):
        demo_config(hidden_size=0)  # not silently the default
