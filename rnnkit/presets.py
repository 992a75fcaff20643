"""The presets that ship inside the package (rnnkit/configs/*.yaml), found by name from anywhere.

`rnnkit train --config NAME` takes a path to a YAML file or the name of a shipped preset (with or without
.yaml); `rnnkit configs` lists the presets with the first line of each one's header comment.

    >>> find_preset("shakespeare_char").name
    'shakespeare_char.yaml'
    >>> "tiny_char" in dict(list_presets())
    True
"""

from __future__ import annotations

import difflib
from pathlib import Path

__all__ = ["PRESETS", "find_preset", "list_presets"]

PRESETS = Path(__file__).parent / "configs"


def list_presets() -> list[tuple[str, str]]:
    """(name, one-line description) of every shipped preset, sorted by name."""
    out = []
    for path in sorted(PRESETS.glob("*.yaml")):
        first = next((line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()), "")
        out.append((path.stem, first.lstrip("# ").strip() if first.startswith("#") else ""))
    return out


def find_preset(name_or_path: str | Path) -> Path:
    """The YAML file `name_or_path` means: an existing path, else the shipped preset of that name."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    name = path.name.removesuffix(".yaml")
    shipped = PRESETS / f"{name}.yaml"
    if path.parent == Path(".") and shipped.is_file():
        return shipped
    names = [n for n, _ in list_presets()]
    close = difflib.get_close_matches(name, names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; the shipped presets are {', '.join(names)}"
    raise FileNotFoundError(f"config file not found: {name_or_path} (neither a file nor a preset name{hint})")
