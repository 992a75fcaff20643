"""Layer normalisation (Ba, Kiros and Hinton 2016) over the last axis, forward and backward, in NumPy.

    LN(v) = (v - mean(v)) / sqrt(var(v) + eps) * gamma + beta        (biased variance, eps = 1e-5, as torch)

Used by the layer-normalised variants (`variants.py`) on x W_ih^T (T, B, G), on h W_hh^T (B, G) and on the
LSTM cell state (B, H).
"""

from __future__ import annotations

import numpy as np

__all__ = ["LN_EPS", "layer_norm", "layer_norm_backward"]

LN_EPS = 1e-5


def layer_norm(v, gamma, beta):
    """LN(v) = (v - mean(v)) / sqrt(var(v) + 1e-5) * gamma + beta over the last axis (biased variance).

    Returns the output and the cache (v_hat, 1 / sigma) for `layer_norm_backward`.
    """
    mu = v.mean(axis=-1, keepdims=True)
    inv_sigma = 1.0 / np.sqrt(v.var(axis=-1, keepdims=True) + LN_EPS)
    v_hat = (v - mu) * inv_sigma
    return v_hat * gamma + beta, (v_hat, inv_sigma)


def layer_norm_backward(dy, cache, gamma):
    """Gradients of `layer_norm`: (dv, dgamma, dbeta); dgamma, dbeta summed over every leading axis.

    dv = (1/sigma) (d_hat - mean(d_hat) - v_hat mean(d_hat v_hat)), with d_hat = dy * gamma.
    """
    v_hat, inv_sigma = cache
    d_hat = dy * gamma
    dv = inv_sigma * (
        d_hat - d_hat.mean(axis=-1, keepdims=True) - v_hat * (d_hat * v_hat).mean(axis=-1, keepdims=True)
    )
    axes = tuple(range(dy.ndim - 1))
    return dv, (dy * v_hat).sum(axis=axes), dy.sum(axis=axes)
