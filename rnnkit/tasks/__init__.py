"""The tasks rnnkit trains, one file each, and the registry `rnnkit train | evaluate | predict` dispatches on.

A task file defines `SPEC = TaskSpec(...)`: its run-config class, how to build the `Task` from that config,
how to evaluate and predict with a trained model file, and its command-line flags. A run config and a model
file name their task (`task:` key; the `task` of the model file's metadata), so the CLI finds the spec.

Every command that uses a trained model takes it the same way, as its first argument: a model file, or a run
directory (its model.safetensors) -- `resolve_model_path`. `load(path)` (also `rnnkit.load`) returns the
task's ready-to-use object, e.g. a language model with `generate` and `evaluate`.

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

__all__ = ["REGISTRY", "TaskSpec", "Flag", "get_task", "task_of_config", "resolve_model_path", "load",
           "DEFAULT_TASK"]

# task name -> module that defines its SPEC
REGISTRY: dict[str, str] = {
    "language_model": "rnnkit.tasks.language_model",
    "classifier": "rnnkit.tasks.classifier",
    "forecast": "rnnkit.tasks.forecast",
    "translate": "rnnkit.tasks.translate",
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
        load: model file path -> the trained model as an object with the task's methods (`rnnkit.load`).
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
    load: Callable[[Path], Any]


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


def resolve_model_path(path: str | Path) -> Path:
    """The model file a command means by `path`: the file itself, or a run directory's model.safetensors."""
    path = Path(path)
    if path.is_dir():
        model = path / "model.safetensors"
        if not model.is_file():
            found = sorted(p.name for p in path.glob("*.safetensors"))
            raise FileNotFoundError(
                f"{path} is a folder without model.safetensors: expected a model file or a run directory"
                + (f" (it holds {', '.join(found)})" if found else "")
            )
        return model
    if not path.is_file():
        raise FileNotFoundError(f"no such model file or run directory: {path}")
    return path


def task_of_model(path: str | Path) -> str:
    """The task a model file (or run directory) was trained for, from its metadata."""
    from rnnkit.train.checkpoint import load_model_file

    return load_model_file(resolve_model_path(path))[1].get("task", DEFAULT_TASK)


def load(path: str | Path):
    """A trained model, ready to use: `rnnkit.load("runs/shakespeare")` -> the task's object (for a language
    model: `.generate(prompt)`, `.evaluate(text_path)`), from a model file or a run directory."""
    model_file = resolve_model_path(path)
    return get_task(task_of_model(model_file)).load(model_file)
