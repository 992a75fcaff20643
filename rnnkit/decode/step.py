"""Running a model one token at a time: the `step(tokens (B,), state) -> (logits (B, V), state)` contract.

Every decoder (sampling, beam search, poems) talks to the model through `Stepper`, which takes a module with a
`.step` method or a bare step function, turns token ids into a (B,) long tensor on the model's device and
returns float logits. `eval_mode` runs a module (or the module of a bound `module.step`) in eval mode without
gradients and restores its training flag afterwards.

    step = Stepper(model)
    logits, state = step.feed(prompt_ids)          # (1, V) after the last prompt token
    logits, state = step([next_id], state)         # one more token, O(1)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from rnnkit.nn.state import tree_map

__all__ = ["Stepper", "StepFn", "eval_mode"]

StepFn = Callable[[torch.Tensor, Any], tuple[torch.Tensor, Any]]


class Stepper:
    """Calls `step` on lists of token ids; `model` is a module with `.step` or a step function itself."""

    def __init__(self, model: nn.Module | StepFn, state: Any = None) -> None:
        step = getattr(model, "step", None)
        if callable(step):
            self.step = step
        elif callable(model) and not isinstance(model, nn.Module):
            self.step = model
        else:
            raise ValueError(f"the model needs a step(token, state) method, {type(model).__name__} has none")
        self.device = _device(model, state)

    def __call__(self, tokens: Sequence[int], state: Any) -> tuple[torch.Tensor, Any]:
        token = torch.tensor(list(tokens), dtype=torch.long, device=self.device)  # (B,)
        logits, state = self.step(token, state)  # (B, V)
        if torch.isnan(logits).any():
            raise ValueError("the model's logits are NaN: its weights hold NaN or inf (a diverged run?); "
                             "expected finite weights, e.g. an earlier checkpoint of the run")
        return logits.float(), state

    def feed(self, ids: Sequence[int], state: Any = None, batch: int = 1) -> tuple[torch.Tensor | None, Any]:
        """Run the ids through the model, each as a batch of `batch` copies; the last logits and the state."""
        logits = None
        for i in ids:
            logits, state = self([i] * batch, state)
        return logits, state


@contextmanager
def eval_mode(model: Any) -> Iterator[None]:
    """No gradients, and the module in eval mode (no dropout); its training mode is restored."""
    module = _module(model)
    was_training = module.training if module is not None else None
    if module is not None:
        module.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        if module is not None:
            module.train(was_training)


def _module(model: Any) -> nn.Module | None:
    """The module behind `model`: itself, or the owner of a bound method such as `decoder.step`."""
    if isinstance(model, nn.Module):
        return model
    owner = getattr(model, "__self__", None)
    return owner if isinstance(owner, nn.Module) else None


def _device(model: Any, state: Any) -> torch.device:
    """The device of the model's first parameter, else of the state's first tensor, else the CPU."""
    module = _module(model)
    param = next(module.parameters(), None) if module is not None else None
    if param is not None:
        return param.device
    devices: list[torch.device] = []
    tree_map(lambda t: devices.append(t.device), state)
    return devices[0] if devices else torch.device("cpu")
