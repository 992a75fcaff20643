"""The trace of `rnnkit explain` as text: the equations once, then every step with its arithmetic written out.

Numbers are rounded for reading only (trailing zeros dropped); the trace itself keeps them all.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np

from .explain_trace import CELL_NAMES, GATES, Apply, Bias, MatVec, Product, Quantity, Step, evaluate

if TYPE_CHECKING:
    from .explain import ExplainInput


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
    n = len(evaluate(rule))
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
