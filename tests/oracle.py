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

from collections.abc import Callable, Iterator
from contextlib import contextmanager

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


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch's intra-op threads set to n inside the block, restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def as_bfloat16(leaves: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """The leaves rounded to bfloat16, and the same values in float64: fresh leaves that need gradients."""
    low = {name: leaf.detach().to(torch.bfloat16).requires_grad_() for name, leaf in leaves.items()}
    return low, {name: leaf.detach().double().requires_grad_() for name, leaf in low.items()}


def assert_within_bfloat16(ours: Callable[[], Results], exact: Callable[[], Results], low: dict[str, Tensor],
                           high: dict[str, Tensor], tolerance: float = 3e-2, seed: int = 12) -> None:
    """ours() on the bfloat16 leaves `low` against exact() on the same values in float64 (`high`, from
    as_bfloat16): every result and gradient of L = sum_r <result_r, R_r> (R drawn once, in float64) within
    `tolerance` of its largest entry (bfloat16 keeps 8 bits, eps = 2^-8, and errors grow over the steps: the
    kernel tests see up to 1.5%), and
    ours' results and gradients are bfloat16."""
    def run(fn, leaves):
        results = fn()
        gen = torch.Generator().manual_seed(seed)
        probes = {name: torch.randn(r.shape, generator=gen, dtype=torch.float64)
                  for name, r in results.items()}
        loss = sum((r.double() * probes[name]).sum() for name, r in results.items())
        grads = torch.autograd.grad(loss, list(leaves.values()))
        results = {name: r.detach() for name, r in results.items()}
        return results, {f"grad {name}": g for name, g in zip(leaves, grads, strict=True)}

    (ours_results, ours_grads), (exact_results, exact_grads) = run(ours, low), run(exact, high)
    assert all(v.dtype == torch.bfloat16 for v in (*ours_results.values(), *ours_grads.values()))
    for name, value in (exact_results | exact_grads).items():
        mine = (ours_results | ours_grads)[name].double()
        error = float((mine - value).abs().max() / value.abs().max().clamp_min(1e-3))  # detached
        assert error < tolerance, f"{name}: error {error:.3g} of the largest entry, over {tolerance}"


def assert_layer_within_bfloat16(layer: torch.nn.Module, T: int = 10, B: int = 9, slack: float = 1.5) -> None:
    """An rnnkit.nn layer in bfloat16 on the C++ kernel against the same layer in float32 on the same
    (bfloat16) weights and input, masks shared: its output no further off than `slack` times the scan's in
    bfloat16 (the whole layer in torch's bfloat16 arithmetic), and every gradient bfloat16 and finite."""
    from rnnkit import kernels

    layer = layer.to(torch.bfloat16)
    x = torch.randn(T, B, layer.input_size).to(torch.bfloat16)
    masks = layer.sample_masks(T, B)

    def run(backend, dtype):
        with kernels.use(backend):
            model = layer.to(dtype)
            return model(x.to(dtype), masks={k: m.to(dtype) for k, m in masks.items()})[0]

    exact = run("scan", torch.float32).detach()
    scan = run("scan", torch.bfloat16).detach()
    ours = run("cpu", torch.bfloat16)
    assert ours.dtype == torch.bfloat16
    error, scan_error = ((v.float() - exact).abs().max().item() for v in (ours.detach(), scan))
    assert error <= slack * scan_error + 1e-3, f"kernel off by {error:.3g}, bfloat16 scan {scan_error:.3g}"
    ours.float().sum().backward()
    assert all(p.grad.dtype == torch.bfloat16 and torch.isfinite(p.grad).all() for p in layer.parameters())
