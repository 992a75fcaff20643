"""Boundary checks of the recurrent layers: each error names the expected and the given values."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence

__all__ = ["check_input", "check_lengths", "check_masks"]


def _check_like(name: str, tensor, weight: Tensor) -> None:
    if not isinstance(tensor, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    if tensor.dtype != weight.dtype:
        raise ValueError(f"{name} dtype must match the layer's weights: expected {weight.dtype}, "
                         f"got {tensor.dtype}")
    if tensor.device != weight.device:
        raise ValueError(f"{name} device must match the layer's weights: expected {weight.device}, "
                         f"got {tensor.device}")


def check_input(layer, input, hx, lengths, enforce_sorted: bool) -> tuple[int, int, Tensor | None]:
    """Validate input, hx and lengths of `layer`. Returns T, B and lengths as a CPU int64 tensor (or None)."""
    weight = layer.weight_ih_l0
    packed = isinstance(input, PackedSequence)
    data = input.data if packed else input
    _check_like("input", data, weight)
    if packed:
        if lengths is not None:
            raise ValueError("lengths must be None for a PackedSequence input (it carries its own lengths)")
        T, B, batched = len(input.batch_sizes), int(input.batch_sizes[0]), True
    else:
        if data.dim() not in (2, 3):
            raise ValueError(f"input must be 2-D (unbatched, (T, I)) or 3-D (batched), got {data.dim()}-D "
                             f"of shape {tuple(data.shape)}")
        batched = data.dim() == 3
        T = data.shape[1 if (batched and layer.batch_first) else 0]
        B = data.shape[0 if layer.batch_first else 1] if batched else 1
    if data.shape[-1] != layer.input_size:
        raise ValueError(f"input.size(-1) must be equal to input_size. Expected {layer.input_size}, "
                         f"got {data.shape[-1]}")
    if T == 0:
        raise ValueError(f"input must have at least one time step, got shape {tuple(data.shape)} (T = 0)")
    if lengths is not None:
        if not batched:
            raise ValueError("lengths needs a batched 3-D input, got an unbatched 2-D input")
        lengths = check_lengths(lengths, T, B, enforce_sorted)
    _check_hx(layer, hx, B, batched, weight)
    return T, B, lengths


def check_lengths(lengths, T: int, B: int, enforce_sorted: bool = False) -> Tensor:
    """lengths (list or tensor, any device) as a CPU int64 tensor (B,) with entries in [1, T]."""
    lengths = torch.as_tensor(lengths).to("cpu")
    integers = not (lengths.is_floating_point() or lengths.is_complex() or lengths.dtype == torch.bool)
    if lengths.dim() != 1 or not integers:
        raise ValueError(f"lengths must be a 1-D list or tensor of integers, got {lengths.dtype} "
                         f"of shape {tuple(lengths.shape)}")
    if lengths.numel() != B:
        raise ValueError(f"lengths must have one entry per sequence: expected {B}, got {lengths.numel()}")
    lengths = lengths.to(torch.int64)
    if torch.compiler.is_compiling():   # the values are data in a compiled graph: checked when it runs
        valid = ((lengths >= 1) & (lengths <= T)).all()
        if enforce_sorted:
            valid = valid & (lengths[1:] <= lengths[:-1]).all()
        torch._assert_async(valid, "lengths must lie in [1, T] (the padded length), sorted in decreasing "
                            "order when enforce_sorted=True")
        return lengths
    if lengths.min() < 1 or lengths.max() > T:
        raise ValueError(f"lengths must lie in [1, {T}] (the padded length), got {lengths.tolist()}")
    if enforce_sorted and (lengths[1:] > lengths[:-1]).any():
        raise ValueError(f"lengths must be sorted in decreasing order when enforce_sorted=True, "
                         f"got {lengths.tolist()}")
    return lengths


def _check_hx(layer, hx, B: int, batched: bool, weight: Tensor) -> None:
    if hx is None:
        return
    D = 2 if layer.bidirectional else 1
    out_size = getattr(layer, "proj_size", 0) or layer.hidden_size
    sizes = {"h_0": out_size, "c_0": layer.hidden_size} if layer.mode == "LSTM" else {"h_0": out_size}
    if layer.mode == "LSTM" and not (isinstance(hx, tuple | list) and len(hx) == 2):
        raise ValueError(f"LSTM hx must be a tuple (h_0, c_0), got {type(hx).__name__}")
    states = hx if layer.mode == "LSTM" else (hx,)
    for (name, size), state in zip(sizes.items(), states, strict=True):
        _check_like(name, state, weight)
        expected = (layer.num_layers * D, B, size) if batched else (layer.num_layers * D, size)
        if tuple(state.shape) != expected:
            raise ValueError(f"Expected {name} of shape {expected}, got {tuple(state.shape)}")


def check_masks(masks: dict[str, Tensor], expected: dict[str, tuple[int, ...]]) -> None:
    """Every given mask must be one this layer draws, with the shape it draws."""
    for key, mask in masks.items():
        if key not in expected:
            raise ValueError(f"unknown mask {key!r}: expected one of {sorted(expected)}")
        if tuple(mask.shape) != expected[key]:
            raise ValueError(f"mask {key!r}: expected shape {expected[key]}, got {tuple(mask.shape)}")
