"""`rnnkit train` / `rnnkit evaluate` from the command line: end to end, help, and helpful errors."""

import json
import random

import pytest
import torch

import rnnkit
from rnnkit.cli import main
from rnnkit.train.checkpoint import save_model


def tiny_text(lines=150, seed=0) -> str:
    rng = random.Random(seed)
    words = ["the", "cat", "sat", "on", "a", "mat", "dog", "ran"]
    return (
        "\n".join(" ".join(rng.choice(words) for _ in range(rng.randint(3, 7))) for _ in range(lines)) + "\n"
    )


TINY = [
    "--accelerator",
    "cpu",
    "--batch-size",
    "4",
    "--bptt",
    "16",
    "--hidden-size",
    "16",
    "--set",
    "model.embedding_size=8",
    "--no-progress-bar",
]


def run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_train_then_evaluate(tmp_path, capsys):
    (tmp_path / "t.txt").write_text(tiny_text())
    code, out, err = run(
        [
            "train",
            "--data",
            str(tmp_path / "t.txt"),
            *TINY,
            "--max-steps",
            "6",
            "--output-dir",
            str(tmp_path / "runs"),
            "--run-name",
            "x",
            "--cell",
            "gru",
        ],
        capsys,
    )
    assert code == 0, err
    assert f"run directory: {tmp_path / 'runs' / 'x'}" in out
    assert "cell: gru" in (tmp_path / "runs/x/config.yaml").read_text()
    code, out, err = run(
        [
            "evaluate",
            str(tmp_path / "runs/x"),  # a run directory: its model.safetensors
            "--data",
            str(tmp_path / "t.txt"),
            "--json",
            "--accelerator",
            "cpu",
        ],
        capsys,
    )
    assert code == 0, err
    metrics = json.loads(out.strip().splitlines()[-1])
    assert metrics["bpc"] == pytest.approx(metrics["loss"] / 0.6931471805599453)
    assert 0 < metrics["loss"] < 5 and metrics["tokens"] > 0
    lm = rnnkit.load(tmp_path / "runs/x")  # the same model from Python, in one line
    assert lm.evaluate(tmp_path / "t.txt")["loss"] == pytest.approx(metrics["loss"], rel=1e-6)
    text = lm.generate("the ", max_new_tokens=12, seed=3)
    assert len(text) == 12 and text == rnnkit.load(tmp_path / "runs/x/model.safetensors").generate(
        "the ", max_new_tokens=12, seed=3)
    assert f"path: {tmp_path / 't.txt'}" in (tmp_path / "runs/x/config.yaml").read_text()  # resolved
    (tmp_path / "runs/x/checkpoints/last.safetensors").write_bytes(b"not a checkpoint")
    code, out, err = run(["train", "--resume", str(tmp_path / "runs/x"), "--max-steps", "9"], capsys)
    assert code == 2 and "last.safetensors is not a readable rnnkit checkpoint" in err


def test_help_lists_every_config_key(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    for key in [
        "model.encoder.hidden_size",
        "data.bptt",
        "optim.grad_clip",
        "trainer.precision",
        "trainer.devices",
        "--resume",
        "--set",
        "--max-steps",
    ]:
        assert key in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--data", "missing.txt", "--max-steps", "1"], "no such file or folder: missing.txt"),
        (["train", "--data", "empty.txt", "--max-steps", "1"], "empty.txt is empty"),
        (
            ["train", "--data", "t.txt", "--set", "model.encoder.hiden_size=3"],
            "did you mean 'model.encoder.hidden_size'",
        ),
        (["train", "--data", "t.txt", "--set", "model.encoder.cell=lstmm"], "encoder.cell must be one of"),
        (["train", "--max-steps", "1"], "no training text: give --data PATH"),
        (["train", "--config", "nope.yaml"], "config file not found: nope.yaml"),
        (["train", "--resume", "nowhere"], "cannot resume: nowhere/config.yaml not found"),
        (["evaluate", "nope.safetensors", "--data", "t.txt"], "no such model file or run directory"),
        (["evaluate", "other.safetensors", "--data", "t.txt"], "unknown task 'speech_recogniser'"),
        (["evaluate", "t.txt", "--data", "t.txt"], "not a readable rnnkit checkpoint"),
        (["evaluate", ".", "--data", "t.txt"], "is a folder without model.safetensors"),
        (["generate", "."], "expected a model file or a run directory"),
    ],
)
def test_helpful_errors(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.txt").write_text(tiny_text())
    (tmp_path / "empty.txt").write_text("  \n")
    save_model(tmp_path / "other.safetensors", torch.nn.Linear(2, 2), "speech_recogniser")
    code, _, err = run(argv, capsys)
    assert code == 2 and message in err and err.startswith(f"rnnkit {argv[0]}: error:")


@pytest.mark.parametrize(
    "files, argv, message",
    [
        ({"b.yaml": b"model: [1, 2\n"}, ["--config", "b.yaml"], "not valid YAML at line 2, column 1"),
        ({"b.yaml": b"model:\n\tembedding_size: 3\n"}, ["--config", "b.yaml"],
         "found character '\\t' that cannot start any token"),
        ({"b.yaml": b"\xff\xfe\x00m\x00"}, ["--config", "b.yaml"], "b.yaml is not UTF-8 text (byte 0)"),
        ({"b.yaml": b"- a\n- b\n"}, ["--config", "b.yaml"], "must be a mapping of sections, got list"),
        ({}, ["--config", "m.safetensors"], "m.safetensors is a model file, not a YAML config"),
        ({"out": b""}, ["--data", "t.txt", "--output-dir", "out"], "trainer.output_dir out is a file"),
        ({}, ["--data", "t.txt", "--lr", "0"], "optim.lr must be > 0"),
        ({}, ["--data", "t.txt", "--seed", "-1"], "seed must be an integer in [0, 4294967295], got -1"),
        ({}, ["--resume", "r", "--config", "c.yaml"], "--config cannot change it"),
    ],
)  # fmt: skip
def test_bad_configs_and_options_are_one_line_errors(tmp_path, monkeypatch, capsys, files, argv, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.txt").write_text(tiny_text())
    save_model(tmp_path / "m.safetensors", torch.nn.Linear(2, 2), "language_model")
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    before = sorted(p.name for p in tmp_path.iterdir())
    code, out, err = run(["train", *argv], capsys)
    assert code == 2 and message in err and err.startswith("rnnkit train: error:") and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing created


def test_corrupt_language_model_metadata_is_named(tmp_path, capsys):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file
    from test_train_engine import tiny_config

    from rnnkit.tasks.language_model import train_language_model

    run_dir = train_language_model(tiny_config(tmp_path, "trainer.max_steps=2", "trainer.run_name=m")).run_dir
    source = run_dir / "model.safetensors"
    with safe_open(source, framework="pt") as f:
        header = json.loads(f.metadata()["rnnkit"])

    def corrupt(change, message):
        h = json.loads(json.dumps(header))
        change(h)
        bad = tmp_path / "bad.safetensors"
        save_file(load_file(source), bad, metadata={"rnnkit": json.dumps(h)})
        code, _, err = run(["generate", str(bad), "--max-new-tokens", "3"], capsys)
        assert code == 2 and message in err and "Traceback" not in err, err

    def vocabulary(edit):
        def change(h):
            v = json.loads(h["vocabulary"]) if isinstance(h["vocabulary"], str) else h["vocabulary"]
            edit(v)
            h["vocabulary"] = json.dumps(v) if isinstance(h["vocabulary"], str) else v
        return change

    corrupt(vocabulary(lambda v: v["tokens"].pop()), "tokens but the model's output layer has")
    corrupt(vocabulary(lambda v: v["tokens"].__setitem__(1, v["tokens"][2])), "tokens must be distinct")
    corrupt(lambda h: h["config"]["data"].__setitem__("dataset", "klingon"), "got 'klingon'")
    corrupt(lambda h: h.pop("vocabulary"), "metadata lacks 'vocabulary'")
