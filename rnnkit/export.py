"""ONNX export of models with rnnkit RNN / LSTM / GRU layers, every cell and variant, dynamic batch and time.

torch.onnx.export of a recurrence either unrolls it (a graph fixed to the example's T) or, for torch.nn's
fused RNNs, emits a Reshape that hard-codes T (pytorch#126339). `export` instead maps each layer-direction to
one ONNX loop over time, so the graph takes any batch size B and any length T. Standard cells become ONNX's
own recurrent operators (LSTM, GRU, RNN, which runtimes fuse):

- a copy of the model, in eval mode, has each rnnkit layer run through a custom op per layer-direction,
  `torch.ops.rnnkit_onnx.lstm` / `.recurrence` (eager: the pure-torch scan; traced: shapes only);
- torch.onnx.export (dynamo) translates each op to the ONNX operator, the weights reordered to ONNX's gate
  order (torch LSTM i, f, g, o -> ONNX i, o, f, c; GRU r, z, n -> z, r, h, with linear_before_reset=1,
  which is torch's n = tanh(xp_n + r (W_hn h + b_hn))); layers stack and directions concatenate around it.

The cells those operators cannot express (layer_norm, zoneout's eval-mode mix of old and new state
d * s_{t-1} + (1 - d) * s_t, LSTM proj_size), and every layer called with `lengths=`, run the cell's own step
(rnnkit.nn.cells) under torch's scan operator, which the exporter writes as ONNX's Scan: the input
projection of all steps as one MatMul, the step's body once. With lengths (an input of the graph, (B,)) each
sequence's state stops at its last valid step and its outputs past it are 0, the reverse direction reads
each sequence from its own last step (rnnkit.nn's padded semantics).

Supported: RNN (tanh, relu), LSTM, GRU, every variant (recurrent_dropout, weight_drop and dropout are the
identity in eval mode); num_layers, bidirectional, batch_first, bias=False, an initial state hx, lengths=.
Not supported (a ValueError naming it): PackedSequence inputs, unbatched (2-D) inputs.

    >>> model = torch.nn.Sequential(rnnkit.nn.LSTM(3, 8, num_layers=2, batch_first=True))
    >>> program = export(model, (torch.randn(4, 7, 3),), "lstm.onnx")        # any (B, T, 3) afterwards
"""

from __future__ import annotations

import copy
import types

import torch
from torch import Tensor

from .kernels.scan import scan, valid_steps
from .nn.cells import STEPS, CellParams, input_projection
from .nn.layers import _Recurrent
from .nn.scan import reverse_padded

__all__ = ["export"]


def export(model: torch.nn.Module, args: tuple, path=None, *, kwargs: dict | None = None,
           dynamic_shapes=None, **options) -> torch.onnx.ONNXProgram:
    """Export `model` (any module whose recurrent layers are rnnkit.nn RNN / LSTM / GRU) to ONNX.

    Args:
        model: left unchanged; a copy in eval mode is exported.
        args, kwargs: example inputs, as for torch.onnx.export. Give batch and time sizes above 1 that differ
            from each other and from the feature sizes, so the exporter keeps them dynamic.
        path: where to save the .onnx file (None: not saved).
        dynamic_shapes: as torch.onnx.export; default every dimension of every tensor in args is
            torch.export.Dim.AUTO (nested in tuples and lists as the args are).
        options: passed on to torch.onnx.export (opset_version, optimize, ...).
    Returns:
        the torch.onnx.ONNXProgram (`program.model_proto`, `program.save(path)`, `program(*inputs)`).
    Raises:
        ValueError: for inputs the export cannot take (a PackedSequence, an unbatched input).
    """
    options.setdefault("verbose", False)
    model = copy.deepcopy(model).eval().requires_grad_(False)   # (an inference graph: no autograd in it)
    for module in model.modules():
        if isinstance(module, _Recurrent):
            module.forward = types.MethodType(_onnx_forward, module)
    if dynamic_shapes is None:
        dynamic_shapes = _all_dims_auto(tuple(args))
    program = torch.onnx.export(model, tuple(args), kwargs=kwargs, dynamo=True, dynamic_shapes=dynamic_shapes,
                                custom_translation_table=_TRANSLATIONS, **options)
    if path is not None:
        program.save(path)
    return program


def _all_dims_auto(value):
    """dynamic_shapes shaped as `value`: torch.export.Dim.AUTO for every dimension of every tensor."""
    if isinstance(value, Tensor):
        return {d: torch.export.Dim.AUTO for d in range(value.dim())}
    if isinstance(value, tuple | list):
        return type(value)(_all_dims_auto(v) for v in value)
    return None


def _native(layer) -> bool:
    """Whether ONNX's own LSTM / GRU / RNN operator computes this layer (in eval mode)."""
    return not (getattr(layer, "proj_size", 0) or layer.variants.layer_norm or layer.variants.zoneout > 0)


def _onnx_forward(self, input, hx=None, *, lengths=None, masks=None, enforce_sorted: bool = False):
    """The layer's forward under export: layers and directions around one ONNX loop per layer-direction
    (a native operator, through its custom op, or the scan operator)."""
    if not isinstance(input, Tensor) or input.dim() != 3:
        got = f"a {input.dim()}-D input" if isinstance(input, Tensor) else type(input).__name__
        raise ValueError(f"ONNX export of {self.mode} needs a batched 3-D tensor input (and lengths= for "
                         f"padding, not a PackedSequence), got {got}")
    x = input.transpose(0, 1) if self.batch_first else input                          # (T, B, I)
    lengths = None if lengths is None else torch.as_tensor(lengths, device=x.device)   # (B,)
    D, L, H = (2 if self.bidirectional else 1), self.num_layers, self.hidden_size
    P = getattr(self, "proj_size", 0) or H
    is_lstm = self.mode == "LSTM"
    if hx is None:
        hx = (x.new_zeros(L * D, x.shape[1], P),) + ((x.new_zeros(L * D, x.shape[1], H),) if is_lstm else ())
    else:
        hx = tuple(hx) if is_lstm else (hx,)                                           # (L * D, B, P / H)
    finals = []
    for layer in range(L):
        outputs = []
        for direction in range(D):
            k, sfx = layer * D + direction, f"_l{layer}" + ("_reverse" if direction else "")
            weights = [getattr(self, name + sfx, None)
                       for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            if lengths is not None or not _native(self):
                y, final = _scan_operator(self, sfx, x, tuple(h[k] for h in hx), bool(direction), lengths)
                finals.append(final)
            elif is_lstm:
                y, h_n, c_n = torch.ops.rnnkit_onnx.lstm(x, hx[0][k], hx[1][k], *weights, bool(direction))
                finals.append((h_n, c_n))
            else:
                y, h_n = torch.ops.rnnkit_onnx.recurrence(x, hx[0][k], *weights, self.mode, bool(direction))
                finals.append((h_n,))
            outputs.append(y)                                                          # (T, B, H)
        x = torch.cat(outputs, dim=-1)                                                 # (T, B, D * H)
    h_n = tuple(torch.stack([final[i] for final in finals]) for i in range(len(hx)))  # (L * D, B, H)
    output = x.transpose(0, 1) if self.batch_first else x
    return output, (h_n if is_lstm else h_n[0])


def _scan_operator(layer, sfx: str, x: Tensor, state: tuple[Tensor, ...], reverse: bool,
                   lengths: Tensor | None):
    """One layer-direction of any cell as torch's scan operator (ONNX Scan): x (T, B, I), state ((B, P)[,
    (B, H)]), lengths (B,) or None -> y (T, B, P), final state. The body is the cell's step, zoneout's
    eval-mode mix, then (with lengths) the old state kept and y_t = 0 past each sequence's end."""
    from torch._higher_order_ops.scan import scan as scan_operator

    p, step, d = layer._cell_params(sfx, {}), STEPS[layer.mode], layer.variants.zoneout

    def body(carry, inputs):
        xp_t, keep = inputs                                                            # (B, G), (B, 1)
        new = step(xp_t, carry, p, None)
        if d > 0:
            new = tuple(torch.lerp(fresh, old, d) for fresh, old in zip(new, carry, strict=True))
        new = tuple(torch.where(keep, fresh, old) for fresh, old in zip(new, carry, strict=True))
        return new, torch.where(keep, new[0], torch.zeros_like(new[0]))               # (carry, y_t (B, P))

    flip = (lambda v: reverse_padded(v, lengths)) if reverse else (lambda v: v)        # noqa: E731
    xp = input_projection(flip(x), p)                                                  # (T, B, G)
    if lengths is None:
        keep = torch.ones_like(xp[..., :1], dtype=torch.bool)                          # (T, B, 1)
    else:
        keep = valid_steps(lengths, xp.shape[0], xp.device).unsqueeze(-1)              # (T, B, 1)
    final, y = scan_operator(body, state, (xp, keep))
    return flip(y), final


# ---------------------------------------------------------------- the custom ops: eager (the scan) and fake


def _scan_direction(mode, x, state, w_ih, w_hh, b_ih, b_hh, reverse):
    p = CellParams(w_ih, w_hh, b_ih, b_hh, None, None, None, None, mode == "RNN_RELU")
    x = x.flip(0) if reverse else x
    y, final = scan(STEPS[mode], input_projection(x, p), state, p)                    # (T, B, H)
    return (y.flip(0) if reverse else y), *final


@torch.library.custom_op("rnnkit_onnx::lstm", mutates_args=())
def _lstm(x: Tensor, h0: Tensor, c0: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None,
          b_hh: Tensor | None, reverse: bool) -> tuple[Tensor, Tensor, Tensor]:
    """One LSTM layer-direction: x (T, B, I), h0, c0 (B, H) -> y (T, B, H), h_n, c_n (B, H)."""
    return tuple(v.clone() for v in _scan_direction("LSTM", x, (h0, c0), w_ih, w_hh, b_ih, b_hh, reverse))


@torch.library.custom_op("rnnkit_onnx::recurrence", mutates_args=())
def _recurrence(x: Tensor, h0: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None, b_hh: Tensor | None,
                mode: str, reverse: bool) -> tuple[Tensor, Tensor]:
    """One GRU / RNN_TANH / RNN_RELU layer-direction: x (T, B, I), h0 (B, H) -> y (T, B, H), h_n (B, H)."""
    return tuple(v.clone() for v in _scan_direction(mode, x, (h0,), w_ih, w_hh, b_ih, b_hh, reverse))


@_lstm.register_fake
def _lstm_fake(x, h0, c0, w_ih, w_hh, b_ih, b_hh, reverse):
    return x.new_empty(*x.shape[:2], h0.shape[-1]), torch.empty_like(h0), torch.empty_like(c0)


@_recurrence.register_fake
def _recurrence_fake(x, h0, w_ih, w_hh, b_ih, b_hh, mode, reverse):
    return x.new_empty(*x.shape[:2], h0.shape[-1]), torch.empty_like(h0)


# ------------------------------------------------------------------------- ONNX translations (onnxscript)

_ORDER = {"LSTM": (0, 3, 1, 2), "GRU": (1, 0, 2), "RNN_TANH": (0,), "RNN_RELU": (0,)}   # torch -> ONNX gates


def _onnx_inputs(op, mode, x, h0, w_ih, w_hh, b_ih, b_hh):
    """ONNX's W (1, G, I), R (1, G, H), B (1, 2G) or None, initial_h (1, B, H), in ONNX's gate order."""
    order = _ORDER[mode]

    H = w_hh.shape[1]
    rows = op.Constant(value_ints=[g * H + j for g in order for j in range(H)])   # (G,) in ONNX's order
    reorder = lambda w: w if len(order) == 1 else op.Gather(w, rows, axis=0)  # noqa: E731  (constant-folded)

    unsqueeze = lambda v: op.Unsqueeze(v, op.Constant(value_ints=[0]))  # noqa: E731
    W, R = unsqueeze(reorder(w_ih)), unsqueeze(reorder(w_hh))
    if b_ih is None and b_hh is None:
        B = None
    else:
        zeros = op.ConstantOfShape(op.Shape(w_hh, start=0, end=1))           # (G,), of the weights' dtype
        zeros = op.CastLike(zeros, w_hh)
        B = unsqueeze(op.Concat(*[reorder(b) if b is not None else zeros for b in (b_ih, b_hh)], axis=0))
    return W, R, B, unsqueeze(h0)


def _lstm_onnx(x, h0, c0, w_ih, w_hh, b_ih, b_hh, reverse):
    from onnxscript import opset18 as op

    W, R, B, initial_h = _onnx_inputs(op, "LSTM", x, h0, w_ih, w_hh, b_ih, b_hh)
    initial_c = op.Unsqueeze(c0, op.Constant(value_ints=[0]))
    direction = "reverse" if reverse else "forward"
    Y, Y_h, Y_c = op.LSTM(x, W, R, B, None, initial_h, initial_c, direction=direction,
                          hidden_size=w_hh.shape[1])                         # Y (T, 1, B, H)
    axis = op.Constant(value_ints=[1])
    first = op.Constant(value_ints=[0])
    return op.Squeeze(Y, axis), op.Squeeze(Y_h, first), op.Squeeze(Y_c, first)


def _recurrence_onnx(x, h0, w_ih, w_hh, b_ih, b_hh, mode, reverse):
    from onnxscript import opset18 as op

    W, R, B, initial_h = _onnx_inputs(op, mode, x, h0, w_ih, w_hh, b_ih, b_hh)
    direction = "reverse" if reverse else "forward"
    if mode == "GRU":
        Y, Y_h = op.GRU(x, W, R, B, None, initial_h, direction=direction, hidden_size=w_hh.shape[1],
                        linear_before_reset=1)
    else:
        Y, Y_h = op.RNN(x, W, R, B, None, initial_h, direction=direction, hidden_size=w_hh.shape[1],
                        activations=["Relu" if mode == "RNN_RELU" else "Tanh"])
    return op.Squeeze(Y, op.Constant(value_ints=[1])), op.Squeeze(Y_h, op.Constant(value_ints=[0]))


_TRANSLATIONS = {torch.ops.rnnkit_onnx.lstm.default: _lstm_onnx,
                 torch.ops.rnnkit_onnx.recurrence.default: _recurrence_onnx}
