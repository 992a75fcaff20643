"""Checks at the boundary of the reference engine: bad input fails here, with the numbers."""

from __future__ import annotations

import numpy as np


def check_array(x, name, ndim=None, shape=None, dtype=np.float64):
    """Convert to a finite floating array of `dtype`, checking its rank or exact shape."""
    try:
        x = np.asarray(x, dtype=dtype)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must be a numeric array, got {type(x).__name__}: {e}") from None
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got {x.ndim} (shape {x.shape})")
    if shape is not None and x.shape != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {x.shape}")
    if not np.isfinite(x).all():
        bad = np.argwhere(~np.isfinite(x))[0]
        raise ValueError(f"{name} must be finite, got {x[tuple(bad)]} at index {tuple(int(i) for i in bad)}")
    return x


def check_state(s, name, shape, dtype):
    """An initial state or a state gradient: exactly `shape` = (L*D, B, H)."""
    return check_array(s, name, shape=shape, dtype=dtype)


def check_lengths(lengths, T, B):
    """Per-sequence lengths: B integers in [1, T]."""
    arr = np.asarray(lengths)
    if arr.shape != (B,):
        raise ValueError(f"lengths: expected shape ({B},) (one per sequence), got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        if not np.issubdtype(arr.dtype, np.floating) or not np.all(arr == np.round(arr)):
            raise ValueError(f"lengths must be integers, got {arr.tolist()}")
        arr = arr.astype(np.int64)
    if arr.min() < 1 or arr.max() > T:
        raise ValueError(
            f"lengths must lie in [1, {T}] (the padded length), got min {arr.min()}, max {arr.max()}"
        )
    return arr.astype(np.int64)


def describe(value) -> str:
    """What was given, for an error message: "a tuple of length 3", "a ndarray of shape (1, 2, 4)"."""
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of length {len(value)}"
    return f"a {type(value).__name__} of shape {np.shape(value)}"


def load_into(params: dict, state_dict) -> None:
    """Copy a state_dict into `params` in place, after checking every name and shape (no partial writes).

    In place, as torch's load_state_dict: an optimiser or a model holding these arrays sees the new values.
    Values may be arrays or anything np.asarray takes (e.g. CPU torch tensors).
    """
    missing = sorted(set(params) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(params))
    if missing or unexpected:
        raise ValueError(f"state_dict keys do not match: missing {missing}, unexpected {unexpected}")
    arrays = {}
    for name, value in state_dict.items():
        value = np.asarray(value.detach().cpu() if hasattr(value, "detach") else value)
        if value.shape != params[name].shape:
            raise ValueError(f"{name}: expected shape {params[name].shape}, got {value.shape}")
        arrays[name] = value
    for name, value in arrays.items():
        np.copyto(params[name], value, casting="unsafe")
