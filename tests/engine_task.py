"""A small task that is not a language model, to prove the engine task-agnostic: regression on sequences.

Each example is a variable-length sequence x (T_i, 2) of Gaussian numbers; its target is the mean of its first
channel over the valid steps. Batches are drawn in a seeded order per epoch and shard
(rnnkit.data.sampler.ResumableShuffleSampler: the order is a function of (seed, epoch), so the engine's
resume, which skips the batches an interrupted epoch already took, continues at the exact example) and
padded with their lengths; the model is a GRU from rnnkit.nn (lengths=, so padding is never read) and a
linear head on the final state; validation reports the mean squared error and torchmetrics' mean absolute
error, and the engine monitors "mae" (min).

Run as a script (the SIGKILL and DDP tests start it as a process):

    python tests/engine_task.py RUN_DIR MAX_STEPS [--resume] [--devices N] [--batch-size B] [--sleep S]
        [--val-every N] [--checkpoint-every N]

It prints the final step and MAE on stdout, and how the run ended.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from torchmetrics import MeanAbsoluteError

from rnnkit import nn as rnn
from rnnkit.data.sampler import ResumableShuffleSampler
from rnnkit.train.config import OptimConfig, TrainerConfig
from rnnkit.train.metrics import MeanLoss, OnOutputs, StepOutput
from rnnkit.train.module import Task
from rnnkit.train.run import BuiltTask, train_run


@dataclass(frozen=True)
class RegressionConfig:
    examples: int = 96
    batch_size: int = 8
    hidden_size: int = 12
    dropout: float = 0.2  # RNG use, so an exact resume must restore the RNG state
    data_seed: int = 0
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=0.01))
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


class Regressor(nn.Module):
    def __init__(self, hidden_size: int, dropout: float):
        super().__init__()
        self.rnn = rnn.GRU(2, hidden_size, batch_first=True, dropout=0.0)
        self.head = nn.Linear(hidden_size, 1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, lengths):
        _, h_n = self.rnn(x, lengths=lengths)  # (1, B, H)
        return self.head(self.dropout(h_n[-1])).squeeze(-1)  # (B,)


def make_data(config: RegressionConfig):
    g = torch.Generator().manual_seed(config.data_seed)
    lengths = torch.randint(2, 9, (config.examples,), generator=g)
    xs = [torch.randn(int(n), 2, generator=g) for n in lengths]
    ys = torch.stack([x[:, 0].mean() for x in xs])
    return list(zip(xs, ys, strict=True))


def collate(batch):
    xs, ys = zip(*batch, strict=True)
    lengths = torch.tensor([len(x) for x in xs])
    x = nn.utils.rnn.pad_sequence(list(xs), batch_first=True, padding_value=float("nan"))  # never read
    return x, lengths, torch.stack(ys)


def regression_loss(model, batch, carry):
    x, lengths, y = batch
    prediction = model(x, lengths)
    return StepOutput(F.mse_loss(prediction, y), None, len(y), prediction, y)


def build(config: RegressionConfig, resume_dir: Path | None) -> BuiltTask:
    data = make_data(config)
    train, valid = data[: -config.examples // 4], data[-config.examples // 4 :]

    def train_batches(rank: int, world_size: int, epoch: int):
        sampler = ResumableShuffleSampler(len(train), config.trainer.seed, rank, world_size, epoch)
        return DataLoader(train, batch_size=config.batch_size, sampler=sampler, collate_fn=collate)

    def valid_batches(rank: int, world_size: int, epoch: int):
        return DataLoader(valid[rank::world_size], batch_size=config.batch_size, collate_fn=collate)

    task = Task(
        name="regression",
        model=Regressor(config.hidden_size, config.dropout),
        loss=regression_loss,
        train_batches=train_batches,
        valid_batches=valid_batches,
        metrics=lambda: {"mse": MeanLoss(), "mae": OnOutputs(MeanAbsoluteError(), "mae")},
        monitor="mae",
        units={"loss": "squared error", "mae": "absolute error"},
        metadata={"config": dataclasses.asdict(config)},
    )
    return BuiltTask(task, config)


def config_for(run_dir: Path, max_steps: int, devices: int = 1, batch_size: int = 8, dropout: float = 0.2,
               **trainer):
    """The test run: 9 batches of 8 an epoch; `trainer` overrides TrainerConfig fields."""
    defaults = {"max_epochs": 100, "val_check_interval": 3, "checkpoint_every_n_steps": 1}
    trainer = {"accelerator": "cpu", **defaults, **trainer}
    return RegressionConfig(
        batch_size=batch_size,
        dropout=dropout,
        trainer=TrainerConfig(
            max_steps=max_steps, devices=devices, seed=5, progress_bar=False,
            log_every_n_steps=1, output_dir=str(run_dir.parent), run_name=run_dir.name, **trainer,
        ),
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("max_steps", type=int)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--sleep", type=float, default=0.0, help="seconds per step (to kill it mid-run)")
    parser.add_argument("--val-every", type=int, default=3)
    parser.add_argument("--checkpoint-every", type=int, default=1)
    args = parser.parse_args(argv)
    callbacks = []
    if args.sleep:
        import time

        from pytorch_lightning.callbacks import Callback

        class Slow(Callback):
            def on_train_batch_end(self, *a):
                time.sleep(args.sleep)

        callbacks.append(Slow())
    config = config_for(args.run_dir, args.max_steps, args.devices, args.batch_size, args.dropout,
                        val_check_interval=args.val_every, checkpoint_every_n_steps=args.checkpoint_every)
    result = train_run(build, config, args.run_dir if args.resume else None, callbacks=callbacks)
    print(f"step {result.global_step} mae {result.metrics.get('valid_mae', float('nan')):.6f}")
    print(f"ended: {result.ended}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
