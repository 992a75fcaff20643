"""Chinese classical poems as training data: keep the regular forms, mark each poem's start and end.

A regular poem has 4 lines (绝句, quatrain) or 8 lines (律诗, regulated verse) of 5 (五言) or 7 (七言) Chinese
characters each, with "，" after the odd lines and "。" after the even ones:

    床前明月光，疑是地上霜。举头望明月，低头思故乡。        (5 characters x 4 lines)

Each kept poem becomes one character sequence "^" + poem + "$" (POEM_START, POEM_END); the sequences are
concatenated into one stream for a character-level language model trained with truncated BPTT, so the model
learns where poems begin and end. Generation (rnnkit.decode.generate_poem) starts from POEM_START and
constrains every position, so it always yields a well-formed poem.

    poems = tang_poems("/path/to/tang_poems")                 # list of texts
    kept  = regular_poems(poems)                                # 5/7 characters, 4/8 lines
    train, valid = split_poems(kept, valid_fraction=0.05, seed=0)   # distinct poems, shuffled, whole poems
    text  = poem_corpus(train)                                  # "^...$^...$..."
    vocab = Vocabulary.build(text + poem_corpus(valid), level="char")

`rnnkit train` does exactly this for `data.dataset: tang_poems` (rnnkit.tasks.language_model).
"""

from __future__ import annotations

import random
from collections.abc import Iterable

__all__ = [
    "POEM_START",
    "POEM_END",
    "COMMA",
    "PERIOD",
    "is_hanzi",
    "poem_form",
    "regular_poems",
    "poem_corpus",
    "split_poems",
    "line_end",
]

POEM_START = "^"
POEM_END = "$"
COMMA = "，"
PERIOD = "。"

# CJK Unified Ideographs and their extensions, plus the compatibility ideographs.
_HANZI_RANGES = (
    (0x4E00, 0x9FFF),  # CJK Unified Ideographs
    (0x3400, 0x4DBF),  # Extension A
    (0x20000, 0x3134F),  # Extensions B-G
    (0xF900, 0xFAFF),  # Compatibility Ideographs
    (0x2F800, 0x2FA1F),  # Compatibility Ideographs Supplement
)


def is_hanzi(ch: str) -> bool:
    """True for a single Chinese character (CJK ideograph); False for punctuation, markers, anything else."""
    if len(ch) != 1:
        return False
    code = ord(ch)
    return any(lo <= code <= hi for lo, hi in _HANZI_RANGES)


def line_end(k: int) -> str:
    """The punctuation after line k (0-based): "，" after lines 1, 3, 5, 7 and "。" after lines 2, 4, 6, 8."""
    return COMMA if k % 2 == 0 else PERIOD


def poem_form(text: str) -> tuple[int, int] | None:
    """(characters per line, lines) of a regular poem, e.g. (5, 4); None when the text is not regular."""
    for chars in (5, 7):
        n, rest = divmod(len(text), chars + 1)
        if rest or n not in (4, 8):
            continue
        lines = [text[k * (chars + 1) : (k + 1) * (chars + 1)] for k in range(n)]
        if all(
            line[-1] == line_end(k) and all(is_hanzi(c) for c in line[:-1]) for k, line in enumerate(lines)
        ):
            return chars, n
    return None


def regular_poems(
    poems: Iterable[str], chars: Iterable[int] = (5, 7), lines: Iterable[int] = (4, 8)
) -> list[str]:
    """The poems of a regular form: `chars` characters per line, `lines` lines (whitespace removed)."""
    chars, lines = set(chars), set(lines)
    if not chars <= {5, 7} or not lines <= {4, 8}:
        raise ValueError(
            f"chars must be among (5, 7) and lines among (4, 8), got {sorted(chars)}, {sorted(lines)}"
        )
    kept = []
    for poem in poems:
        poem = "".join(poem.split())
        form = poem_form(poem)
        if form is not None and form[0] in chars and form[1] in lines:
            kept.append(poem)
    return kept


def poem_corpus(poems: Iterable[str]) -> str:
    """One training stream: every poem wrapped as POEM_START + poem + POEM_END, concatenated."""
    return "".join(POEM_START + poem + POEM_END for poem in poems)


def split_poems(poems: Iterable[str], valid_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Distinct poems in a seeded random order, cut into (train, valid) by whole poems.

    Duplicates (the same poem under two titles or authors) are dropped first, so no validation poem is also a
    training poem. The last round(n * valid_fraction) poems of the shuffled order (at least one) validate.

    Args:
        poems: the poems (e.g. the output of `regular_poems`).
        valid_fraction: the fraction held out, in (0, 1).
        seed: seeds the shuffle (random.Random); the same seed gives the same split.
    Returns:
        (train poems, valid poems), both non-empty.
    """
    if not 0.0 < valid_fraction < 1.0:
        raise ValueError(f"valid_fraction must be in (0, 1), got {valid_fraction}")
    distinct = list(dict.fromkeys(poems))
    if len(distinct) < 2:
        raise ValueError(f"need at least 2 distinct poems to split into train and valid, got {len(distinct)}")
    random.Random(seed).shuffle(distinct)
    n_valid = min(max(1, round(len(distinct) * valid_fraction)), len(distinct) - 1)
    return distinct[:-n_valid], distinct[-n_valid:]
