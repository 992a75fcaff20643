"""Recurrent variants in NumPy, forward and hand-written BPTT: layer normalisation (Ba et al. 2016), recurrent
dropout (Gal and Ghahramani 2016), zoneout (Krueger et al. 2016), weight drop (Merity et al. 2017).

The twins of rnnkit.nn's variant layers; both implement the equations of docs/variants.md:

    xp = LN_ih(x W_ih^T) + b_ih                       all time steps at once (LN only with layer_norm=True)
    hp = LN_hh((h * m) (W_hh * M)^T) + b_hh           m: recurrent dropout mask, M: weight-drop mask
    LSTM: c~ = f c + i g, h~ = o tanh(LN_c(c~));  GRU: torch.nn.GRU's r, z, n;  RNN: h~ = tanh(xp + hp)
    h_t = d_t h_{t-1} + (1 - d_t) h~_t                zoneout (c likewise, with its own mask)

Masks: `layer.forward(x, hx=None, lengths=None, masks=None)`; `masks` and `layer.last_masks` are flat
dicts keyed kind + layer-direction suffix, the layout of rnnkit.nn's `masks=` / `last_masks` (see `masks.py`).
Masks apply in training mode only; in eval (`layer.eval()`) m = 1, M = 1 and zoneout takes its expectation
h_t = p h_{t-1} + (1 - p) h~_t, so eval is deterministic.

Composition: a variant layer is a `layers.RecurrentLayer` that overrides only its per-direction hooks. Each
layer-direction wraps the plain cell's `update` (`cells.py`) in a `VariantCell`, which adds the recurrent
projection with dropout, layer norm and zoneout and satisfies the scan's step / step_backward protocol; the
layer runs it with `scan.scan` / `scan.scan_backward` (lengths, reverse, truncation) and forms the input-side
gradients after the time loop. The cell holds the masks and layer-norm parameters of its layer-direction and
accumulates the gradients of the recurrent-side parameters (W_hh, b_hh, LN_hh, LN_c) during step_backward.

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

from .cells import LSTM
from .layer_norm import layer_norm, layer_norm_backward
from .layers import GatedSignature, RecurrentLayer, project, project_backward
from .masks import mask_shapes, resolve_masks
from .scan import scan, scan_backward

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

# ----------------------------------------------------------------------------------- cells


class VariantCell:
    """A plain cell's `update` with the variants' recurrent projection and zoneout around it.

        hp = LN_hh((h * m) W_hh^T) + b_hh,   state~ = cell.update(xp, hp, state),   h = d h_prev + (1 - d) h~

    Satisfies the step protocol of `cells.py` (`step(xp, state, W_hh, b_hh)`, `step_backward(d_state, cache,
    W_hh, out=None)`), with W_hh the weight-dropped matrix the layer passes in. Built afresh for every forward
    call of one layer-direction: `scan` calls `step` once per time step in processing order, which is how the
    cell finds the time index t of its zoneout masks.

    Args:
        cell: the plain cell (`cells.CELLS[mode]`) whose `update` gives the gate equations.
        reverse: whether the scan processes t = T-1 ... 0.
        T: the number of time steps.
        ln_hh: (gamma, beta), each (G,), or None for no layer norm on h W_hh^T.
        dropout: (B, H) the scaled recurrent-dropout mask m / (1 - p), or None.
        zoneout: one (T, B, H) array per state (or (T, 1, 1) filled with p in eval), or None.
    """

    def __init__(self, cell, reverse, T, ln_hh=None, dropout=None, zoneout=None):
        self.cell, self.gates, self.num_states = cell, cell.gates, cell.num_states
        self.reverse, self.T = reverse, T
        self.ln_hh, self.dropout, self.zoneout = ln_hh, dropout, zoneout
        self._steps_done = 0
        self.grads: dict[str, np.ndarray] = {}

    def update(self, xp, hp, state):
        return self.cell.update(xp, hp, state)

    def update_backward(self, d_state, cache, out=None):
        return self.cell.update_backward(d_state, cache, out)

    def reset_grads(self):
        self.grads = {}

    def _accumulate(self, name, value):
        self.grads[name] = self.grads[name] + value if name in self.grads else value

    def step(self, xp, state, W_hh, b_hh):
        t = self.T - 1 - self._steps_done if self.reverse else self._steps_done
        self._steps_done += 1
        h = state[0]
        h_in = h if self.dropout is None else h * self.dropout  # variational: the same m at every step
        hp = h_in @ W_hh.T  # (B, G)
        ln_cache = None
        if self.ln_hh is not None:
            hp, ln_cache = layer_norm(hp, *self.ln_hh)
        hp = hp + b_hh
        tilde, update_cache = self.update(xp, hp, state)  # the cell's ordinary new state h~ (, c~)
        if self.zoneout is None:
            return tilde, (h_in, ln_cache, update_cache, None)
        d = tuple(z[t] for z in self.zoneout)  # (B, H) each, 1 = keep the previous value
        new_state = tuple(dk * s + (1.0 - dk) * s_new for dk, s, s_new in zip(d, state, tilde, strict=True))
        return new_state, (h_in, ln_cache, update_cache, d)

    def step_backward(self, d_state, cache, W_hh, out=None):
        h_in, ln_cache, update_cache, d = cache
        d_tilde = d_state if d is None else tuple((1.0 - dk) * ds for dk, ds in zip(d, d_state, strict=True))
        d_xp, d_hp, d_direct = self.update_backward(d_tilde, update_cache, out)
        self._accumulate("bias_hh", d_hp.sum(axis=0))
        d_u = d_hp  # (B, G) w.r.t. (h * m) W_hh^T
        if self.ln_hh is not None:
            d_u, d_gamma, d_beta = layer_norm_backward(d_hp, ln_cache, self.ln_hh[0])
            self._accumulate("layer_norm_hh_weight", d_gamma)
            self._accumulate("layer_norm_hh_bias", d_beta)
        self._accumulate("weight_hh", d_u.T @ h_in)  # (G, H), w.r.t. the weight-dropped W_hh
        d_h = d_u @ W_hh  # (B, H) through the recurrent projection
        if self.dropout is not None:
            d_h *= self.dropout
        d_prev = (d_h if d_direct[0] is None else d_h + d_direct[0], *d_direct[1:])
        if d is None:
            return d_xp, d_hp, d_prev
        return d_xp, d_hp, tuple(dp + dk * ds for dp, dk, ds in zip(d_prev, d, d_state, strict=True))


class LayerNormLSTMCell(VariantCell):
    """The LSTM of Ba et al. (2016): LN on c~ before the output tanh, h~ = o tanh(LN_c(c~)).

    Args:
        ln_c: (gamma, beta), each (H,). The rest as `VariantCell`, whose cell is `cells.LSTM`.
    """

    def __init__(self, ln_c, reverse, T, ln_hh=None, dropout=None, zoneout=None):
        super().__init__(LSTM, reverse, T, ln_hh, dropout, zoneout)
        self.ln_c = ln_c

    def update(self, xp, hp, state):
        (_, c_new), (c, gates, g, _) = LSTM.update(xp, hp, state)  # i, f, g, o and c~ = f c + i g
        c_norm, ln_cache = layer_norm(c_new, *self.ln_c)
        tanh_c = np.tanh(c_norm)
        h_new = gates[:, 3 * c.shape[1] :] * tanh_c  # o tanh(LN_c(c~)), in place of LSTM's o tanh(c~)
        return (h_new, c_new), ((c, gates, g, tanh_c), ln_cache)

    def update_backward(self, d_state, cache, out=None):
        dh, dc = d_state
        lstm_cache, ln_cache = cache
        c, gates, _, tanh_c = lstm_cache
        d_c_norm = dh * gates[:, 3 * c.shape[1] :] * (1.0 - tanh_c * tanh_c)  # through h~ = o tanh(LN_c(c~))
        d_c_new, d_gamma, d_beta = layer_norm_backward(d_c_norm, ln_cache, self.ln_c[0])
        self._accumulate("layer_norm_c_weight", d_gamma)
        self._accumulate("layer_norm_c_bias", d_beta)
        return LSTM.gates_backward(dh, dc + d_c_new, lstm_cache, out)


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
        The rest as `layers.RecurrentLayer`, whose `backward` this layer uses as is (the masks are constants).
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

    def _resolve_masks(self, masks, T, B):
        """The masks of this forward: given ones checked, missing ones drawn; {} in eval."""
        if not self.training:
            if masks:
                raise ValueError(f"masks apply in training mode only, got {sorted(masks)} in eval mode")
            return {}
        H, G = self.hidden_size, self.cell.gates * self.hidden_size
        shapes = {}
        for _, _, sfx in self._suffixes():
            shapes.update(mask_shapes(sfx, T, B, H, G, self.cell.num_states, self.recurrent_dropout,
                                      self.weight_drop, self.zoneout))
        return resolve_masks(masks, shapes, self.rng, self.dtype)

    def _direction_masks(self, sfx, T):
        """Per layer-direction: (dropout multiplier, weight-drop multiplier, zoneout tuple), each or None."""
        zoneout = None
        if self.zoneout > 0:
            names = ("zoneout_h", "zoneout_c")[: self.cell.num_states]
            if self.training:
                zoneout = tuple(self.last_masks[name + sfx] for name in names)  # (T, B, H) each
            else:  # the expectation: d_t = p everywhere
                zoneout = tuple(np.full((T, 1, 1), self.zoneout, self.dtype) for _ in names)
        masks = self.last_masks
        return masks.get("recurrent_dropout" + sfx), masks.get("weight_drop" + sfx), zoneout

    # ----------------------------------------------------------------------------------- forward, backward

    def forward(self, x, hx=None, lengths=None, masks=None):
        """Run the stack over a padded batch (see the module docstring for `masks`).

        Args:
            x: (T, B, I), or (B, T, I) when batch_first; T >= 1, B >= 1.
            hx: initial state(s), (L*D, B, H); for LSTM a pair (h_0, c_0). Zeros when None.
            lengths: (B,) the length of each sequence, 1 <= length <= T; None means all T.
            masks: dict of masks keyed kind + suffix (module docstring); training mode only;
                missing ones are drawn.

        Returns:
            output (T, B, D*H) (or batch first), and h_n (L*D, B, H) -- for LSTM (h_n, c_n).
        """
        x, states0, mask = self._check_forward(x, hx, lengths)
        self.last_masks = self._resolve_masks(masks, *x.shape[:2])
        return self._forward(x, states0, mask)

    __call__ = forward

    def _direction_forward(self, layer_input, sfx, state0, mask, reverse):
        T = layer_input.shape[0]
        W_ih, W_hh, b_ih, b_hh = self._weights(sfx)
        dropout, weight, zoneout = self._direction_masks(sfx, T)
        W_hh_used = W_hh if weight is None else W_hh * weight  # DropConnect, shared over B and T
        v = project(layer_input, W_ih)  # (T, B, G)
        ln_cache = None
        if self.layer_norm:
            v, ln_cache = layer_norm(v, *self._ln("ih", sfx))
        xp = v + b_ih
        ln_hh, ln_c = self._ln("hh", sfx), self._ln("c", sfx)
        if ln_c is None:
            cell = VariantCell(self.cell, reverse, T, ln_hh, dropout, zoneout)
        else:
            cell = LayerNormLSTMCell(ln_c, reverse, T, ln_hh, dropout, zoneout)
        ys, final, cache = scan(cell, xp, state0, W_hh_used, b_hh, mask, reverse)
        return ys, final, (layer_input, ln_cache, cell, cache, W_hh_used, weight)

    def _direction_backward(self, d_ys, d_final, cache, sfx, mask, truncate):
        layer_input, ln_cache, cell, scan_cache, W_hh_used, weight = cache
        cell.reset_grads()  # the cell accumulates W_hh, b_hh, LN_hh, LN_c gradients step by step
        d_xp, _, d_state0, dh = scan_backward(cell, d_ys, d_final, scan_cache, W_hh_used, mask, truncate)
        self.hidden_grads[sfx] = dh
        grads = dict(cell.grads)
        if weight is not None:
            grads["weight_hh"] = grads["weight_hh"] * weight  # W_hh' = W_hh * M
        grads["bias_ih"] = d_xp.sum(axis=(0, 1))
        d_v = d_xp  # (T, B, G) w.r.t. x W_ih^T
        if self.layer_norm:
            d_v, grads["layer_norm_ih_weight"], grads["layer_norm_ih_bias"] = layer_norm_backward(
                d_xp, ln_cache, self.params["layer_norm_ih_weight" + sfx]
            )
        d_in, input_grads = project_backward(d_v, layer_input, self.params["weight_ih" + sfx])
        grads.update(input_grads)
        return d_in, d_state0, {name + sfx: g for name, g in grads.items() if name + sfx in self.params}

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


class VariantLSTM(GatedSignature, VariantLayer):
    """LSTM (torch gate order i, f, g, o) with the variant options; see `VariantLayer` (no `nonlinearity`)."""

    mode = "LSTM"


class VariantGRU(GatedSignature, VariantLayer):
    """GRU (torch gate order r, z, n) with the variant options; see `VariantLayer` (no `nonlinearity`)."""

    mode = "GRU"


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
