"""Best-model selection (rnnkit.train.trainer.ExportModel): the monitored metric first, then the task's
tiebreak metric between validations that tie on it (a classifier's accuracy on a small validation set)."""

from types import SimpleNamespace

import torch

from rnnkit.train.checkpoint import load_model_file
from rnnkit.train.module import Task
from rnnkit.train.trainer import ExportModel


def validate(callback, step, **metrics):
    trainer = SimpleNamespace(sanity_checking=False, is_global_zero=True, global_step=step,
                              callback_metrics={f"valid_{k}": torch.tensor(v) for k, v in metrics.items()})
    callback.on_validation_end(trainer, None)


def best_step(run_dir):
    return load_model_file(run_dir / "model.safetensors", task="t")[1]["step"]


def make(tmp_path, tiebreak):
    task = Task(name="t", model=torch.nn.Linear(2, 2), loss=None, train_batches=None, monitor="accuracy",
                monitor_mode="max", tiebreak=tiebreak)
    return ExportModel(tmp_path, task, "valid_accuracy", "max")


def test_a_tie_on_accuracy_goes_to_the_lower_loss(tmp_path):
    callback = make(tmp_path, "loss")
    validate(callback, 10, accuracy=0.875, loss=0.67)   # an early, barely trained model
    validate(callback, 20, accuracy=0.875, loss=0.40)   # the same accuracy, a better model
    validate(callback, 30, accuracy=0.8125, loss=0.30)  # lower accuracy: not taken, whatever its loss
    assert best_step(tmp_path) == 20
    validate(callback, 40, accuracy=0.875, loss=0.50)   # a tie with a higher loss: not taken
    assert best_step(tmp_path) == 20
    validate(callback, 50, accuracy=0.9375, loss=0.90)  # higher accuracy wins outright
    assert best_step(tmp_path) == 50


def test_without_a_tiebreak_the_first_of_equal_validations_stays(tmp_path):
    callback = make(tmp_path, "")
    validate(callback, 10, accuracy=0.875, loss=0.67)
    validate(callback, 20, accuracy=0.875, loss=0.40)
    assert best_step(tmp_path) == 10


def test_the_best_score_survives_a_resume_and_reads_an_older_checkpoint(tmp_path):
    callback = make(tmp_path, "loss")
    validate(callback, 10, accuracy=0.875, loss=0.67)
    resumed = make(tmp_path, "loss")
    resumed.load_state_dict(callback.state_dict())
    assert resumed.best == (-0.875, torch.tensor(0.67).item())
    older = make(tmp_path, "loss")
    older.load_state_dict({"best": -0.5})               # a training state written before the tiebreak
    assert older.best == resumed.best                   # the model on disk is better than that
    validate(older, 20, accuracy=0.875, loss=0.40)
    assert best_step(tmp_path) == 20
