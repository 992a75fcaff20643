"""Named text datasets: Python's own docs (bundled), Tiny Shakespeare, WikiText-2 and the Tang poems.

`python_docs()` needs no file: it is `pydoc_data.topics`, the documentation that ships with every CPython.

Each loader takes a path (the file, or the folder holding it). With `download=True` a missing file is fetched
from its canonical URL (see the dataset's PROVENANCE.md) and kept only if its sha256 matches; without it a
missing file is a FileNotFoundError. Nothing here touches the network unless asked to.

    python_docs()          -> text                                     # about 460k characters, offline
    tiny_shakespeare(path) -> {"train": text, "valid": text}            # first 90% / last 10% of characters
    wikitext2(path)        -> {"train": text, "valid": text, "test": text}
    tang_poems(path, script="traditional" | "simplified") -> poem texts (lines joined, punctuation kept)
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from rnnkit.data.text import read_text

__all__ = [
    "Remote",
    "REMOTES",
    "fetch",
    "sha256_file",
    "verify_sha256",
    "python_docs",
    "tiny_shakespeare",
    "wikitext2",
    "tang_poems",
]


@dataclass(frozen=True)
class Remote:
    """A file at a pinned URL with its sha256."""

    url: str
    sha256: str


_CHAR_RNN = "https://raw.githubusercontent.com/karpathy/char-rnn/6f9487a6fe5b420b7ca9afb0d7c078e37c1d1b4e"
_EXAMPLES = (
    "https://raw.githubusercontent.com/pytorch/examples/77f55b912142e11fcfdf5b530231fb9c52f181e8/"
    "word_language_model/data/wikitext-2"
)
_POETRY = (
    "https://raw.githubusercontent.com/chinese-poetry/chinese-poetry/99ebbef7e1345c0985c44b9fd96a3f9e776f117b/"
    + urllib.parse.quote("全唐诗")
)

REMOTES: dict[str, Remote] = {
    "tinyshakespeare/input.txt": Remote(
        f"{_CHAR_RNN}/data/tinyshakespeare/input.txt",
        "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
    ),
    "wikitext-2/train.txt": Remote(
        f"{_EXAMPLES}/train.txt", "9e9fa1ad55b1c2c95b08e37dd8e653f638fac2c6de904b79e813611eefbc985f"
    ),
    "wikitext-2/valid.txt": Remote(
        f"{_EXAMPLES}/valid.txt", "f0737ed31fc1329026e95cb8b98e19c2a182c39c240ab909dc31abf2f8af58e8"
    ),
    "wikitext-2/test.txt": Remote(
        f"{_EXAMPLES}/test.txt", "d790b833ef8cf03a90db7bf1271b7520b83c45ce07ba3c1a9699df81e239eca0"
    ),
    # Rebuilt from the 58 source files poet.tang.{0,1000,...,57000}.json, see _fetch_tang_poems.
    "tang_poems/tang_poems.jsonl": Remote(
        _POETRY, "2c4050074e58ca8d3d8db1984a9b63a568104d6f1e15a585c80730d2768ebee9"
    ),
}


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: str | Path, expected: str) -> None:
    """Raise ValueError unless the file's sha256 is `expected` (hex, any case)."""
    actual = sha256_file(path)
    if actual != expected.lower():
        raise ValueError(f"sha256 mismatch for {path}: expected {expected.lower()}, got {actual}")


def fetch(url: str, path: str | Path, sha256: str, timeout: float = 60.0) -> Path:
    """Download `url` to `path` and verify its sha256; a file that fails the check is not kept.

    The download goes to `path` + ".part" and is renamed only once verified, so an interrupted or corrupted
    download never looks like the dataset.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    with urllib.request.urlopen(url, timeout=timeout) as response, open(part, "wb") as f:
        for chunk in iter(lambda: response.read(1 << 20), b""):
            f.write(chunk)
    return _keep_if_verified(part, path, sha256)


def _keep_if_verified(part: Path, path: Path, sha256: str) -> Path:
    try:
        verify_sha256(part, sha256)
    except ValueError:
        part.unlink()
        raise
    os.replace(part, path)
    return path


def _locate(path: str | Path, name: str, download: bool) -> Path:
    """The file `name` (a key of REMOTES, "folder/file") given its path or its folder, fetched if asked."""
    path = Path(path)
    filename = name.split("/")[-1]
    target = path / filename if path.is_dir() or not path.suffix else path
    if target.is_file():
        return target
    if not download:
        raise FileNotFoundError(
            f"{target} not found (pass download=True to fetch it from {REMOTES[name].url})"
        )
    if name == "tang_poems/tang_poems.jsonl":
        return _fetch_tang_poems(target)
    return fetch(REMOTES[name].url, target, REMOTES[name].sha256)


def python_docs() -> str:
    """The text of `pydoc_data.topics` (about 460k characters of Python's documentation), topics sorted.

    It ships with CPython, so it is always there and never downloaded (the `rnnkit demo` corpus).
    Returns:
        The topics joined by blank lines, in sorted order of their names (the same text on every run).
    """
    from pydoc_data.topics import topics

    return "\n\n".join(topics[key] for key in sorted(topics))


def tiny_shakespeare(path: str | Path, valid_fraction: float = 0.1, download: bool = False) -> dict[str, str]:
    """Tiny Shakespeare (karpathy/char-rnn) split in characters: first 90% train, last 10% valid.

    Args:
        path: input.txt or the folder holding it.
    Returns:
        {"train": text, "valid": text}
    """
    text = read_text(_locate(path, "tinyshakespeare/input.txt", download))
    n_train = int(len(text) * (1.0 - valid_fraction))
    return {"train": text[:n_train], "valid": text[n_train:]}


def wikitext2(path: str | Path, download: bool = False) -> dict[str, str]:
    """WikiText-2 (v1, tokenized, `<unk>` in the data) from the folder holding train/valid/test.txt.

    Returns:
        {"train": text, "valid": text, "test": text}; tokenize with level="word" (one `<eos>` per line).
    """
    path = Path(path)
    if path.is_file():
        raise ValueError(
            f"wikitext2 expects the folder holding train.txt, valid.txt, test.txt, got file {path}"
        )
    return {s: read_text(_locate(path, f"wikitext-2/{s}.txt", download)) for s in ("train", "valid", "test")}


def tang_poems(path: str | Path, script: str = "traditional", download: bool = False) -> list[str]:
    """The 57,607 Tang poems (chinese-poetry, 全唐诗) as texts: lines joined, punctuation kept.

    Args:
        path: the file (tang_poems.jsonl or tang_poems.simplified.tsv) or the folder holding it.
        script: "traditional" (the jsonl, as the source stores it) or "simplified" (the tsv, OpenCC t2s).
            Only the traditional file can be downloaded; the simplified one is derived (OpenCC).
    Returns:
        One string per poem, in source order; poems with no text are skipped.
    """
    if script not in ("traditional", "simplified"):
        raise ValueError(f"script must be 'traditional' or 'simplified', got {script!r}")
    path = Path(path)
    if script == "traditional":
        file = _locate(path, "tang_poems/tang_poems.jsonl", download)
        return [p for p in _read_jsonl_poems(file) if p]
    file = path / "tang_poems.simplified.tsv" if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(
            f"{file} not found (the simplified file is derived with OpenCC t2s, it cannot "
            "be downloaded; use script='traditional')"
        )
    return [p for p in _read_tsv_poems(file) if p]


def _read_jsonl_poems(file: Path) -> list[str]:
    poems = []
    for number, line in enumerate(read_text(file).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{file}, line {number}: not valid JSON ({e.msg})") from None
        if not isinstance(record, dict) or not isinstance(record.get("paragraphs"), list):
            raise ValueError(
                f"{file}, line {number}: expected an object with a list 'paragraphs', got {line[:80]!r}"
            )
        poems.append("".join(record["paragraphs"]))
    return poems


def _read_tsv_poems(file: Path) -> list[str]:
    lines = read_text(file).splitlines()
    if lines[0].split("\t") != ["author", "title", "text"]:
        raise ValueError(f"{file}: expected the header 'author<TAB>title<TAB>text', got {lines[0][:80]!r}")
    poems = []
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split("\t")
        if len(fields) != 3:
            raise ValueError(f"{file}, line {number}: expected 3 tab-separated fields, got {len(fields)}")
        poems.append(fields[2])
    return poems


def _fetch_tang_poems(target: Path) -> Path:
    """Rebuild tang_poems.jsonl from the 58 source files: one JSON object per poem with the keys in the order
    id, author, title, paragraphs (then tags, notes where present), as json.dumps(ensure_ascii=False) writes
    them; the result is checked against the sha256 in PROVENANCE.md."""
    remote = REMOTES["tang_poems/tang_poems.jsonl"]
    part = target.with_name(target.name + ".part")
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(part, "w", encoding="utf-8") as out:
        for start in range(0, 58000, 1000):
            with urllib.request.urlopen(f"{remote.url}/poet.tang.{start}.json", timeout=60.0) as response:
                for poem in json.loads(response.read().decode("utf-8")):
                    out.write(json.dumps(_tang_record(poem), ensure_ascii=False) + "\n")
    return _keep_if_verified(part, target, remote.sha256)


def _tang_record(poem: dict) -> dict:
    keys = ["id", "author", "title", "paragraphs"] + [k for k in ("tags", "notes") if k in poem]
    return {k: poem[k] for k in keys}
