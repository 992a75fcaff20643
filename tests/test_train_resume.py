"""`rnnkit train` killed with SIGKILL mid-epoch and resumed ends with the weights of an uninterrupted run."""

import os
import random
import signal
import subprocess
import sys
import time

import torch
from safetensors.torch import load_file

from rnnkit.data.text import TokenStream, Vocabulary, split
from rnnkit.train.checkpoint import load_tree


def tiny_text(lines=150, seed=0) -> str:
    rng = random.Random(seed)
    words = ["the", "cat", "sat", "on", "a", "mat", "dog", "ran"]
    return (
        "\n".join(" ".join(rng.choice(words) for _ in range(rng.randint(3, 7))) for _ in range(lines)) + "\n"
    )


def rnnkit(*args):
    return [sys.executable, "-m", "rnnkit", *map(str, args)]


def test_sigkill_mid_epoch_then_resume_is_bitwise_identical(tmp_path):
    text = tiny_text()
    (tmp_path / "text.txt").write_text(text)
    common = [
        "train",
        "--data",
        "text.txt",
        "--accelerator",
        "cpu",
        "--batch-size",
        4,
        "--bptt",
        16,
        "--hidden-size",
        16,
        "--set",
        "model.embedding_size=8",
        "--set",
        "model.dropout=0.2",
        "--checkpoint-every",
        4,
        "--seed",
        5,
        "--output-dir",
        "runs",
        "--no-progress-bar",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    ckpt = tmp_path / "runs/killed/checkpoints/last.safetensors"
    proc = subprocess.Popen(
        rnnkit(*common, "--run-name", "killed", "--max-steps", 100000),
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)  # kill -9, whatever it is doing
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]

    state = load_tree(ckpt)
    step = state["global_step"]
    vocab = Vocabulary.build(text)
    batches_per_epoch = len(TokenStream(split(torch.tensor(vocab.encode(text)))[0], 4, 16))
    done = state["rnnkit_resume"]["batches_done"]
    assert 0 < done < batches_per_epoch and step % batches_per_epoch == done  # the checkpoint is mid-epoch
    end = step + 7

    resumed = subprocess.run(
        rnnkit("train", "--resume", "runs/killed", "--max-steps", end, "--no-progress-bar"),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    straight = subprocess.run(
        rnnkit(*common, "--run-name", "straight", "--max-steps", end),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert straight.returncode == 0, straight.stderr[-3000:]

    a = load_file(tmp_path / "runs/straight/model-last.safetensors")
    b = load_file(tmp_path / "runs/killed/model-last.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert (
        (tmp_path / "runs/killed/command.txt").read_text().splitlines()[1].startswith("rnnkit train --resume")
    )
