"""One training run of any task: seed, run directory, config.yaml, command.txt, the task's files, fit/resume.

A task hands the engine a `build(config, resume_dir)` function returning a `BuiltTask`: the `Task` (model,
batches, metrics), the config with whatever the data decided filled in (e.g. the vocabulary size), and the
small files the run directory keeps so that a resume rebuilds the same task (e.g. vocabulary.json). Nothing
here knows what the task is.

The run directory changes only once training has started (`RunFiles`, at Lightning's on_train_start: the
devices are set up and the checkpoint has loaded): a command that fails before leaves an existing run as it
was, and a new run's folder is removed again, so its name stays free.

    run = train_run(build_language_model, config, argv=sys.argv)        # a new run directory
    run = train_run(build_language_model, config, resume_dir=run.run_dir)  # continue it exactly
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pytorch_lightning.callbacks import Callback

from .checkpoint import write_atomic
from .config import to_dict
from .module import Task
from .trainer import FitResult, fit, make_run_dir, write_command

__all__ = ["BuiltTask", "train_run", "absolute_data_path"]


@dataclass
class BuiltTask:
    """What a task's build function returns.

    Args:
        task: the Task to fit.
        config: the resolved run config (a frozen dataclass with optim and trainer sections), written to
            config.yaml.
        files: run-directory files to write before training, name -> text (read back on resume).
    """

    task: Task
    config: Any
    files: dict[str, str] = field(default_factory=dict)


def absolute_data_path(config):
    """The config with data.path made absolute when it exists, so the run resumes from any folder."""
    data = getattr(config, "data", None)
    path = getattr(data, "path", "")
    if not path or not Path(path).exists():
        return config
    return dataclasses.replace(config, data=dataclasses.replace(data, path=str(Path(path).resolve())))


class RunFiles(Callback):
    """Writes config.yaml, the task's files and the command line when training starts (global rank 0)."""

    def __init__(self, run_dir: Path, built: BuiltTask, argv: list[str] | None):
        self.run_dir, self.built, self.argv = run_dir, built, argv
        self.written = False

    def on_train_start(self, trainer, pl_module):
        if trainer.is_global_zero:
            text = yaml.safe_dump(to_dict(self.built.config), sort_keys=False)
            write_atomic(self.run_dir / "config.yaml", text.encode("utf-8"))
            for name, text in self.built.files.items():
                write_atomic(self.run_dir / name, text.encode("utf-8"))
            write_command(self.run_dir, self.argv)
        self.written = True


def train_run(
    build: Callable[[Any, Path | None], BuiltTask],
    config,
    resume_dir: str | Path | None = None,
    argv: list[str] | None = None,
    callbacks: list | None = None,
) -> FitResult:
    """Train the task `build` makes from `config`; `resume_dir` continues that run exactly."""
    import pytorch_lightning as pl

    resume = None if resume_dir is None else Path(resume_dir)
    if resume is None:
        config = absolute_data_path(config)
    pl.seed_everything(config.trainer.seed, verbose=False)
    built = build(config, resume)
    run_dir = resume if resume is not None else make_run_dir(built.config.trainer, built.task.name)
    files = RunFiles(run_dir, built, argv)
    try:
        return fit(
            built.task,
            built.config.optim,
            built.config.trainer,
            run_dir,
            resume=resume is not None,
            callbacks=[files, *(callbacks or [])],
        )
    except BaseException:
        if resume is None and not files.written and pl.utilities.rank_zero_only.rank == 0:
            shutil.rmtree(run_dir, ignore_errors=True)  # make_run_dir made it, empty: free the name again
        raise
