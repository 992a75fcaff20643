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

Parameters per layer k: `weight_ih_l{k}` (2H, I_k) rows [z; h~] for MinGRU, (3H, I_k) rows [f; i; h~] for
MinLSTM, and `bias_ih_l{k}`; I_0 = input_size, I_k = hidden_size above. Init as torch.nn.Linear:
U(-1/sqrt(I_k), 1/sqrt(I_k)). Default h_0 = g(0) = 0.5.

    >>> import torch
    >>> from rnnkit.nn.minimal import MinGRU
    >>> rnn = MinGRU(3, 8, num_layers=2)
    >>> out, h_n = rnn(torch.randn(5, 4, 3))                  # (T, B, I) -> (T, B, H), (L, B, H)
    >>> y, h = rnn.step(torch.randn(4, 3), h_n)               # one more step: (B, H), (L, B, H)
    >>> out.shape, h.shape
    (torch.Size([5, 4, 8]), torch.Size([2, 4, 8]))

Shapes: T time, B batch, I input, H hidden, L layers.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["MinGRU", "MinLSTM", "g", "log_g", "parallel_scan_log"]


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
        log_a, log_b: (T, B, H) logarithms of the coefficients.
        log_h0: (B, H) logarithm of the initial state.

    Returns:
        h: (T, B, H), h_1 ... h_T.
    """
    a_star = F.pad(torch.cumsum(log_a, dim=0), (0, 0, 0, 0, 1, 0))  # (T+1, B, H), a*_0 = 0
    log_b = torch.cat([log_h0.unsqueeze(0), log_b], dim=0)  # (T+1, B, H), b_0 = h_0
    log_h = a_star + torch.logcumsumexp(log_b - a_star, dim=0)  # (T+1, B, H)
    return torch.exp(log_h[1:])


class _MinimalRNN(nn.Module):
    """The layer stack, h_0 handling, batch_first and validation shared by MinGRU and MinLSTM."""

    gates = 2

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, device=None, dtype=None):
        super().__init__()
        sizes = (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers))
        for name, value in sizes:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first = bias, batch_first
        factory = {"device": device, "dtype": dtype}
        for k in range(num_layers):
            in_size = input_size if k == 0 else hidden_size
            self.register_parameter(f"weight_ih_l{k}",
                                    nn.Parameter(torch.empty(self.gates * hidden_size, in_size, **factory)))
            bias_k = nn.Parameter(torch.empty(self.gates * hidden_size, **factory)) if bias else None
            self.register_parameter(f"bias_ih_l{k}", bias_k)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch.nn.Linear's default: weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
        for k in range(self.num_layers):
            weight = getattr(self, f"weight_ih_l{k}")
            bound = 1.0 / math.sqrt(weight.shape[1])
            nn.init.uniform_(weight, -bound, bound)
            if self.bias:
                nn.init.uniform_(getattr(self, f"bias_ih_l{k}"), -bound, bound)

    def _project(self, k: int, x: Tensor) -> Tensor:
        return F.linear(x, getattr(self, f"weight_ih_l{k}"), getattr(self, f"bias_ih_l{k}"))  # (..., gates*H)

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
        shape = (self.num_layers, B, self.hidden_size)
        if h0 is None:
            return x.new_full(shape, 0.5)  # g(0): positive, as log space needs
        if not isinstance(h0, Tensor) or tuple(h0.shape) != shape:
            got = tuple(h0.shape) if isinstance(h0, Tensor) else type(h0).__name__
            raise ValueError(f"h0: expected shape {shape}, got {got}")
        if not bool((h0 > 0).all()):
            raise ValueError(f"h0 must be positive (the scan runs in log space), got min {h0.min().item()}")
        return h0

    def forward(self, x: Tensor, h0: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Run the stack over whole sequences with the log-space parallel scan.

        Args:
            x: (T, B, I), or (B, T, I) when batch_first.
            h0: (L, B, H), positive; 0.5 everywhere when None.

        Returns:
            output (T, B, H) (or batch first), the last layer's h_t; h_n (L, B, H).
        """
        self._check_input(x, 3, "input")
        if self.batch_first:
            x = x.transpose(0, 1)
        h0 = self._initial_state(h0, x, x.shape[1])
        h_n = []
        for k in range(self.num_layers):
            log_a, log_b = self._log_coefficients(self._project(k, x))  # (T, B, H) each
            x = parallel_scan_log(log_a, log_b, torch.log(h0[k]))  # (T, B, H): next layer's input
            h_n.append(x[-1])
        output = x.transpose(0, 1) if self.batch_first else x
        return output, torch.stack(h_n)

    def step(self, x_t: Tensor, h: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """One time step in linear space, for generation: h_t = a_t h_{t-1} + b_t per layer.

        Args:
            x_t: (B, I) the input at this step.
            h: (L, B, H) the state, positive; 0.5 everywhere when None.

        Returns:
            y_t (B, H), the last layer's new state, and the new state (L, B, H).
        """
        self._check_input(x_t, 2, "x_t")
        h = self._initial_state(h, x_t, x_t.shape[0])
        new = []
        for k in range(self.num_layers):
            x_t = self._step(self._project(k, x_t), h[k])  # (B, H)
            new.append(x_t)
        return x_t, torch.stack(new)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        s += f", num_layers={self.num_layers}" if self.num_layers != 1 else ""
        s += ", bias=False" if not self.bias else ""
        return s + (", batch_first=True" if self.batch_first else "")


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
