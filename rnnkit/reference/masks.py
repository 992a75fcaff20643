"""The random masks of the variant layers (`variants.py`): recurrent dropout, weight drop and zoneout.

How masks are passed
--------------------
`layer.forward(x, hx=None, lengths=None, masks=None)`. `masks` is a flat dict keyed by kind + layer-direction
suffix (sfx = "_l0", "_l0_reverse", "_l1", ...), the same layout as rnnkit.nn's `masks=` / `last_masks`:

    "recurrent_dropout{sfx}": (B, H)     multiplier m of the state entering W_hh, Bernoulli(1 - p) / (1 - p):
                                         0 (dropped) or 1 / (1 - p) (kept), already scaled
    "weight_drop{sfx}":       (G, H)     multiplier M of W_hh, Bernoulli(1 - p) / (1 - p), already scaled
    "zoneout_h{sfx}":         (T, B, H)  d_t of the spec, 0/1, 1 = keep the previous h (no scaling)
    "zoneout_c{sfx}":         (T, B, H)  LSTM only; the same for c

Zoneout masks are indexed by input time t (the reverse direction reads [t] when it processes time t) and are
time-major whatever `batch_first`. p is the layer's `recurrent_dropout`, `weight_drop` or `zoneout`, each in
[0, 1).

Masks apply in training mode only (`layer.training`, True by default; `layer.eval()` / `layer.train()`), and
only to options with p > 0. A mask that is left out is drawn from the layer's generator; `layer.last_masks`
holds the masks of the last forward (the same layout), so they can be fed to the torch layer and back. In eval
mode no masks are accepted: m = 1, M = 1, and zoneout takes its expectation h_t = p h_{t-1} + (1 - p) h~_t,
so eval is deterministic.
"""

from __future__ import annotations

import numpy as np

from .validate import check_array


def mask_shapes(sfx, T, B, H, G, num_states, recurrent_dropout, weight_drop, zoneout):
    """The masks one layer-direction needs in training, for the options with p > 0: {name: (shape, p)}."""
    shapes = {}
    if recurrent_dropout > 0:
        shapes["recurrent_dropout" + sfx] = ((B, H), recurrent_dropout)
    if weight_drop > 0:
        shapes["weight_drop" + sfx] = ((G, H), weight_drop)
    if zoneout > 0:
        for name in ("zoneout_h", "zoneout_c")[:num_states]:
            shapes[name + sfx] = ((T, B, H), zoneout)
    return shapes


def resolve_masks(masks, shapes, rng, dtype):
    """Every mask of `shapes`: a given one checked (shape, finite, zoneout 0/1), a missing one drawn from rng.

    Args:
        masks: dict of given masks, or None; a name not in `shapes` is a ValueError.
        shapes: from `mask_shapes`, {name: (shape, p)}.
        rng: np.random.Generator for the masks not given.
    """
    masks = {} if masks is None else dict(masks)
    unexpected = sorted(set(masks) - set(shapes))
    if unexpected:
        raise ValueError(f"unexpected masks {unexpected}: this layer takes {sorted(shapes)} (p > 0 only)")
    resolved = {}
    for name, (shape, p) in shapes.items():
        if name in masks:
            m = check_array(masks[name], f"masks[{name!r}]", shape=shape, dtype=dtype)
            if name.startswith("zoneout") and not np.isin(m, (0.0, 1.0)).all():
                raise ValueError(f"masks[{name!r}] must hold only 0 and 1 (1 = keep the previous value)")
        elif name.startswith("zoneout"):  # d ~ Bernoulli(p): keep the previous state
            m = (rng.random(shape) < p).astype(dtype)
        else:  # inverted dropout: Bernoulli(1 - p) / (1 - p)
            m = (rng.random(shape) < 1.0 - p).astype(dtype) / (1.0 - p)
        resolved[name] = m
    return resolved
