"""Checkpoints without pickle: tensors in safetensors, everything else as JSON in the safetensors header.

Two kinds of file, both a single `.safetensors` file written atomically (temp file + fsync + os.replace), so a
crash mid-write leaves the previous file intact:

- a *model file* (`save_model` / `load_model_file`): the model's state_dict plus JSON metadata (format, task
  name, config, vocabulary, metrics, rnnkit/torch/Lightning versions). This is what `evaluate` and `generate`
  read.
- a *training state* (`save_tree` / `load_tree`, used by `SafeCheckpointIO` for Lightning): any nested
  dict/list/tuple of tensors and JSON scalars -- weights, optimizer state, loop position, RNG state, the
  carried recurrent state -- so `--resume` continues exactly without ever unpickling a file.

Loading never runs code from the file: safetensors holds raw tensor bytes, the header is parsed as JSON.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.checkpoint_io import CheckpointIO
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes

import rnnkit

__all__ = [
    "CheckpointError",
    "MODEL_FORMAT",
    "save_model",
    "load_model_file",
    "save_tree",
    "load_tree",
    "SafeCheckpointIO",
    "write_atomic",
]

MODEL_FORMAT = "rnnkit.model"
STATE_FORMAT = "rnnkit.training_state"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file that is corrupt, foreign, from another task, or from an incompatible version."""


def _versions() -> dict[str, str]:
    import pytorch_lightning

    return {
        "rnnkit": rnnkit.__version__,
        "torch": torch.__version__,
        "pytorch_lightning": pytorch_lightning.__version__,
    }


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write(path: Path, tensors: dict[str, torch.Tensor], header: dict[str, Any]) -> None:
    # safetensors refuses tensors that share memory (tied weights); a contiguous copy of each is always safe.
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    write_atomic(Path(path), save_safetensors_bytes(tensors, metadata={"rnnkit": json.dumps(header)}))


def _read(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    data = path.read_bytes()
    try:
        tensors = load_safetensors_bytes(data)
        header_size = int.from_bytes(data[:8], "little")
        metadata = json.loads(data[8 : 8 + header_size]).get("__metadata__") or {}
        header = json.loads(metadata["rnnkit"])
    except (SafetensorError, ValueError, KeyError, UnicodeDecodeError) as e:
        raise CheckpointError(
            f"{path} is not a readable rnnkit checkpoint (corrupt or foreign file): {e}"
        ) from e
    if not isinstance(header, dict) or "format" not in header:
        raise CheckpointError(f"{path} is not an rnnkit checkpoint: no 'format' in its metadata")
    return tensors, header


def _check_header(path, header: dict, expected_format: str) -> None:
    if header["format"] != expected_format:
        raise CheckpointError(f"{path} is a {header['format']!r} file, expected {expected_format!r}")
    version = header.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {version} (written by rnnkit "
            f"{header.get('versions', {}).get('rnnkit', '?')}); this rnnkit {rnnkit.__version__} reads "
            f"version {FORMAT_VERSION}"
        )


def save_model(path: str | os.PathLike, model: torch.nn.Module, task: str, **metadata: Any) -> None:
    """Write `model.state_dict()` and JSON metadata (task, versions, and the given config etc.) to `path`."""
    header = {"format": MODEL_FORMAT, "format_version": FORMAT_VERSION, "task": task, "versions": _versions()}
    header.update(metadata)
    _write(Path(path), model.state_dict(), header)


def load_model_file(path: str | os.PathLike, task: str | None = None) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a model file -> (state_dict, metadata); CheckpointError if corrupt/foreign/other task."""
    tensors, header = _read(path)
    _check_header(path, header, MODEL_FORMAT)
    if task is not None and header.get("task") != task:
        raise CheckpointError(f"{path} holds a model for task {header.get('task')!r}, expected {task!r}")
    return tensors, header


# ---- nested trees of tensors and JSON scalars ------------------------------------------------------------


def _encode(obj: Any, tensors: dict[str, torch.Tensor], where: str) -> Any:
    if isinstance(obj, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = obj
        return {"$tensor": key}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, (list, tuple)):
        items = [_encode(v, tensors, f"{where}[{i}]") for i, v in enumerate(obj)]
        return {"$tuple": items} if isinstance(obj, tuple) else items
    if isinstance(obj, dict):
        return {
            "$items": [
                [_encode(k, tensors, where), _encode(v, tensors, f"{where}.{k}")] for k, v in obj.items()
            ]
        }
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if hasattr(obj, "item") and getattr(obj, "shape", None) == ():  # NumPy scalar
        return obj.item()
    raise TypeError(
        f"cannot store {type(obj).__name__} at {where} in a checkpoint (tensors and JSON scalars only)"
    )


def _decode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if "$tensor" in obj:
            return tensors[obj["$tensor"]]
        if "$tuple" in obj:
            return tuple(_decode(v, tensors) for v in obj["$tuple"])
        return {_decode(k, tensors): _decode(v, tensors) for k, v in obj["$items"]}
    return obj


def save_tree(path: str | os.PathLike, tree: Any) -> None:
    """Atomically write a nested dict/list/tuple of tensors and JSON scalars (e.g. a Lightning checkpoint)."""
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _encode(tree, tensors, "checkpoint")
    header = {
        "format": STATE_FORMAT,
        "format_version": FORMAT_VERSION,
        "versions": _versions(),
        "tree": skeleton,
    }
    _write(Path(path), tensors, header)


def load_tree(path: str | os.PathLike) -> Any:
    """Read what `save_tree` wrote; CheckpointError if the file is corrupt or not a training state."""
    tensors, header = _read(path)
    _check_header(path, header, STATE_FORMAT)
    try:
        return _decode(header["tree"], tensors)
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path} has a damaged training-state tree: {e!r}") from e


class SafeCheckpointIO(CheckpointIO):
    """Lightning checkpoint I/O through `save_tree` / `load_tree`: atomic, and no pickle on load."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        save_tree(path, checkpoint)

    def load_checkpoint(
        self, path, map_location: Any | None = None, weights_only: bool | None = None
    ) -> dict:
        return load_tree(path)

    def remove_checkpoint(self, path) -> None:
        Path(path).unlink(missing_ok=True)
