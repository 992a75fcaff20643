"""The trace of `rnnkit explain` as data: every intermediate quantity of a small forward pass, step by step.

`trace` runs the equations of the module docstring of `explain.py` one time step at a time and records each
vector with the rule that produced it: a sum of terms (`MatVec` M v, `Product` a * b, `Bias` b) or a function
applied (`Apply`). `explain_format.py` prints the record; tests read the values (`step["h"]`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .cells import sigmoid

if TYPE_CHECKING:
    from .explain import ExplainInput

GATES = {"rnn": ("h",), "lstm": ("i", "f", "g", "o"), "gru": ("r", "z", "n")}
CELL_NAMES = {"rnn": "Elman RNN", "lstm": "LSTM", "gru": "GRU"}
# The gates computed as function(W_x* x_t + W_h* h_{t-1} + b_*): (gate, function, meaning).
GATE_RULES = {
    "lstm": (("i", "sigmoid", "input gate"), ("f", "sigmoid", "forget gate"), ("g", "tanh", "candidate cell"),
             ("o", "sigmoid", "output gate")),
    "gru": (("r", "sigmoid", "reset gate"), ("z", "sigmoid", "update gate")),
}


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


def evaluate(terms):
    """The value of a sum of terms."""
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
        value = FUNCTIONS[rule.function](rule.value) if isinstance(rule, Apply) else evaluate(rule)
        qs.append(Quantity(symbol, f"{symbol}_{t}", meaning, rule, value))
        return value

    if inp.cell == "rnn":
        a = add("a", "pre-activation", _gate_sum(inp, "h", t, x, h))
        h = add("h", "hidden state", Apply(inp.nonlinearity, f"a_{t}", a))
    else:
        gate = {}
        for g, function, meaning in GATE_RULES[inp.cell]:
            a = add(f"a{g}", f"{meaning} pre-activation", _gate_sum(inp, g, t, x, h))
            gate[g] = add(g, meaning, Apply(function, f"a{g}_{t}", a))
    if inp.cell == "lstm":
        c = add("c", "cell state", (Product(f"f_{t}", gate["f"], f"c_{t - 1}", c),
                                    Product(f"i_{t}", gate["i"], f"g_{t}", gate["g"])))
        h = add("h", "hidden state", (Product(f"o_{t}", gate["o"], f"tanh(c_{t})", np.tanh(c)),))
    elif inp.cell == "gru":
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
