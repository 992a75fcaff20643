"""Typed configuration: frozen dataclasses, from YAML presets and `key=value` overrides, checked.

    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Optim:
    ...     lr: float = 1e-3
    ...     name: str = "adam"
    >>> apply_overrides(Optim(), ["lr=0.01"])
    Optim(lr=0.01, name='adam')
    >>> apply_overrides(Optim(), ["lr=fast"])
    Traceback (most recent call last):
    ...
    ValueError: config key 'lr' expects float, got 'fast' (str)

Every key is checked against the dataclass fields: unknown keys fail with the list of valid ones (and the
nearest match), values are converted only where no information is lost (int -> float), and each dataclass's
own `__post_init__` validates ranges and choices.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "OptimConfig",
    "TrainerConfig",
    "from_dict",
    "to_dict",
    "apply_overrides",
    "load_yaml",
    "dump_yaml",
    "field_help",
]


@dataclass(frozen=True)
class OptimConfig:
    """Optimiser and gradient clipping.

    Args:
        name: "adam", "adamw" or "sgd".
        lr: learning rate.
        weight_decay: L2 (adam, sgd) or decoupled (adamw) weight decay.
        momentum: SGD momentum.
        grad_clip: clip the global gradient norm to this value (0 = off); Pascanu et al. 2013.
        schedule: "constant", or "cosine": lr decays as a half cosine per optimiser step, from `lr` to
            `lr * final_lr_fraction` over `decay_steps` steps (0 = the whole run, Lightning's estimate).
        decay_steps: length of the cosine decay in optimiser steps (0 = the whole run).
        final_lr_fraction: the cosine schedule's last learning rate, as a fraction of `lr`.
    """

    name: str = "adam"
    lr: float = 2e-3
    weight_decay: float = 0.0
    momentum: float = 0.0
    grad_clip: float = 1.0
    schedule: str = "constant"
    decay_steps: int = 0
    final_lr_fraction: float = 0.1

    def __post_init__(self):
        if self.name not in ("adam", "adamw", "sgd"):
            raise ValueError(f"optim.name must be 'adam', 'adamw' or 'sgd', got {self.name!r}")
        if self.schedule not in ("constant", "cosine"):
            raise ValueError(f"optim.schedule must be 'constant' or 'cosine', got {self.schedule!r}")
        if not 0 <= self.final_lr_fraction <= 1:
            raise ValueError(f"optim.final_lr_fraction must lie in [0, 1], got {self.final_lr_fraction}")
        if not self.lr > 0:  # also refuses NaN
            raise ValueError(f"optim.lr must be > 0 (a learning rate of 0 trains nothing), got {self.lr}")
        for name in ("weight_decay", "momentum", "grad_clip", "decay_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"optim.{name} must be >= 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class TrainerConfig:
    """The training loop (PyTorch Lightning), devices, checkpoints and logging.

    Args:
        max_epochs: passes over the training data; the budget only when max_steps is -1.
        max_steps: optimiser steps to train; when set (not -1) it is the budget and max_epochs is ignored.
        max_time_minutes: stop after this much training time (0 = no limit), summed over resumes and checked
            after each step. Whichever limit ends a run is printed and kept in its checkpoint
            (rnnkit.train.stopping).
        seed: seeds Python, NumPy and torch; with the same seed a run is reproducible.
        accelerator: "cpu", "gpu", "mps" or "auto".
        devices: number of devices (processes) per node, or "auto"; > 1 trains data-parallel (DDP).
        num_nodes: machines in a multi-node DDP run.
        strategy: Lightning strategy, "auto" picks DDP when there is more than one process.
        precision: "32-true", "64-true", "bf16-mixed" or "16-mixed".
        val_check_interval: validate every this many training batches (0 = once per epoch).
        limit_val_batches: validate on at most this many batches (0 = all).
        checkpoint_every_n_steps: also write the resume checkpoint every n steps (0 = per epoch only).
        early_stopping_patience: stop when the monitored metric has not improved for this many validations
            (0 = off).
        monitor: the validation metric that picks model.safetensors and drives early stopping, without the
            "valid_" prefix (e.g. "loss", "accuracy"); empty = the task's choice.
        monitor_mode: "min" or "max", whether smaller or larger `monitor` is better; empty = the task's.
        log_every_n_steps: how often training loss and the learning rate go to the loggers.
        loggers: where metrics go: "csv" (metrics.csv, always kept: the plots read it) and "tensorboard"
            (run_dir/tensorboard, for `tensorboard --logdir runs`; needs the tensorboard package).
        model_summary: print the model's parameters per module (2 levels deep) when training starts.
        progress_bar: a run-level progress bar on stderr when it is a terminal; off (or not a terminal):
            plain progress lines on stderr, one per validation and every 30 s (rnnkit.train.progress).
        output_dir: parent folder of run directories.
        run_name: run directory name under output_dir (empty = task name + timestamp).
    """

    max_epochs: int = 10
    max_steps: int = -1
    max_time_minutes: float = 0.0
    seed: int = 0
    accelerator: str = "auto"
    devices: int | str = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    val_check_interval: int = 0
    limit_val_batches: int = 0
    checkpoint_every_n_steps: int = 0
    early_stopping_patience: int = 0
    monitor: str = ""
    monitor_mode: str = ""
    log_every_n_steps: int = 10
    loggers: tuple[str, ...] = ("csv",)
    model_summary: bool = True
    progress_bar: bool = True
    output_dir: str = "runs"
    run_name: str = ""

    def __post_init__(self):
        for name in ("max_epochs", "num_nodes", "log_every_n_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"trainer.{name} must be >= 1, got {getattr(self, name)}")
        if self.max_steps < -1 or self.max_steps == 0:
            raise ValueError(f"trainer.max_steps must be -1 (no limit) or >= 1, got {self.max_steps}")
        for name in (
            "val_check_interval",
            "limit_val_batches",
            "checkpoint_every_n_steps",
            "early_stopping_patience",
            "max_time_minutes",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"trainer.{name} must be >= 0, got {getattr(self, name)}")
        if isinstance(self.seed, bool) or not 0 <= self.seed < 2**32:
            raise ValueError(f"trainer.seed must be an integer in [0, {2**32 - 1}], got {self.seed!r}")
        if self.monitor_mode not in ("", "min", "max"):
            raise ValueError(
                f"trainer.monitor_mode must be 'min', 'max' or '' (the task's), got {self.monitor_mode!r}"
            )
        unknown = [name for name in self.loggers if name not in ("csv", "tensorboard")]
        if unknown or "csv" not in self.loggers:
            raise ValueError(
                f"trainer.loggers must hold 'csv' and may add 'tensorboard', got {list(self.loggers)}"
            )
        if self.precision not in ("32-true", "64-true", "bf16-mixed", "16-mixed", "bf16-true", "16-true"):
            raise ValueError(
                f"trainer.precision must be e.g. '32-true' or 'bf16-mixed', got {self.precision!r}"
            )
        if (
            isinstance(self.devices, str)
            and self.devices != "auto"
            or isinstance(self.devices, int)
            and self.devices < 1
        ):
            raise ValueError(f"trainer.devices must be a positive integer or 'auto', got {self.devices!r}")


# ---- dict <-> dataclass --------------------------------------------------------------------------------


_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp, key: str) -> Any:
    """Return `value` as type `tp`, or raise ValueError naming the key, the expected and the given value."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(tp):
            try:
                return _convert(value, option, key)
            except ValueError:
                pass
        names = " or ".join(_type_name(t) for t in typing.get_args(tp))
        raise ValueError(f"config key {key!r} expects {names}, got {value!r} ({type(value).__name__})")
    if origin is tuple:  # tuple[X, ...] from a YAML list (or a tuple): each item converted to X
        items = typing.get_args(tp)
        if isinstance(value, (list, tuple)) and len(items) == 2 and items[1] is Ellipsis:
            return tuple(_convert(v, items[0], f"{key}[{i}]") for i, v in enumerate(value))
        raise ValueError(f"config key {key!r} expects a list, got {value!r} ({type(value).__name__})")
    if tp is type(None):
        if value is None:
            return None
    elif is_dataclass(tp):
        if isinstance(value, dict):
            return from_dict(tp, value, prefix=f"{key}.")
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and _FLOAT.fullmatch(value.strip()):  # YAML 1.1 reads 1e-3 as a string
            return float(value)
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(value, tp):
        return value
    raise ValueError(f"config key {key!r} expects {_type_name(tp)}, got {value!r} ({type(value).__name__})")


def _unknown_key(key: str, valid: list[str], prefix: str) -> ValueError:
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f"; did you mean {prefix + close[0]!r}?" if close else ""
    return ValueError(
        f"unknown config key {prefix + key!r}{hint} valid keys: {', '.join(prefix + v for v in valid)}"
    )


def from_dict(cls, data: dict, prefix: str = ""):
    """Build dataclass `cls` from a nested dict; missing keys keep their defaults, unknown keys are errors."""
    if not isinstance(data, dict):
        raise ValueError(f"config section {prefix.rstrip('.') or '(top)'} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in fields(cls)]
    for key in data:
        if key not in names:
            raise _unknown_key(str(key), names, prefix)
    kwargs = {k: _convert(v, hints[k], prefix + k) for k, v in data.items()}
    return cls(**kwargs)


def to_dict(config) -> dict:
    """Nested plain dict of a dataclass config (YAML-ready)."""
    return dataclasses.asdict(config)


def apply_overrides(config, overrides: list[str]):
    """Return a copy of `config` with `section.key=value` overrides (values parsed as YAML)."""
    data = to_dict(config)
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override must look like section.key=value, got {item!r}")
        dotted, raw = item.split("=", 1)
        value = yaml.safe_load(raw) if raw.strip() else ""
        node, cls, parts = data, type(config), dotted.strip().split(".")
        for depth, part in enumerate(parts):
            names = [f.name for f in fields(cls)]
            prefix = "".join(p + "." for p in parts[:depth])
            if part not in names:
                raise _unknown_key(part, names, prefix)
            if depth == len(parts) - 1:
                node[part] = value
            else:
                cls = typing.get_type_hints(cls)[part]
                if not is_dataclass(cls):
                    raise ValueError(
                        f"config key {prefix + part!r} is a value, not a section; got {dotted!r}"
                    )
                node = node[part]
    return from_dict(type(config), data)


def read_yaml_mapping(path: str | Path) -> dict:
    """The mapping of sections in a YAML config file; ValueError naming the file and what is wrong with it
    (not UTF-8 text, a model file, a YAML syntax error with its line and column, not a mapping)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    raw = path.read_bytes()
    is_safetensors = raw[8:9] == b"{" and int.from_bytes(raw[:8], "little") < len(raw)  # header size, JSON
    if is_safetensors or path.suffix == ".safetensors":
        raise ValueError(f"{path} is a model file, not a YAML config: give it to `rnnkit evaluate` or "
                         "`rnnkit predict`, or continue its run with --resume RUN_DIR")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not UTF-8 text (byte {e.start}): expected a YAML config") from e
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ValueError(f"{path} is not valid YAML{where}: {problem}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a run config must be a mapping of sections, got {type(data).__name__}")
    return data


def load_yaml(cls, path: str | Path):
    """Read a YAML preset into dataclass `cls` (strictly: unknown keys and wrong types are errors)."""
    path = Path(path)
    data = read_yaml_mapping(path)
    try:
        return from_dict(cls, data)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from e


def dump_yaml(config, path: str | Path) -> None:
    """Write the resolved config as YAML."""
    Path(path).write_text(yaml.safe_dump(to_dict(config), sort_keys=False), encoding="utf-8")


def field_help(cls, prefix: str = "") -> list[str]:
    """One line per leaf key, `section.key (type, default)`: the list printed by `--help`."""
    lines, hints = [], typing.get_type_hints(cls)
    for f in fields(cls):
        tp = hints[f.name]
        if is_dataclass(tp):
            lines += field_help(tp, prefix=f"{prefix}{f.name}.")
        else:
            default = f.default if f.default is not dataclasses.MISSING else "required"
            lines.append(f"{prefix}{f.name}={default!r}")
    return lines
