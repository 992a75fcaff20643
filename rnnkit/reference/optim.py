"""Optimisers and gradient clipping in NumPy, with exactly torch.optim's update equations.

Parameters are a dict of arrays (a layer's `params`, or `state_dict()`, which holds the same arrays);
`step(grads)` updates them in place, so a layer trained with these sees its new weights at once. Names in
`grads` that are not parameters ("input", "h0", "c0" from a layer's backward) are ignored.

    >>> import numpy as np
    >>> from rnnkit.reference.layers import GRU
    >>> gru = GRU(3, 4, seed=0)
    >>> out, h_n = gru.forward(np.ones((5, 2, 3)))
    >>> grads = gru.backward(np.ones_like(out))
    >>> norm = clip_grad_norm(grads, max_norm=1.0)
    >>> Adam(gru.params, lr=1e-2).step(grads)
"""

from __future__ import annotations

import numpy as np

__all__ = ["SGD", "Adam", "NON_PARAMETER_GRADS", "clip_grad_norm"]

NON_PARAMETER_GRADS = ("input", "h0", "c0")  # what a layer's backward returns besides parameter gradients


def _check_hyper(name, value, low, high=np.inf, low_open=False):
    ok = (low < value if low_open else low <= value) and value < high
    if not ok:
        interval = ("(" if low_open else "[") + f"{low}, {high})"
        raise ValueError(f"{name} must lie in {interval}, got {value!r}")


def _check_params(params):
    if not isinstance(params, dict) or not params:
        raise ValueError(f"params must be a non-empty dict of name -> array, got {type(params).__name__}")
    for name, p in params.items():
        if not isinstance(p, np.ndarray) or not np.issubdtype(p.dtype, np.floating):
            raise ValueError(f"params[{name!r}] must be a float array (updated in place), got {type(p)}")
    return params


class _Optimizer:
    """Shared part: walk the parameters that have a gradient, checking its shape."""

    def __init__(self, params):
        self.params = _check_params(params)
        self.state: dict[str, dict] = {name: {} for name in params}

    def _pairs(self, grads):
        for name, p in self.params.items():
            if name not in grads or grads[name] is None:
                continue  # like torch: a parameter without a gradient is left alone
            g = np.asarray(grads[name], dtype=p.dtype)
            if g.shape != p.shape:
                raise ValueError(f"grads[{name!r}]: expected shape {p.shape} (the parameter), got {g.shape}")
            yield name, p, g

    def step(self, grads: dict) -> None:
        raise NotImplementedError


class SGD(_Optimizer):
    """Stochastic gradient descent with momentum, as torch.optim.SGD.

        g = grad + weight_decay * p
        b = g                                  (first step)
        b = momentum * b + (1 - dampening) * g (later steps)
        g = g + momentum * b  if nesterov else  b           (when momentum > 0)
        p = p - lr * g

    Args:
        params: name -> float array, updated in place.
        lr: learning rate > 0; momentum, dampening, weight_decay >= 0.
        nesterov: Nesterov momentum; needs momentum > 0 and dampening 0.
    """

    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0, nesterov=False, dampening=0.0):
        super().__init__(params)
        _check_hyper("lr", lr, 0.0, low_open=True)
        _check_hyper("momentum", momentum, 0.0)
        _check_hyper("weight_decay", weight_decay, 0.0)
        _check_hyper("dampening", dampening, 0.0)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError(f"nesterov needs momentum > 0 and dampening 0, got {momentum} and {dampening}")
        self.lr, self.momentum, self.weight_decay = lr, momentum, weight_decay
        self.nesterov, self.dampening = nesterov, dampening

    def step(self, grads: dict) -> None:
        for name, p, g in self._pairs(grads):
            if self.weight_decay:
                g = g + self.weight_decay * p
            if self.momentum:
                state = self.state[name]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = g.copy()
                else:
                    b = state["momentum_buffer"]
                    b *= self.momentum
                    b += (1.0 - self.dampening) * g
                b = state["momentum_buffer"]
                g = g + self.momentum * b if self.nesterov else b
            p -= self.lr * g


class Adam(_Optimizer):
    """Adam (Kingma and Ba 2015), as torch.optim.Adam (weight decay added to the gradient, not decoupled).

        g = grad + weight_decay * p
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g^2
        p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    Args:
        params: name -> float array, updated in place.
        lr > 0; betas in [0, 1); eps >= 0; weight_decay >= 0.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params)
        _check_hyper("lr", lr, 0.0, low_open=True)
        if len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        _check_hyper("betas[0]", betas[0], 0.0, 1.0)
        _check_hyper("betas[1]", betas[1], 0.0, 1.0)
        _check_hyper("eps", eps, 0.0)
        _check_hyper("weight_decay", weight_decay, 0.0)
        self.lr, self.betas, self.eps, self.weight_decay = lr, tuple(betas), eps, weight_decay

    def step(self, grads: dict) -> None:
        beta1, beta2 = self.betas
        for name, p, g in self._pairs(grads):
            if self.weight_decay:
                g = g + self.weight_decay * p
            state = self.state[name]
            if not state:
                state.update(t=0, m=np.zeros_like(p), v=np.zeros_like(p))
            state["t"] += 1
            m, v, t = state["m"], state["v"], state["t"]
            m += (1.0 - beta1) * (g - m)  # == beta1 m + (1 - beta1) g, written as torch's lerp
            v *= beta2
            v += (1.0 - beta2) * g * g
            step_size = self.lr / (1.0 - beta1**t)
            denom = np.sqrt(v) / np.sqrt(1.0 - beta2**t) + self.eps
            p -= step_size * m / denom


def clip_grad_norm(grads: dict, max_norm: float, names=None) -> float:
    """Scale gradients in place to a joint L2 norm of at most `max_norm`, as torch.nn.utils.clip_grad_norm_.

        total = sqrt(sum_k ||g_k||^2),   g_k = g_k * min(1, max_norm / (total + 1e-6))

    Args:
        grads: name -> array (modified in place).
        max_norm: > 0.
        names: which entries to clip; None means every entry except the non-parameter ones
            ("input", "h0", "c0") that a layer's backward also returns.

    Returns:
        The total norm before clipping.
    """
    _check_hyper("max_norm", max_norm, 0.0, low_open=True)
    if names is None:
        names = [n for n in grads if n not in NON_PARAMETER_GRADS]
    missing = [n for n in names if n not in grads]
    if missing:
        raise ValueError(f"names {missing} are not in grads (which has {sorted(grads)})")
    for n in names:
        if not isinstance(grads[n], np.ndarray) or not np.issubdtype(grads[n].dtype, np.floating):
            raise ValueError(f"grads[{n!r}] must be a float array (scaled in place), got {type(grads[n])}")
    total = float(np.sqrt(sum(float(np.sum(grads[n] * grads[n])) for n in names)))
    scale = min(1.0, max_norm / (total + 1e-6))
    for n in names:
        grads[n] *= scale
    return total
