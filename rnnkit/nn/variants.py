"""The recurrent variants torch.nn lacks: their configuration, layer norm, and the random masks they draw.

Equations and parameter names follow docs/variants.md (shared with the NumPy twins in
rnnkit.reference). Per layer-direction with suffix sfx = f"_l{k}" (+ "_reverse"):

    layer_norm          LN(v) = (v - mean v) / sqrt(var v + 1e-5) * gamma + beta   (Ba, Kiros, Hinton 2016)
                        xp = LN_ih(x W_ih^T) + b_ih, hp = LN_hh(h W_hh^T) + b_hh, LSTM: h = o tanh(LN_c(c))
    recurrent_dropout   hp = (h * m) W_hh^T + b_hh, m ~ Bernoulli(1 - p) / (1 - p) of shape (B, H), one per
                        sequence (Gal and Ghahramani 2016); eval: m = 1
    zoneout             h_t = d_t h_{t-1} + (1 - d_t) h~_t, d_t ~ Bernoulli(p) per step and unit, c likewise
                        (Krueger et al. 2016); eval: d_t = p (the expectation)
    weight_drop         W_hh' = W_hh * M, M ~ Bernoulli(1 - p) / (1 - p) of W_hh's shape, one per forward call
                        (DropConnect, Merity et al. 2017); eval: M = 1

Masks are plain tensors in a dict keyed by kind and suffix, so a test can inject the same masks into the torch
layer and its NumPy twin (training mode only; dropout masks are pre-scaled, zoneout masks are 0/1):

    recurrent_dropout{sfx}  (B, H_out)       zoneout_h{sfx}  (T, B, H_out)   indexed by input time t
    weight_drop{sfx}        (G, H_out)       zoneout_c{sfx}  (T, B, H)       (LSTM only)

H_out is proj_size for an LSTM with a projection, else hidden_size. A decoder stepping with `layer.step` draws
them once per sequence (`masks = layer.sample_masks(T, B)`) and passes the same dict to every step with its
index, `layer.step(x_t, state, masks, t=t)`: zoneout's masks are read at step t, the others as they are.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

LAYER_NORM_EPS = 1e-5
MASK_KINDS = ("recurrent_dropout", "weight_drop", "zoneout_h", "zoneout_c")

__all__ = ["LAYER_NORM_EPS", "MASK_KINDS", "Variants", "layer_norm", "layer_norm_names", "sample_masks"]


def _check_probability(name: str, p) -> float:
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p < 1:
        raise ValueError(f"{name} must be a probability in [0, 1), got {p!r}")
    return float(p)


@dataclass(frozen=True)
class Variants:
    """Which variants a layer runs; all off is plain torch.nn."""

    layer_norm: bool = False
    recurrent_dropout: float = 0.0
    zoneout: float = 0.0
    weight_drop: float = 0.0

    def __post_init__(self):
        if not isinstance(self.layer_norm, bool):
            raise ValueError(f"layer_norm must be True or False, got {self.layer_norm!r}")
        for name in ("recurrent_dropout", "zoneout", "weight_drop"):
            object.__setattr__(self, name, _check_probability(name, getattr(self, name)))

    def needs_scan(self, training: bool) -> bool:
        """True when torch's fused kernels cannot run these equations (weight_drop alone still can)."""
        return self.layer_norm or self.zoneout > 0 or (training and self.recurrent_dropout > 0)

    def any(self) -> bool:
        return self.layer_norm or self.recurrent_dropout > 0 or self.zoneout > 0 or self.weight_drop > 0


def layer_norm(v: Tensor, gamma: Tensor, beta: Tensor) -> Tensor:
    """LN(v) = (v - mean(v)) / sqrt(var(v) + 1e-5) * gamma + beta over the last dim, biased variance.

    torch's fused kernel computes exactly this equation; the tests check it against a written-out oracle.
    """
    return F.layer_norm(v, v.shape[-1:], gamma, beta, eps=LAYER_NORM_EPS)


def layer_norm_names(mode: str) -> tuple[str, ...]:
    """Layer-norm parameter stems of one layer-direction: ih and hh for every cell, c for the LSTM."""
    stems = ("layer_norm_ih", "layer_norm_hh") + (("layer_norm_c",) if mode == "LSTM" else ())
    return tuple(f"{stem}_{part}" for stem in stems for part in ("weight", "bias"))


def _bernoulli(p: float, shape, like: Tensor, generator) -> Tensor:
    """A 0/1 tensor in like's dtype, each entry 1 with probability p: a counter-based hash keyed by one draw
    from torch's generator (kernels/masks.py), filled across threads by a C++ op on CPU; about 10x faster
    than torch.rand for zoneout's (T, B, H) masks drawn every call, and exact in p to 2^-25 in any dtype."""
    from ..kernels.masks import bernoulli

    return bernoulli(p, tuple(shape), like, generator)


def _keep_mask(p: float, shape, like: Tensor, generator) -> Tensor:
    """Bernoulli(1 - p) / (1 - p): inverted dropout, so the expectation of the masked value is unchanged."""
    return _bernoulli(1 - p, shape, like, generator) / (1 - p)


def sample_masks(
    variants: Variants,
    suffixes: list[str],
    T: int,
    B: int,
    hidden_size: int,
    out_size: int,
    gate_size: int,
    is_lstm: bool,
    like: Tensor,
    generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    """Draw the training-mode masks of every stochastic variant for one forward call (see the module doc)."""
    masks = {}
    for sfx in suffixes:
        if variants.recurrent_dropout > 0:
            p = variants.recurrent_dropout
            masks[f"recurrent_dropout{sfx}"] = _keep_mask(p, (B, out_size), like, generator)
        if variants.weight_drop > 0:
            p = variants.weight_drop
            masks[f"weight_drop{sfx}"] = _keep_mask(p, (gate_size, out_size), like, generator)
        if variants.zoneout > 0:
            p = variants.zoneout    # 1 = keep the previous value
            masks[f"zoneout_h{sfx}"] = _bernoulli(p, (T, B, out_size), like, generator)
            if is_lstm:
                masks[f"zoneout_c{sfx}"] = _bernoulli(p, (T, B, hidden_size), like, generator)
    return masks
