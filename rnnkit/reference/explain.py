"""A step-by-step trace of a small recurrent forward pass, with the arithmetic written out, for learners.

Two halves: `trace` computes every intermediate quantity as data (a list of `Step`s, each a tuple of
named `Quantity`s with the rule that produced it), and `format_trace` prints it. `parse_weights` turns a plain
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

    "cell"         "rnn" | "lstm" | "gru"   (optional; --cell may say it instead)
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

from .cells import sigmoid

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
    "parse_weights",
    "read_weights",
    "trace",
]

GATES = {"rnn": ("h",), "lstm": ("i", "f", "g", "o"), "gru": ("r", "z", "n")}
CELL_NAMES = {"rnn": "Elman RNN", "lstm": "LSTM", "gru": "GRU"}

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
        spec: the dict; `cell` and `nonlinearity` here override (and must agree with) its own keys.

    Returns:
        An ExplainInput. Raises ValueError naming the expected and the given value on any problem.
    """
    if not isinstance(spec, dict):
        raise ValueError(f"weights: expected a JSON object (keys x, W_xh, ...), got {type(spec).__name__}")
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


# ----------------------------------------------------------------------------------- trace as data


@dataclass(frozen=True)
class MatVec:
    """A term M v of a sum."""

    matrix: str
    M: np.ndarray  # (n, k)
    vector: str
    v: np.ndarray  # (k,)


@dataclass(frozen=True)
class Product:
    """An elementwise term a * b of a sum."""

    left: str
    a: np.ndarray  # (n,)
    right: str
    b: np.ndarray  # (n,)


@dataclass(frozen=True)
class Bias:
    """A vector term b of a sum."""

    name: str
    b: np.ndarray  # (n,)


@dataclass(frozen=True)
class Apply:
    """value = function(argument), elementwise (softmax: over the vector)."""

    function: str  # "tanh", "sigmoid", "relu", "softmax"
    argument: str
    value: np.ndarray  # (n,) the argument's value


FUNCTIONS = {
    "tanh": np.tanh,
    "sigmoid": sigmoid,
    "relu": lambda a: np.maximum(a, 0.0),
    "softmax": lambda a: np.exp(a - a.max()) / np.exp(a - a.max()).sum(),
}


@dataclass(frozen=True)
class Quantity:
    """One named vector of a step, and the rule that produced it: a sum of terms, or a function applied."""

    symbol: str  # "a", "ai", "i", "c", "h", "y", "p", ...
    name: str  # the symbol at its time step, e.g. "h_2"
    meaning: str  # e.g. "input gate"
    rule: tuple | Apply  # a tuple of MatVec/Product/Bias terms (their sum), or an Apply
    value: np.ndarray  # (n,)


@dataclass(frozen=True)
class Step:
    """Every quantity computed at time step t (1-based, as in the tutorials), in order of computation."""

    t: int
    x: np.ndarray  # (I,)
    quantities: tuple

    def __getitem__(self, symbol: str) -> np.ndarray:
        for q in self.quantities:
            if q.symbol == symbol:
                return q.value
        have = [q.symbol for q in self.quantities]
        raise KeyError(f"step {self.t} has no quantity {symbol!r}; it has {have}")


def _sum(terms):
    total = 0.0
    for term in terms:
        if isinstance(term, MatVec):
            total = total + term.M @ term.v
        elif isinstance(term, Product):
            total = total + term.a * term.b
        else:
            total = total + term.b
    return total


def _gate_sum(inp, g, t, x, h):
    """The terms of W_xg x_t + W_hg h_{t-1} (+ b_g when given)."""
    terms = (MatVec(f"W_x{g}", inp.W_x[g], f"x_{t}", x), MatVec(f"W_h{g}", inp.W_h[g], f"h_{t - 1}", h))
    return terms + ((Bias(f"b_{g}", inp.b[f"b_{g}"]),) if f"b_{g}" in inp.b else ())


def _step(inp, t, x, h, c, softmax):
    """Every quantity of time step t, in order of computation; returns (quantities, h_t, c_t)."""
    qs = []

    def add(symbol, meaning, rule):
        value = FUNCTIONS[rule.function](rule.value) if isinstance(rule, Apply) else _sum(rule)
        qs.append(Quantity(symbol, f"{symbol}_{t}", meaning, rule, value))
        return value

    if inp.cell == "rnn":
        a = add("a", "pre-activation", _gate_sum(inp, "h", t, x, h))
        h = add("h", "hidden state", Apply(inp.nonlinearity, f"a_{t}", a))
    elif inp.cell == "lstm":
        gate = {}
        for g, act, meaning in (("i", "sigmoid", "input gate"), ("f", "sigmoid", "forget gate"),
                                ("g", "tanh", "candidate cell"), ("o", "sigmoid", "output gate")):
            a = add(f"a{g}", f"{meaning} pre-activation", _gate_sum(inp, g, t, x, h))
            gate[g] = add(g, meaning, Apply(act, f"a{g}_{t}", a))
        c = add("c", "cell state", (Product(f"f_{t}", gate["f"], f"c_{t - 1}", c),
                                    Product(f"i_{t}", gate["i"], f"g_{t}", gate["g"])))
        h = add("h", "hidden state", (Product(f"o_{t}", gate["o"], f"tanh(c_{t})", np.tanh(c)),))
    else:
        gate = {}
        for g, meaning in (("r", "reset gate"), ("z", "update gate")):
            a = add(f"a{g}", f"{meaning} pre-activation", _gate_sum(inp, g, t, x, h))
            gate[g] = add(g, meaning, Apply("sigmoid", f"a{g}_{t}", a))
        # r gates only the recurrent part of the candidate, so that part (with its own bias) is a quantity.
        b_hn = (Bias("b_hn", inp.b["b_hn"]),) if "b_hn" in inp.b else ()
        hn = add("hn", "recurrent part of n", (MatVec("W_hn", inp.W_h["n"], f"h_{t - 1}", h),) + b_hn)
        b_xn = (Bias("b_xn", inp.b["b_xn"]),) if "b_xn" in inp.b else ()
        a = add("an", "candidate pre-activation", (MatVec("W_xn", inp.W_x["n"], f"x_{t}", x),) + b_xn
                + (Product(f"r_{t}", gate["r"], f"hn_{t}", hn),))
        n = add("n", "candidate", Apply("tanh", f"an_{t}", a))
        z = gate["z"]
        h = add("h", "hidden state", (Product(f"(1 - z_{t})", 1.0 - z, f"n_{t}", n),
                                      Product(f"z_{t}", z, f"h_{t - 1}", h)))
    if inp.W_hy is not None:
        b_y = (Bias("b_y", inp.b_y),) if inp.b_y is not None else ()
        y = add("y", "output", (MatVec("W_hy", inp.W_hy, f"h_{t}", h),) + b_y)
        if softmax:
            add("p", "probabilities", Apply("softmax", f"y_{t}", y))
    return tuple(qs), h, c


def trace(inp: ExplainInput, softmax: bool = False) -> list[Step]:
    """Run the forward pass one step at a time, recording every quantity with the rule that made it.

    Args:
        inp: validated weights and inputs (see `parse_weights`).
        softmax: also record p_t = softmax(y_t) (needs W_hy).

    Returns:
        One Step per time step; step["h"] is h_t (H,), step["y"] is y_t (O,), and so on.
    """
    if softmax and inp.W_hy is None:
        raise ValueError("softmax needs an output layer: give W_hy (O, H) in the weights")
    h, c = inp.h0, inp.c0
    steps = []
    for t, x in enumerate(inp.x, start=1):
        quantities, h, c = _step(inp, t, x, h, c, softmax)
        steps.append(Step(t, x, quantities))
    return steps


# ----------------------------------------------------------------------------------- formatting


def _num(v: float, precision: int) -> str:
    """v rounded to `precision` decimals, trailing zeros dropped: 0.0500 -> 0.05, -0.0 -> 0."""
    s = f"{v:.{precision}f}"
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def _factor(v, precision):
    s = _num(v, precision)
    return f"({s})" if s.startswith("-") else s


def _vector(v, precision):
    return "[" + ", ".join(_num(e, precision) for e in v) + "]"


def _matrix(M, precision):
    return "[" + ", ".join(_vector(row, precision) for row in M) + "]"


def _formula(rule) -> str:
    if isinstance(rule, Apply):
        return f"{rule.function}({rule.argument})"
    parts = []
    for term in rule:
        if isinstance(term, MatVec):
            parts.append(f"{term.matrix} {term.vector}")
        elif isinstance(term, Product):
            parts.append(f"{term.left} * {term.right}")
        else:
            parts.append(term.name)
    return " + ".join(parts)


def _elements(rule, precision) -> list[str]:
    """The arithmetic of each element of a sum; terms whose vector is all zeros are left out."""
    n = len(_sum(rule))
    out = []
    for j in range(n):
        parts = []
        for term in rule:
            if isinstance(term, MatVec) and np.any(term.v != 0):
                pairs = zip(term.M[j], term.v, strict=True)
                parts += [f"{_factor(m, precision)}*{_factor(v, precision)}" for m, v in pairs]
            elif isinstance(term, Product) and np.any(term.a != 0) and np.any(term.b != 0):
                parts.append(f"{_factor(term.a[j], precision)}*{_factor(term.b[j], precision)}")
            elif isinstance(term, Bias):
                parts.append(_factor(term.b[j], precision))
        out.append(" + ".join(parts))
    return out


def _bracket(items, indent, width=110):
    line = "[" + ", ".join(items) + "]"
    if indent + len(line) <= width:
        return line
    return "[" + (",\n" + " " * (indent + 1)).join(items) + "]"


def _lines(q: Quantity, precision: int) -> list[str]:
    lead = f"  {q.name} = "
    pad = " " * (len(lead) - 2) + "= "
    lines = [lead + _formula(q.rule)]
    if isinstance(q.rule, Apply):
        arg = _vector(q.rule.value, precision)
        if q.rule.function == "softmax":
            exps = np.exp(q.rule.value - q.rule.value.max())
            lines.append(pad + f"exp({q.rule.argument} - max) / sum = {_vector(exps, precision)} / "
                         f"{_num(exps.sum(), precision)}")
        else:
            lines.append(pad + f"{q.rule.function}({arg})")
    else:
        arithmetic = _elements(q.rule, precision)
        if all(arithmetic) and (len(q.rule) > 1 or not isinstance(q.rule[0], Bias)):
            lines.append(pad + _bracket(arithmetic, len(pad)))
    lines.append(pad + _vector(q.value, precision))
    return lines


def format_trace(steps: list[Step], inp: ExplainInput | None = None, precision: int = 4) -> str:
    """The trace as text: a header with the equations (and the weights, when `inp` is given), then each step.

    Args:
        steps: from `trace`.
        inp: the input the trace was made from, to print its weights; None leaves them out.
        precision: decimal places of every printed number (trailing zeros dropped).
    """
    if not isinstance(precision, int) or not 0 <= precision <= 17:
        raise ValueError(f"precision: expected an integer number of digits in [0, 17], got {precision!r}")
    if not steps:
        raise ValueError("nothing to explain: the input sequence x has no time steps")
    first = steps[0]
    cell = {"a": "rnn", "ai": "lstm", "ar": "gru"}[first.quantities[0].symbol]
    H = len(first["h"])
    kind = CELL_NAMES[cell] + (f" ({first.quantities[1].rule.function})" if cell == "rnn" else "")
    sizes = f"{len(steps)} time steps, input size {len(first.x)}, hidden size {H}"
    has_y = any(q.symbol == "y" for q in first.quantities)
    out = [f"{kind}: {sizes}" + (f", output size {len(first['y'])}" if has_y else ""), "", "Equations:"]
    generic = {"_1": "_t", "_0": "_{t-1}"}
    for q in first.quantities:
        text = f"{q.name} = {_formula(q.rule)}"
        out.append("  " + re.sub(r"_[01]\b", lambda m: generic[m.group()], text).ljust(44) + f"  {q.meaning}")
    if inp is not None:
        out += ["", "Given:"]
        shown = [("x", inp.x)] + [(f"W_x{g}", inp.W_x[g]) for g in GATES[cell]]
        shown += [(f"W_h{g}", inp.W_h[g]) for g in GATES[cell]] + sorted(inp.b.items())
        shown += [("W_hy", inp.W_hy), ("b_y", inp.b_y), ("h_0", inp.h0), ("c_0", inp.c0)]
        for name, value in shown:
            if value is not None:
                text = _matrix(value, precision) if value.ndim == 2 else _vector(value, precision)
                out.append(f"  {name} {value.shape} = {text}")
    out += ["", f"Numbers are shown to {precision} decimals (the computation keeps them all); terms with a",
            "zero vector (such as W_hh h_0 when h_0 = 0) are left out of the arithmetic."]
    for step in steps:
        out += ["", f"t = {step.t}:  x_{step.t} = {_vector(step.x, precision)}"]
        for q in step.quantities:
            out += _lines(q, precision)
    return "\n".join(out)


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
