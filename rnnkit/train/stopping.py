"""How a run ends: always at a step boundary, validated, checkpointed and exported, with the reason said.

A run stops at the first of these limits (`EndOfRun` checks them after every optimiser step):

    max_steps    trainer.max_steps optimiser steps; when set (not -1) it is the budget: max_epochs is ignored
    max_epochs   trainer.max_epochs passes over the training data; the budget only when max_steps is -1
    max_time     trainer.max_time_minutes of training time, summed over the run's resumes
    early stop   no improvement of the monitored metric in early_stopping_patience validations
    a signal     SIGINT (Ctrl-C) or SIGTERM: the step in flight finishes, then the run stops; a second Ctrl-C
                 aborts at once

Whatever the reason, the last step is validated (so model.safetensors has seen it), the resume checkpoint is
written at that step, and the checkpoint records why the run ended, so that `--resume` of a finished run with
no larger budget says so and changes nothing (`already_finished`). Under DDP the processes agree: when one of
them stops (a signal reaches one process, or its clock runs out first), all stop at the same step.
"""

from __future__ import annotations

import logging
import math
import signal
import threading
import time
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback, EarlyStopping

from .config import TrainerConfig

__all__ = ["EndOfRun", "already_finished", "describe", "lightning_max_epochs"]

log = logging.getLogger("rnnkit")

MAX_STEPS, MAX_EPOCHS, MAX_TIME, EARLY_STOPPING = "max_steps", "max_epochs", "max_time", "early_stopping"
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def lightning_max_epochs(config: TrainerConfig) -> int:
    """The epoch cap to give Lightning: none (-1) when max_steps is the budget, else max_epochs."""
    return -1 if config.max_steps > 0 else config.max_epochs


def describe(end: dict, config: TrainerConfig) -> str:
    """One line for the reason a run ended, e.g. 'max_steps (1900) reached at step 1900'."""
    reason, step = end["reason"], end["step"]
    limits = {MAX_STEPS: f"max_steps ({config.max_steps}) reached", MAX_EPOCHS: f"max_epochs "
              f"({config.max_epochs}) reached", MAX_TIME: f"max_time_minutes ({config.max_time_minutes:g}) "
              "reached", EARLY_STOPPING: "early stopping: no improvement in "
              f"{config.early_stopping_patience} validations"}  # fmt: skip
    return f"{limits.get(reason, f'interrupted by {reason}')} at step {step}"


def already_finished(end: dict | None, config: TrainerConfig) -> bool:
    """Whether a run whose checkpoint says it ended with `end` has nothing left to do under `config`.

    An interrupted run always has; a run that reached a limit has only when that limit was raised.
    """
    if not end:
        return False
    reason = end["reason"]
    if reason == MAX_STEPS:
        return 0 < config.max_steps <= end["step"]
    if reason == MAX_EPOCHS:
        return config.max_steps < 0 and config.max_epochs <= end["epochs"]
    if reason == MAX_TIME:
        return 0 < config.max_time_minutes * 60.0 <= end["seconds"]
    return reason == EARLY_STOPPING


class EndOfRun(Callback):
    """Stops the run at the first limit reached (see the module docstring) and writes the resume checkpoint
    at that step; `end` is {reason, step, epochs, seconds} once the run has ended."""

    def __init__(self, config: TrainerConfig, checkpoint_path: Path):
        self.config, self.checkpoint_path = config, checkpoint_path
        self.end: dict | None = None
        self.seconds_before = 0.0  # training time of the earlier parts of a resumed run
        self._started = time.monotonic()
        self._signal: str | None = None
        self._previous_handlers: dict = {}

    # ---- signals: installed for training only, after Lightning's own (which would abort on SIGTERM) ----
    def on_train_start(self, trainer, pl_module):
        self._started = time.monotonic()
        if threading.current_thread() is threading.main_thread():
            self._previous_handlers = {s: signal.getsignal(s) for s in _SIGNALS}
            for s in _SIGNALS:
                signal.signal(s, self._on_signal)

    def _on_signal(self, signum, frame):
        name = signal.Signals(signum).name
        if self._signal is not None and signum == signal.SIGINT:
            self._restore_handlers()
            raise KeyboardInterrupt
        self._signal = name
        log.warning("rnnkit: %s received: stopping after this step (Ctrl-C again aborts at once)", name)

    def _restore_handlers(self):
        for s, handler in self._previous_handlers.items():
            signal.signal(s, handler)
        self._previous_handlers = {}

    def on_exception(self, trainer, pl_module, exception):
        self._restore_handlers()

    # ---- limits ----
    def seconds(self) -> float:
        return self.seconds_before + time.monotonic() - self._started

    def seconds_left(self) -> float:
        """Of the time budget (math.inf without one)."""
        budget = self.config.max_time_minutes * 60.0
        return max(budget - self.seconds(), 0.0) if budget else math.inf

    def _reason(self, trainer: pl.Trainer) -> str | None:
        config = self.config
        if self._signal is not None:
            return self._signal
        if config.max_steps > 0 and trainer.global_step >= config.max_steps:
            return MAX_STEPS
        if config.max_time_minutes and self.seconds() >= config.max_time_minutes * 60.0:
            return MAX_TIME
        last_batch = trainer.fit_loop.epoch_loop.batch_progress.is_last_batch
        if config.max_steps < 0 and last_batch and trainer.current_epoch + 1 >= config.max_epochs:
            return MAX_EPOCHS
        return None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        reason = self._reason(trainer)
        if trainer.world_size > 1 and trainer.strategy.reduce_boolean_decision(reason is not None, all=False):
            reason = reason or "another process"  # every process stops at this same step
        if reason is None:
            return
        self._stop(trainer, reason, epochs=trainer.current_epoch + int(reason == MAX_EPOCHS))
        trainer.should_stop = True  # Lightning validates at a requested stop, then ends the fit

    def _stop(self, trainer: pl.Trainer, reason: str, epochs: int) -> None:
        step = trainer.global_step
        self.end = {"reason": reason, "step": step, "epochs": epochs, "seconds": self.seconds()}
        # the whole training state, with this callback's (the end) in it
        trainer.save_checkpoint(self.checkpoint_path, weights_only=False)

    def on_train_end(self, trainer, pl_module):
        self._restore_handlers()
        if self.end is None:  # early stopping after a validation, or Lightning's own end of the last epoch
            stopped_early = any(
                isinstance(c, EarlyStopping) and c.wait_count >= c.patience for c in trainer.callbacks
            )
            self._stop(trainer, EARLY_STOPPING if stopped_early else MAX_EPOCHS, trainer.current_epoch)

    def state_dict(self):
        return {"seconds": self.seconds(), "end": self.end}

    def load_state_dict(self, state_dict):
        self.seconds_before = float(state_dict["seconds"])
        self._started = time.monotonic()
