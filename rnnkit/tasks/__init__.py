"""The tasks rnnkit trains, one file each, and the registry `rnnkit train | evaluate | predict` dispatches on.

A task file defines `SPEC = TaskSpec(...)`: its run-config class, how to build the `Task` from that config,
how to evaluate and predict with a trained model file, and its command-line flags. A run config and a model
file name their task (`task:` key; the `task` of the model file's metadata), so the CLI finds the spec.

Adding a task: write rnnkit/tasks/<name>.py with a SPEC, add one line to `REGISTRY` (docs/architecture.md).
Task modules are imported on first use, so `rnnkit --help` does not load torch.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["REGISTRY", "TaskSpec", "Flag", "get_task", "task_of_config", "DEFAULT_TASK"]

# task name -> module that defines its SPEC
REGISTRY: dict[str, str] = {
    "language_model": "rnnkit.tasks.language_model",
}
DEFAULT_TASK = "language_model"

Flag = tuple[str, str, type, str]  # (--flag, config key it sets, type, help)


@dataclass(frozen=True)
class TaskSpec:
    """What the engine and the CLI need to know of one task.

    Args:
        name: the registry name, also the `task:` of its configs and model files.
        summary: one line for `rnnkit train --help`.
        config_class: the run config (frozen dataclass with task, model, data, optim, trainer sections).
        build: (config, resume_dir or None) -> rnnkit.train.run.BuiltTask.
        upgrade_config: dict of an older config (model file or run config.yaml) -> today's form.
        train_flags: shortcut flags of `rnnkit train` for this task's most used keys.
        add_evaluate_arguments / evaluate: the flags of `rnnkit evaluate MODEL` and what it does
            (args -> exit code; results on stdout).
        add_predict_arguments / predict: likewise for `rnnkit predict MODEL` (alias `generate`).
    """

    name: str
    summary: str
    config_class: type
    build: Callable[[Any, Path | None], Any]
    upgrade_config: Callable[[dict], dict]
    train_flags: tuple[Flag, ...]
    add_evaluate_arguments: Callable[[argparse.ArgumentParser], None]
    evaluate: Callable[[argparse.Namespace], int]
    add_predict_arguments: Callable[[argparse.ArgumentParser], None]
    predict: Callable[[argparse.Namespace], int]


def get_task(name: str) -> TaskSpec:
    """The spec of task `name`; ValueError listing the known tasks otherwise."""
    if name not in REGISTRY:
        raise ValueError(f"unknown task {name!r}: expected one of {sorted(REGISTRY)}")
    return importlib.import_module(REGISTRY[name]).SPEC


def task_of_config(data: dict) -> str:
    """The `task:` of a config mapping (YAML preset, config.yaml or model-file metadata), default the LM."""
    task = data.get("task", DEFAULT_TASK) if isinstance(data, dict) else DEFAULT_TASK
    if not isinstance(task, str):
        raise ValueError(f"config key 'task' must be a task name, got {task!r}")
    return task
