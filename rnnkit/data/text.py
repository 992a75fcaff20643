"""Text for language models: read files, build a vocabulary, encode, split, and batch for truncated BPTT.

The pipeline is four small steps:

    text   = read_text("input.txt")                      # a file, or a folder of .txt files
    vocab  = Vocabulary.build(text, level="char")         # or level="word"
    ids    = torch.tensor(vocab.encode(text))             # (N,) long
    train, valid = split(ids, valid_fraction=0.1)         # first 90% / last 10%
    for inputs, targets in TokenStream(train, batch_size=32, bptt=64):   # (B, T), (B, T)
        ...

Tokens. Character level: every character is a token. Word level (the WikiText / pytorch-examples
convention): a line is split on whitespace and every newline becomes the token `<eos>`. Decoding is the
concatenation of one piece per token -- the character itself, or " " + word, or " \\n" for `<eos>` -- so it
can be streamed token by token in O(1), and for WikiText it reproduces the file layout (" w1 w2 \\n").

Stateful truncated BPTT (Zaremba et al., 2014): the stream of N tokens is cut into B contiguous rows of
R = (N - 1) // B tokens; batch j holds columns [jT, (j+1)T) of every row, so row b of batch j+1 continues
row b of batch j and the final recurrent state of one batch is the right initial state for the next
(detached). Targets are the inputs shifted by one token.
"""

from __future__ import annotations

import collections
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from torch.utils.data import IterableDataset, get_worker_info

__all__ = ["EOS", "UNK", "Vocabulary", "TokenStream", "read_text", "split", "tokenize"]

EOS = "<eos>"
UNK = "<unk>"
Level = Literal["char", "word"]


def read_text(path: str | Path) -> str:
    """Read a UTF-8 text file, or every `.txt` file of a folder (sorted by name, concatenated).

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: a file is not valid UTF-8 (the byte offset is named), the text is empty, or the folder
            holds no .txt file.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file or folder: {path}")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.txt") if p.is_file())
        if not files:
            raise ValueError(f"folder {path} holds no .txt file")
        text = "".join(_read_utf8(p) for p in files)
    else:
        text = _read_utf8(path)
    if not text.strip():
        raise ValueError(f"{path} is empty (expected some text, got {len(text)} whitespace characters)")
    return text


def _read_utf8(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(
            f"{path} is not valid UTF-8: byte {data[e.start]:#04x} at offset {e.start} ({e.reason})"
        ) from None


def tokenize(text: str, level: Level) -> list[str]:
    """Split text into tokens: characters, or whitespace-separated words with `<eos>` for each newline."""
    if level == "char":
        return list(text)
    if level == "word":
        lines = text.split("\n")
        tokens: list[str] = []
        for line in lines[:-1]:
            tokens += line.split() + [EOS]
        return tokens + lines[-1].split()  # the last piece has no newline after it
    raise ValueError(f"level must be 'char' or 'word', got {level!r}")


@dataclass(frozen=True)
class Vocabulary:
    """A bijection between tokens and ids 0..V-1.

    Args:
        tokens: the tokens, id i is tokens[i]; all distinct.
        level: "char" (tokens are single characters) or "word".
        unk: a token in `tokens` that unknown tokens map to; None makes an unknown token a ValueError.

    Example:
        >>> v = Vocabulary.build("abca", level="char")
        >>> v.encode("cab"), v.decode([0, 1])
        ([2, 0, 1], 'ab')
    """

    tokens: tuple[str, ...]
    level: Level = "char"
    unk: str | None = None
    index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tokens", tuple(self.tokens))
        if self.level not in ("char", "word"):
            raise ValueError(f"level must be 'char' or 'word', got {self.level!r}")
        if not self.tokens:
            raise ValueError("a vocabulary needs at least one token, got none")
        index = {t: i for i, t in enumerate(self.tokens)}
        if len(index) != len(self.tokens):
            dup = next(t for t, n in collections.Counter(self.tokens).items() if n > 1)
            raise ValueError(f"tokens must be distinct, got {dup!r} more than once")
        if self.level == "char":
            bad = next((t for t in self.tokens if len(t) != 1), None)
            if bad is not None:
                raise ValueError(f"a char-level vocabulary holds single characters, got {bad!r}")
        if self.unk is not None and self.unk not in index:
            raise ValueError(f"unk token {self.unk!r} is not one of the {len(self.tokens)} tokens")
        object.__setattr__(self, "index", index)

    @classmethod
    def build(
        cls, text: str, level: Level = "char", min_freq: int = 1, max_size: int | None = None
    ) -> Vocabulary:
        """The vocabulary of `text`: tokens ordered by falling frequency, ties by code point.

        Tokens seen fewer than `min_freq` times, or beyond the `max_size` most frequent, are dropped and
        `<unk>` is added to stand for them; `<unk>` is also the unk token when the text already holds it
        (WikiText).
        """
        if min_freq < 1:
            raise ValueError(f"min_freq must be >= 1, got {min_freq}")
        if max_size is not None and max_size < 1:
            raise ValueError(f"max_size must be >= 1 or None, got {max_size}")
        counts = collections.Counter(tokenize(text, level))
        if not counts:
            raise ValueError("cannot build a vocabulary from empty text")
        ranked = sorted(counts, key=lambda t: (-counts[t], t))
        kept = [t for t in ranked if counts[t] >= min_freq][:max_size]
        dropped = len(kept) < len(ranked)
        if dropped and level == "char":
            raise ValueError(
                "a char-level vocabulary cannot drop characters (it has no <unk>); "
                f"min_freq={min_freq}, max_size={max_size} would drop {len(ranked) - len(kept)}"
            )
        if dropped and UNK not in kept:
            kept = (kept[:-1] if max_size is not None and len(kept) == max_size else kept) + [UNK]
        return cls(tuple(kept), level, UNK if UNK in kept else None)

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self.index

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`; an unknown token maps to `unk`, or raises ValueError naming it."""
        return self.encode_tokens(tokenize(text, self.level))

    def encode_tokens(self, tokens: list[str]) -> list[int]:
        """Ids of already-split tokens (see `encode`)."""
        index, unk_id = self.index, self.index.get(self.unk) if self.unk is not None else None
        ids = []
        for position, token in enumerate(tokens):
            i = index.get(token, unk_id)
            if i is None:
                raise ValueError(
                    f"unknown {self.level} {_describe(token)} at token {position}: not one of "
                    f"the {len(self)} tokens of the vocabulary (it has no unk token)"
                )
            ids.append(i)
        return ids

    def piece(self, i: int) -> str:
        """The text of token id `i` as it appears in decoded text: the character, " " + word, or " \\n"."""
        if not 0 <= i < len(self.tokens):
            raise ValueError(f"token id must be in [0, {len(self.tokens)}), got {i}")
        token = self.tokens[i]
        if self.level == "char":
            return token
        return " \n" if token == EOS else " " + token

    def decode(self, ids) -> str:
        """Text of a sequence of ids (list or 1-D tensor): the concatenation of their pieces."""
        return "".join(self.piece(int(i)) for i in ids)

    def to_json(self) -> dict:
        """A JSON-serialisable dict; `Vocabulary.from_json` inverts it."""
        return {"tokens": list(self.tokens), "level": self.level, "unk": self.unk}

    @classmethod
    def from_json(cls, data: dict) -> Vocabulary:
        missing = {"tokens", "level"} - set(data)
        if missing:
            raise ValueError(f"vocabulary JSON needs keys tokens and level, missing {sorted(missing)}")
        return cls(tuple(data["tokens"]), data["level"], data.get("unk"))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        try:
            return cls.from_json(json.loads(_read_utf8(Path(path))))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not a vocabulary JSON file: {e}") from None


def _describe(token: str) -> str:
    if len(token) == 1:
        return f"{token!r} (U+{ord(token):04X})"
    return repr(token)


def split(ids, valid_fraction: float = 0.1):
    """Split a sequence in time: the first (1 - f) of it for training, the last f for validation.

    The cut is at int(N * (1 - f)), as char-rnn and nanoGPT cut Tiny Shakespeare. Works on lists and tensors.
    """
    if not 0.0 < valid_fraction < 1.0:
        raise ValueError(f"valid_fraction must be in (0, 1), got {valid_fraction}")
    n_train = int(len(ids) * (1.0 - valid_fraction))
    if n_train < 2 or len(ids) - n_train < 2:
        raise ValueError(f"{len(ids)} tokens are too few to split with valid_fraction={valid_fraction}")
    return ids[:n_train], ids[n_train:]


class TokenStream(IterableDataset):
    """Batches of a token stream for stateful truncated BPTT, as an IterableDataset.

    The stream (N,) is cut into `world_size * batch_size` contiguous rows of R = (N - 1) // (world_size * B)
    tokens (the remainder is dropped); process `rank` owns rows [rank * B, (rank + 1) * B). Batch j is

        inputs  = rows[:, jT : (j+1)T]           # (B, T) long
        targets = rows[:, jT + 1 : (j+1)T + 1]   # (B, T) long, the next token of each input

    so row b of batch j+1 continues row b of batch j: carry the (detached) state across batches. The last
    batch is shorter (T' = R - jT < T) unless `drop_last`. Every rank sees the same number of batches, as data
    parallel training requires.

    Use it directly (`for x, y in stream`) or in `DataLoader(stream, batch_size=None)` (batches are already
    formed; keep num_workers=0, the order across batches is the point).

    Args:
        ids: (N,) token ids (tensor or list).
        batch_size: B, rows per process.
        bptt: T, time steps per batch.
        rank, world_size: this process and the number of data-parallel processes.
        drop_last: drop the final, shorter batch.
    """

    def __init__(
        self, ids, batch_size: int, bptt: int, rank: int = 0, world_size: int = 1, drop_last: bool = False
    ) -> None:
        super().__init__()
        ids = torch.as_tensor(ids, dtype=torch.long)
        if ids.dim() != 1:
            raise ValueError(f"ids must be 1-D (N,), got shape {tuple(ids.shape)}")
        if batch_size < 1 or bptt < 1 or world_size < 1:
            raise ValueError(
                f"batch_size, bptt and world_size must be >= 1, got {batch_size}, {bptt}, {world_size}"
            )
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
        rows = world_size * batch_size
        row_len = (len(ids) - 1) // rows
        if row_len < 1:
            raise ValueError(
                f"{len(ids)} tokens are too few for {rows} rows (world_size {world_size} x "
                f"batch_size {batch_size}): need at least {rows + 1}"
            )
        usable = ids[: rows * row_len + 1]
        mine = slice(rank * batch_size, (rank + 1) * batch_size)
        self.inputs = usable[:-1].view(rows, row_len)[mine]  # (B, R)
        self.targets = usable[1:].view(rows, row_len)[mine]  # (B, R)
        self.batch_size, self.bptt, self.drop_last = batch_size, bptt, drop_last
        self.rank, self.world_size = rank, world_size

    @property
    def row_length(self) -> int:
        """R, the tokens in each row."""
        return self.inputs.shape[1]

    def __len__(self) -> int:
        full, rest = divmod(self.row_length, self.bptt)
        return full + (1 if rest and not self.drop_last else 0)

    def __iter__(self):
        info = get_worker_info()
        if info is not None and info.num_workers > 1:
            raise ValueError(
                f"TokenStream must be read in order by one process, got {info.num_workers} "
                "DataLoader workers (use num_workers=0 or 1)"
            )
        for j in range(len(self)):
            t = slice(j * self.bptt, (j + 1) * self.bptt)
            yield self.inputs[:, t], self.targets[:, t]  # (B, T), (B, T)
