"""MinGRU and MinLSTM (Feng et al. 2024, "Were RNNs All We Needed?") in NumPy, with hand-written BPTT.

The twins of rnnkit.nn.minimal, run step by step in linear space (the torch layers' parallel log-space scan
must agree with them):

    g(x) = x + 0.5 if x >= 0 else sigma(x)
    MinGRU:  z = sigma(W_z x + b_z), h~ = g(W_h x + b_h),            h' = (1 - z) h + z h~
    MinLSTM: f = sigma(.), i = sigma(.), h~ = g(.),                  h' = (f h + i h~) / (f + i)

The gates see only the input, so dh/dh_prev is the diagonal a_t (1 - z, or f' = f / (f + i)); all input
projections are one matrix product, before the loop (forward) and after it (backward). Variable lengths are a
mask (padded steps are the identity, their outputs 0) and bidirectional=True adds a reverse direction, as the
torch layers. Parameters per layer k as torch: `weight_ih_l{k}` (2H or 3H, I_k) with rows [z; h~] or
[f; i; h~], `bias_ih_l{k}` (and `_reverse`). Default h_0 = 0.5.

    >>> import numpy as np
    >>> from rnnkit.reference.minimal import MinGRU
    >>> rnn = MinGRU(3, 4, num_layers=2, seed=0)
    >>> out, h_n = rnn.forward(np.ones((5, 2, 3)))
    >>> grads = rnn.backward(np.ones_like(out))
    >>> out.shape, grads["weight_ih_l1"].shape, grads["h0"].shape
    ((5, 2, 4), (8, 4), (2, 2, 4))

Shapes: T time, B batch, I input, H hidden, L layers, D directions.
"""

from __future__ import annotations

import numpy as np

from .cells import sigmoid
from .validate import check_array, check_lengths, check_state, load_into

__all__ = ["MinGRU", "MinGRUCell", "MinLSTM", "MinLSTMCell", "g", "g_prime"]


def g(x):
    """g(x) = x + 0.5 for x >= 0, sigma(x) otherwise (positive, so the torch twin can work in log space)."""
    return np.where(x >= 0, x + 0.5, sigmoid(x))


def g_prime(x):
    """g'(x) = 1 for x >= 0, sigma(x) (1 - sigma(x)) otherwise."""
    s = sigmoid(x)
    return np.where(x >= 0, 1.0, s * (1.0 - s))


class MinGRUCell:
    """h' = (1 - z) h + z g(pre_h), z = sigma(k); xp = [k; pre_h] (B, 2H)."""

    gates = 2

    @staticmethod
    def step(xp, h):
        k, pre_h = np.split(xp, 2, axis=1)  # (B, H) each
        z, h_tilde = sigmoid(k), g(pre_h)
        return (1.0 - z) * h + z * h_tilde, (h, z, h_tilde, pre_h)

    @staticmethod
    def step_backward(dh, cache):
        h, z, h_tilde, pre_h = cache
        dk = dh * (h_tilde - h) * z * (1.0 - z)
        d_pre_h = dh * z * g_prime(pre_h)
        return np.concatenate([dk, d_pre_h], axis=1), dh * (1.0 - z)  # d_xp (B, 2H), dh_prev


class MinLSTMCell:
    """h' = f' h + i' g(pre_h) with f' = f / (f + i), i' = i / (f + i); xp = [k_f; k_i; pre_h] (B, 3H).

    Backward through diff = log(i / f) = softplus(-k_f) - softplus(-k_i): f' = sigma(-diff), i' = sigma(diff),
    so dh'/d diff = f' i' (h~ - h), d diff/d k_f = -(1 - f), d diff/d k_i = 1 - i.
    """

    gates = 3

    @staticmethod
    def step(xp, h):
        k_f, k_i, pre_h = np.split(xp, 3, axis=1)  # (B, H) each
        f, i, h_tilde = sigmoid(k_f), sigmoid(k_i), g(pre_h)
        f_norm, i_norm = f / (f + i), i / (f + i)
        return f_norm * h + i_norm * h_tilde, (h, f, i, f_norm, i_norm, h_tilde, pre_h)

    @staticmethod
    def step_backward(dh, cache):
        h, f, i, f_norm, i_norm, h_tilde, pre_h = cache
        d_diff = dh * f_norm * i_norm * (h_tilde - h)
        d_xp = np.concatenate([-d_diff * (1.0 - f), d_diff * (1.0 - i), dh * i_norm * g_prime(pre_h)], axis=1)
        return d_xp, dh * f_norm  # d_xp (B, 3H), dh_prev


class MinimalLayer:
    """A stack of `num_layers` minimal recurrent layers of one cell kind, one or two directions.

    Variable lengths are a mask, as in scan.py: past a sequence's end its state passes through unchanged and
    its output is 0; the reverse direction walks t = T-1 ... 0, so padding (the identity) comes first and each
    sequence starts at its own last element. Layer k > 0 reads [forward; backward] (T, B, D * H).
    """

    cell = MinGRUCell

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, bidirectional: bool = False, seed: int | None = None,
                 dtype=np.float64):
        sizes = (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers))
        for name, value in sizes:
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dtype = bias, batch_first, np.dtype(dtype)
        self.bidirectional, self.num_directions = bool(bidirectional), 2 if bidirectional else 1
        rng = np.random.default_rng(seed)
        G = self.cell.gates * hidden_size
        self.params = {}
        for k, sfx in enumerate(self._suffixes()):  # torch.nn.Linear's init: U(-1/sqrt(I_k), 1/sqrt(I_k))
            in_size = input_size if k < self.num_directions else self.num_directions * hidden_size
            bound = 1.0 / np.sqrt(in_size)
            self.params[f"weight_ih{sfx}"] = rng.uniform(-bound, bound, (G, in_size)).astype(self.dtype)
            if bias:
                self.params[f"bias_ih{sfx}"] = rng.uniform(-bound, bound, G).astype(self.dtype)
        self._cache = None

    def _suffixes(self) -> list[str]:
        """torch's parameter suffixes in h_n order, k = layer * D + direction: _l0, _l0_reverse, _l1, ..."""
        D = self.num_directions
        return [f"_l{k // D}" + ("_reverse" if k % D else "") for k in range(self.num_layers * D)]

    def state_dict(self) -> dict[str, np.ndarray]:
        """The parameters under torch's names (the arrays themselves)."""
        return dict(self.params)

    def load_state_dict(self, state_dict) -> None:
        """Load arrays (or CPU torch tensors) named and shaped as ours, in place, after all checks pass."""
        load_into(self.params, state_dict)

    def _project(self, sfx, x):
        xp = x @ self.params[f"weight_ih{sfx}"].T  # (T, B, G)
        return xp + self.params[f"bias_ih{sfx}"] if self.bias else xp

    def forward(self, x, h0=None, lengths=None):
        """Run the stack step by step.

        Args:
            x: (T, B, I), or (B, T, I) when batch_first.
            h0: (L * D, B, H), positive; 0.5 everywhere when None.
            lengths: (B,) valid lengths of a padded x, or None when every sequence has length T.

        Returns:
            output (T, B, D * H) (or batch first), 0 past each sequence's end, and h_n (L * D, B, H).
        """
        x = check_array(x, "input", ndim=3, dtype=self.dtype)
        if self.batch_first:
            x = x.transpose(1, 0, 2)
        T, B, I = x.shape
        if I != self.input_size:
            raise ValueError(
                f"input.size(-1) must be equal to input_size. Expected {self.input_size}, got {I}"
            )
        shape = (self.num_layers * self.num_directions, B, self.hidden_size)
        h0 = np.full(shape, 0.5, self.dtype) if h0 is None else check_state(h0, "h0", shape, self.dtype)
        if (h0 <= 0).any():
            raise ValueError(f"h0 must be positive, got min {h0.min()}")
        mask = None
        if lengths is not None:
            lengths = check_lengths(lengths, T, B)
            mask = (np.arange(T)[:, None] < lengths[None, :])[:, :, None].astype(self.dtype)  # (T, B, 1)
        caches, h_n, layer_input = [], [], x
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(self.num_directions):
                k = layer * self.num_directions + direction
                xp = self._project(self._suffixes()[k], layer_input)  # (T, B, G): all projections at once
                ys, h, steps = self._scan(xp, h0[k], mask, reverse=bool(direction))
                caches.append((layer_input, steps))
                h_n.append(h)
                outputs.append(ys)
            layer_input = np.concatenate(outputs, axis=2)  # (T, B, D * H)
        self._cache = (caches, mask, T, B)
        output = layer_input.transpose(1, 0, 2) if self.batch_first else layer_input
        return output, np.stack(h_n)

    __call__ = forward

    def _scan(self, xp, h, mask, reverse):
        """One layer-direction over time: outputs (T, B, H), the final state, the per-step caches."""
        T, B, _ = xp.shape
        ys, steps = np.empty((T, B, self.hidden_size), self.dtype), {}
        for t in (range(T - 1, -1, -1) if reverse else range(T)):
            new, steps[t] = self.cell.step(xp[t], h)
            if mask is None:
                h = ys[t] = new
            else:  # (B, 1) mask[t]: is step t inside the sequence? Past its end the state is frozen
                h, ys[t] = np.where(mask[t], new, h), np.where(mask[t], new, 0.0)
        return ys, h, steps

    def _scan_backward(self, d_ys, dh, steps, mask, reverse):
        """The forward loop, reversed: d_xp (T, B, G) and the gradient of the initial state (B, H)."""
        T, B, H = d_ys.shape
        d_xp = np.empty((T, B, self.cell.gates * H), self.dtype)
        for t in (range(T) if reverse else range(T - 1, -1, -1)):
            m = 1.0 if mask is None else mask[t]
            dh = dh + m * d_ys[t]  # h_t feeds the output (0 past the end) and the next step
            d_xp[t], dh_prev = self.cell.step_backward(m * dh, steps[t])
            dh = dh_prev + (1.0 - m) * dh  # past the end the step was the identity
        return d_xp, dh

    def backward(self, d_output, d_h_n=None):
        """Backpropagation through time for the last `forward`.

        Args:
            d_output: dL/d output, shaped as the output; d_h_n: dL/d h_n (L * D, B, H), zeros when None.

        Returns:
            A dict with the gradient of every parameter under its state_dict name, "input" (shaped as x), and
            "h0" (L * D, B, H).
        """
        if self._cache is None:
            raise RuntimeError("backward() needs a forward() first")
        caches, mask, T, B = self._cache
        H, D = self.hidden_size, self.num_directions
        shape = (B, T, D * H) if self.batch_first else (T, B, D * H)
        d_output = check_array(d_output, "d_output", shape=shape, dtype=self.dtype)
        if self.batch_first:
            d_output = d_output.transpose(1, 0, 2)
        shape = (self.num_layers * D, B, H)
        if d_h_n is None:
            d_h_n = np.zeros(shape, self.dtype)
        d_h_n = check_state(d_h_n, "d_h_n", shape, self.dtype)
        grads, d_h0 = {}, np.zeros(shape, self.dtype)
        d_ys = d_output  # (T, B, D * H)
        for layer in reversed(range(self.num_layers)):
            d_below = 0.0
            for direction in range(D):
                k = layer * D + direction
                sfx = self._suffixes()[k]
                layer_input, steps = caches[k]
                d_y = d_ys[:, :, direction * H:(direction + 1) * H]  # (T, B, H)
                d_xp, d_h0[k] = self._scan_backward(d_y, d_h_n[k], steps, mask, reverse=bool(direction))
                grads[f"weight_ih{sfx}"] = d_xp.reshape(T * B, -1).T @ layer_input.reshape(T * B, -1)
                if self.bias:
                    grads[f"bias_ih{sfx}"] = d_xp.sum(axis=(0, 1))
                d_below = d_below + d_xp @ self.params[f"weight_ih{sfx}"]  # (T, B, I_k)
            d_ys = d_below  # the gradient of the layer below's output
        grads["input"] = d_ys.transpose(1, 0, 2) if self.batch_first else d_ys
        grads["h0"] = d_h0
        return {name: grads[name] for name in [*self.params, "input", "h0"]}

    def __repr__(self):
        extra = f", num_layers={self.num_layers}" if self.num_layers > 1 else ""
        extra += ", bidirectional=True" if self.bidirectional else ""
        return f"{type(self).__name__}({self.input_size}, {self.hidden_size}{extra})"


class MinGRU(MinimalLayer):
    """minGRU layers: h_t = (1 - z_t) h_{t-1} + z_t g(W_h x_t + b_h); see `MinGRUCell`."""

    cell = MinGRUCell


class MinLSTM(MinimalLayer):
    """minLSTM layers: h_t = (f_t h_{t-1} + i_t g(W_h x_t + b_h)) / (f_t + i_t); see `MinLSTMCell`."""

    cell = MinLSTMCell
