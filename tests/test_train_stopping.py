"""How runs end (rnnkit.train.stopping): the last step validated, checkpointed and exported, whatever
stopped it; SIGINT at a step boundary then --resume equal to a run never stopped; a finished run resumed with
no larger budget does nothing; failed commands leave every file as it was. On tests/engine_task.py (9 batches
an epoch, validation every 3 steps)."""

import dataclasses
import os
import signal
import subprocess
import sys
import time

import engine_task
import pytest
from test_train_task_agnostic import SCRIPT, assert_same, rows, weights

from rnnkit.train.checkpoint import CheckpointError, load_model_file, load_tree
from rnnkit.train.run import train_run


def snapshot(folder):
    """Every file under `folder`, path -> bytes."""
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def run(run_dir, max_steps, resume=False, **trainer):
    config = engine_task.config_for(run_dir, max_steps, checkpoint_every_n_steps=5, **trainer)
    return train_run(engine_task.build, config, run_dir if resume else None)


def checkpoint_step(run_dir):
    return load_tree(run_dir / "checkpoints" / "last.safetensors")["global_step"]


def test_the_last_step_is_validated_checkpointed_and_exported(tmp_path):
    run_dir = tmp_path / "r"
    result = run(run_dir, 7)  # validation every 3 steps, checkpoints every 5: 7 is on neither
    assert result.global_step == 7 and result.end["reason"] == "max_steps"
    assert result.ended == "max_steps (7) reached at step 7"
    validated = [int(r["step"]) for r in rows(run_dir) if r.get("valid_mae")]
    assert validated == [2, 5, 6]  # Lightning's 0-based step of steps 3, 6 and the last, 7
    assert checkpoint_step(run_dir) == 7
    assert load_model_file(run_dir / "model-last.safetensors")[1]["step"] == 7
    assert "valid_mae" in load_model_file(run_dir / "model-last.safetensors")[1]["metrics"]


def test_a_finished_run_resumed_with_the_same_budget_changes_nothing(tmp_path, caplog):
    run_dir = tmp_path / "r"
    run(run_dir, 7)
    before = snapshot(run_dir)
    result = run(run_dir, 7, resume=True)
    assert result.global_step == 7 and "already ended (max_steps (7) reached at step 7)" in caplog.text
    assert snapshot(run_dir) == before


def test_a_larger_budget_continues_as_if_never_stopped(tmp_path):
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    run(straight, 11)
    run(stopped, 7)
    result = run(stopped, 11, resume=True)
    assert result.global_step == 11 and result.end["reason"] == "max_steps"
    assert_same(weights(straight), weights(stopped))  # validating at 7 drew no random numbers
    steps = [int(r["step"]) for r in rows(stopped) if r.get("train_loss")]
    assert steps == list(range(11))  # metrics.csv: the first part's rows, then the resumed ones


def test_max_steps_is_the_budget_and_max_epochs_counts_only_without_it(tmp_path):
    assert run(tmp_path / "steps", 12, max_epochs=1).global_step == 12  # 9 batches an epoch
    result = run(tmp_path / "epochs", -1, max_epochs=2)
    assert result.global_step == 18 and result.ended == "max_epochs (2) reached at step 18"
    assert max(int(r["step"]) for r in rows(tmp_path / "epochs") if r.get("valid_mae")) == 17


def test_sigint_stops_at_a_step_boundary_and_resume_equals_a_run_never_stopped(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    common = ["--checkpoint-every", "2"]
    done = subprocess.run([sys.executable, str(SCRIPT), str(straight), "14", *common], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    proc = subprocess.Popen([sys.executable, str(SCRIPT), str(stopped), "14", *common, "--sleep", "0.3"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (stopped / "checkpoints" / "last.safetensors").exists():
        time.sleep(0.1)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    assert "SIGINT received: stopping after this step" in err
    step = int(out.split("ended: interrupted by SIGINT at step ")[1].split()[0])
    assert 2 <= step < 14 and checkpoint_step(stopped) == step  # checkpointed at the step it stopped
    assert (stopped / "plots" / "loss.png").is_file() and (stopped / "model-last.safetensors").is_file()
    resumed = subprocess.run([sys.executable, str(SCRIPT), str(stopped), "14", *common, "--resume"], env=env,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "ended: max_steps (14) reached at step 14" in resumed.stdout
    assert_same(weights(straight), weights(stopped))


@pytest.mark.parametrize("damage", ["truncated", "garbage", "foreign", "other size"])
def test_a_failed_resume_leaves_the_run_directory_byte_identical(tmp_path, damage):
    run_dir = tmp_path / "r"
    run(run_dir, 5)
    checkpoint = run_dir / "checkpoints" / "last.safetensors"
    data = checkpoint.read_bytes()
    if damage == "other size":  # the checkpoint of a run with a wider GRU
        wide = engine_task.config_for(tmp_path / "wide", 5, checkpoint_every_n_steps=5)
        train_run(engine_task.build, dataclasses.replace(wide, hidden_size=20))
        other = (tmp_path / "wide" / "checkpoints" / "last.safetensors").read_bytes()
    checkpoint.write_bytes({"truncated": data[: len(data) // 2], "garbage": b"\x00" * 64,
                            "foreign": (run_dir / "model-last.safetensors").read_bytes(),
                            "other size": other if damage == "other size" else b""}[damage])
    before = snapshot(run_dir)
    with pytest.raises(CheckpointError, match="cannot resume from"):
        run(run_dir, 9, resume=True)
    assert snapshot(run_dir) == before


def test_a_failed_set_up_changes_nothing_and_frees_the_run_name(tmp_path):
    run_dir = tmp_path / "r"
    with pytest.raises(ValueError, match="cannot set up training"):
        run(run_dir, 3, accelerator="mps")  # not on this (Linux) machine
    assert not run_dir.exists()
    run(run_dir, 3)  # the name is free
    before = snapshot(run_dir)
    with pytest.raises(ValueError, match="cannot set up training"):
        run(run_dir, 6, resume=True, accelerator="mps")
    assert snapshot(run_dir) == before  # config.yaml not rewritten, command.txt not appended


def test_a_resume_records_its_budget_and_command_once_training_has_started(tmp_path):
    run_dir = tmp_path / "r"
    run(run_dir, 3)
    text = (run_dir / "config.yaml").read_text()
    assert "max_steps: 3" in text and (run_dir / "command.txt").read_text().count("\n") == 1
    run(run_dir, 6, resume=True)
    assert "max_steps: 6" in (run_dir / "config.yaml").read_text()
    assert (run_dir / "command.txt").read_text().count("\n") == 2
