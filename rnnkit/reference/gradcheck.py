"""Finite-difference gradient checks: the oracle that needs nothing but the forward pass.

Central differences in float64,

    dL/dw_k  ~=  (L(w + eps e_k) - L(w - eps e_k)) / (2 eps),

are accurate to O(eps^2) plus a rounding error of about |L| 1e-16 / eps, so with eps = 1e-6 they agree with a
correct analytic gradient to about 1e-8 relative; a wrong gradient is off by far more.

    >>> import numpy as np
    >>> from rnnkit.reference.layers import LSTM
    >>> err = check_layer(LSTM(2, 3, seed=0), np.random.default_rng(0).normal(size=(4, 2, 2)))
    >>> err < 1e-6
    True
"""

from __future__ import annotations

import numpy as np

from .validate import check_lengths

__all__ = ["check_layer", "gradcheck"]


def gradcheck(f, inputs, analytic, eps=1e-6, rtol=1e-6, atol=1e-8, max_checks=None, seed=0) -> float:
    """Compare analytic gradients with central differences, entry by entry.

    Each checked entry passes when |a - n| <= max(atol, rtol * max(|a|, |n|)); its relative error is
    |a - n| / max(|a|, |n|, atol / rtol), so "passes" is "relative error <= rtol".

    Args:
        f: f(inputs) -> scalar loss. `inputs` is perturbed IN PLACE and restored afterwards, so f may equally
            read the arrays from elsewhere (e.g. a layer's own `params`, which are the same arrays).
        inputs: name -> float64 array, the variables to differentiate with respect to.
        analytic: name -> the claimed dL/d inputs[name], same shape; extra names are ignored.
        eps: finite-difference step.
        rtol, atol: tolerances, as above.
        max_checks: check at most this many entries of each input (chosen at random, always including the
            entry with the largest analytic gradient); None checks every entry.
        seed: seed of that random choice.

    Returns:
        The largest relative error over all checked entries.

    Raises:
        AssertionError naming the worst input, its index, the analytic and the numerical value, when any entry
        fails; ValueError for inputs that cannot be checked.
    """
    rng = np.random.default_rng(seed)
    worst = (0.0, None, None, 0.0, 0.0)  # (relative error, name, index, analytic, numeric)
    for name, x in inputs.items():
        if not isinstance(x, np.ndarray) or x.dtype != np.float64:
            raise ValueError(f"inputs[{name!r}] must be a float64 array (perturbed in place), got {type(x)}")
        if name not in analytic:
            raise ValueError(f"analytic has no gradient for {name!r} (it has {sorted(analytic)})")
        a = np.asarray(analytic[name], dtype=np.float64)
        if a.shape != x.shape:
            raise ValueError(f"analytic[{name!r}]: expected shape {x.shape}, got {a.shape}")
        flat_x, flat_a = x.reshape(-1), a.reshape(-1)  # views: perturbing flat_x perturbs x
        if not np.shares_memory(flat_x, x):
            raise ValueError(f"inputs[{name!r}] must be contiguous, to be perturbed in place")
        indices = np.arange(x.size)
        if max_checks is not None and x.size > max_checks:
            chosen = rng.choice(x.size, size=max_checks - 1, replace=False)
            indices = np.unique(np.append(chosen, np.argmax(np.abs(flat_a))))
        for k in indices:
            original = flat_x[k]
            flat_x[k] = original + eps
            loss_plus = float(f(inputs))
            flat_x[k] = original - eps
            loss_minus = float(f(inputs))
            flat_x[k] = original
            numeric = (loss_plus - loss_minus) / (2.0 * eps)
            scale = max(abs(flat_a[k]), abs(numeric), atol / rtol)
            err = abs(flat_a[k] - numeric) / scale
            if not err <= worst[0]:  # also catches NaN
                worst = (err, name, np.unravel_index(k, x.shape), flat_a[k], numeric)
    err, name, index, a_value, n_value = worst
    if not err <= rtol:
        index = tuple(int(i) for i in index)
        raise AssertionError(
            f"gradient check failed for {name}{list(index)}: analytic {a_value:.10g}, "
            f"numerical {n_value:.10g}, relative error {err:.3g} > rtol {rtol:g}"
        )
    return float(err)


def check_layer(
    layer, x, hx=None, lengths=None, seed=0, eps=1e-6, rtol=1e-6, atol=1e-8, max_checks=None
) -> float:
    """Gradient-check every parameter of a reference layer, its input and its initial state(s).

    Builds a random scalar loss that touches every output and the final state(s),

        L = sum(output * R) + sum(h_n * S) (+ sum(c_n * S_c) for LSTM),   R, S, S_c ~ N(0, 1),

    runs `layer.forward` then `layer.backward(R, S, S_c)`, and compares the result with central differences.

    Args:
        layer: a `layers.RecurrentLayer` in float64.
        x: the input, shaped as `layer.forward` expects.
        hx: initial state(s), or None for random ones (so dL/dh0 is checked at a generic point).
        lengths: optional per-sequence lengths.
        seed: seed for R, S, S_c, the random initial states and `gradcheck`'s choice of entries.
        eps, rtol, atol, max_checks: as in `gradcheck`.

    Returns:
        The largest relative error (raises AssertionError when above rtol).
    """
    if layer.dtype != np.float64:
        raise ValueError(f"check_layer needs a float64 layer, got {layer.dtype}")
    rng = np.random.default_rng(seed)
    x = np.array(x, dtype=np.float64)  # a private copy, perturbed in place
    B = x.shape[0] if layer.batch_first else x.shape[1]
    state_shape = (layer.num_layers * layer.num_directions, B, layer.hidden_size)
    state_names = ("h0", "c0")[: layer.cell.num_states]
    if hx is None:
        states = [rng.normal(size=state_shape) for _ in state_names]
    else:
        states = [np.array(s, dtype=np.float64) for s in (hx if layer.cell.num_states == 2 else (hx,))]
    if lengths is not None:
        T = x.shape[1] if layer.batch_first else x.shape[0]
        lengths = check_lengths(lengths, T, B)

    def run(inputs):
        h = tuple(inputs[n] for n in state_names)
        return layer.forward(inputs["input"], h if len(h) == 2 else h[0], lengths)

    inputs = {**layer.params, "input": x, **dict(zip(state_names, states, strict=True))}
    output, final = run(inputs)
    finals = final if layer.cell.num_states == 2 else (final,)
    R = rng.normal(size=output.shape)
    S = [rng.normal(size=s.shape) for s in finals]
    analytic = layer.backward(R, *S)  # for the unperturbed forward above

    def loss(inputs):
        output, final = run(inputs)
        finals = final if layer.cell.num_states == 2 else (final,)
        return np.sum(output * R) + sum(np.sum(s * w) for s, w in zip(finals, S, strict=True))

    return gradcheck(loss, inputs, analytic, eps, rtol, atol, max_checks, seed)
