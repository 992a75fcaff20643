"""Data-parallel training: `--devices 2 --accelerator cpu` runs two processes (DDP over gloo).

Oracle: DDP averages the gradients of its two processes, and process r holds rows [rB, (r+1)B) of the same 2B
rows a single process with batch size 2B sees, so both runs must end with the same weights (up to the order of
float additions in the all-reduce).
"""

import csv
import random
import subprocess
import sys

import torch
from safetensors.torch import load_file

from rnnkit.train.checkpoint import load_tree


def tiny_text(lines=150, seed=0) -> str:
    rng = random.Random(seed)
    words = ["the", "cat", "sat", "on", "a", "mat", "dog", "ran"]
    return (
        "\n".join(" ".join(rng.choice(words) for _ in range(rng.randint(3, 7))) for _ in range(lines)) + "\n"
    )


def test_two_process_ddp_equals_one_process_with_the_double_batch(tmp_path):
    (tmp_path / "text.txt").write_text(tiny_text())
    common = [
        sys.executable,
        "-m",
        "rnnkit",
        "train",
        "--data",
        "text.txt",
        "--accelerator",
        "cpu",
        "--bptt",
        "16",
        "--hidden-size",
        "16",
        "--set",
        "model.embedding_size=8",
        "--max-steps",
        "6",
        "--checkpoint-every",
        "3",
        "--output-dir",
        "runs",
        "--no-progress-bar",
        "--set",
        "trainer.val_check_interval=6",
    ]
    ddp = subprocess.run(
        [*common, "--devices", "2", "--batch-size", "4", "--run-name", "ddp"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert "distributed_backend=gloo" in ddp.stdout + ddp.stderr and "Starting with 2 processes" in ddp.stderr
    one = subprocess.run(
        [*common, "--devices", "1", "--batch-size", "8", "--run-name", "one"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert one.returncode == 0, one.stderr[-3000:]

    a, b = (load_file(tmp_path / f"runs/{name}/model-last.safetensors") for name in ("ddp", "one"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)

    # the resume state holds one carried (h, c) and RNG state per process, and they differ (different rows)
    resume = load_tree(tmp_path / "runs/ddp/checkpoints/last.safetensors")["rnnkit_resume"]
    assert len(resume["rng"]) == 2 and len(resume["carry"]) == 2
    assert not torch.equal(resume["carry"][0][0], resume["carry"][1][0])
    # validation is token-weighted over both processes' rows: the same number as one process over all rows
    valid = []
    for name in ("ddp", "one"):
        with open(tmp_path / f"runs/{name}/metrics.csv", newline="") as f:
            valid.append(next(float(row["valid_loss"]) for row in csv.DictReader(f) if row["valid_loss"]))
    assert abs(valid[0] - valid[1]) < 1e-4, valid
