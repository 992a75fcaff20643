"""MinGRU and MinLSTM (Feng et al. 2024, "Were RNNs All We Needed?"): gates that see only the input, so the
whole sequence is one linear recurrence h_t = a_t h_{t-1} + b_t, solved in parallel in log space
(Heinsen 2023).

    g(x) = x + 0.5 if x >= 0 else sigma(x)            keeps h~ > 0, so log h exists
    MinGRU:  z_t = sigma(W_z x_t + b_z), h~_t = g(W_h x_t + b_h)
             h_t = (1 - z_t) h_{t-1} + z_t h~_t                        a_t = 1 - z_t, b_t = z_t h~_t
    MinLSTM: f_t = sigma(.), i_t = sigma(.), f'_t = f_t / (f_t + i_t), i'_t = i_t / (f_t + i_t), h~_t = g(.)
             h_t = f'_t h_{t-1} + i'_t h~_t                            a_t = f'_t, b_t = i'_t h~_t

Parallel scan: with a*_t = sum_{s<=t} log a_s and b_0 = h_0,
    log h_t = a*_t + logcumsumexp_{s=0..t}(log b_s - a*_s)
(every term is a logarithm of a positive number: h_0 > 0 and g > 0). `forward` runs the scan over a whole
sequence (training); `step` runs one time step in linear space (generation). Both give the same outputs.

The layer contract is rnnkit.nn.LSTM / GRU's (torch.nn's): `forward(input, hx=None, *, lengths=None)` with a
padded batch and its lengths, or a PackedSequence; batch_first; num_layers; `dropout` on the outputs of every
layer but the last (training only); `bidirectional` (D = 2, outputs [forward; backward] concatenated, the
backward direction reading each sequence reversed within its own length). A padded step is frozen, a = 1 and
b = 0 (log a = 0, log b = -inf), so h_n is each sequence's state at its last valid step; padded outputs are 0.
The padding is zeroed at the layer's entry, so neither pass ever reads it.

Parameters per layer k (and direction, suffix `_reverse` as torch): `weight_ih_l{k}` (2H, I_k) rows [z; h~]
for MinGRU, (3H, I_k) rows [f; i; h~] for MinLSTM, and `bias_ih_l{k}`; I_0 = input_size, I_k = D * H above.
Init as torch.nn.Linear: U(-1/sqrt(I_k), 1/sqrt(I_k)). Default h_0 = g(0) = 0.5.

    >>> import torch
    >>> from rnnkit.nn.minimal import MinGRU
    >>> rnn = MinGRU(3, 8, num_layers=2)
    >>> out, h_n = rnn(torch.randn(5, 4, 3), lengths=[5, 3, 5, 1])  # (T, B, I) -> (T, B, H), (L, B, H)
    >>> y, h = rnn.step(torch.randn(4, 3), h_n)               # one more step: (B, H), (L, B, H)
    >>> out.shape, h.shape, MinGRU(3, 8, bidirectional=True)(torch.randn(5, 4, 3))[0].shape
    (torch.Size([5, 4, 8]), torch.Size([2, 4, 8]), torch.Size([5, 4, 16]))

Shapes: T time, B batch, I input, H hidden, L layers, D directions.
"""

from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

from ..kernels.scan import valid_steps
from .scan import pack_like, reverse_padded, zero_padding
from .validate import check_lengths

__all__ = ["MinGRU", "MinLSTM", "freeze_padding", "g", "log_g", "parallel_scan_log"]


def g(x: Tensor) -> Tensor:
    """g(x) = x + 0.5 for x >= 0, sigma(x) otherwise: continuous, increasing, positive."""
    return torch.where(x >= 0, x + 0.5, torch.sigmoid(x))


def log_g(x: Tensor) -> Tensor:
    """log g(x) = log(x + 0.5) for x >= 0, -softplus(-x) otherwise.

    The inner where keeps the unused branch finite; unlike relu it passes slope 1 at x = 0, the slope of the
    x >= 0 branch that `g` (and the sequential step) takes there.
    """
    x_nonneg = torch.where(x >= 0, x, torch.zeros_like(x))
    return torch.where(x >= 0, torch.log(x_nonneg + 0.5), -F.softplus(-x))


def parallel_scan_log(log_a: Tensor, log_b: Tensor, log_h0: Tensor) -> Tensor:
    """Solve h_t = a_t h_{t-1} + b_t for t = 1..T in log space (Heinsen 2023).

    Args:
        log_a, log_b: (T, B, H) logarithms of the coefficients (log_b may be -inf: b = 0).
        log_h0: (B, H) logarithm of the initial state.

    Returns:
        h: (T, B, H), h_1 ... h_T.
    """
    a_star = F.pad(torch.cumsum(log_a, dim=0), (0, 0, 0, 0, 1, 0))  # (T+1, B, H), a*_0 = 0
    log_b = torch.cat([log_h0.unsqueeze(0), log_b], dim=0)  # (T+1, B, H), b_0 = h_0
    log_h = a_star + torch.logcumsumexp(log_b - a_star, dim=0)  # (T+1, B, H)
    return torch.exp(log_h[1:])


def freeze_padding(log_a: Tensor, log_b: Tensor, valid: Tensor | None) -> tuple[Tensor, Tensor]:
    """Make every padded step the identity h_t = h_{t-1}: a = 1, b = 0, i.e. log a = 0, log b = -inf.

    valid: (T, B) bool or None. The coefficients come from an input whose padding was zeroed, so they are
    finite and the masked positions pass a zero gradient (no NaN * 0); exp(-inf - .) = 0 keeps the scan's
    backward finite too.
    """
    if valid is None:
        return log_a, log_b
    pad = ~valid.unsqueeze(-1)  # (T, B, 1)
    return log_a.masked_fill(pad, 0.0), log_b.masked_fill(pad, -math.inf)


class _MinimalRNN(nn.Module):
    """Layers, directions, h_0, lengths, batch_first and validation shared by MinGRU and MinLSTM."""

    gates = 2

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None):
        super().__init__()
        sizes = (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers))
        for name, value in sizes:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) or not 0 <= dropout <= 1:
            raise ValueError(f"dropout must be a probability in [0, 1], got {dropout!r}")
        if not isinstance(bidirectional, bool):
            raise ValueError(f"bidirectional must be True or False, got {bidirectional!r}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first = bias, batch_first
        self.dropout, self.bidirectional = float(dropout), bidirectional
        D = 2 if bidirectional else 1
        factory = {"device": device, "dtype": dtype}
        for k, sfx in enumerate(self._suffixes()):
            in_size = input_size if k < D else D * hidden_size
            self.register_parameter(f"weight_ih{sfx}",
                                    nn.Parameter(torch.empty(self.gates * hidden_size, in_size, **factory)))
            bias_k = nn.Parameter(torch.empty(self.gates * hidden_size, **factory)) if bias else None
            self.register_parameter(f"bias_ih{sfx}", bias_k)
        self.reset_parameters()

    def _suffixes(self) -> list[str]:
        """Parameter suffixes in h_n order, k = layer * D + direction: _l0, _l0_reverse, _l1, ..."""
        D = 2 if self.bidirectional else 1
        return [f"_l{k // D}" + ("_reverse" if k % D else "") for k in range(self.num_layers * D)]

    def reset_parameters(self) -> None:
        """torch.nn.Linear's default: weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
        for sfx in self._suffixes():
            weight = getattr(self, f"weight_ih{sfx}")
            bound = 1.0 / math.sqrt(weight.shape[1])
            nn.init.uniform_(weight, -bound, bound)
            if self.bias:
                nn.init.uniform_(getattr(self, f"bias_ih{sfx}"), -bound, bound)

    def _project(self, sfx: str, x: Tensor) -> Tensor:
        return F.linear(x, getattr(self, f"weight_ih{sfx}"), getattr(self, f"bias_ih{sfx}"))  # (..., gates*H)

    def _check_input(self, x: Tensor, ndim: int, name: str) -> None:
        weight = self.weight_ih_l0
        if not isinstance(x, Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() != ndim:
            raise ValueError(f"{name} must be {ndim}-D, got {x.dim()}-D of shape {tuple(x.shape)}")
        if x.shape[-1] != self.input_size:
            raise ValueError(f"{name}.size(-1) must be equal to input_size. Expected {self.input_size}, "
                             f"got {x.shape[-1]}")
        if x.dtype != weight.dtype or x.device != weight.device:
            raise ValueError(f"{name} must match the weights' dtype and device: expected {weight.dtype} on "
                             f"{weight.device}, got {x.dtype} on {x.device}")

    def _initial_state(self, h0: Tensor | None, x: Tensor, B: int) -> Tensor:
        shape = (len(self._suffixes()), B, self.hidden_size)
        if h0 is None:
            return x.new_full(shape, 0.5)  # g(0): positive, as log space needs
        if not isinstance(h0, Tensor) or tuple(h0.shape) != shape:
            got = tuple(h0.shape) if isinstance(h0, Tensor) else type(h0).__name__
            raise ValueError(f"h0: expected shape {shape}, got {got}")
        if not bool((h0 > 0).all()):
            raise ValueError(f"h0 must be positive (the scan runs in log space), got min {h0.min().item()}")
        return h0

    def forward(self, input: Tensor | PackedSequence, hx: Tensor | None = None, *, lengths=None,
                enforce_sorted: bool = False):
        """Run the layers over whole sequences with the log-space parallel scan.

        Args:
            input: (T, B, I), or (B, T, I) when batch_first, or a PackedSequence.
            hx: h_0 (L * D, B, H), positive; 0.5 everywhere when None.
            lengths: list or 1-D integer tensor (B,) of the valid lengths of a padded `input`.
            enforce_sorted: with `lengths`, demand lengths in decreasing order (as pack_padded_sequence).

        Returns:
            output (T, B, D * H) (or batch first, or a PackedSequence as the input), the last layer's h_t
            ([forward; backward]), 0 at padded steps; h_n (L * D, B, H), the state at each last valid step.
        """
        packed = isinstance(input, PackedSequence)
        if packed:
            if lengths is not None:
                raise ValueError("lengths must be None for a PackedSequence input (it carries its own "
                                 "lengths)")
            self._check_input(input.data, 2, "input.data")
            x, lengths = pad_packed_sequence(input)  # (T, B, I), original batch order
        else:
            self._check_input(input, 3, "input")
            x = input.transpose(0, 1) if self.batch_first else input  # (T, B, I)
            if x.shape[0] == 0:
                raise ValueError(f"input must have at least one time step, got shape {tuple(input.shape)} "
                                 "(T = 0)")
            if lengths is not None:
                lengths = check_lengths(lengths, x.shape[0], x.shape[1], enforce_sorted)
        lengths = None if lengths is None else lengths.to(x.device)
        x = zero_padding(x, lengths)  # padding is never read, not even by the backward pass (NaN * 0 = NaN)
        h0 = self._initial_state(hx, x, x.shape[1])
        valid = None if lengths is None else valid_steps(lengths, x.shape[0], x.device)  # (T, B)
        D, suffixes = (2 if self.bidirectional else 1), self._suffixes()
        h_n = []
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(D):
                k = layer * D + direction
                flip = (lambda v: reverse_padded(v, lengths)) if direction else (lambda v: v)
                h = self._scan(suffixes[k], flip(x), h0[k], valid)  # (T, B, H), frozen past the end
                h_n.append(h[-1])
                outputs.append(flip(h if valid is None else h.masked_fill(~valid.unsqueeze(-1), 0.0)))
            x = torch.cat(outputs, dim=-1)  # (T, B, D * H): next layer's input
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, training=True)
        if packed:
            output = pack_like(x, input, lengths)
        else:
            output = x.transpose(0, 1) if self.batch_first else x
        return output, torch.stack(h_n)

    def _scan(self, sfx: str, x: Tensor, h0: Tensor, valid: Tensor | None) -> Tensor:
        """One layer-direction over x (T, B, I_k) from h0 (B, H); padded steps (valid False) are frozen."""
        log_a, log_b = self._log_coefficients(self._project(sfx, x))  # (T, B, H) each
        return parallel_scan_log(*freeze_padding(log_a, log_b, valid), torch.log(h0))

    def step(self, x_t: Tensor, h: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """One time step in linear space, for generation: h_t = a_t h_{t-1} + b_t per layer.

        Args:
            x_t: (B, I) the input at this step.
            h: (L, B, H) the state, positive; 0.5 everywhere when None.

        Returns:
            y_t (B, H), the last layer's new state, and the new state (L, B, H).
        """
        if self.bidirectional:
            raise ValueError("step needs a unidirectional layer: expected bidirectional=False, got True")
        self._check_input(x_t, 2, "x_t")
        h = self._initial_state(h, x_t, x_t.shape[0])
        new = []
        for k, sfx in enumerate(self._suffixes()):
            x_t = self._step(self._project(sfx, x_t), h[k])  # (B, H)
            new.append(x_t)
        return x_t, torch.stack(new)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        s += f", num_layers={self.num_layers}" if self.num_layers != 1 else ""
        s += ", bias=False" if not self.bias else ""
        s += ", batch_first=True" if self.batch_first else ""
        s += f", dropout={self.dropout}" if self.dropout else ""
        return s + (", bidirectional=True" if self.bidirectional else "")
class MinGRU(_MinimalRNN):
    """minGRU: h_t = (1 - z_t) h_{t-1} + z_t g(W_h x_t + b_h), z_t = sigma(W_z x_t + b_z) (module doc)."""

    gates = 2

    @staticmethod
    def _log_coefficients(xp: Tensor) -> tuple[Tensor, Tensor]:
        k, pre_h = xp.chunk(2, dim=-1)  # (T, B, H) each: z and h~ pre-activations
        log_z = -F.softplus(-k)  # log sigma(k)
        log_one_minus_z = -F.softplus(k)  # log (1 - sigma(k))
        return log_one_minus_z, log_z + log_g(pre_h)

    @staticmethod
    def _step(xp: Tensor, h: Tensor) -> Tensor:
        k, pre_h = xp.chunk(2, dim=-1)
        z = torch.sigmoid(k)
        return (1 - z) * h + z * g(pre_h)


class MinLSTM(_MinimalRNN):
    """minLSTM: h_t = f'_t h_{t-1} + i'_t g(W_h x_t + b_h), (f', i') = (f, i) / (f + i) (module doc)."""

    gates = 3

    @staticmethod
    def _log_coefficients(xp: Tensor) -> tuple[Tensor, Tensor]:
        k_f, k_i, pre_h = xp.chunk(3, dim=-1)  # (T, B, H) each
        diff = F.softplus(-k_f) - F.softplus(-k_i)  # log(i / f)
        log_f = -F.softplus(diff)  # log f' = -log(1 + i/f)
        log_i = -F.softplus(-diff)  # log i' = -log(1 + f/i)
        return log_f, log_i + log_g(pre_h)

    @staticmethod
    def _step(xp: Tensor, h: Tensor) -> Tensor:
        k_f, k_i, pre_h = xp.chunk(3, dim=-1)
        f, i = torch.sigmoid(k_f), torch.sigmoid(k_i)
        return (f * h + i * g(pre_h)) / (f + i)
