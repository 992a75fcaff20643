"""The input projection of every step, xp = LN_ih(x W_ih^T) + b_ih, with its GEMMs through oneDNN on CPU.

nn/cells.input_projection is the equation and the slow twin; `input_projection` here computes the same with
the product and its two gradients as torch.ops.rnnkit.product (csrc/linear.cpp), which runs a float32 product
of 2^24 multiply-adds or more through oneDNN's matmul. ATen's mm and F.linear run MKL, which on an AVX-512 AMD
EPYC is 20-40% slower at these shapes (docs/benchmarks.md), while torch.nn.LSTM, the baseline, already runs
its GEMMs in oneDNN. Autograd:

    forward   xp = x W^T (+ b)                (T * B, I) @ (I, G): a product with W^T, a transposed view
    backward  dx = dxp W;  dW = dxp^T x;  db = sum over rows of dxp     (no copies: views into the product)

Where the op does not run (not float32, not CPU, under autocast, backend "scan", no compiler) it is
cells.input_projection.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from ..nn.cells import CellParams
from ..nn.cells import input_projection as twin
from ..nn.variants import layer_norm

__all__ = ["input_projection", "op_available"]


@functools.cache
def op_available() -> bool:
    """Build (first use) and load csrc/linear.cpp, with the op's fake kernel for torch.compile."""
    from .build import load_library

    if not load_library("linear"):
        return False
    torch.library.register_fake("rnnkit::product")(lambda a, b: a.new_empty(a.shape[0], b.shape[1]))
    return True


@torch.compiler.assume_constant_result
def _use_op(device_type: str, dtype: torch.dtype) -> bool:
    from . import backend

    return device_type == "cpu" and dtype == torch.float32 and backend() != "scan" and op_available()


class _Linear(torch.autograd.Function):
    """x W^T (+ b) over the last dim of x, every product one torch.ops.rnnkit.product."""

    @staticmethod
    def forward(x: Tensor, W: Tensor, b: Tensor | None) -> Tensor:
        rows = x.reshape(-1, x.shape[-1])                          # (T * B, I)
        out = torch.ops.rnnkit.product(rows, W.t())                # (T * B, G)
        if b is not None:
            out.add_(b)
        return out.view(*x.shape[:-1], W.shape[0])

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, W, b = inputs
        ctx.has_bias = b is not None
        ctx.save_for_backward(x, W)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        x, W = ctx.saved_tensors
        rows = grad.reshape(-1, grad.shape[-1])                    # (T * B, G)
        need_x, need_W, need_b = ctx.needs_input_grad
        dx = torch.ops.rnnkit.product(rows, W).view(x.shape) if need_x else None
        dW = torch.ops.rnnkit.product(rows.t(), x.reshape(-1, x.shape[-1])) if need_W else None
        db = rows.sum(0) if need_b and ctx.has_bias else None
        return dx, dW, db


def input_projection(x: Tensor, p: CellParams) -> Tensor:
    """cells.input_projection (T, B, I) -> (T, B, G), its GEMMs in torch.ops.rnnkit.product where it runs."""
    if not _use_op(x.device.type, x.dtype) or p.W_ih.dtype != x.dtype or torch.is_autocast_enabled("cpu"):
        return twin(x, p)                                          # autocast: F.linear's cast to bfloat16
    if p.ln_ih is None:
        return _Linear.apply(x.contiguous(), p.W_ih, p.b_ih)
    gamma, beta = p.ln_ih
    shift = beta if p.b_ih is None else beta + p.b_ih
    return layer_norm(_Linear.apply(x.contiguous(), p.W_ih, None), gamma, shift)
