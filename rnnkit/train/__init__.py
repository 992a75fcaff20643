"""Task-agnostic training on PyTorch Lightning: typed config, Lightning adapter, safe checkpoints."""

from .checkpoint import CheckpointError, SafeCheckpointIO, load_model_file, load_tree, save_model, save_tree
from .config import OptimConfig, TrainerConfig, apply_overrides, dump_yaml, from_dict, load_yaml, to_dict
from .module import Task, TaskModule
from .trainer import FitResult, evaluate, fit, make_run_dir

__all__ = [
    "CheckpointError",
    "SafeCheckpointIO",
    "load_model_file",
    "load_tree",
    "save_model",
    "save_tree",
    "OptimConfig",
    "TrainerConfig",
    "apply_overrides",
    "dump_yaml",
    "from_dict",
    "load_yaml",
    "to_dict",
    "Task",
    "TaskModule",
    "FitResult",
    "evaluate",
    "fit",
    "make_run_dir",
]
