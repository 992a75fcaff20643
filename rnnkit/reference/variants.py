"""Recurrent variants in NumPy, forward and hand-written BPTT: layer normalisation (Ba et al. 2016), recurrent
dropout (Gal and Ghahramani 2016), zoneout (Krueger et al. 2016), weight drop (Merity et al. 2017).

The twins of rnnkit.nn's variant layers; both implement the equations of the shared contract (variants_spec):

    xp = LN_ih(x W_ih^T) + b_ih                       all time steps at once (LN only with layer_norm=True)
    hp = LN_hh((h * m) (W_hh * M)^T) + b_hh           m: recurrent dropout mask, M: weight-drop mask
    LSTM: c~ = f c + i g, h~ = o tanh(LN_c(c~));  GRU: torch.nn.GRU's r, z, n;  RNN: h~ = tanh(xp + hp)
    h_t = d_t h_{t-1} + (1 - d_t) h~_t                zoneout (c likewise, with its own mask)

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

Composition: each layer-direction builds a variant cell (below) that satisfies the step / step_backward
protocol of `cells.py`, runs it with `scan.scan` / `scan.scan_backward` (lengths, reverse, truncation), and
forms the input-side gradients after the time loop, like `layers.RecurrentLayer`. The cell holds the masks and
layer-norm parameters of its layer-direction and accumulates the gradients of the recurrent-side parameters
(W_hh, b_hh, LN_hh, LN_c) during step_backward.

    >>> import numpy as np
    >>> from rnnkit.reference.variants import LayerNormLSTM
    >>> lstm = LayerNormLSTM(input_size=3, hidden_size=4, seed=0)
    >>> out, (h_n, c_n) = lstm.forward(np.ones((5, 2, 3)))
    >>> sorted(lstm.backward(np.ones_like(out)))[:3]
    ['bias_hh_l0', 'bias_ih_l0', 'c0']

Shapes: T time, B batch, I input, H hidden, G = gates * H, L layers, D directions.
"""

from __future__ import annotations

import numpy as np

from .cells import sigmoid
from .layers import RecurrentLayer
from .scan import scan, scan_backward
from .validate import check_array, check_lengths, check_state

__all__ = [
    "LayerNormGRU",
    "LayerNormLSTM",
    "LayerNormRNN",
    "VariantGRU",
    "VariantLSTM",
    "VariantLayer",
    "VariantRNN",
    "layer_norm",
    "layer_norm_backward",
]

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


# ----------------------------------------------------------------------------------- cells


class VariantCell:
    """The recurrent projection, recurrent dropout and zoneout around a cell's gate equations.

    Satisfies the step protocol of `cells.py` (`step(xp, state, W_hh, b_hh)`, `step_backward(d_state, cache,
    W_hh, out=None)`), with W_hh the weight-dropped matrix the layer passes in. Built afresh for every forward
    call of one layer-direction: `scan` calls `step` once per time step in processing order, which is how the
    cell finds the time index t of its zoneout masks. Subclasses give the gate equations: `cell_update(xp, hp,
    state) -> (state~, cache)` and `cell_update_backward(d_state~, cache) -> (d_xp, d_hp, d_state direct)`.

    Args:
        hidden_size: H.
        reverse: whether the scan processes t = T-1 ... 0.
        T: the number of time steps.
        ln_hh: (gamma, beta), each (G,), or None for no layer norm on h W_hh^T.
        ln_c: (gamma, beta), each (H,), or None (LSTM only).
        dropout: (B, H) the scaled recurrent-dropout mask m / (1 - p), or None.
        zoneout: one (T, B, H) array per state (or (T, 1, 1) filled with p in eval), or None.
    """

    gates = 1
    num_states = 1

    def __init__(self, hidden_size, reverse, T, ln_hh=None, ln_c=None, dropout=None, zoneout=None):
        self.hidden_size, self.reverse, self.T = hidden_size, reverse, T
        self.ln_hh, self.ln_c, self.dropout, self.zoneout = ln_hh, ln_c, dropout, zoneout
        self._steps_done = 0
        self.grads: dict[str, np.ndarray] = {}

    def reset_grads(self):
        self.grads = {}

    def _accumulate(self, name, value):
        self.grads[name] = self.grads[name] + value if name in self.grads else value

    def step(self, xp, state, W_hh, b_hh):
        t = self.T - 1 - self._steps_done if self.reverse else self._steps_done
        self._steps_done += 1
        h = state[0]
        h_in = h if self.dropout is None else h * self.dropout  # variational: the same m at every step
        u = h_in @ W_hh.T  # (B, G)
        ln_cache = None
        if self.ln_hh is None:
            hp = u + b_hh
        else:
            hp, ln_cache = layer_norm(u, *self.ln_hh)
            hp = hp + b_hh
        tilde, gates_cache = self.cell_update(xp, hp, state)  # the cell's ordinary new state h~ (, c~)
        if self.zoneout is None:
            new_state, d = tilde, None
        else:
            d = tuple(z[t] for z in self.zoneout)  # (B, H) each, 1 = keep the previous value
            new_state = tuple(dk * s + (1.0 - dk) * s_new
                              for dk, s, s_new in zip(d, state, tilde, strict=True))
        return new_state, (h_in, u, ln_cache, gates_cache, d)

    def step_backward(self, d_state, cache, W_hh, out=None):
        h_in, u, ln_cache, gates_cache, d = cache
        if d is None:
            d_tilde, d_kept = d_state, tuple(0.0 for _ in d_state)
        else:
            d_tilde = tuple((1.0 - dk) * ds for dk, ds in zip(d, d_state, strict=True))
            d_kept = tuple(dk * ds for dk, ds in zip(d, d_state, strict=True))
        d_xp, d_hp, d_direct = self.cell_update_backward(d_tilde, gates_cache)
        if out is not None:  # the scan's (T, B, G) buffer for this step (see cells.py)
            out[...] = d_xp
            d_xp, d_hp = out, (out if d_hp is d_xp else d_hp)
        self._accumulate("bias_hh", d_hp.sum(axis=0))
        if self.ln_hh is None:
            d_u = d_hp
        else:
            d_u, d_gamma, d_beta = layer_norm_backward(d_hp, ln_cache, self.ln_hh[0])
            self._accumulate("layer_norm_hh_weight", d_gamma)
            self._accumulate("layer_norm_hh_bias", d_beta)
        self._accumulate("weight_hh", d_u.T @ h_in)  # (G, H), w.r.t. the weight-dropped W_hh
        d_h = d_u @ W_hh  # (B, H) through the recurrent projection
        if self.dropout is not None:
            d_h = d_h * self.dropout
        d_prev = (d_direct[0] + d_h, *d_direct[1:])
        return d_xp, d_hp, tuple(dp + dk for dp, dk in zip(d_prev, d_kept, strict=True))


class VariantRNNCell(VariantCell):
    """h~ = tanh(xp + hp) (or relu)."""

    gates = 1
    num_states = 1
    relu = False

    def cell_update(self, xp, hp, state):
        a = xp + hp  # (B, H)
        h_new = np.maximum(a, 0.0) if self.relu else np.tanh(a)
        return (h_new,), h_new

    def cell_update_backward(self, d_tilde, h_new):
        (dh,) = d_tilde
        d_pre = dh * (h_new > 0) if self.relu else dh * (1.0 - h_new * h_new)
        return d_pre, d_pre, (0.0,)


class VariantRNNReLUCell(VariantRNNCell):
    relu = True


class VariantLSTMCell(VariantCell):
    """a = xp + hp; i, f, o = sigma(.), g = tanh(.); c~ = f c + i g; h~ = o tanh(LN_c(c~))."""

    gates = 4
    num_states = 2

    def cell_update(self, xp, hp, state):
        h, c = state
        a = xp + hp  # (B, 4H)
        H = self.hidden_size
        i = sigmoid(a[:, :H])
        f = sigmoid(a[:, H : 2 * H])
        g = np.tanh(a[:, 2 * H : 3 * H])
        o = sigmoid(a[:, 3 * H :])
        c_new = f * c + i * g
        ln_cache = None
        if self.ln_c is None:
            tanh_c = np.tanh(c_new)
        else:
            c_norm, ln_cache = layer_norm(c_new, *self.ln_c)
            tanh_c = np.tanh(c_norm)
        h_new = o * tanh_c
        return (h_new, c_new), (c, i, f, g, o, tanh_c, ln_cache)

    def cell_update_backward(self, d_tilde, cache):
        dh, dc = d_tilde
        c, i, f, g, o, tanh_c, ln_cache = cache
        do = dh * tanh_c
        d_c_out = dh * o * (1.0 - tanh_c * tanh_c)  # through h~ = o tanh(LN_c(c~))
        if self.ln_c is not None:
            d_c_out, d_gamma, d_beta = layer_norm_backward(d_c_out, ln_cache, self.ln_c[0])
            self._accumulate("layer_norm_c_weight", d_gamma)
            self._accumulate("layer_norm_c_bias", d_beta)
        dc = dc + d_c_out
        d_pre = np.concatenate(
            [dc * g * i * (1.0 - i), dc * c * f * (1.0 - f), dc * i * (1.0 - g * g), do * o * (1.0 - o)],
            axis=1,
        )  # (B, 4H): i, f, g, o
        return d_pre, d_pre, (0.0, dc * f)


class VariantGRUCell(VariantCell):
    """r = sigma(xp_r + hp_r); z = sigma(xp_z + hp_z); n = tanh(xp_n + r hp_n); h~ = (1 - z) n + z h."""

    gates = 3
    num_states = 1

    def cell_update(self, xp, hp, state):
        (h,) = state
        H = self.hidden_size
        r = sigmoid(xp[:, :H] + hp[:, :H])
        z = sigmoid(xp[:, H : 2 * H] + hp[:, H : 2 * H])
        hp_n = hp[:, 2 * H :]
        n = np.tanh(xp[:, 2 * H :] + r * hp_n)
        return (n + z * (h - n),), (h, r, z, n, hp_n)

    def cell_update_backward(self, d_tilde, cache):
        (dh,) = d_tilde
        h, r, z, n, hp_n = cache
        dn_pre = dh * (1.0 - z) * (1.0 - n * n)
        dr_pre = dn_pre * hp_n * r * (1.0 - r)
        dz_pre = dh * (h - n) * z * (1.0 - z)
        d_xp = np.concatenate([dr_pre, dz_pre, dn_pre], axis=1)  # (B, 3H)
        d_hp = np.concatenate([dr_pre, dz_pre, dn_pre * r], axis=1)  # r multiplies hp_n
        return d_xp, d_hp, (dh * z,)


VARIANT_CELLS = {
    "RNN_TANH": VariantRNNCell,
    "RNN_RELU": VariantRNNReLUCell,
    "LSTM": VariantLSTMCell,
    "GRU": VariantGRUCell,
}


# ----------------------------------------------------------------------------------- layers


def _check_probability(name, p):
    if isinstance(p, bool) or not isinstance(p, (int, float, np.floating)) or not 0.0 <= p < 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1), got {p!r}")
    return float(p)


class VariantLayer(RecurrentLayer):
    """A stack of recurrent layers with layer norm, recurrent dropout, zoneout and weight drop as options.

    Parameters are torch.nn's (`weight_ih_l0`, ...) plus, with layer_norm, `layer_norm_ih_weight{sfx}`,
    `layer_norm_ih_bias{sfx}`, `layer_norm_hh_weight{sfx}`, `layer_norm_hh_bias{sfx}` (G,) and for LSTM
    `layer_norm_c_weight{sfx}`, `layer_norm_c_bias{sfx}` (H,); gamma = 1, beta = 0 at init.

    Args:
        layer_norm: normalise x W_ih^T and h W_hh^T (and c for LSTM).
        recurrent_dropout: p of the variational mask on the state entering W_hh, in [0, 1).
        zoneout: p of keeping the previous h (and c), in [0, 1).
        weight_drop: p of DropConnect on W_hh, in [0, 1).
        The rest as `layers.RecurrentLayer`.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        bidirectional: bool = False,
        layer_norm: bool = False,
        recurrent_dropout: float = 0.0,
        zoneout: float = 0.0,
        weight_drop: float = 0.0,
        seed: int | None = None,
        dtype=np.float64,
    ):
        self.layer_norm = bool(layer_norm)
        self.recurrent_dropout = _check_probability("recurrent_dropout", recurrent_dropout)
        self.zoneout = _check_probability("zoneout", zoneout)
        self.weight_drop = _check_probability("weight_drop", weight_drop)
        super().__init__(input_size, hidden_size, num_layers, nonlinearity, bias, batch_first, bidirectional,
                         seed, dtype)
        self.cell_class = VARIANT_CELLS[self.mode]
        self.training = True
        self.rng = np.random.default_rng(None if seed is None else [seed, 1])  # masks, apart from the init
        self.last_masks: dict[str, np.ndarray] = {}

    def train(self, mode: bool = True):
        self.training = bool(mode)
        return self

    def eval(self):
        return self.train(False)

    def _init_params(self, rng):
        params = super()._init_params(rng)
        if self.layer_norm:
            G, H = self.cell.gates * self.hidden_size, self.hidden_size
            for _, _, sfx in self._suffixes():
                sizes = {"ih": G, "hh": G, **({"c": H} if self.mode == "LSTM" else {})}
                for part, size in sizes.items():
                    params[f"layer_norm_{part}_weight{sfx}"] = np.ones(size, self.dtype)
                    params[f"layer_norm_{part}_bias{sfx}"] = np.zeros(size, self.dtype)
        return params

    def _ln(self, part, sfx):
        if f"layer_norm_{part}_weight{sfx}" not in self.params:
            return None
        return self.params[f"layer_norm_{part}_weight{sfx}"], self.params[f"layer_norm_{part}_bias{sfx}"]

    # ----------------------------------------------------------------------------------- masks

    def _mask_shapes(self, T, B):
        """The mask each enabled option needs in training, keyed kind + suffix: (shape, p)."""
        H, G = self.hidden_size, self.cell.gates * self.hidden_size
        shapes = {}
        for _, _, sfx in self._suffixes():
            if self.recurrent_dropout > 0:
                shapes["recurrent_dropout" + sfx] = ((B, H), self.recurrent_dropout)
            if self.weight_drop > 0:
                shapes["weight_drop" + sfx] = ((G, H), self.weight_drop)
            if self.zoneout > 0:
                shapes["zoneout_h" + sfx] = ((T, B, H), self.zoneout)
                if self.mode == "LSTM":
                    shapes["zoneout_c" + sfx] = ((T, B, H), self.zoneout)
        return shapes

    def _resolve_masks(self, masks, T, B):
        """The masks of this forward: given ones checked, missing ones drawn; {} in eval."""
        masks = {} if masks is None else dict(masks)
        if not self.training:
            if masks:
                raise ValueError(f"masks apply in training mode only, got {sorted(masks)} in eval mode")
            return {}
        shapes = self._mask_shapes(T, B)
        unexpected = sorted(set(masks) - set(shapes))
        if unexpected:
            raise ValueError(f"unexpected masks {unexpected}: this layer takes {sorted(shapes)} (p > 0 only)")
        resolved = {}
        for name, (shape, p) in shapes.items():
            if name in masks:
                m = check_array(masks[name], f"masks[{name!r}]", shape=shape, dtype=self.dtype)
                if name.startswith("zoneout") and not np.isin(m, (0.0, 1.0)).all():
                    raise ValueError(f"masks[{name!r}] must hold only 0 and 1 (1 = keep the previous value)")
            elif name.startswith("zoneout"):  # d ~ Bernoulli(p): keep the previous state
                m = (self.rng.random(shape) < p).astype(self.dtype)
            else:  # inverted dropout: Bernoulli(1 - p) / (1 - p)
                m = (self.rng.random(shape) < 1.0 - p).astype(self.dtype) / (1.0 - p)
            resolved[name] = m
        return resolved

    def _direction_masks(self, masks, sfx, T):
        """Per layer-direction: (dropout multiplier, weight-drop multiplier, zoneout tuple), each or None."""
        zoneout = None
        if self.zoneout > 0:
            names = ("zoneout_h", "zoneout_c")[: self.cell.num_states]
            if self.training:
                zoneout = tuple(masks[name + sfx] for name in names)  # (T, B, H) each
            else:  # the expectation: d_t = p everywhere
                zoneout = tuple(np.full((T, 1, 1), self.zoneout, self.dtype) for _ in names)
        return masks.get("recurrent_dropout" + sfx), masks.get("weight_drop" + sfx), zoneout

    # ----------------------------------------------------------------------------------- forward

    def forward(self, x, hx=None, lengths=None, masks=None):
        """Run the stack over a padded batch (see the module docstring for `masks`).

        Args:
            x: (T, B, I), or (B, T, I) when batch_first.
            hx: initial state(s), (L*D, B, H); for LSTM a pair (h_0, c_0). Zeros when None.
            lengths: (B,) the length of each sequence, 1 <= length <= T; None means all T.
            masks: dict of masks keyed kind + suffix (module docstring); training mode only;
                missing ones are drawn.

        Returns:
            output (T, B, D*H) (or batch first), and h_n (L*D, B, H) -- for LSTM (h_n, c_n).
        """
        x = check_array(x, "input", ndim=3, dtype=self.dtype)
        if self.batch_first:
            x = x.transpose(1, 0, 2)
        T, B, I = x.shape
        if I != self.input_size:
            raise ValueError(
                f"input.size(-1) must be equal to input_size. Expected {self.input_size}, got {I}"
            )
        states0 = self._initial_states(hx, B)
        mask = None
        if lengths is not None:
            lengths = check_lengths(lengths, T, B)
            if (lengths < T).any():
                mask = (np.arange(T)[:, None] < lengths[None, :])[:, :, None]  # (T, B, 1)
        masks = self._resolve_masks(masks, T, B)
        self.last_masks = masks

        caches, finals, layer_input = [], [], x
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(self.num_directions):
                index = layer * self.num_directions + direction
                sfx = f"_l{layer}" + ("_reverse" if direction else "")
                W_ih, W_hh, b_ih, b_hh = self._weights(sfx)
                dropout, weight, zoneout = self._direction_masks(masks, sfx, T)
                W_hh_used = W_hh if weight is None else W_hh * weight  # DropConnect, shared over B and T
                v = layer_input @ W_ih.T  # (T, B, G): all input projections in one product
                ln_cache = None
                if self.layer_norm:
                    v, ln_cache = layer_norm(v, *self._ln("ih", sfx))
                xp = v + b_ih
                ln_hh, ln_c = self._ln("hh", sfx), self._ln("c", sfx)
                cell = self.cell_class(self.hidden_size, bool(direction), T, ln_hh, ln_c, dropout, zoneout)
                state0 = tuple(s[index] for s in states0)
                ys, final, cache = scan(cell, xp, state0, W_hh_used, b_hh, mask, reverse=bool(direction))
                outputs.append(ys)
                finals.append(final)
                caches.append((layer_input, ln_cache, cell, cache, W_hh_used, weight))
            layer_input = outputs[0] if len(outputs) == 1 else np.concatenate(outputs, axis=2)  # (T, B, D*H)

        self._cache = (caches, mask, T, B)
        output = layer_input.transpose(1, 0, 2) if self.batch_first else layer_input
        h_n = np.stack([f[0] for f in finals])  # (L*D, B, H)
        if self.cell.num_states == 2:
            return output, (h_n, np.stack([f[1] for f in finals]))
        return output, h_n

    __call__ = forward

    # ----------------------------------------------------------------------------------- backward

    def backward(self, d_output, d_h_n=None, d_c_n=None, truncate=None):
        """Backpropagation through time for the last `forward` (the same contract as RecurrentLayer.backward).

        Returns:
            A dict with the gradient of every parameter under its state_dict name, "input" (shaped as x),
            "h0" (and "c0" for LSTM), (L*D, B, H). The masks are constants. `self.hidden_grads` as in
            RecurrentLayer.
        """
        if self._cache is None:
            raise RuntimeError("backward() needs a forward() first")
        if truncate is not None and (not isinstance(truncate, (int, np.integer)) or truncate < 1):
            raise ValueError(f"truncate must be a positive integer or None, got {truncate!r}")
        caches, mask, T, B = self._cache
        D, H = self.num_directions, self.hidden_size
        expected = (B, T, D * H) if self.batch_first else (T, B, D * H)
        d_output = check_array(d_output, "d_output", shape=expected, dtype=self.dtype)
        if self.batch_first:
            d_output = d_output.transpose(1, 0, 2)
        state_shape = (self.num_layers * D, B, H)
        d_finals = [
            np.zeros(state_shape, self.dtype) if d is None else check_state(d, name, state_shape, self.dtype)
            for d, name in ((d_h_n, "d_h_n"), (d_c_n, "d_c_n"))[: self.cell.num_states]
        ]

        grads = {}
        d_states0 = [np.zeros(state_shape, self.dtype) for _ in range(self.cell.num_states)]
        d_layer_output = d_output
        for layer in reversed(range(self.num_layers)):
            d_layer_input = None
            for direction in range(D):
                index = layer * D + direction
                sfx = f"_l{layer}" + ("_reverse" if direction else "")
                layer_input, ln_cache, cell, cache, W_hh_used, weight = caches[index]
                d_ys = d_layer_output[:, :, direction * H : (direction + 1) * H]
                d_final = tuple(d[index] for d in d_finals)
                cell.reset_grads()  # the cell accumulates W_hh, b_hh, LN_hh, LN_c gradients step by step
                d_xp, _, d_state0, dh = scan_backward(cell, d_ys, d_final, cache, W_hh_used, mask, truncate)
                self.hidden_grads[sfx] = dh
                G = d_xp.shape[2]
                zeros = {"weight_hh": np.zeros((G, H), self.dtype), "bias_hh": np.zeros(G, self.dtype)}
                step_grads = {**zeros, **cell.grads}
                d_W_hh = step_grads["weight_hh"]
                grads["weight_hh" + sfx] = d_W_hh if weight is None else d_W_hh * weight  # W_hh' = W_hh * M
                if self.bias:
                    grads["bias_ih" + sfx] = d_xp.sum(axis=(0, 1))
                    grads["bias_hh" + sfx] = step_grads["bias_hh"]
                d_v = d_xp  # (T, B, G) w.r.t. x W_ih^T
                if self.layer_norm:
                    gamma_ih = self.params["layer_norm_ih_weight" + sfx]
                    d_v, d_gamma, d_beta = layer_norm_backward(d_xp, ln_cache, gamma_ih)
                    grads["layer_norm_ih_weight" + sfx], grads["layer_norm_ih_bias" + sfx] = d_gamma, d_beta
                    for part, size in (("hh", G), ("c", H)):
                        for kind in ("weight", "bias"):
                            name = f"layer_norm_{part}_{kind}"
                            if name + sfx in self.params:
                                grads[name + sfx] = step_grads.get(name, np.zeros(size, self.dtype))
                W_ih = self.params["weight_ih" + sfx]
                grads["weight_ih" + sfx] = d_v.reshape(-1, G).T @ layer_input.reshape(T * B, -1)
                d_in = d_v @ W_ih  # (T, B, I_layer)
                d_layer_input = d_in if d_layer_input is None else d_layer_input + d_in
                for d0, d in zip(d_states0, d_state0, strict=True):
                    d0[index] = d
            d_layer_output = d_layer_input

        grads["input"] = d_layer_output.transpose(1, 0, 2) if self.batch_first else d_layer_output
        grads["h0"] = d_states0[0]
        if self.cell.num_states == 2:
            grads["c0"] = d_states0[1]
        return {name: grads[name] for name in [*self.params, "input", "h0", "c0"] if name in grads}

    def __repr__(self):
        options = [f"layer_norm={self.layer_norm}"] if self.layer_norm else []
        for name in ("recurrent_dropout", "zoneout", "weight_drop"):
            if getattr(self, name) > 0:
                options.append(f"{name}={getattr(self, name)}")
        base = super().__repr__()
        return base[:-1] + "".join(", " + o for o in options) + ")"


class VariantRNN(VariantLayer):
    """Elman RNN (tanh or relu) with the variant options; see `VariantLayer`."""

    mode = "RNN_TANH"


class VariantLSTM(VariantLayer):
    """LSTM (torch gate order i, f, g, o) with the variant options; see `VariantLayer`."""

    mode = "LSTM"

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 bidirectional=False, layer_norm=False, recurrent_dropout=0.0, zoneout=0.0, weight_drop=0.0,
                 seed=None, dtype=np.float64):
        super().__init__(input_size, hidden_size, num_layers, "tanh", bias, batch_first, bidirectional,
                         layer_norm, recurrent_dropout, zoneout, weight_drop, seed, dtype)


class VariantGRU(VariantLayer):
    """GRU (torch gate order r, z, n) with the variant options; see `VariantLayer`."""

    mode = "GRU"

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 bidirectional=False, layer_norm=False, recurrent_dropout=0.0, zoneout=0.0, weight_drop=0.0,
                 seed=None, dtype=np.float64):
        super().__init__(input_size, hidden_size, num_layers, "tanh", bias, batch_first, bidirectional,
                         layer_norm, recurrent_dropout, zoneout, weight_drop, seed, dtype)


class LayerNormRNN(VariantRNN):
    """Layer-normalised Elman RNN: h' = tanh(LN_ih(x W_ih^T) + b_ih + LN_hh(h W_hh^T) + b_hh)."""

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, bidirectional=False, seed=None, dtype=np.float64, **options):
        super().__init__(input_size, hidden_size, num_layers, nonlinearity, bias, batch_first, bidirectional,
                         layer_norm=True, seed=seed, dtype=dtype, **options)


class LayerNormLSTM(VariantLSTM):
    """Layer-normalised LSTM (Ba et al. 2016): LN on x W_ih^T, h W_hh^T and on c' before the output tanh."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 bidirectional=False, seed=None, dtype=np.float64, **options):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, bidirectional,
                         layer_norm=True, seed=seed, dtype=dtype, **options)


class LayerNormGRU(VariantGRU):
    """Layer-normalised GRU: LN on x W_ih^T and on h W_hh^T (before r gates the n part)."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 bidirectional=False, seed=None, dtype=np.float64, **options):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, bidirectional,
                         layer_norm=True, seed=seed, dtype=dtype, **options)
