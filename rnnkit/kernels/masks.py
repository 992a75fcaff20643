"""Bernoulli masks from a counter-based hash: every variant's random mask, fast and the same on every path.

    seed      one int64 drawn from torch's generator per mask (so torch.manual_seed fixes every mask)
    bits_i    = splitmix64(seed + (i + 1) * GOLDEN) >> 40       the top 24 bits, i the flat index
    mask_i    = 1 if bits_i < round(p * 2^24) else 0           so P(mask_i = 1) = p to within 2^-25

splitmix64(z): z = (z ^ z >> 30) * MIX1;  z = (z ^ z >> 27) * MIX2;  z ^ z >> 31   (Steele et al. 2014)

Each element is a pure function of (seed, i), so the fill needs no generator state: the C++ op
(torch.ops.rnnkit.hash_bernoulli, csrc/masks.cpp) splits it across threads and vector lanes, where torch's
CPU generator draws one number at a time on one thread (5-8 ns an element; zoneout draws (T, B, H) of them
per layer-direction and call). `bernoulli_twin` is its slow twin in int64 tensor ops (any device; torch's
int64 multiply wraps like uint64's, and a logical shift is an arithmetic one masked), bit for bit the same
mask, and what runs where the op cannot: another device, backend "scan", no compiler.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

__all__ = ["BITS", "bernoulli", "bernoulli_twin", "draw_seed", "op_available", "threshold"]

BITS = 24
_U64 = 1 << 64
GOLDEN, MIX1, MIX2 = (c - _U64 for c in (0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB))  # int64


def threshold(p: float) -> int:
    """round(p * 2^24): a 24-bit draw below it is a 1, which happens with probability p to within 2^-25."""
    if not 0 <= p <= 1:
        raise ValueError(f"a Bernoulli probability must lie in [0, 1], got {p!r}")
    return round(p * (1 << BITS))


def draw_seed(generator: torch.Generator | None = None) -> Tensor:
    """One int64 from torch's generator (the default one, or `generator` on its device): a mask's key."""
    device = "cpu" if generator is None else generator.device
    return torch.randint(-(1 << 63), (1 << 63) - 1, (), dtype=torch.int64, device=device, generator=generator)


def _xor_shift_right(z: Tensor, k: int) -> Tensor:
    """z ^= (uint64 z >> k), in place on int64 storage: torch's >> is arithmetic, so the k sign-filled bits
    are masked off."""
    return z.bitwise_xor_(z.bitwise_right_shift(k).bitwise_and_((1 << (64 - k)) - 1))


def bernoulli_twin(seed: Tensor, size: tuple[int, ...], threshold: int, dtype: torch.dtype,
                   device: torch.device | str = "cpu") -> Tensor:
    """The hash mask in pure torch (the module doc's equations; in place, one int64 pass each)."""
    n = 1
    for s in size:
        n *= s
    z = torch.arange(1, n + 1, dtype=torch.int64, device=device).mul_(GOLDEN).add_(seed.to(device))
    _xor_shift_right(z, 30).mul_(MIX1)
    _xor_shift_right(z, 27).mul_(MIX2)
    _xor_shift_right(z, 31)
    bits = z.bitwise_right_shift_(64 - BITS).bitwise_and_((1 << BITS) - 1)   # the top 24 bits
    return (bits < threshold).to(dtype).view(size)


@functools.cache
def op_available() -> bool:
    """Build (first use) and load csrc/masks.cpp, with the op's fake kernel for torch.compile."""
    from .build import load_library

    if not load_library("masks"):
        return False
    torch.library.register_fake("rnnkit::hash_bernoulli")(
        lambda seed, size, threshold, dtype: seed.new_empty(size, dtype=dtype))
    return True


@torch.compiler.assume_constant_result
def _use_op(device_type: str) -> bool:
    """Whether this draw runs the C++ op: CPU, not backend "scan", and built (decided once under compile)."""
    from . import backend

    return device_type == "cpu" and backend() != "scan" and op_available()


def bernoulli(p: float, size: tuple[int, ...], like: Tensor, generator: torch.Generator | None = None
              ) -> Tensor:
    """A 0/1 tensor of `size` in like's dtype and device, each entry 1 with probability p, independently."""
    seed = draw_seed(generator)
    if _use_op(like.device.type):
        return torch.ops.rnnkit.hash_bernoulli(seed, list(size), threshold(p), like.dtype)
    return bernoulli_twin(seed, tuple(size), threshold(p), like.dtype, like.device)
