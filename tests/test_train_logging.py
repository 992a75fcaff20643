"""What a run logs: the learning rate beside the losses, TensorBoard when asked, a model summary at start."""

import logging

import engine_task
import pytest
from test_train_task_agnostic import rows

from rnnkit.train.config import TrainerConfig
from rnnkit.train.run import train_run


def test_learning_rate_tensorboard_and_model_summary(tmp_path, caplog, capfd):
    run_dir = tmp_path / "r"
    config = engine_task.config_for(run_dir, 4, loggers=("csv", "tensorboard"))
    with caplog.at_level(logging.INFO, logger="pytorch_lightning.callbacks.model_summary"):
        train_run(engine_task.build, config)
    assert [float(r["lr-Adam"]) for r in rows(run_dir) if r.get("lr-Adam")] == [0.01] * 4
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    # Lightning logs through its own stderr handler or, when the root logger had one first, through the root
    shown = caplog.text + capfd.readouterr().err
    assert "Trainable params" in shown and "rnn" in shown  # parameters per module


def test_loggers_are_checked():
    with pytest.raises(ValueError, match=r"trainer.loggers must hold 'csv' and may add 'tensorboard', got"):
        TrainerConfig(loggers=("wandb",))
