"""Synthetic sentence pairs that test a sequence-to-sequence model's mechanism exactly, in seconds.

    reverse_pairs    "t3 t1 t4 ..."          -> "... t4 t1 t3"     word level; needs alignment far apart
    sort_pairs       "5 1 4 1"               -> "1 1 4 5"          word level; order, not alignment
    addition_pairs   "123+45"                -> "168"              char level; carries
    date_pairs       "3rd of March 2021"     -> "2021-03-03"       word -> char; "March 3, 2021", "3/3/2021"
    argsort_pairs    [0.7, 0.1, 0.4]         -> "1 2 0"            one-to-many: a vector in, its argsort out

Each returns a list of (source, target) pairs drawn from a torch.Generator seeded with `seed`: strings in the
form rnnkit.data.pairs reads (so `write_pairs` makes a tab-separated file for the CLI), except argsort_pairs,
whose source is the vector itself (rnnkit.models.seq2seq.VectorToSequence's input). Its target needs the
whole vector: the first index is the smallest of all K components, and exact-sequence chance is 1 / K!.

    >>> reverse_pairs(2, length=4, vocab_size=5, seed=0)[0]
    ('t4 t3 t0 t3', 't3 t0 t3 t4')
    >>> addition_pairs(1, digits=3, seed=0)[0]
    ('44+239', '283')
    >>> date_pairs(1, seed=1)[0]
    ('9/12/1995', '1995-12-09')
    >>> v, order = argsort_pairs(1, size=4, seed=0)[0]
    >>> [round(x, 2) for x in v], order
    ([0.5, 0.77, 0.09, 0.13], '2 3 0 1')
"""

from __future__ import annotations

import calendar
from pathlib import Path

import torch

__all__ = ["reverse_pairs", "sort_pairs", "addition_pairs", "date_pairs", "argsort_pairs", "write_pairs"]


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randint(g: torch.Generator, low: int, high: int) -> int:
    """An integer in [low, high]."""
    return int(torch.randint(low, high + 1, (1,), generator=g))


def reverse_pairs(
    n: int, length: int | tuple[int, int], vocab_size: int, seed: int = 0
) -> list[tuple[str, str]]:
    """Sequences of `length` tokens (or a length in [lo, hi]) of t0 .. t{vocab_size-1} and their reverse."""
    g = _generator(seed)
    lo, hi = (length, length) if isinstance(length, int) else length
    pairs = []
    for _ in range(n):
        tokens = [f"t{int(i)}" for i in torch.randint(vocab_size, (_randint(g, lo, hi),), generator=g)]
        pairs.append((" ".join(tokens), " ".join(reversed(tokens))))
    return pairs


def sort_pairs(n: int, length: int | tuple[int, int], seed: int = 0) -> list[tuple[str, str]]:
    """Digits 0-9 separated by spaces and the same digits in increasing order."""
    g = _generator(seed)
    lo, hi = (length, length) if isinstance(length, int) else length
    pairs = []
    for _ in range(n):
        digits = torch.randint(10, (_randint(g, lo, hi),), generator=g).tolist()
        pairs.append((" ".join(map(str, digits)), " ".join(map(str, sorted(digits)))))
    return pairs


def addition_pairs(n: int, digits: int = 3, seed: int = 0) -> list[tuple[str, str]]:
    """"a+b" -> the sum, for a, b with up to `digits` digits (read at character level)."""
    g = _generator(seed)
    pairs = []
    for _ in range(n):
        a, b = _randint(g, 0, 10**digits - 1), _randint(g, 0, 10**digits - 1)
        pairs.append((f"{a}+{b}", str(a + b)))
    return pairs


def _ordinal(day: int) -> str:
    suffix = "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def date_pairs(n: int, seed: int = 0, years: tuple[int, int] = (1950, 2049)) -> list[tuple[str, str]]:
    """A date written one of three ways ("3rd of March 2021", "March 3, 2021", "3/3/2021", day first) and its
    ISO form "2021-03-03"."""
    g = _generator(seed)
    pairs = []
    for _ in range(n):
        year, month = _randint(g, *years), _randint(g, 1, 12)
        day = _randint(g, 1, calendar.monthrange(year, month)[1])
        name = calendar.month_name[month]
        source = [f"{_ordinal(day)} of {name} {year}", f"{name} {day}, {year}", f"{day}/{month}/{year}"]
        pairs.append((source[_randint(g, 0, 2)], f"{year:04d}-{month:02d}-{day:02d}"))
    return pairs


def argsort_pairs(n: int, size: int, seed: int = 0) -> list[tuple[list[float], str]]:
    """Vectors of `size` numbers uniform in [0, 1) and the indices of their components in increasing order,
    as words "0" .. "size-1" (ties, which float32 draws almost never make, keep the lower index first)."""
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    g = _generator(seed)
    pairs = []
    for _ in range(n):
        v = torch.rand(size, generator=g)  # (K,)
        order = torch.sort(v, stable=True).indices  # (K,): argsort
        pairs.append((v.tolist(), " ".join(map(str, order.tolist()))))
    return pairs


def write_pairs(pairs: list[tuple[str, str]], path: str | Path) -> Path:
    """Write pairs as `source<TAB>target` lines (UTF-8), the format rnnkit.data.pairs.read_pairs reads."""
    path = Path(path)
    path.write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")
    return path
