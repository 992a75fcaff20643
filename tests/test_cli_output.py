"""The command line as a pipe sees it (real processes): results on stdout, progress and logs on stderr, no
device banner, `| head` exits cleanly, --version, and why a run ended."""

import os
import subprocess
import sys

import pytest
from test_train_engine import tiny_text

import rnnkit

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
TINY = ["--set", "model.embedding_size=8", "--set", "model.encoder.hidden_size=16", "--set",
        "model.encoder.num_layers=1", "--batch-size", "4", "--bptt", "16"]  # fmt: skip


def rnnkit_cli(*argv, **kwargs):
    return subprocess.run([sys.executable, "-m", "rnnkit", *map(str, argv)], env=ENV, capture_output=True,
                          text=True, timeout=300, **kwargs)  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    (folder / "t.txt").write_text(tiny_text())
    done = rnnkit_cli("train", "--data", folder / "t.txt", *TINY, "--max-steps", 7, "--set",
                      "trainer.val_check_interval=5", "--output-dir", folder / "runs", "--run-name", "x")
    return folder, done


def test_train_prints_results_on_stdout_and_progress_on_stderr(trained):
    folder, done = trained
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines() == [line for line in done.stdout.splitlines() if line.startswith("run ")]
    assert f"run directory: {folder / 'runs' / 'x'}  (step 7;" in done.stdout
    assert "step 5/7" in done.stderr and "step 7/7  100%" in done.stderr and "valid_loss" in done.stderr
    assert "ended: max_steps (7) reached at step 7" in done.stderr
    for noise in ("GPU available", "TPU available", "Trainer.fit` stopped"):
        assert noise not in done.stderr + done.stdout


def test_generate_into_a_closed_pipe_exits_cleanly(trained):
    folder, _ = trained
    head = subprocess.Popen(["head", "-c", "3"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    gen = subprocess.run([sys.executable, "-m", "rnnkit", "generate", str(folder / "runs" / "x"),
                          "--max-new-tokens", "20000", "--seed", "1"], env=ENV, stdout=head.stdin,
                         stderr=subprocess.PIPE, text=True, timeout=300)  # fmt: skip
    head.stdin.close()
    assert len(head.stdout.read()) == 3 and head.wait() == 0
    assert gen.returncode == 0 and "Traceback" not in gen.stderr and "BrokenPipe" not in gen.stderr


def test_version_and_errors_say_what_was_expected():
    done = rnnkit_cli("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"rnnkit {rnnkit.__version__}"
    done = rnnkit_cli("evaluate", "no-such-run", "--data", "t.txt")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip() == "rnnkit evaluate: error: no such model file or run directory: no-such-run"
