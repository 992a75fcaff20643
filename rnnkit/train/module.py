"""The thin adapter between a task and PyTorch Lightning: `Task` says what, `TaskModule` plugs it in.

A task is a plain nn.Module plus a loss function, batch sources and metric objects (see `Task`); the adapter
knows nothing about RNNs. It only carries an opaque `carry` from one training batch to the next (e.g. the
detached recurrent state of stateful truncated BPTT), resets it at the start of every epoch and validation
run, and saves it -- with the position in the epoch and the RNG state of every process -- in the checkpoint,
so a resumed run continues exactly. The training batches of epoch e come from `train_batches(rank, world,
e)`: a task that shuffles draws its order from (seed, e) (rnnkit.data.sampler), so skipping the batches an
interrupted epoch already took resumes at the exact example.

Validation: each batch's `StepOutput` updates the task's metrics (rnnkit.train.metrics); their results,
reduced across processes, are logged as valid_<name>.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

from rnnkit.nn.state import tree_map

from .config import OptimConfig
from .metrics import MeanLoss, StepOutput, compute_all

__all__ = ["Task", "TaskModule", "ResumableBatches"]

LossFn = Callable[[nn.Module, Any, Any], StepOutput]
Batches = Callable[[int, int, int], Iterable]  # (rank, world_size, epoch) -> batches


@dataclass
class Task:
    """Everything the engine needs to train and evaluate one kind of model.

    Args:
        name: the task's name, stored in checkpoints ("language_model", ...).
        model: a plain nn.Module.
        loss: (model, batch, carry) -> StepOutput(mean loss, new carry, number of targets, outputs, targets);
            `carry` is None at the start of an epoch. Stateless tasks return carry None.
        train_batches: (rank, world_size, epoch) -> an iterable of batches (same number on every rank).
        valid_batches: like train_batches (epoch is 0), or None for no validation.
        metrics: () -> {name: metric}, fresh metric objects (rnnkit.train.metrics); each returns
            {metric name: value} and is logged with a "valid_" prefix.
        monitor: the metric (without "valid_") that selects the best model and drives early stopping.
        monitor_mode: "min" or "max": whether a smaller or a larger `monitor` is better.
        tiebreak: a metric (without "valid_") that decides between validations of equal `monitor`, smaller
            better: e.g. the loss for accuracy, which on a small validation set often ties an undertrained
            early model with a better later one. "" = the first of equal validations stays.
        units: metric name -> axis label for the plots, e.g. {"loss": "cross-entropy (nats)"}.
        plot: extras of the plots (rnnkit.train.plots): {"subtitle": what was trained, "references":
            {metric: [[level, label], ...]} (dashed lines), "secondary": {metric: [label, factor]} (a second
            axis)}.
        metadata: JSON-ready facts saved with the model (config, vocabulary, ...).
    """

    name: str
    model: nn.Module
    loss: LossFn
    train_batches: Batches
    valid_batches: Batches | None = None
    metrics: Callable[[], dict[str, Any]] = lambda: {"loss": MeanLoss()}
    monitor: str = "loss"
    monitor_mode: str = "min"
    tiebreak: str = ""
    units: dict[str, str] = field(default_factory=dict)
    plot: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.monitor_mode not in ("min", "max"):
            raise ValueError(f"monitor_mode must be 'min' or 'max', got {self.monitor_mode!r}")


class ResumableBatches:
    """An iterable that starts its next pass at batch `start` (set when resuming mid-epoch), then from 0."""

    def __init__(self, batches: Iterable, start: int = 0):
        self.batches, self.start = batches, start

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        start, self.start = self.start, 0
        for j, batch in enumerate(self.batches):
            if j >= start:
                yield batch


def make_optimizer(params, config: OptimConfig) -> torch.optim.Optimizer:
    if config.name == "sgd":
        return torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    optimizer = torch.optim.AdamW if config.name == "adamw" else torch.optim.Adam
    return optimizer(params, lr=config.lr, weight_decay=config.weight_decay)


class TaskModule(pl.LightningModule):
    """LightningModule around a `Task`: training/validation steps, optimiser, exact-resume state."""

    def __init__(self, task: Task, optim: OptimConfig):
        super().__init__()
        self.task, self.optim_config = task, optim
        self.model = task.model
        self.metrics = nn.ModuleDict(task.metrics())  # moved to the device with the model, never saved
        self._carry: Any = None
        self._batches_done = 0  # batches of the current epoch finished by training_step
        self._resume: dict | None = None

    # ---- data ----
    def train_dataloader(self):
        start = self._resume["batches_done"] if self._resume else 0
        batches = self.task.train_batches(self.global_rank, self.trainer.world_size, self.current_epoch)
        return ResumableBatches(batches, start if start < len(batches) else 0)

    def val_dataloader(self):
        if self.task.valid_batches is None:
            return []
        return self.task.valid_batches(self.global_rank, self.trainer.world_size, 0)

    # ---- steps ----
    def on_train_batch_start(self, batch, batch_idx):
        if self._resume is not None:  # restore RNG and carry right before the first resumed step
            rank = self.global_rank
            torch.set_rng_state(self._resume["rng"][rank])
            if torch.cuda.is_available() and self._resume.get("cuda_rng"):
                torch.cuda.set_rng_state(self._resume["cuda_rng"][rank])
            self._carry = tree_map(lambda t: t.to(self.device), self._resume["carry"][rank])
            self._resume = None

    def training_step(self, batch, batch_idx):
        if batch_idx == 0:
            self._carry = None  # a new epoch starts the stream again from a zero state
        step = self.task.loss(self.model, batch, self._carry)
        self._carry = step.carry
        self._batches_done = batch_idx + 1
        self.log("train_loss", step.loss, prog_bar=True)
        return step.loss

    def on_validation_epoch_start(self):
        self._val_carry = None
        for metric in self.metrics.values():
            metric.reset()

    def validation_step(self, batch, batch_idx):
        step = self.task.loss(self.model, batch, self._val_carry)
        self._val_carry = step.carry
        for metric in self.metrics.values():
            metric.update(step)

    def on_validation_epoch_end(self):
        metrics = compute_all(self.metrics)  # each metric reduces its sums across processes
        if not metrics or all(v != v for v in metrics.values()):  # no batch validated
            return
        self.log_dict({f"valid_{k}": v for k, v in metrics.items()}, prog_bar=True, sync_dist=False)

    def configure_optimizers(self):
        optimizer = make_optimizer(self.model.parameters(), self.optim_config)
        config = self.optim_config
        if config.schedule == "constant":
            return optimizer
        steps = config.decay_steps or self.trainer.estimated_stepping_batches
        if not math.isfinite(steps):
            raise ValueError("optim.schedule=cosine needs optim.decay_steps or trainer.max_steps")
        cosine = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=int(steps), eta_min=config.lr * config.final_lr_fraction
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": cosine, "interval": "step"}}

    # ---- exact resume ----
    def _gather(self, tree: Any) -> list:
        """Per-rank list of a tensor tree (every rank calls this; rank 0 writes the checkpoint)."""
        world = self.trainer.world_size
        if world == 1:
            return [tree]
        gathered = self.all_gather(tree)  # each tensor gains a leading (world,) dim
        return [tree_map(lambda t, r=r: t[r].cpu(), gathered) for r in range(world)]

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        carry = tree_map(lambda t: t.detach(), self._carry)
        state = {
            "batches_done": self._batches_done,
            "carry": self._gather(carry),
            "rng": [t.to(torch.uint8) for t in self._gather(torch.get_rng_state().to(self.device))],
        }
        if self.device.type == "cuda":
            state["cuda_rng"] = [t.cpu() for t in self._gather(torch.cuda.get_rng_state().to(self.device))]
        checkpoint["rnnkit_resume"] = state

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get("rnnkit_resume")
        if state is None:
            raise ValueError("the checkpoint holds no rnnkit resume state (not written by rnnkit train)")
        if len(state["rng"]) != self.trainer.world_size:
            raise ValueError(
                f"the checkpoint was written by {len(state['rng'])} processes, this run has "
                f"{self.trainer.world_size}; resume with the same number of devices"
            )
        self._resume = state
        self._batches_done = state["batches_done"]
