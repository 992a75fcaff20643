"""The kernel boundary: one layer-direction of a recurrent layer over the whole sequence, and who runs it.

rnnkit.nn lays out the input (batch_first, packed, unbatched, the backward direction reversed within each
length, layers stacked; nn/scan.py) and projects every step's input at once, xp = LN_ih(x W_ih^T) + b_ih,
as one GEMM. What is left is the recurrence, and that is this boundary, time-major, in the haste style:

    run(mode, xp, state, p, recurrent_mask, zoneout, lengths) -> (y, final_state)

    mode            "LSTM" | "GRU" | "RNN_TANH" | "RNN_RELU"
    xp              (T, B, G)   G = 4H (LSTM), 3H (GRU), H (RNN); the projected input of every step
    state           (h_0,) or (h_0, c_0): h_0 (B, P), c_0 (B, H); P = proj_size of an LSTM with a
                    projection, else H
    p               nn.cells.CellParams of the layer-direction:
                      W_hh (G, P) (already W_hh * M under weight drop), b_hh (G,) or None,
                      W_hr (P, H) or None (LSTM projection), ln_hh = (gamma, beta) (G,) or None,
                      ln_c = (gamma, beta) (H,) or None (LSTM), relu (RNN nonlinearity);
                      W_ih, b_ih, ln_ih are not read here (they made xp)
    recurrent_mask  (B, P) or None: recurrent dropout's pre-scaled mask m on the h that enters W_hh
    zoneout         () or one entry per state component (h, then c): a (T, B, P | H) 0/1 mask
                    (1 = keep the old value), a float p (eval mode: the expectation), or None
    lengths         (B,) int64 or None: steps t >= lengths[b] keep b's state and output 0
    returns         y (T, B, P) and the final state, each (B, .) at each sequence's last valid step

The equations are those of nn/cells.py and docs/variants.md, with hp = LN_hh((h * m) W_hh^T) + b_hh:

    LSTM  i, f, g, o = split(xp + hp); c~ = sigma(f) c + sigma(i) tanh(g); h~ = sigma(o) tanh(LN_c(c~)) W_hr^T
    GRU   r = sigma(xp_r + hp_r); z = sigma(xp_z + hp_z); n = tanh(xp_n + r hp_n); h~ = (1 - z) n + z h
    RNN   h~ = tanh(xp + hp) (or relu)
    zoneout  h_t = d_t h_{t-1} + (1 - d_t) h~_t  (and c_t likewise)

Every input that needs one gets its gradient from autograd (the scan) or from the kernel's hand-written
backward (the BPTT of rnnkit.reference, which is proven equal to autograd).

Backends: "scan" (kernels/scan.py: pure torch, one cell step at a time; the slow twin, kept forever as
the oracle and the fallback) and "cpu" (C++ custom ops torch.ops.rnnkit.<cell>_forward / _backward, each
cell built on first use by kernels/build.py: per step one recurrent GEMM and one fused, vectorised pointwise
pass; the weight gradients as GEMMs after the backward loop). "auto" (the default, or $RNNKIT_KERNELS) takes
"cpu" for CPU tensors in float32 / float64 / bfloat16 (bfloat16: the GEMMs in bfloat16, the rest in
float32; kernels/scan.widened) when the kernel builds, else "scan". `use("scan")` picks one for
a block of code. Under torch.compile the choice is made once, when the graph is traced, and the C++ kernels
are custom ops with fake implementations and autograd formulas, so `fullgraph=True` traces them whole.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Callable

import torch
from torch import Tensor

from ..nn.cells import STEPS, CellParams
from .linear import input_projection
from .scan import Zoneout, scan

__all__ = ["BACKENDS", "backend", "fused_available", "input_projection", "run", "use"]

BACKENDS = ("auto", "scan", "cpu")
FUSED = {"LSTM": "lstm", "GRU": "gru", "RNN_TANH": "rnn", "RNN_RELU": "rnn"}   # mode -> kernels/<module>.py
FUSED_DTYPES = (torch.float32, torch.float64, torch.bfloat16)   # bfloat16: GEMMs in bf16, the rest in float32

_chosen: list[str] = []   # the innermost `use(...)` wins
_KERNELS: dict[str, Callable] = {}   # mode -> the loaded kernel's run


def _check_backend(name: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"kernel backend must be one of {', '.join(BACKENDS)}, got {name!r}")
    return name


def backend() -> str:
    """The backend asked for: the innermost `use(...)`, else $RNNKIT_KERNELS, else "auto"."""
    if _chosen:
        return _chosen[-1]
    return _check_backend(os.environ.get("RNNKIT_KERNELS", "auto") or "auto")


@contextlib.contextmanager
def use(name: str):
    """Run the recurrences inside the block with backend `name` ("auto", "scan" or "cpu")."""
    _chosen.append(_check_backend(name))
    try:
        yield
    finally:
        _chosen.pop()


def fused_available(mode: str = "LSTM") -> bool:
    """Whether the C++ kernel of `mode` is built and loaded (builds it on the first call)."""
    from .build import SOURCES, load_library

    return mode in FUSED and (SOURCES / f"{FUSED[mode]}.cpp").exists() and load_library(FUSED[mode])


@torch.compiler.assume_constant_result
def _use_fused(mode: str, device_type: str, dtype: torch.dtype) -> bool:
    """Whether this call runs the C++ kernel. Under torch.compile it is decided once, when the graph is
    traced (a constant of the graph: the file checks and the build never run inside it)."""
    chosen = backend()
    if chosen == "scan":
        return False
    fits = device_type == "cpu" and dtype in FUSED_DTYPES and mode in FUSED
    if chosen == "cpu" and not fits:
        raise ValueError(f"kernel backend 'cpu' runs {', '.join(FUSED)} on CPU tensors in float32, float64 "
                         f"or bfloat16, got {mode} on {device_type} in {dtype}")
    if fits and fused_available(mode):
        if mode not in _KERNELS:   # imported here, outside any traced graph
            _KERNELS[mode] = importlib.import_module(f".{FUSED[mode]}", __name__).run
        return True
    if chosen == "cpu":
        raise RuntimeError("kernel backend 'cpu' was asked for, but the C++ kernels could not be built "
                           "(see the warning above)")
    return False


def run(
    mode: str,
    xp: Tensor,
    state: tuple[Tensor, ...],
    p: CellParams,
    recurrent_mask: Tensor | None = None,
    zoneout: tuple[Zoneout, ...] | list[Zoneout] = (),
    lengths: Tensor | None = None,
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """One layer-direction over the whole sequence (see the module doc): (y (T, B, P), final state)."""
    if not _use_fused(mode, xp.device.type, xp.dtype):
        return scan(STEPS[mode], xp, state, p, recurrent_mask, zoneout, lengths)
    return _KERNELS[mode](xp, state, p, recurrent_mask, zoneout, lengths)
