"""Loss functions in NumPy, each returning the loss and its gradient with respect to the prediction.

    softmax_cross_entropy:  L = -1/N sum_n log softmax(z_n)[y_n],   dL/dz_n = (softmax(z_n) - onehot(y_n)) / N
    mse:                    L = 1/M sum (p - y)^2,                  dL/dp   = 2 (p - y) / M

Both average exactly as torch.nn.functional.cross_entropy / mse_loss do with reduction="mean", so their values
and gradients can be compared one to one.

Shapes: N examples, C classes, M = total number of elements.
"""

from __future__ import annotations

import numpy as np

from .validate import check_array

__all__ = ["log_softmax", "mse", "softmax_cross_entropy"]


def _float_dtype(x):
    """Keep a floating input's precision (float32 stays float32); anything else is computed in float64."""
    dtype = np.asarray(x).dtype
    return dtype if np.issubdtype(dtype, np.floating) else np.dtype(np.float64)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """log softmax over the last axis, stable for any finite logits.

        log softmax(z)_c = z_c - logsumexp(z),   logsumexp(z) = m + log sum_c exp(z_c - m),  m = max_c z_c

    Subtracting the max keeps every exponent <= 0, so nothing overflows.

    Args:
        logits: (..., C) finite scores.

    Returns:
        (..., C) log-probabilities.

    Example:
        >>> np.round(np.exp(log_softmax(np.array([0.0, np.log(3.0)]))), 6)
        array([0.25, 0.75])
    """
    z = np.asarray(logits, dtype=_float_dtype(logits))
    shifted = z - z.max(axis=-1, keepdims=True)  # (..., C), every entry <= 0
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def softmax_cross_entropy(logits, targets) -> tuple[float, np.ndarray]:
    """Mean cross-entropy of class scores against integer targets, and its gradient.

        L = -1/N sum_n log softmax(z_n)[y_n]
        dL/dz = (softmax(z) - onehot(y)) / N

    Args:
        logits: (N, C) unnormalised scores (float32 stays float32; the loss is a Python float).
        targets: (N,) integer class indices in [0, C).

    Returns:
        (loss, d_logits) with d_logits (N, C).

    Example:
        >>> loss, d = softmax_cross_entropy(np.zeros((2, 4)), np.array([0, 3]))
        >>> bool(np.isclose(loss, np.log(4))), d.shape
        (True, (2, 4))
    """
    z = check_array(logits, "logits", ndim=2, dtype=_float_dtype(logits))
    N, C = z.shape
    if N == 0 or C == 0:
        raise ValueError(f"logits must have at least one example and one class, got shape {z.shape}")
    y = np.asarray(targets)
    if y.shape != (N,):
        raise ValueError(f"targets: expected shape ({N},) (one class per row of logits), got {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"targets must be integers, got dtype {y.dtype}")
    if y.min() < 0 or y.max() >= C:
        raise ValueError(f"targets must lie in [0, {C}) (C classes), got min {y.min()}, max {y.max()}")

    logp = log_softmax(z)  # (N, C)
    rows = np.arange(N)
    loss = -logp[rows, y].mean()
    d_logits = np.exp(logp)  # (N, C) softmax
    d_logits[rows, y] -= 1.0
    d_logits /= N
    return float(loss), d_logits


def mse(pred, target) -> tuple[float, np.ndarray]:
    """Mean squared error over all elements, and its gradient.

        L = 1/M sum (p - y)^2,   dL/dp = 2 (p - y) / M

    Args:
        pred: any shape; target: the same shape.

    Returns:
        (loss, d_pred) with d_pred shaped as pred.

    Example:
        >>> mse(np.array([1.0, 3.0]), np.array([0.0, 0.0]))[0]
        5.0
    """
    p = check_array(pred, "pred", dtype=_float_dtype(pred))
    y = check_array(target, "target", dtype=p.dtype)
    if p.shape != y.shape:
        raise ValueError(f"target: expected shape {p.shape} (the shape of pred), got {y.shape}")
    if p.size == 0:
        raise ValueError(f"pred must have at least one element, got shape {p.shape}")
    diff = p - y
    return float((diff * diff).mean()), 2.0 * diff / p.size
