"""Fit and evaluate any `Task` with PyTorch Lightning, writing everything a run produces to its run directory.

    runs/<name>/
      config.yaml          the resolved configuration
      command.txt          the command line that made the run
      metrics.csv          train_loss per logged step, valid_* per validation (Lightning's CSVLogger)
      checkpoints/last.safetensors   exact-resume state (weights, optimiser, loop, RNG, carried state)
      model.safetensors    the best model on the monitored validation metric (or the last, without
                           validation) + JSON metadata
      model-last.safetensors         the model at the end of training
      plots/loss.png       one panel per metric, labelled from the task's units

How a run ends (the limits, signals, the last step validated and checkpointed) is rnnkit.train.stopping. A
command that fails leaves the run directory as it was: a resumed run logs to a side folder that is merged
into metrics.csv only when training ends, and a new run that fails before its first step removes its folder
(rnnkit.train.run).

Lightning provides the loop, progress bar, gradient clipping, mixed precision, early stopping and
data-parallel training (`devices=2, accelerator="cpu"` runs two processes with DDP over gloo; the same
options select several GPUs or nodes). Checkpoints go through `SafeCheckpointIO`: no pickle anywhere.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import shlex
import shutil
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import (
    Callback,
    EarlyStopping,
    LearningRateMonitor,
    ModelCheckpoint,
    ModelSummary,
)
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.utilities.exceptions import MisconfigurationException

from .checkpoint import (
    CheckpointError,
    SafeCheckpointIO,
    load_model_file,
    load_tree,
    save_model,
    write_atomic,
)
from .config import OptimConfig, TrainerConfig
from .module import Task, TaskModule
from .progress import RunProgress, quiet_lightning
from .stopping import EndOfRun, already_finished, describe, lightning_max_epochs

__all__ = ["FitResult", "make_run_dir", "fit", "evaluate", "RESUME_CHECKPOINT"]

RESUME_CHECKPOINT = Path("checkpoints") / "last.safetensors"
_RESUMED_LOGS = ".resumed-logs"  # a resumed run's CSV logger writes here until the run has ended
_RUN_DIR_ENV = "RNNKIT_DDP_RUN_DIR"  # rank 0 names the run directory; DDP worker processes inherit it


@dataclass(frozen=True)
class FitResult:
    """What `fit` returns: the run directory, the final metrics, the steps taken, and why the run ended
    (`end`: {reason, step, epochs, seconds}, see rnnkit.train.stopping; `ended`: the same in words)."""

    run_dir: Path
    metrics: dict[str, float]
    global_step: int
    end: dict | None = None
    ended: str = ""


def _is_worker_process() -> bool:
    return int(os.environ.get("LOCAL_RANK", "0")) != 0 or int(os.environ.get("NODE_RANK", "0")) != 0


def make_run_dir(config: TrainerConfig, task_name: str) -> Path:
    """Create `output_dir/run_name` (default: task name + timestamp); refuse to reuse a non-empty one."""
    name = config.run_name or f"{task_name}-{time.strftime('%Y%m%d-%H%M%S')}"
    if Path(config.output_dir).exists() and not Path(config.output_dir).is_dir():
        raise ValueError(
            f"trainer.output_dir {config.output_dir} is a file: expected a folder for run directories"
        )
    run_dir = Path(config.output_dir) / name
    if _is_worker_process():  # only global rank 0 writes; other nodes need --run-name to agree on the name
        return Path(os.environ.get(_RUN_DIR_ENV, run_dir))
    if run_dir.exists() and any(run_dir.iterdir()):
        raise ValueError(
            f"run directory {run_dir} already exists and is not empty; use --resume {run_dir} "
            "to continue it or choose another --run-name"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    os.environ[_RUN_DIR_ENV] = str(run_dir)
    return run_dir


def write_command(run_dir: Path, argv: list[str] | None = None) -> None:
    """Append the command line (shell-quoted) to run_dir/command.txt; a resumed run adds a line."""
    argv = sys.argv if argv is None else argv
    with open(run_dir / "command.txt", "a", encoding="utf-8") as f:
        is_rnnkit = bool(argv) and argv[0].endswith(("rnnkit", "__main__.py"))
        f.write(shlex.join(["rnnkit", *argv[1:]] if is_rnnkit else argv) + "\n")


def monitored(task: Task, config: TrainerConfig) -> tuple[str, str]:
    """("valid_<metric>", "min" | "max"): the config's trainer.monitor / monitor_mode, else the task's."""
    return f"valid_{config.monitor or task.monitor}", config.monitor_mode or task.monitor_mode


class ExportModel(Callback):
    """Write model.safetensors when the monitored metric improves (or, with the task's tiebreak metric, stays
    level while the tiebreak improves), model-last.safetensors at the end."""

    def __init__(self, run_dir: Path, task: Task, monitor: str, mode: str):
        self.run_dir, self.task, self.monitor = run_dir, task, monitor
        self.tiebreak = f"valid_{task.tiebreak}" if task.tiebreak else ""
        self.sign = 1.0 if mode == "min" else -1.0
        self.best = (float("inf"), float("inf"))  # (sign * metric, tiebreak metric): smaller is better

    def _save(self, trainer: pl.Trainer, name: str) -> None:
        if trainer.is_global_zero:
            metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("valid_")}
            save_model(
                self.run_dir / name,
                self.task.model,
                self.task.name,
                step=trainer.global_step,
                metrics=metrics,
                monitor=self.monitor,
                units=self.task.units,
                plot=self.task.plot,
                **self.task.metadata,
            )

    def on_validation_end(self, trainer, pl_module):
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            if any(k.startswith("valid_") for k in trainer.callback_metrics):
                known = sorted(k for k in trainer.callback_metrics if k.startswith("valid_"))
                raise ValueError(
                    f"trainer.monitor: no validation metric {self.monitor!r}; the task logs {known}"
                )
            return
        score = self._score(trainer.callback_metrics)
        if score >= self.best:
            return
        self.best = score
        self._save(trainer, "model.safetensors")

    def _score(self, metrics) -> tuple[float, float]:
        value = metrics.get(self.monitor)
        tiebreak = metrics.get(self.tiebreak) if self.tiebreak else None
        return (float("inf") if value is None else self.sign * float(value),
                float("inf") if tiebreak is None else float(tiebreak))

    def on_train_end(self, trainer, pl_module):
        self._save(trainer, "model-last.safetensors")
        if self.best[0] == float("inf"):
            self._save(trainer, "model.safetensors")

    def state_dict(self):
        return {"best": list(self.best)}

    def load_state_dict(self, state_dict):
        best = state_dict["best"]   # a checkpoint of an earlier version holds the monitored value alone
        best = tuple(best) if isinstance(best, list | tuple) else (float(best), float("inf"))
        self.best = min(best, self._best_on_disk())

    def _best_on_disk(self) -> tuple[float, float]:
        """The score of model.safetensors: a validation after the last checkpoint (the one at a run's final
        step) may have exported a model that the checkpoint's `best` has not seen."""
        path = self.run_dir / "model.safetensors"
        if not path.is_file():
            return (float("inf"), float("inf"))
        return self._score(load_model_file(path)[1].get("metrics", {}))


def _resume_checkpoint_callback(run_dir: Path, every_n_steps: int) -> ModelCheckpoint:
    checkpoint = ModelCheckpoint(
        dirpath=run_dir / "checkpoints",
        save_top_k=0,
        save_last=True,
        every_n_train_steps=every_n_steps or None,
        every_n_epochs=None if every_n_steps else 1,
        save_on_train_epoch_end=True,
    )
    checkpoint.FILE_EXTENSION = ".safetensors"
    return checkpoint


def _read_rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _merge_metrics(metrics_csv: Path, resumed_csv: Path) -> None:
    """metrics.csv := its rows before the resumed part's first step, then the resumed part's rows (which
    replace the rest), written atomically."""
    earlier, later = _read_rows(metrics_csv), _read_rows(resumed_csv)
    first = min((int(r["step"]) for r in later), default=None)
    rows = [r for r in earlier if first is None or int(r["step"]) < first] + later
    keys = sorted({k for r in rows for k in r})
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=keys)
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(metrics_csv, text.getvalue().encode("utf-8"))


def _checkpoint_end(ckpt_path: Path, module: TaskModule) -> dict | None:
    """How the run that wrote `ckpt_path` ended ({reason, step, ...}), None when it did not (yet).

    A checkpoint that cannot be read, or whose weights do not fit the model the run's config builds, is
    refused here, before anything in the run directory changes."""
    try:
        state = load_tree(ckpt_path)
        saved, end = state["state_dict"], state.get("callbacks", {}).get(EndOfRun.__qualname__, {}).get("end")
    except (CheckpointError, AttributeError, KeyError, TypeError) as e:
        raise CheckpointError(f"cannot resume from {ckpt_path}: {e}") from e
    current = module.state_dict()
    missing, unexpected = sorted(set(current) - set(saved)), sorted(set(saved) - set(current))
    shapes = [(k, tuple(saved[k].shape), tuple(v.shape)) for k, v in current.items()
              if k in saved and saved[k].shape != v.shape]  # fmt: skip
    if missing or unexpected or shapes:
        what = (f"{shapes[0][0]} is {shapes[0][1]} there, {shapes[0][2]} here" if shapes
                else f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}")
        raise CheckpointError(
            f"cannot resume from {ckpt_path}: its weights do not fit the model the run's config.yaml "
            f"describes ({what}); was config.yaml edited, or the checkpoint copied from another run?"
        )
    return end


def _lightning_trainer(
    config: TrainerConfig,
    run_dir: Path | None,
    callbacks: list,
    grad_clip: float,
    log_dir: Path | None = None,
) -> pl.Trainer:
    log_dir = log_dir or run_dir
    logger = _loggers(config, run_dir, log_dir) if log_dir is not None else False
    try:
        return _make_trainer(config, run_dir, callbacks, grad_clip, logger)
    except MisconfigurationException as e:  # e.g. 16-mixed precision on a CPU, or a GPU that is not there
        raise ValueError(f"cannot set up training: {e}") from e


def _loggers(config: TrainerConfig, run_dir: Path, log_dir: Path) -> list:
    """CSVLogger into log_dir (metrics.csv), and TensorBoard's into run_dir/tensorboard when asked."""
    loggers = [CSVLogger(save_dir=log_dir, name="", version="")]
    if "tensorboard" in config.loggers:
        try:
            import tensorboard  # noqa: F401
        except ImportError as e:
            raise ValueError(
                "trainer.loggers: 'tensorboard' needs the tensorboard package (pip install tensorboard)"
            ) from e
        from pytorch_lightning.loggers import TensorBoardLogger

        board = TensorBoardLogger(save_dir=run_dir, name="tensorboard", version="", default_hp_metric=False)
        loggers.append(board)
    return loggers


def _make_trainer(config: TrainerConfig, run_dir, callbacks, grad_clip, logger) -> pl.Trainer:
    return pl.Trainer(
        accelerator=config.accelerator,
        devices=config.devices,
        num_nodes=config.num_nodes,
        strategy=config.strategy,
        precision=config.precision,
        max_epochs=lightning_max_epochs(config),  # max_steps and max_time: rnnkit.train.stopping.EndOfRun
        max_steps=config.max_steps,
        val_check_interval=config.val_check_interval or None,
        check_val_every_n_epoch=None if config.val_check_interval else 1,
        limit_val_batches=config.limit_val_batches or None,
        num_sanity_val_steps=0,
        gradient_clip_val=grad_clip or None,
        log_every_n_steps=config.log_every_n_steps,
        enable_progress_bar=False,  # rnnkit.train.progress reports on stderr
        enable_model_summary=False,  # ModelSummary in `fit`, when config.model_summary
        enable_checkpointing=run_dir is not None,
        use_distributed_sampler=False,  # a task shards its own batches by (rank, world_size)
        reload_dataloaders_every_n_epochs=1,  # epoch e's batches come from train_batches(rank, world, e)
        logger=logger,
        callbacks=callbacks,
        plugins=[SafeCheckpointIO()],
        default_root_dir=run_dir,
    )


def fit(
    task: Task,
    optim: OptimConfig,
    config: TrainerConfig,
    run_dir: Path,
    resume: bool = False,
    callbacks: list | None = None,
) -> FitResult:
    """Train `task.model` in `run_dir`; with `resume`, continue exactly from its last checkpoint.

    Returns:
        FitResult with the final logged metrics (valid_* from the last validation, train_loss) and the end.
    Raises:
        CheckpointError / FileNotFoundError: `resume` without a readable checkpoint (nothing is changed).
    """
    ckpt_path, module = None, TaskModule(task, optim)
    if resume:
        ckpt_path = run_dir / RESUME_CHECKPOINT
        if not ckpt_path.is_file():
            raise FileNotFoundError(
                f"cannot resume: no checkpoint at {ckpt_path} (the run stopped before its "
                "first checkpoint was written)"
            )
        end = _checkpoint_end(ckpt_path, module)
        if already_finished(end, config):
            return _finished(run_dir, end, config)
    monitor, mode = monitored(task, config)
    end_of_run = EndOfRun(config, run_dir / RESUME_CHECKPOINT)
    all_callbacks = [
        _resume_checkpoint_callback(run_dir, config.checkpoint_every_n_steps),
        ExportModel(run_dir, task, monitor, mode),
        end_of_run,
    ]
    if config.early_stopping_patience and task.valid_batches is not None:
        stop = EarlyStopping(
            monitor=monitor,
            mode=mode,
            patience=config.early_stopping_patience,
            check_on_train_epoch_end=False,
        )
        all_callbacks.append(stop)
    if config.model_summary:
        all_callbacks.append(ModelSummary(max_depth=2))
    if config.log_every_n_steps:
        all_callbacks.append(LearningRateMonitor(logging_interval="step"))
    callbacks = list(callbacks or [])
    if not any(getattr(c, "reports_progress", False) for c in callbacks):
        all_callbacks.append(RunProgress(config.max_steps, end_of_run.seconds_left, bar=config.progress_bar))
    log_dir = run_dir / _RESUMED_LOGS if resume else run_dir
    quiet_lightning()
    try:
        trainer = _lightning_trainer(config, run_dir, all_callbacks + callbacks, optim.grad_clip, log_dir)
        with warnings.catch_warnings():
            # Our loader is an in-order token stream: resumption is handled by TaskModule, not by Lightning.
            warnings.filterwarnings("ignore", message=".*dataloader is not resumable.*")
            warnings.filterwarnings("ignore", message=".*does not have many workers.*")
            warnings.filterwarnings("ignore", message=".*Experiment logs directory.*")
            trainer.fit(module, ckpt_path=ckpt_path)
        if trainer.is_global_zero and resume:
            _merge_metrics(run_dir / "metrics.csv", log_dir / "metrics.csv")
    finally:
        if resume and not _is_worker_process():
            shutil.rmtree(log_dir, ignore_errors=True)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    end = end_of_run.end
    if trainer.is_global_zero:
        from .plots import plot_loss_curves, run_plot_info

        png = run_dir / "plots" / "loss.png"
        plot_loss_curves(run_dir / "metrics.csv", png, task.units, run_plot_info(run_dir))
    return FitResult(run_dir, metrics, trainer.global_step, end, describe(end, config) if end else "")


def _finished(run_dir: Path, end: dict, config: TrainerConfig) -> FitResult:
    """A resumed run that has nothing left to do: say so, change nothing."""
    ended = describe(end, config)
    logging.getLogger("rnnkit").warning(
        "rnnkit: %s already ended (%s); nothing to do: raise the limit (e.g. --max-steps) to train on",
        run_dir, ended,
    )
    model_file = run_dir / "model-last.safetensors"
    metrics = load_model_file(model_file)[1].get("metrics", {}) if model_file.is_file() else {}
    return FitResult(run_dir, metrics, end["step"], end, ended)


def evaluate(task: Task, config: TrainerConfig) -> dict[str, float]:
    """Validate `task.model` on `task.valid_batches` with Lightning; returns the valid_* metrics."""
    if task.valid_batches is None:
        raise ValueError("nothing to evaluate: the task has no evaluation data")
    trainer = _lightning_trainer(config, None, [], 0.0)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        trainer.validate(TaskModule(task, OptimConfig()), verbose=False)
    return {k: float(v) for k, v in trainer.callback_metrics.items()}
