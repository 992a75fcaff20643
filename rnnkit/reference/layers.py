"""Multi-layer, bidirectional recurrent layers in NumPy, with hand-written backpropagation through time.

Parameters are named and shaped exactly as in a torch.nn state_dict (`weight_ih_l0`, `weight_hh_l0`,
`bias_ih_l0`, `bias_hh_l0`, and `..._reverse` for the backward direction), so a trained torch model loads
as-is:

    >>> import numpy as np
    >>> from rnnkit import reference
    >>> lstm = reference.LSTM(input_size=3, hidden_size=5, num_layers=2, seed=0)
    >>> x = np.random.default_rng(0).normal(size=(7, 4, 3))          # (T, B, I)
    >>> out, (h_n, c_n) = lstm.forward(x)
    >>> out.shape, h_n.shape
    ((7, 4, 5), (2, 4, 5))
    >>> grads = lstm.backward(np.ones_like(out))
    >>> grads["weight_hh_l1"].shape, grads["input"].shape
    ((20, 5), (7, 4, 3))

Each layer-direction: project all inputs at once (xp = x W_ih^T + b_ih, one matrix product), scan the cell
over time, and in the backward pass form dW_ih, dW_hh with one matrix product each after the time loop.

Shapes: T time, B batch, I input, H hidden, G = gates * H, L layers, D directions.
"""

from __future__ import annotations

import numpy as np

from .cells import CELLS
from .scan import scan, scan_backward
from .validate import check_array, check_lengths, check_state, describe, load_into


def project(layer_input, W_ih):
    """x W_ih^T at every time step, (T, B, I) -> (T, B, G): one 2-D product (a 3-D one loops over T)."""
    T, B, _ = layer_input.shape
    return (layer_input.reshape(T * B, -1) @ W_ih.T).reshape(T, B, -1)


def sum_outer(d, v):
    """sum over t and b of the outer products d_tb v_tb^T: (T, B, G), (T, B, K) -> (G, K), one product."""
    return d.reshape(-1, d.shape[2]).T @ v.reshape(-1, v.shape[2])


def project_backward(d_xp, layer_input, W_ih):
    """The gradients of `project`: dL/d layer_input (T, B, I) and {"weight_ih": (G, I)}."""
    T, B, G = d_xp.shape
    d_in = (d_xp.reshape(T * B, G) @ W_ih).reshape(T, B, -1)  # (T, B, I), one 2-D product
    return d_in, {"weight_ih": sum_outer(d_xp, layer_input)}


class RecurrentLayer:
    """A stack of `num_layers` recurrent layers of one cell kind, each uni- or bidirectional."""

    mode = "RNN_TANH"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        bidirectional: bool = False,
        seed: int | None = None,
        dtype=np.float64,
    ):
        sizes = (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers))
        for name, value in sizes:
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.mode.startswith("RNN"):
            if nonlinearity not in ("tanh", "relu"):
                raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
            self.mode = "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"
        self.cell = CELLS[self.mode]
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.nonlinearity, self.bias, self.batch_first = nonlinearity, bias, batch_first
        self.bidirectional = bidirectional
        self.num_directions = 2 if bidirectional else 1
        self.dtype = np.dtype(dtype)
        self.params = self._init_params(np.random.default_rng(seed))
        self.hidden_grads: dict[str, np.ndarray] = {}
        self._cache = None

    # ----------------------------------------------------------------------------------- parameters

    def _suffixes(self):
        """(layer, direction, name suffix) for every layer-direction, in torch's order."""
        for layer in range(self.num_layers):
            for direction in range(self.num_directions):
                yield layer, direction, f"_l{layer}" + ("_reverse" if direction else "")

    def _init_params(self, rng):
        """torch's default: every parameter ~ U(-1/sqrt(H), 1/sqrt(H))."""
        H, G, bound = self.hidden_size, self.cell.gates * self.hidden_size, 1.0 / np.sqrt(self.hidden_size)
        params = {}
        for layer, _, sfx in self._suffixes():
            in_size = self.input_size if layer == 0 else H * self.num_directions
            shapes = {"weight_ih": (G, in_size), "weight_hh": (G, H)}
            if self.bias:
                shapes.update(bias_ih=(G,), bias_hh=(G,))
            for name, shape in shapes.items():
                params[name + sfx] = rng.uniform(-bound, bound, size=shape).astype(self.dtype)
        return params

    def state_dict(self) -> dict[str, np.ndarray]:
        """The parameters under torch.nn's names (the arrays themselves, not copies)."""
        return dict(self.params)

    def load_state_dict(self, state_dict) -> None:
        """Load arrays (or CPU torch tensors) named and shaped as ours, in place, after all checks pass."""
        load_into(self.params, state_dict)

    def _weights(self, sfx):
        W_ih, W_hh = self.params["weight_ih" + sfx], self.params["weight_hh" + sfx]
        if self.bias:
            return W_ih, W_hh, self.params["bias_ih" + sfx], self.params["bias_hh" + sfx]
        G = W_hh.shape[0]
        return W_ih, W_hh, np.zeros(G, self.dtype), np.zeros(G, self.dtype)

    # ----------------------------------------------------------------------------------- forward

    def forward(self, x, hx=None, lengths=None):
        """Run the stack over a padded batch.

        Args:
            x: (T, B, I), or (B, T, I) when batch_first; T >= 1, B >= 1.
            hx: initial state(s), (L*D, B, H); for LSTM a pair (h_0, c_0). Zeros when None.
            lengths: (B,) the length of each sequence, 1 <= length <= T; None means all T.

        Returns:
            output (T, B, D*H) (or batch first), and h_n (L*D, B, H) -- for LSTM (h_n, c_n).
        """
        x, states0, mask = self._check_forward(x, hx, lengths)
        return self._forward(x, states0, mask)

    __call__ = forward

    def _check_forward(self, x, hx, lengths):
        """The boundary: x time-major (T, B, I), the initial states, and the (T, B, 1) length mask or None."""
        x = check_array(x, "input", ndim=3, dtype=self.dtype)
        if self.batch_first:
            x = x.transpose(1, 0, 2)
        T, B, I = x.shape
        if T == 0 or B == 0:
            shown = (B, T, I) if self.batch_first else (T, B, I)
            layout = "(B, T, I)" if self.batch_first else "(T, B, I)"
            raise ValueError(f"input must have at least one time step and one sequence, got shape {shown} "
                             f"{layout}")
        if I != self.input_size:
            raise ValueError(
                f"input.size(-1) must be equal to input_size. Expected {self.input_size}, got {I}"
            )
        states0 = self._initial_states(hx, B)
        mask = None
        if lengths is not None:
            lengths = check_lengths(lengths, T, B)
            if (lengths < T).any():
                mask = (np.arange(T)[:, None] < lengths[None, :])[:, :, None]  # (T, B, 1) of 0/1
                mask = mask.astype(self.dtype)  # not bool: 1 - mask must stay in the data's dtype
        return x, states0, mask

    def _forward(self, x, states0, mask):
        """Every layer, each direction over the previous layer's output (the directions concatenated)."""
        caches, finals, layer_input = [], [], x
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(self.num_directions):
                sfx = f"_l{layer}" + ("_reverse" if direction else "")
                state0 = tuple(s[layer * self.num_directions + direction] for s in states0)
                ys, final, cache = self._direction_forward(layer_input, sfx, state0, mask, bool(direction))
                outputs.append(ys)
                finals.append(final)
                caches.append(cache)
            layer_input = outputs[0] if len(outputs) == 1 else np.concatenate(outputs, axis=2)  # (T, B, D*H)

        self._cache = (caches, mask, *x.shape[:2])
        output = layer_input.transpose(1, 0, 2) if self.batch_first else layer_input
        h_n = np.stack([f[0] for f in finals])  # (L*D, B, H)
        if self.cell.num_states == 2:
            return output, (h_n, np.stack([f[1] for f in finals]))
        return output, h_n

    def _direction_forward(self, layer_input, sfx, state0, mask, reverse):
        """One layer-direction: project all inputs at once, scan the cell. Returns (ys, final, cache)."""
        W_ih, W_hh, b_ih, b_hh = self._weights(sfx)
        xp = project(layer_input, W_ih)  # (T, B, G)
        xp += b_ih
        ys, final, cache = scan(self.cell, xp, state0, W_hh, b_hh, mask, reverse)
        return ys, final, (layer_input, cache)

    def _initial_states(self, hx, B):
        shape = (self.num_layers * self.num_directions, B, self.hidden_size)
        if hx is None:
            return tuple(np.zeros(shape, self.dtype) for _ in range(self.cell.num_states))
        if self.cell.num_states == 2:
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise ValueError(f"LSTM expects hx as a tuple (h_0, c_0), got {describe(hx)}")
            names = ("h_0", "c_0")
            return tuple(check_state(s, name, shape, self.dtype) for s, name in zip(hx, names, strict=True))
        return (check_state(hx, "hx", shape, self.dtype),)

    # ----------------------------------------------------------------------------------- backward

    def backward(self, d_output, d_h_n=None, d_c_n=None, truncate=None):
        """Backpropagation through time for the last `forward`.

        Args:
            d_output: dL/d output, shaped as the output.
            d_h_n, d_c_n: dL/d h_n and (LSTM) dL/d c_n, (L*D, B, H); zeros when None.
            truncate: truncated BPTT: backpropagate through the last `truncate` steps of each sequence only,
                counted from that sequence's own end in each direction's processing order (forward direction:
                t = length-k ... length-1; reverse direction: t = k-1 ... 0). The state entering those steps
                is a constant, so the gradients of the earlier inputs are 0, and "h0" ("c0") is 0 for every
                sequence longer than `truncate`; truncate >= T is full BPTT.

        Returns:
            A dict with the gradient of every parameter under its state_dict name, and "input" (dL/dx, shaped
            as x), "h0" (and "c0" for LSTM), (L*D, B, H). `self.hidden_grads` then holds dL/dh_t, (T, B, H),
            for every layer-direction, keyed by its name suffix (e.g. "_l0", "_l1_reverse").
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
                d_ys = d_layer_output[:, :, direction * H : (direction + 1) * H]
                d_final = tuple(d[index] for d in d_finals)
                d_in, d_state0, direction_grads = self._direction_backward(
                    d_ys, d_final, caches[index], sfx, mask, truncate
                )
                grads.update(direction_grads)
                d_layer_input = d_in if d_layer_input is None else d_layer_input + d_in
                for d0, d in zip(d_states0, d_state0, strict=True):
                    d0[index] = d
            d_layer_output = d_layer_input

        grads["input"] = d_layer_output.transpose(1, 0, 2) if self.batch_first else d_layer_output
        grads["h0"] = d_states0[0]
        if self.cell.num_states == 2:
            grads["c0"] = d_states0[1]
        return {name: grads[name] for name in [*self.params, "input", "h0", "c0"] if name in grads}

    def _direction_backward(self, d_ys, d_final, cache, sfx, mask, truncate):
        """One layer-direction backward: (dL/d layer_input (T, B, I_layer), d_state0, {name: gradient})."""
        layer_input, scan_cache = cache
        W_ih, W_hh, _, _ = self._weights(sfx)
        d_xp, d_hp, d_state0, dh = scan_backward(self.cell, d_ys, d_final, scan_cache, W_hh, mask, truncate)
        self.hidden_grads[sfx] = dh
        d_in, grads = project_backward(d_xp, layer_input, W_ih)
        grads["weight_hh"] = sum_outer(d_hp, scan_cache.h_prev)  # (G, H)
        if self.bias:
            grads["bias_ih"] = d_xp.sum(axis=(0, 1))
            grads["bias_hh"] = d_hp.sum(axis=(0, 1))
        return d_in, d_state0, {name + sfx: g for name, g in grads.items()}

    def __repr__(self):
        extra = f", num_layers={self.num_layers}" if self.num_layers > 1 else ""
        extra += ", bidirectional=True" if self.bidirectional else ""
        extra += ", batch_first=True" if self.batch_first else ""
        return f"{type(self).__name__}({self.input_size}, {self.hidden_size}{extra})"


class RNN(RecurrentLayer):
    """Elman RNN: h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh) (or relu with nonlinearity="relu")."""

    mode = "RNN_TANH"


class GatedSignature:
    """torch.nn.LSTM's and GRU's argument list: the layer's without `nonlinearity` (a gated cell has none)."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 bidirectional=False, *args, **kwargs):
        super().__init__(input_size, hidden_size, num_layers, "tanh", bias, batch_first, bidirectional,
                         *args, **kwargs)


class LSTM(GatedSignature, RecurrentLayer):
    """LSTM with torch.nn.LSTM's equations and gate order (i, f, g, o); see `cells.LSTM`.

    Args: as `RecurrentLayer` less `nonlinearity`: (input_size, hidden_size, num_layers=1, bias=True,
    batch_first=False, bidirectional=False, seed=None, dtype=np.float64).
    """

    mode = "LSTM"


class GRU(GatedSignature, RecurrentLayer):
    """GRU with torch.nn.GRU's equations and gate order (r, z, n); see `cells.GRU`.

    Args: as `LSTM`.
    """

    mode = "GRU"
