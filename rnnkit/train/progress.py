"""Progress on stderr, results on stdout: a run-level bar on a terminal, plain lines everywhere else.

On a terminal (stderr is a TTY, trainer.progress_bar true) one tqdm bar counts the run's steps, not an
epoch's, with elapsed time, the time left, the smoothed training loss and the last validation metrics; each
validation also leaves a line above the bar. Piped, logged to a file, or with --no-progress-bar, the same
facts come as plain lines, one per validation and at least every `every_seconds`:

    step   300/1900  16%  4:35 elapsed  24:27 left  train_loss 1.5642  valid_loss 1.6695 valid_ppl 5.3097

Lightning's own bar is off; its device-availability banner is filtered (`quiet_lightning`). Only global
rank 0 reports. A callback with `reports_progress = True` (e.g. the demo's loss table) replaces this one.
"""

from __future__ import annotations

import logging
import math
import sys
import time

from pytorch_lightning.callbacks import Callback

__all__ = ["RunProgress", "quiet_lightning", "format_seconds"]

_NOISE = (
    "GPU available:", "TPU available:", "HPU available:", "IPU available:",
    "Loading `train_dataloader` to estimate", "`Trainer.fit` stopped:", "LOCAL_RANK:",
    "Time limit reached.",
)  # fmt: skip


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith(_NOISE) or "litlogger" in message)  # and the advertising tip


def quiet_lightning() -> None:
    """Drop Lightning's banner lines (devices available, stepping-batch estimates, its own stop notice, the
    advertising tip)."""
    for name in ("pytorch_lightning.utilities.rank_zero", "lightning.pytorch.utilities.rank_zero",
                 "lightning_fabric.utilities.rank_zero"):  # fmt: skip
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropNoise) for f in logger.filters):
            logger.addFilter(_DropNoise())


def format_seconds(seconds: float) -> str:
    """'1:02:03', '4:35' or '0:07'."""
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class RunProgress(Callback):
    """The run's progress on stderr (see the module docstring).

    Args:
        max_steps: the run's step budget (-1: estimated from the epochs by Lightning).
        time_left: () -> seconds of the time budget left (math.inf without one), which bounds the time left.
        bar: a tqdm bar when stderr is a terminal; False always prints plain lines.
        every_seconds: a plain line at least this often between validations.
    """

    reports_progress = True

    def __init__(self, max_steps: int, time_left=None, bar: bool = True, every_seconds: float = 30.0,
                 stream=None):
        self.max_steps, self.time_left, self.every_seconds = max_steps, time_left, every_seconds
        self.stream = stream or sys.stderr
        self.use_bar = bar and self.stream.isatty()
        self.bar = None
        self.loss = None  # exponential moving average of the training loss
        self.started = self.last_line = time.monotonic()
        self.first_step = 0
        self.total = 0

    def on_train_start(self, trainer, pl_module):
        if not trainer.is_global_zero:
            return
        self.started = self.last_line = time.monotonic()
        self.first_step = trainer.global_step
        total = self.max_steps if self.max_steps > 0 else trainer.estimated_stepping_batches
        self.total = int(total) if math.isfinite(total) else 0
        if self.use_bar:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total or None, initial=self.first_step, unit="step", desc="train",
                            file=self.stream, dynamic_ncols=True, leave=True)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if not trainer.is_global_zero:
            return
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is not None:
            value = float(loss)
            self.loss = value if self.loss is None else 0.9 * self.loss + 0.1 * value
        if self.bar is not None:
            self.bar.update(trainer.global_step - self.bar.n)
            self.bar.set_postfix_str(self._metrics(trainer), refresh=False)
        elif time.monotonic() - self.last_line >= self.every_seconds:
            self._line(trainer)

    def on_validation_end(self, trainer, pl_module):
        if trainer.is_global_zero and not trainer.sanity_checking and trainer.state.fn == "fit":
            self._line(trainer)

    def on_train_end(self, trainer, pl_module):
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def on_exception(self, trainer, pl_module, exception):
        self.on_train_end(trainer, pl_module)

    def _metrics(self, trainer) -> str:
        shown = [] if self.loss is None else [f"train_loss {self.loss:.4f}"]
        shown += [f"{k} {float(v):.4f}" for k, v in sorted(trainer.callback_metrics.items())
                  if k.startswith("valid_")]  # fmt: skip
        return "  ".join(shown)

    def _left(self, step: int) -> float:
        elapsed, done = time.monotonic() - self.started, step - self.first_step
        left = elapsed / done * (self.total - step) if done > 0 and self.total else math.inf
        return min(left, self.time_left()) if self.time_left else left

    def _line(self, trainer) -> None:
        step, width = trainer.global_step, len(str(self.total or trainer.global_step))
        of = f"/{self.total}  {100 * step // self.total:3d}%" if self.total else ""
        line = (f"step {step:>{width}}{of}  {format_seconds(time.monotonic() - self.started)} elapsed  "
                f"{format_seconds(self._left(step))} left  {self._metrics(trainer)}")
        self.last_line = time.monotonic()
        if self.bar is not None:
            self.bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)
