"""torch.nn.RNN / LSTM / GRU, drop-in, plus layer_norm, recurrent_dropout, zoneout and weight_drop.

Each layer *is* its torch.nn counterpart (a subclass): the same constructor, init, state_dict keys, inputs
and outputs; with no variant active `forward` is torch's own fused kernel (oneDNN on CPU, cuDNN on CUDA). A
variant switches to the pure-torch twin in scan.py (cell step -> scan -> directions and layers); weight_drop
alone keeps the fused kernel, run on the dropped W_hh. Beyond torch.nn:

- `lengths=` (list, or a tensor on any device) for padded batches: packed internally, so h_n is each
  sequence's state at its last real step and the backward direction never reads padding; padded outputs are 0;
- gradients in eval mode on CUDA (cuDNN refuses, so cuDNN is switched off for that call);
- `step(x_t, state, masks=None, t=None) -> (y_t, state)` for streaming, equal to the full-sequence forward
  (in training mode too, given the masks of the whole sequence and the step index t);
- `masks=` to inject the variants' random masks in training (see variants.py); `last_masks` holds those drawn;
- errors at the boundary that name the expected and the given values (ValueError);
- `torch.compile(model, fullgraph=True)` with no graph break: compiled, every configuration runs the kernel
  boundary (torch's fused forward does not trace), and lengths' values are checked when the graph runs.

    >>> lstm = LSTM(3, 8, num_layers=2, layer_norm=True, zoneout=0.1, batch_first=True)
    >>> out, (h_n, c_n) = lstm(torch.randn(4, 7, 3), lengths=[7, 5, 5, 2])     # out (4, 7, 8)
    >>> y_t, state = lstm.eval().step(torch.randn(4, 3), None)                 # y_t (4, 8)
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import numbers
import sys

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from .cells import CellParams
from .scan import pack_like, scan_layers, zero_padding
from .validate import check_input, check_masks
from .variants import MASK_KINDS, Variants, layer_norm_names, sample_masks

__all__ = ["GRU", "LSTM", "RNN"]


def _check_sizes(input_size, hidden_size, num_layers, dropout, proj_size=0) -> None:
    for name, value in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if isinstance(proj_size, bool) or not isinstance(proj_size, numbers.Integral) or proj_size < 0:
        raise ValueError(f"proj_size must be a non-negative integer, got {proj_size!r}")
    if proj_size >= hidden_size:
        raise ValueError(f"proj_size must be smaller than hidden_size: expected < {hidden_size}, "
                         f"got {proj_size}")
    if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) or not 0 <= dropout <= 1:
        raise ValueError(f"dropout must be a probability in [0, 1], got {dropout!r}")


class _Recurrent:
    """What RNN, LSTM and GRU add to their torch.nn base (which comes next in the MRO)."""

    use_scan = False   # True: run the pure-torch scan even with no variant (the fused kernel's slow twin)

    def _init_variants(self, **variants) -> None:
        self.variants = Variants(**variants)
        self.last_masks: dict[str, Tensor] = {}
        if self.variants.layer_norm:
            weight = self.weight_ih_l0
            for sfx in self._suffixes():
                for name in layer_norm_names(self.mode):
                    size = self.hidden_size if name.startswith("layer_norm_c") else weight.shape[0]
                    self.register_parameter(name + sfx, nn.Parameter(weight.new_empty(size)))
            self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch's U(-1/sqrt(H), 1/sqrt(H)) for the torch.nn weights; layer norm gamma = 1, beta = 0."""
        super().reset_parameters()
        for name, param in self.named_parameters():
            if name.startswith("layer_norm_"):
                nn.init.constant_(param, 1.0 if "_weight" in name else 0.0)

    def _suffixes(self) -> list[str]:
        D = 2 if self.bidirectional else 1
        return [f"_l{k // D}" + ("_reverse" if k % D else "") for k in range(self.num_layers * D)]

    def extra_repr(self) -> str:
        on = {k: v for k, v in vars(self.variants).items() if v}
        return super().extra_repr() + "".join(f", {k}={v}" for k, v in on.items())

    # ----------------------------------------------------------------------------------------- forward

    def forward(self, input, hx=None, *, lengths=None, masks=None, enforce_sorted: bool = False):
        """Same inputs and outputs as torch.nn (hx is (h_0, c_0) for LSTM), plus:

        Args:
            lengths: list or tensor (B,) of the valid lengths of a padded, batched `input`.
            masks: training mode only: variant masks (keys, shapes in variants.py) to use instead of drawing
                them; those left out are drawn. `last_masks` holds the masks of the last forward.
            enforce_sorted: with `lengths`, demand lengths in decreasing order (as pack_padded_sequence).
        Returns:
            output (T, B, D * H_out) (or (B, T, ...) / PackedSequence as the input), h_n (L * D, B, H_out)
            (LSTM: (h_n, c_n), c_n (L * D, B, H)).
        """
        T, B, lengths = check_input(self, input, hx, lengths, enforce_sorted)
        if masks and not self.training:
            raise ValueError(f"masks apply in training mode only (eval is exact), got {sorted(masks)}")
        check_masks(masks or {}, self._expected_mask_shapes(T, B))
        masks = {**self.sample_masks(T, B), **(masks or {})} if self.training else {}
        self.last_masks = masks
        if lengths is not None:      # padding is never read, not even by the backward pass (NaN * 0 = NaN)
            input = zero_padding(input, lengths, time_dim=1 if self.batch_first else 0)
        # torch.compile cannot trace torch's fused forward (pytorch#141184): compiled, every config runs the
        # kernel boundary (the C++ custom op, or the scan, which Dynamo unrolls)
        if self.use_scan or self.variants.needs_scan(self.training) or torch.compiler.is_compiling():
            return self._scan_forward(input, hx, lengths, masks)
        dropped = {f"weight_hh{s}": getattr(self, f"weight_hh{s}") * masks[f"weight_drop{s}"]
                   for s in self._suffixes() if f"weight_drop{s}" in masks}
        return self._fused_forward(input, hx, lengths, dropped)

    def step(self, x_t: Tensor, state=None, masks: dict[str, Tensor] | None = None, *, t: int | None = None):
        """One time step for streaming: x_t (B, I) or unbatched (I,) -> (y_t (B, H_out), state).

        Equal to the full-sequence forward run one step at a time. In training mode the stochastic variants
        draw fresh masks on every call, unless given: draw them once per sequence and pass them to every step,

            masks = layer.sample_masks(T, B)
            for t in range(T):
                y_t, state = layer.step(x[t], state, masks, t=t)     # == layer(x, masks=masks), step by step

        Args:
            masks: training mode only: the masks dict `forward` takes (keys, shapes in variants.py). The
                per-sequence kinds (recurrent_dropout (B, H_out), weight_drop (G, H_out)) are used as they
                are; the time-indexed ones (zoneout_h / zoneout_c, (T, B, .)) are read at step `t`, or, with
                t=None, must be one step's, (1, B, .), as `sample_masks(1, B)` draws them. Kinds left out are
                drawn.
            t: this step's index into the time axis of the zoneout masks.
        """
        if self.bidirectional:
            raise ValueError("step needs a unidirectional layer: expected bidirectional=False, got True")
        if not isinstance(x_t, Tensor) or x_t.dim() not in (1, 2):
            got = f"{x_t.dim()}-D" if isinstance(x_t, Tensor) else type(x_t).__name__
            raise ValueError(f"step expects x_t of shape (B, I) or (I,), got {got}")
        if masks and t is not None:
            masks = {key: _at_step(key, mask, t) for key, mask in masks.items()}
        time_dim = 1 if (x_t.dim() == 2 and self.batch_first) else 0
        y, state = self(x_t.unsqueeze(time_dim), state, masks=masks)
        return y.squeeze(time_dim), state

    def sample_masks(self, T: int, B: int, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """The masks one training forward over (T, B) draws; {} when no stochastic variant is on."""
        weight = self.weight_hh_l0
        out_size = getattr(self, "proj_size", 0) or self.hidden_size
        return sample_masks(self.variants, self._suffixes(), T, B, self.hidden_size, out_size,
                            weight.shape[0], self.mode == "LSTM", weight, generator)

    # ------------------------------------------------------------------------------------ the two paths

    def _fused_forward(self, input, hx, lengths: Tensor | None, dropped: dict[str, Tensor]):
        if lengths is not None:
            T = input.shape[1 if self.batch_first else 0]
            packed = pack_padded_sequence(input, lengths, self.batch_first, enforce_sorted=False)
            output, hidden = self._fused_forward(packed, hx, None, dropped)
            return pad_packed_sequence(output, self.batch_first, total_length=T)[0], hidden
        data = input.data if isinstance(input, PackedSequence) else input
        # cuDNN's RNN backward refuses eval mode, so eval-mode gradients on CUDA run without cuDNN
        no_cudnn = data.is_cuda and not self.training and torch.is_grad_enabled()
        cudnn_off = torch.backends.cudnn.flags(enabled=False) if no_cudnn else contextlib.nullcontext()
        with self._swapped(dropped), cudnn_off:
            try:
                return super().forward(input, hx)
            except RuntimeError as e:
                # bf16/fp16 autocast on a CPU whose oneDNN has no low-precision RNN kernel (e.g. AVX2 only):
                # run the recurrence in the weights' precision instead of failing the training step
                no_fallback = data.is_cuda or not torch.is_autocast_enabled("cpu")
                if no_fallback or "primitive descriptor" not in str(e):
                    raise
                dtype = self.weight_ih_l0.dtype
                hx = None if hx is None else (tuple(h.to(dtype) for h in hx) if isinstance(hx, tuple | list)
                                             else hx.to(dtype))
                with torch.autocast("cpu", enabled=False):
                    return super().forward(input.to(dtype), hx)

    @contextlib.contextmanager
    def _swapped(self, weights: dict[str, Tensor]):
        """Let torch's fused forward read other tensors for some weights (e.g. W_hh * M) for one call.

        torch's forward reads `_flat_weights`; it rebuilds that list only when a parameter object changed, so
        replacing list entries (after a sync) leaves the parameters, their order and cuDNN's buffer untouched.
        """
        if not weights:
            yield
            return
        self._update_flat_weights()
        saved = self._flat_weights
        names = self._flat_weights_names
        self._flat_weights = [weights.get(name, w) for name, w in zip(names, saved, strict=True)]
        try:
            yield
        finally:
            self._flat_weights = saved

    def _scan_forward(self, input, hx, lengths: Tensor | None, masks: dict[str, Tensor]):
        packed = isinstance(input, PackedSequence)
        batched = packed or input.dim() == 3
        if packed:
            x, lengths = pad_packed_sequence(input)                      # (T, B, I), original batch order
        else:
            x = input if batched else input.unsqueeze(1)                 # (T, B, I)
            x = x.transpose(0, 1) if (batched and self.batch_first) else x
        lengths = None if lengths is None else lengths.to(x.device)
        D, is_lstm = (2 if self.bidirectional else 1), self.mode == "LSTM"
        out_size = getattr(self, "proj_size", 0) or self.hidden_size
        if hx is None:
            sizes = (out_size, self.hidden_size) if is_lstm else (out_size,)
            hx = tuple(x.new_zeros(self.num_layers * D, x.shape[1], n) for n in sizes)
        else:
            hx = tuple(hx) if isinstance(hx, tuple | list) else (hx,)
            hx = hx if batched else tuple(h.unsqueeze(1) for h in hx)
        suffixes = self._suffixes()
        zoneout_p = self.variants.zoneout if self.variants.zoneout > 0 else None
        output, finals = scan_layers(
            self.mode, x,
            states=[tuple(h[k] for h in hx) for k in range(len(suffixes))],
            params=[self._cell_params(sfx, masks) for sfx in suffixes],
            recurrent_masks=[masks.get(f"recurrent_dropout{sfx}") for sfx in suffixes],
            zoneouts=[[masks.get(f"zoneout_{s}{sfx}", zoneout_p) for s in ("hc" if is_lstm else "h")]
                      for sfx in suffixes],
            lengths=lengths, num_layers=self.num_layers, num_directions=D,
            dropout=self.dropout, training=self.training)
        h_n = tuple(torch.stack([final[i] for final in finals]) for i in range(len(hx)))   # (L * D, B, .)
        if packed:
            output = pack_like(output, input, lengths)
        elif not batched:
            output, h_n = output.squeeze(1), tuple(h.squeeze(1) for h in h_n)
        elif self.batch_first:
            output = output.transpose(0, 1)
        return output, (h_n if is_lstm else h_n[0])

    def _cell_params(self, sfx: str, masks: dict[str, Tensor]) -> CellParams:
        get = lambda name: getattr(self, name + sfx, None)  # noqa: E731
        W_hh = get("weight_hh")
        if f"weight_drop{sfx}" in masks:
            W_hh = W_hh * masks[f"weight_drop{sfx}"]                   # DropConnect on W_hh
        ln = lambda stem: (get(stem + "_weight"), get(stem + "_bias")) if self.variants.layer_norm else None  # noqa: E731
        return CellParams(get("weight_ih"), W_hh, get("bias_ih"), get("bias_hh"), get("weight_hr"),
                          ln("layer_norm_ih"), ln("layer_norm_hh"),
                          ln("layer_norm_c") if self.mode == "LSTM" else None, self.mode == "RNN_RELU")

    def _expected_mask_shapes(self, T: int, B: int) -> dict[str, tuple[int, ...]]:
        H, G = self.hidden_size, self.weight_hh_l0.shape[0]
        P = getattr(self, "proj_size", 0) or H
        shapes = {"recurrent_dropout": (B, P), "weight_drop": (G, P),
                  "zoneout_h": (T, B, P), "zoneout_c": (T, B, H)}
        p = {"recurrent_dropout": self.variants.recurrent_dropout, "weight_drop": self.variants.weight_drop,
             "zoneout_h": self.variants.zoneout, "zoneout_c": self.variants.zoneout * (self.mode == "LSTM")}
        kinds = [kind for kind in MASK_KINDS if p[kind] > 0]     # masks only for the variants that are on
        return {kind + sfx: shapes[kind] for kind in kinds for sfx in self._suffixes()}


# --------------------------------------------------------------------------------- torch.compile support


def _let_dynamo_trace(builder) -> None:
    """Lift Dynamo's refusal of torch.nn.RNN/LSTM/GRU instances (config.allow_rnn, pytorch#141184) for ours.

    Dynamo graph-breaks on every instance of those classes, ours (subclasses) included, because torch's fused
    forward does not trace; compiled, ours never call it (they run the kernel boundary). Only rnnkit's layers
    are let through: torch.nn's own RNNs still graph-break as before (allow_rnn=True globally makes them fail
    under aot_autograd instead). Installed on torch._dynamo's import, so importing rnnkit does not import it.
    """
    wrap_module = builder.VariableBuilder.wrap_module

    def wrap_rnnkit_module(self, value):
        if isinstance(value, _Recurrent) and not builder.config.allow_rnn:
            with builder.config.patch(allow_rnn=True):
                return wrap_module(self, value)
        return wrap_module(self, value)

    builder.VariableBuilder.wrap_module = wrap_rnnkit_module


class _OnDynamoImport(importlib.abc.MetaPathFinder):
    """Runs _let_dynamo_trace when torch._dynamo's variable builder is first imported (by torch.compile)."""

    MODULE = "torch._dynamo.variables.builder"

    def find_spec(self, name, path, target=None):
        if name != self.MODULE:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        exec_module = spec.loader.exec_module

        def exec_and_patch(module):
            exec_module(module)
            _let_dynamo_trace(module)

        spec.loader.exec_module = exec_and_patch
        return spec


def _at_step(key: str, mask: Tensor, t: int) -> Tensor:
    """Step t of a time-indexed mask (zoneout, (T, B, .)) as a one-step mask (1, B, .); others as they are."""
    if not key.startswith("zoneout_"):
        return mask
    if isinstance(t, bool) or not isinstance(t, numbers.Integral) or not 0 <= t < mask.shape[0]:
        raise ValueError(f"t must index the {mask.shape[0]} steps of mask {key!r}: expected an integer in "
                         f"[0, {mask.shape[0] - 1}], got {t!r}")
    return mask[t : t + 1]


class RNN(_Recurrent, nn.RNN):
    """torch.nn.RNN (h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh), or relu) with rnnkit's variants.

    Args beyond torch.nn.RNN: layer_norm (bool), recurrent_dropout, zoneout, weight_drop (probabilities in
    [0, 1)); see variants.py for the equations and the parameter names they add.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, device=None, dtype=None, *, layer_norm: bool = False,
                 recurrent_dropout: float = 0.0, zoneout: float = 0.0, weight_drop: float = 0.0):
        _check_sizes(input_size, hidden_size, num_layers, dropout)
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(input_size, hidden_size, num_layers, nonlinearity, bias, batch_first, dropout,
                         bidirectional, device=device, dtype=dtype)
        self._init_variants(layer_norm=layer_norm, recurrent_dropout=recurrent_dropout, zoneout=zoneout,
                            weight_drop=weight_drop)


class LSTM(_Recurrent, nn.LSTM):
    """torch.nn.LSTM (gates i, f, g, o; optional projection proj_size) with rnnkit's variants.

    Args beyond torch.nn.LSTM: layer_norm (bool), recurrent_dropout, zoneout, weight_drop (probabilities in
    [0, 1)); see variants.py for the equations and the parameter names they add.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 proj_size: int = 0, device=None, dtype=None, *, layer_norm: bool = False,
                 recurrent_dropout: float = 0.0, zoneout: float = 0.0, weight_drop: float = 0.0):
        _check_sizes(input_size, hidden_size, num_layers, dropout, proj_size)
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, device=device, dtype=dtype)
        self._init_variants(layer_norm=layer_norm, recurrent_dropout=recurrent_dropout, zoneout=zoneout,
                            weight_drop=weight_drop)


class GRU(_Recurrent, nn.GRU):
    """torch.nn.GRU (gates r, z, n; n = tanh(xp_n + r (W_hn h + b_hn))) with rnnkit's variants.

    Args beyond torch.nn.GRU: layer_norm (bool), recurrent_dropout, zoneout, weight_drop (probabilities in
    [0, 1)); see variants.py for the equations and the parameter names they add.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None, *, layer_norm: bool = False, recurrent_dropout: float = 0.0,
                 zoneout: float = 0.0, weight_drop: float = 0.0):
        _check_sizes(input_size, hidden_size, num_layers, dropout)
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         device=device, dtype=dtype)
        self._init_variants(layer_norm=layer_norm, recurrent_dropout=recurrent_dropout, zoneout=zoneout,
                            weight_drop=weight_drop)


if _OnDynamoImport.MODULE in sys.modules:
    _let_dynamo_trace(sys.modules[_OnDynamoImport.MODULE])
else:
    sys.meta_path.insert(0, _OnDynamoImport())
