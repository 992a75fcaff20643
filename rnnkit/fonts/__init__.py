"""Fonts for figures with Chinese text (attention maps, explanations), found on the machine or shipped.

matplotlib's default font has no Chinese glyphs and draws boxes. `find_cjk_font` looks, in order, for a font
file given by the caller, a CJK family matplotlib already knows (Noto Sans CJK, Source Han Sans, WenQuanYi,
SimHei, PingFang, ...), one that `fc-list :lang=zh` lists, and last the subset of Noto Sans CJK SC shipped
here (SIL Open Font License 1.1, OFL.txt beside it: ASCII, CJK punctuation, the 6,763 hanzi of GB 2312 and
every character of the Tatoeba Chinese sentences), so a figure draws Chinese on any machine, offline.
`missing_glyphs` names the characters a font cannot draw, for the caller to show them another way.

    >>> from rnnkit.fonts import SHIPPED_CJK_FONT, missing_glyphs
    >>> missing_glyphs(SHIPPED_CJK_FONT, ["我们", "跑步"])
    set()
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path

__all__ = ["CJK_FAMILIES", "SHIPPED_CJK_FONT", "find_cjk_font", "missing_glyphs", "needs_cjk"]

SHIPPED_CJK_FONT = str(Path(__file__).with_name("NotoSansCJKsc-Regular-subset.otf"))
CJK_FAMILIES = ("Noto Sans CJK SC", "Noto Serif CJK SC", "Noto Sans SC", "Source Han Sans SC",
                "Source Han Sans CN", "WenQuanYi Micro Hei", "WenQuanYi Zen Hei", "Droid Sans Fallback",
                "AR PL UMing CN", "AR PL UKai CN", "SimHei", "Microsoft YaHei", "PingFang SC", "Heiti SC",
                "STHeiti", "Arial Unicode MS")


def needs_cjk(texts: list[str]) -> bool:
    """Whether any text has a character past the Latin, Greek and Cyrillic blocks (CJK and others)."""
    return any(ord(c) > 0x2E7F for text in texts for c in text)


def find_cjk_font(path: str | None = None) -> str:
    """A font file that draws Chinese: `path` (checked), else the machine's, else the shipped subset."""
    if path:
        if not Path(path).is_file():
            raise FileNotFoundError(f"no such font file: {path}")
        return str(path)
    return _machine_cjk_font() or SHIPPED_CJK_FONT


@functools.cache
def _machine_cjk_font() -> str | None:
    from matplotlib import font_manager

    by_name = {f.name: f.fname for f in font_manager.fontManager.ttflist}
    for family in CJK_FAMILIES:
        if family in by_name:
            return by_name[family]
    if shutil.which("fc-list"):
        listed = subprocess.run(["fc-list", ":lang=zh", "file"], capture_output=True, text=True, timeout=20)
        files = {line.split(":")[0].strip() for line in listed.stdout.splitlines() if line.strip()}
        if files:  # a regular sans face first (Noto Sans CJK Regular over Bold and Serif)
            return min(files, key=lambda f: ("Regular" not in f, "Sans" not in f, f))
    return None


def missing_glyphs(font: str, texts: list[str]) -> set[str]:
    """The characters of `texts` (spaces aside) that the font file has no glyph for."""
    charmap = _charmap(font)
    return {c for text in texts for c in text if not c.isspace() and ord(c) not in charmap}


@functools.cache
def _charmap(font: str) -> frozenset[int]:
    from matplotlib.ft2font import FT2Font

    return frozenset(FT2Font(font).get_charmap())
