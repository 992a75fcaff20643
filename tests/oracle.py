"""The one comparison the rnnkit.nn equivalence tests share: ours and a reference on the same fresh inputs.

`compare(ours, reference, leaves)` runs two callables, each returning a dict of named results (outputs, final
states), backpropagates through each the same random linear loss

    L = sum_r <result_r, R_r>,      R_r ~ N(0, 1) drawn from `seed` in the order of the result names

and asserts (torch.testing.assert_close, float64 tolerances) that the results and the gradients of L with
respect to every leaf (parameters, inputs, initial states) agree, and that every gradient is finite. The
reference is torch.nn, the same layer run another way (each sequence alone, step by step), or a NumPy twin
with hand-written gradients: pass its dict of results and "grad <leaf>" entries instead of a callable, the
loss weights from `probes`.

    >>> x = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
    >>> _ = compare(lambda: {"y": 2 * x}, lambda: {"y": x + x}, {"x": x})
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["compare", "probes", "results_and_grads"]

Results = dict[str, Tensor]


def probes(results: Results, seed: int = 0) -> Results:
    """The loss weights R_r: one fresh N(0, 1) tensor per result, shaped as it, drawn from `seed`."""
    gen = torch.Generator().manual_seed(seed)
    return {name: torch.randn(r.shape, generator=gen, dtype=r.dtype).to(r.device)
            for name, r in results.items()}


def results_and_grads(fn: Callable[[], Results], leaves: dict[str, Tensor], seed: int = 0) -> Results:
    """fn()'s results (detached) and "grad <leaf>": dL/d leaf of L = sum_r <result_r, R_r> (0 if unused)."""
    results = fn()
    weights = probes(results, seed)
    loss = sum((r * weights[name]).sum() for name, r in results.items())
    grads = torch.autograd.grad(loss, list(leaves.values()), allow_unused=True)
    out = {name: r.detach() for name, r in results.items()}
    for (name, leaf), grad in zip(leaves.items(), grads, strict=True):
        out[f"grad {name}"] = torch.zeros_like(leaf) if grad is None else grad
    return out


def compare(ours: Callable[[], Results], reference: Callable[[], Results] | Results,
            leaves: dict[str, Tensor], seed: int = 0, rtol: float = 1e-10,
            atol: float = 1e-12) -> tuple[Results, Results]:
    """Assert that ours and the reference give the same results and gradients, all finite. Returns both."""
    a = results_and_grads(ours, leaves, seed)
    b = reference if isinstance(reference, dict) else results_and_grads(reference, leaves, seed)
    assert a.keys() == b.keys(), f"ours give {sorted(a)}, the reference {sorted(b)}"
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=rtol, atol=atol, msg=lambda m, n=name: f"{n}: {m}")
        if name.startswith("grad "):
            assert torch.isfinite(a[name]).all(), f"{name} is not finite"
    return a, b
