"""The metrics protocol: what a task's step returns, and metric objects updated on it during validation.

A task's `loss(model, batch, carry)` returns a `StepOutput`. During validation the engine calls
`metric.update(step)` on every metric the task supplies, batch by batch, and `metric.compute()` at the end,
which returns {name: value}; the engine logs each as `valid_<name>`. Every metric here is a torchmetrics
`Metric`, so its sums are reduced across processes (DDP) inside `compute()`.

    MeanLoss        sum_b loss_b * n_b / sum_b n_b, the target-weighted mean loss (float64 sums)
    OnOutputs(m)    any torchmetrics metric m (Accuracy, F1Score, MeanAbsoluteError, ...) updated with
                    m.update(step.outputs, step.targets)

    >>> import torch
    >>> from torchmetrics.classification import MulticlassAccuracy
    >>> acc = OnOutputs(MulticlassAccuracy(num_classes=3, average="micro"), "accuracy")
    >>> acc.update(StepOutput(torch.tensor(0.5), None, 2, torch.tensor([[0.1, 2.0, 0.0], [3.0, 0.0, 0.0]]),
    ...                       torch.tensor([1, 2])))
    >>> acc.compute()
    {'accuracy': 0.5}
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor
from torchmetrics import Metric

__all__ = ["StepOutput", "MeanLoss", "OnOutputs", "compute_all"]


class StepOutput(NamedTuple):
    """What one training or validation step of a task returns.

    Args:
        loss: the mean loss of the batch (scalar tensor, with its graph in training).
        carry: state handed to the next batch (stateful truncated BPTT), or None.
        count: number of targets the mean was taken over (weights the validation mean).
        outputs: the model's predictions for the metrics (e.g. logits (B, K)), or None.
        targets: what they are compared with (e.g. labels (B,)), or None.
    """

    loss: Tensor
    carry: Any = None
    count: int = 1
    outputs: Tensor | None = None
    targets: Tensor | None = None


class MeanLoss(Metric):
    """The target-weighted mean loss over all batches and processes: {"loss": sum(l_b n_b) / sum(n_b)}."""

    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("total", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, step: StepOutput) -> None:
        self.total += step.loss.detach().double() * step.count
        self.count += step.count

    def mean(self) -> float:
        return float(self.total / self.count) if self.count > 0 else float("nan")

    def compute(self) -> dict[str, float]:
        return {"loss": self.mean()}


class OnOutputs(Metric):
    """A torchmetrics metric fed with (step.outputs, step.targets), reported under `name`."""

    full_state_update = False

    def __init__(self, metric: Metric, name: str, **kwargs):
        super().__init__(**kwargs)
        self.metric, self.name = metric, name

    def update(self, step: StepOutput) -> None:
        if step.outputs is None or step.targets is None:
            raise ValueError(f"metric {self.name!r} needs the step's outputs and targets; the task gave None")
        self.metric.update(step.outputs.detach(), step.targets)

    def compute(self) -> dict[str, Any]:
        value = self.metric.compute()
        return {self.name: value.tolist() if value.numel() > 1 else float(value)}

    def reset(self) -> None:
        super().reset()
        self.metric.reset()


def compute_all(metrics: dict[str, Metric]) -> dict[str, float]:
    """Merge the {name: value} results of several metrics (scalars only: what a logger can log)."""
    merged: dict[str, float] = {}
    for metric in metrics.values():
        for name, value in metric.compute().items():
            if isinstance(value, (int, float)):
                merged[name] = float(value)
    return merged
