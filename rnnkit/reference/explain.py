"""A step-by-step trace of a small recurrent forward pass, with the arithmetic written out, for learners.

Three files: `explain_trace.trace` computes every intermediate quantity as data (a list of `Step`s, each a
tuple of named `Quantity`s with the rule that produced it), `explain_format.format_trace` prints it, and this
file reads the weights and is the command (it re-exports both). `parse_weights` turns a plain
dict (a JSON file) into a validated `ExplainInput`. The equations are torch.nn's, gate order included (see
`cells.py`):

    rnn   a_t = W_xh x_t + W_hh h_{t-1} + b_h          h_t = tanh(a_t)  (or relu)
    lstm  i, f, o = sigmoid(W_x* x_t + W_h* h_{t-1} + b_*),   g = tanh(W_xg x_t + W_hg h_{t-1} + b_g)
          c_t = f * c_{t-1} + i * g                    h_t = o * tanh(c_t)
    gru   r, z = sigmoid(W_x* x_t + W_h* h_{t-1} + b_*)
          n = tanh(W_xn x_t + b_xn + r * (W_hn h_{t-1} + b_hn))
          h_t = (1 - z) * n + z * h_{t-1}
    all   y_t = W_hy h_t + b_y                         p_t = softmax(y_t)   (optional)

The weights format (JSON object; shapes with T time steps, I inputs, H hidden units, O outputs):

    "cell"         "rnn" | "lstm" | "gru"   (optional; --cell may say it instead; else `infer_cell`)
    "nonlinearity" "tanh" | "relu"          (optional, rnn only)
    "x"            (T, I)   the input sequence, one row per time step            required
    "h0"           (H,)     initial hidden state                                  default zeros
    "c0"           (H,)     initial cell state (lstm only)                        default zeros
    "W_hy", "b_y"  (O, H), (O,)  the output layer                                 optional
  and the cell's weights, either per gate (biases optional):
    rnn    W_xh (H, I), W_hh (H, H), b_h (H,)
    lstm   W_xi W_xf W_xg W_xo (H, I), W_hi W_hf W_hg W_ho (H, H), b_i b_f b_g b_o (H,)
    gru    W_xr W_xz W_xn (H, I), W_hr W_hz W_hn (H, H), b_r b_z b_xn b_hn (H,)
  or stacked in torch's layout (gate order i,f,g,o / r,z,n; the "_l0" suffix of a state_dict is accepted):
    weight_ih (G*H, I), weight_hh (G*H, H), bias_ih (G*H,), bias_hh (G*H,)   with G = 1, 4, 3 gates.
  Stacked biases are shown per gate as one sum b_* = b_i* + b_h*, except GRU's n, whose recurrent bias b_hn is
  multiplied by r and so stays apart.
  With no "cell" key and no --cell, the cell is read off the weights (`infer_cell`): the per-gate names
  (W_xh: rnn; W_xi ...: lstm; W_xr ...: gru), or the rows of the stacked weight_hh (G*H, H): H rnn, 4H lstm,
  3H gru.

Example:
    >>> from rnnkit.reference.explain import default_example, format_trace, parse_weights, trace
    >>> steps = trace(parse_weights(default_example("rnn")))
    >>> steps[0]["a"].round(4).tolist()
    [0.05, 0.11, 0.17]
    >>> print(format_trace(steps).splitlines()[0])
    Elman RNN (tanh): 3 time steps, input size 2, hidden size 3, output size 2
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .explain_format import format_trace
from .explain_trace import GATES, Apply, Bias, MatVec, Product, Quantity, Step, trace

__all__ = [
    "Apply",
    "Bias",
    "ExplainInput",
    "MatVec",
    "Product",
    "Quantity",
    "Step",
    "default_example",
    "explain",
    "format_trace",
    "infer_cell",
    "parse_weights",
    "read_weights",
    "trace",
]


# The classic tutorial example: 3 time steps of 2 features, 3 hidden units, 2 outputs, h_0 = 0, no biases.
TUTORIAL = {
    "x": [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]],
    "W_xh": [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]],
    "W_hh": [[0.7, 0.8, 0.9], [0.1, 0.2, 0.3], [0.4, 0.5, 0.6]],
    "W_hy": [[0.7, 0.8, 0.9], [0.1, 0.2, 0.3]],
}


# ----------------------------------------------------------------------------------- input


@dataclass(frozen=True)
class ExplainInput:
    """Validated weights and inputs, per gate. Shapes: T time, I input, H hidden, O output."""

    cell: str  # "rnn", "lstm" or "gru"
    nonlinearity: str  # "tanh" or "relu" (rnn); "tanh" otherwise
    x: np.ndarray  # (T, I)
    h0: np.ndarray  # (H,)
    c0: np.ndarray | None  # (H,), lstm only
    W_x: dict  # gate -> (H, I)
    W_h: dict  # gate -> (H, H)
    b: dict  # bias name ("b_h", "b_i", ..., "b_xn", "b_hn") -> (H,); only the biases given
    W_hy: np.ndarray | None  # (O, H)
    b_y: np.ndarray | None  # (O,)


def _bias_names(cell):
    if cell == "gru":
        return ("b_r", "b_z", "b_xn", "b_hn")
    return tuple(f"b_{g}" for g in GATES[cell])


def _per_gate_keys(cell):
    gates = GATES[cell]
    return tuple(f"W_x{g}" for g in gates) + tuple(f"W_h{g}" for g in gates) + _bias_names(cell)


STACKED = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def _array(spec, key, shape, what):
    """spec[key] as a finite float64 array of `shape` (None: any length); `what` says what the axes mean."""
    value, shown = spec[key], tuple("?" if n is None else n for n in shape)
    shown = f"({shown[0]},)" if len(shown) == 1 else "(" + ", ".join(map(str, shown)) + ")"
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        given = repr(value)[:80]
        raise ValueError(f"{key}: expected a numeric array of shape {shown} ({what}), got {given}") from None
    if arr.ndim != len(shape) or any(n is not None and n != m for n, m in zip(shape, arr.shape, strict=True)):
        raise ValueError(f"{key}: expected shape {shown} ({what}), got {arr.shape}")
    if not np.isfinite(arr).all():
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise ValueError(f"{key} must be finite, got {arr[bad]} at index {bad}")
    return arr


def infer_cell(spec: dict) -> str:
    """The cell a weights dict is for, read off its keys: the per-gate names (W_xh: rnn; W_xi, W_hf, b_o, ...:
    lstm; W_xr, W_hz, b_hn, ...: gru), or else the stacked weight_hh (G*H, H): G = 1 rnn, 4 lstm, 3 gru.

    Raises ValueError when the keys name more than one cell, or none and weight_hh's shape fits no cell.
    """
    named = [cell for cell in GATES if set(spec) & set(_per_gate_keys(cell))]
    if len(named) == 1:
        return named[0]
    if len(named) > 1:
        found = {cell: sorted(set(spec) & set(_per_gate_keys(cell))) for cell in named}
        shown = ", ".join(f"{cell} ({' '.join(keys)})" for cell, keys in found.items())
        raise ValueError(f"cell: cannot tell, the weights have per-gate keys of {shown}; give --cell")
    key = next((k for k in ("weight_hh", "weight_hh_l0") if k in spec), None)
    if key is None:
        raise ValueError(
            "cell: cannot tell, the weights hold no cell weights (per gate, e.g. W_xh W_hh, or stacked "
            "weight_ih weight_hh); give --cell or the keys"
        )
    try:
        rows, cols = np.asarray(spec[key], dtype=np.float64).shape
    except (TypeError, ValueError):  # not a numeric 2-D array
        raise ValueError(f"cell: cannot tell from {key}, which is not a numeric (G*H, H) array; "
                         "give --cell") from None
    by_gates = {len(gates): cell for cell, gates in GATES.items()}  # 1 rnn, 4 lstm, 3 gru
    if cols == 0 or rows % cols or rows // cols not in by_gates:
        raise ValueError(
            f"cell: cannot tell from {key} of shape ({rows}, {cols}): expected H = {cols} rows (rnn), "
            f"4H = {4 * cols} (lstm) or 3H = {3 * cols} (gru); give --cell"
        )
    return by_gates[rows // cols]


def _choose(name, from_spec, from_flag, allowed, default):
    if from_spec is not None and from_flag is not None and from_spec != from_flag:
        raise ValueError(f"{name}: the weights say {from_spec!r} but the command line says {from_flag!r}")
    value = from_flag if from_flag is not None else from_spec if from_spec is not None else default
    if value not in allowed:
        raise ValueError(f"{name}: expected one of {list(allowed)}, got {value!r}")
    return value


def parse_weights(spec: dict, cell: str | None = None, nonlinearity: str | None = None) -> ExplainInput:
    """Validate a weights dict (the JSON format in the module docstring) and split it per gate.

    Args:
        spec: the dict; `cell` and `nonlinearity` here override (and must agree with) its own keys. With
            neither a `cell` here nor a "cell" key, `infer_cell` reads it off the weights.

    Returns:
        An ExplainInput. Raises ValueError naming the expected and the given value on any problem.
    """
    if not isinstance(spec, dict):
        raise ValueError(f"weights: expected a JSON object (keys x, W_xh, ...), got {type(spec).__name__}")
    if cell is None and spec.get("cell") is None:
        cell = infer_cell(spec)
    cell = _choose("cell", spec.get("cell"), cell, tuple(GATES), "rnn")
    nonlinearity = _choose("nonlinearity", spec.get("nonlinearity"), nonlinearity, ("tanh", "relu"), "tanh")
    if cell != "rnn" and nonlinearity != "tanh":
        raise ValueError(f"nonlinearity: only the rnn cell takes one, got {nonlinearity!r} for {cell}")
    spec = {re.sub(r"_l0$", "", k) if k.split("_l0")[0] in STACKED else k: v for k, v in spec.items()}
    per_gate, common = _per_gate_keys(cell), ("cell", "nonlinearity", "x", "h0", "W_hy", "b_y")
    known = common + per_gate + STACKED + (("c0",) if cell == "lstm" else ())
    unknown = sorted(set(spec) - set(known))
    if unknown:
        raise ValueError(f"unexpected keys {unknown} for cell {cell}; expected keys among {list(known)}")
    stacked = [k for k in STACKED if k in spec]
    if stacked and any(k in spec for k in per_gate):
        raise ValueError(f"give the {cell} weights per gate or stacked, not both: got {stacked} and "
                         f"{[k for k in per_gate if k in spec]}")
    required = ("x",) + (("weight_ih", "weight_hh") if stacked else per_gate[: 2 * len(GATES[cell])])
    missing = [k for k in required if k not in spec]
    if missing:
        raise ValueError(f"missing keys {missing} for cell {cell} ({'stacked' if stacked else 'per gate'})")

    x = _array(spec, "x", (None, None), "T time steps x I inputs, a list of time steps")
    T, I = x.shape
    gates, G = GATES[cell], len(GATES[cell])
    h_key = "weight_hh" if stacked else f"W_h{gates[0]}"
    H = _array(spec, h_key, (None, None), "its columns are the H hidden units").shape[1]

    W_x, W_h, b = {}, {}, {}
    if stacked:
        W_ih = _array(spec, "weight_ih", (G * H, I), f"{G} gates * H={H} hidden x I={I} inputs")
        W_hh = _array(spec, "weight_hh", (G * H, H), f"{G} gates * H={H} hidden x H hidden")
        b_ih, b_hh = (_array(spec, k, (G * H,), f"{G} gates * H={H}") if k in spec else None
                      for k in ("bias_ih", "bias_hh"))
        for k, g in enumerate(gates):
            rows = slice(k * H, (k + 1) * H)
            W_x[g], W_h[g] = W_ih[rows], W_hh[rows]
            parts = [bias[rows] for bias in (b_ih, b_hh) if bias is not None]
            if cell == "gru" and g == "n":
                for name, bias in (("b_xn", b_ih), ("b_hn", b_hh)):
                    if bias is not None:
                        b[name] = bias[rows]
            elif parts:
                b[f"b_{g}"] = sum(parts)
    else:
        for g in gates:
            W_x[g] = _array(spec, f"W_x{g}", (H, I), f"H={H} hidden x I={I} inputs")
            W_h[g] = _array(spec, f"W_h{g}", (H, H), f"H={H} hidden x H hidden")
        for name in _bias_names(cell):
            if name in spec:
                b[name] = _array(spec, name, (H,), f"H={H} hidden")

    h0 = _array(spec, "h0", (H,), f"H={H} hidden") if "h0" in spec else np.zeros(H)
    c0 = None
    if cell == "lstm":
        c0 = _array(spec, "c0", (H,), f"H={H} hidden") if "c0" in spec else np.zeros(H)
    W_hy = b_y = None
    if "W_hy" in spec:
        W_hy = _array(spec, "W_hy", (None, H), f"O outputs x H={H} hidden")
        if "b_y" in spec:
            b_y = _array(spec, "b_y", (W_hy.shape[0],), f"O={W_hy.shape[0]} outputs")
    elif "b_y" in spec:
        raise ValueError("b_y given without W_hy: the output layer y = W_hy h + b_y needs W_hy")
    return ExplainInput(cell, nonlinearity, x, h0, c0, W_x, W_h, b, W_hy, b_y)


def read_weights(path: str | Path) -> dict:
    """Read a weights JSON file (an object); malformed JSON is a ValueError naming file, line and column."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        spec = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
    if not isinstance(spec, dict):
        raise ValueError(f"{path}: expected a JSON object (keys x, W_xh, ...), got {type(spec).__name__}")
    return spec


def default_example(cell: str = "rnn", seed: int = 0) -> dict:
    """The tutorial example for rnn; for lstm and gru, its x and W_hy with made-up gate weights.

    The made-up weights are drawn from U(-1, 1) with `seed` and rounded to one decimal so that the arithmetic
    stays easy to follow by hand.
    """
    if cell == "rnn":
        return dict(TUTORIAL)
    if cell not in GATES:
        raise ValueError(f"cell: expected one of {list(GATES)}, got {cell!r}")
    rng = np.random.default_rng(seed)
    H, I = 3, 2
    spec = {"cell": cell, "x": TUTORIAL["x"], "W_hy": TUTORIAL["W_hy"]}
    for g in GATES[cell]:
        spec[f"W_x{g}"] = np.round(rng.uniform(-1, 1, (H, I)), 1).tolist()
        spec[f"W_h{g}"] = np.round(rng.uniform(-1, 1, (H, H)), 1).tolist()
    return spec


# ----------------------------------------------------------------------------------- the command


def _override(item: str) -> tuple[str, object]:
    """'KEY=JSON' -> (KEY, value), e.g. 'h0=[0.1, 0, 0]'."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"expected KEY=JSON (e.g. h0=[0.1, 0, 0]), got {item!r}")
    try:
        return key.strip(), json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{key.strip()}: not valid JSON ({e.msg} at column {e.colno}): {text!r}") from None


def explain(
    weights: str | Path | None = None,
    cell: str | None = None,
    nonlinearity: str | None = None,
    overrides: list[str] = (),
    softmax: bool = False,
    precision: int = 4,
    seed: int = 0,
) -> str:
    """What `rnnkit explain` prints: the weights from a JSON file (or the default example), then KEY=JSON
    overrides applied on top, traced and formatted.

    Args:
        weights: path of a JSON weights file (format in the module docstring); None: `default_example`.
        cell, nonlinearity: as in `parse_weights`.
        overrides: strings "KEY=JSON" replacing or adding keys, e.g. "x=[[1, 2]]".
        softmax: also show p_t = softmax(y_t).
        precision: decimals shown.
        seed: seed of the made-up LSTM/GRU weights of the default example.
    """
    if weights is not None:
        spec = read_weights(weights)
    else:
        spec = default_example(cell or "rnn", seed)
    spec = {**spec, **dict(_override(item) for item in overrides)}
    inp = parse_weights(spec, cell, nonlinearity)
    return format_trace(trace(inp, softmax), inp, precision)
