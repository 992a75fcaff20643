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


def test_ctrl_c_stops_the_cli_run_cleanly_and_says_how_to_continue(tmp_path):
    import signal
    import time

    (tmp_path / "t.txt").write_text(tiny_text())
    run_dir = tmp_path / "runs" / "c"
    argv = ["train", "--data", tmp_path / "t.txt", *TINY, "--max-steps", 100000, "--checkpoint-every", 5,
            "--output-dir", tmp_path / "runs", "--run-name", "c"]
    proc = subprocess.Popen([sys.executable, "-m", "rnnkit", *map(str, argv)], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (run_dir / "checkpoints" / "last.safetensors").exists():
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    assert "ended: interrupted by SIGINT at step" in err and "Traceback" not in err
    assert f"continue with: rnnkit train --resume {run_dir}" in err
    assert out.startswith(f"run directory: {run_dir}")
    assert (run_dir / "model-last.safetensors").is_file() and (run_dir / "plots" / "loss.png").is_file()
