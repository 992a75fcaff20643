"""The engine on a task that is not a language model (tests/engine_task.py: regression on padded sequences,
shuffled per epoch, torchmetrics' MAE monitored): fit, SIGKILL + exact resume, and 2-process DDP."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import engine_task
import pytest
import torch
from safetensors.torch import load_file

from rnnkit.train.checkpoint import load_model_file, load_tree
from rnnkit.train.run import train_run

SCRIPT = Path(engine_task.__file__)


def rows(run_dir):
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def weights(run_dir):
    return load_file(run_dir / "model-last.safetensors")


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_fit_logs_the_task_metrics_and_keeps_the_best_on_the_monitored_one(tmp_path):
    run = tmp_path / "runs" / "fit"
    result = train_run(engine_task.build, engine_task.config_for(run, max_steps=36))
    assert result.global_step == 36
    valid = [r for r in rows(run) if r.get("valid_mae")]
    assert len(valid) == 12 and {"valid_loss", "valid_mae"} <= set(valid[0])
    maes = [float(r["valid_mae"]) for r in valid]
    assert min(maes[-3:]) < maes[0]  # it learns
    # model.safetensors is the best validation on mae (min), not the last one
    _, meta = load_model_file(run / "model.safetensors", task="regression")
    assert meta["metrics"]["valid_mae"] == pytest.approx(min(maes), rel=1e-6)
    assert (run / "plots/loss.png").read_bytes()[:4] == b"\x89PNG"


def test_metrics_equal_a_hand_computed_pass(tmp_path):
    from rnnkit.train.trainer import evaluate

    config = engine_task.config_for(tmp_path / "runs" / "e", max_steps=1)
    built = engine_task.build(config, None)
    metrics = evaluate(built.task, config.trainer)
    data = engine_task.make_data(config)[-config.examples // 4 :]
    model = built.task.model.eval()
    with torch.no_grad():
        predictions = torch.stack([model(x[None], torch.tensor([len(x)]))[0] for x, _ in data])
    targets = torch.stack([y for _, y in data])
    assert metrics["valid_mae"] == pytest.approx(float((predictions - targets).abs().mean()), rel=1e-5)
    assert metrics["valid_loss"] == pytest.approx(float(((predictions - targets) ** 2).mean()), rel=1e-5)


def test_monitor_naming_no_metric_is_an_error(tmp_path):
    import dataclasses

    config = engine_task.config_for(tmp_path / "runs" / "m", max_steps=3)
    config = dataclasses.replace(config, trainer=dataclasses.replace(config.trainer, monitor="accuracy"))
    with pytest.raises(ValueError, match=r"no validation metric 'valid_accuracy'.*valid_mae"):
        train_run(engine_task.build, config)


def script(*args):
    return [sys.executable, str(SCRIPT), *map(str, args)]


def test_sigkill_mid_epoch_then_resume_is_bitwise_identical(tmp_path):
    """An epoch is 9 batches (72 examples / 8); killed after step >= 5, resumed to 14: same as 14 straight."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    straight = tmp_path / "runs" / "straight"
    subprocess.run(script(straight, 14), check=True, env=env, capture_output=True, timeout=300)
    killed = tmp_path / "runs" / "killed"
    proc = subprocess.Popen(script(killed, 14, "--sleep", 0.3), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    checkpoint = killed / "checkpoints" / "last.safetensors"
    deadline = time.time() + 240
    step = 0
    while time.time() < deadline and step < 5:
        time.sleep(0.2)
        try:
            step = load_tree(checkpoint)["global_step"]
        except Exception:  # not written yet, or being replaced
            step = 0
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 5 <= step < 14, step
    assert not (killed / "model-last.safetensors").exists()  # it really died before the end
    resumed = subprocess.run(
        script(killed, 14, "--resume"), env=env, capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same(weights(straight), weights(killed))


def test_two_process_ddp_equals_one_process_with_the_double_batch(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    runs = tmp_path / "runs"
    logs = {}
    for name, devices, batch in (("ddp", 2, 4), ("one", 1, 8)):
        args = script(runs / name, 6, "--devices", devices, "--batch-size", batch, "--dropout", 0)
        done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        logs[name] = done.stdout + done.stderr
    assert "Starting with 2 processes" in logs["ddp"] and "Starting with 2 processes" not in logs["one"]
    a, b = weights(runs / "ddp"), weights(runs / "one")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)
    # validation metrics are reduced over both processes' examples: the same numbers as one process
    last = [next(r for r in reversed(rows(runs / n)) if r.get("valid_mae")) for n in ("ddp", "one")]
    assert float(last[0]["valid_mae"]) == pytest.approx(float(last[1]["valid_mae"]), rel=1e-4)
    assert float(last[0]["valid_loss"]) == pytest.approx(float(last[1]["valid_loss"]), rel=1e-4)
