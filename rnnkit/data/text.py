"""Text for language models: read files, build a vocabulary, encode, split, and batch for truncated BPTT.

The pipeline is four small steps:

    text   = read_text("input.txt")                      # a file, or a folder of .txt files
    vocab  = Vocabulary.build(text, level="char")         # or level="word", or "subword" (a trained BPE)
    ids    = torch.tensor(vocab.encode(text))             # (N,) long
    train, valid = split(ids, valid_fraction=0.1)         # first 90% / last 10%
    for inputs, targets in TokenStream(train, batch_size=32, bptt=64):   # (B, T), (B, T)
        ...

Tokens. Character level: every character is a token. Word level (the WikiText / pytorch-examples
convention): a line is split on whitespace and every newline becomes the token `<eos>`. Decoding is the
concatenation of one piece per token -- the character itself, or " " + word, or " \\n" for `<eos>` -- so it
can be streamed token by token in O(1), and for WikiText it reproduces the file layout (" w1 w2 \\n").
Subword level: a byte-pair encoding (Sennrich et al., 2016) trained with HuggingFace `tokenizers` on the text
given to `Vocabulary.build`; every newline is a token of its own and a space becomes part of the next token
("▁cat"), so the pieces ("▁" read as " ") again concatenate to the text. The tokenizer (its JSON,
`Tokenizer.to_str()`) is stored in the vocabulary; a character it never saw is `<unk>`.

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

__all__ = [
    "EOS", "UNK", "LEVELS", "UNKNOWN", "Vocabulary", "TokenStream", "read_text", "split", "tokenize",
]  # fmt: skip

EOS = "<eos>"
UNK = "<unk>"
SPACE = "\u2581"  # "▁", a space inside a subword token (SentencePiece's convention)
Level = Literal["char", "word", "subword"]
LEVELS = ("char", "word", "subword")
UNKNOWN = ("error", "skip", "unk")  # what `Vocabulary.encode_known` does with tokens outside the vocabulary


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
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(
            f"{path} is not valid UTF-8: byte {data[e.start]:#04x} at offset {e.start} ({e.reason})"
        ) from None
    nul = text.find("\0")
    if nul >= 0:  # valid UTF-8, but no text: UTF-16 (every other byte 0 for ASCII) or a binary file
        utf16 = data[1::2].count(0) > len(data) // 4 and data[0::2].count(0) < len(data) // 8  # ASCII in LE
        kind = "UTF-16 text without a byte-order mark" if utf16 else "binary"
        raise ValueError(f"{path} holds NUL bytes (first at offset {nul}): it looks {kind}, expected UTF-8 "
                         "text (convert it, e.g. iconv -f UTF-16LE -t UTF-8)")
    return text


def tokenize(text: str, level: Level) -> list[str]:
    """Split text into tokens: characters, or whitespace-separated words with `<eos>` for each newline.

    Subword tokens come from a trained tokenizer: `Vocabulary.tokenize`."""
    if level == "char":
        return list(text)
    if level == "word":
        lines = text.split("\n")
        tokens: list[str] = []
        for line in lines[:-1]:
            tokens += line.split() + [EOS]
        return tokens + lines[-1].split()  # the last piece has no newline after it
    if level == "subword":
        raise ValueError("subword tokens come from a trained tokenizer: use Vocabulary.tokenize")
    raise ValueError(f"level must be 'char', 'word' or 'subword', got {level!r}")


def _train_bpe(text: str, vocab_size: int):
    """A BPE tokenizer (HuggingFace `tokenizers`) trained on `text`: newlines isolated, spaces as "▁" at the
    start of the next token, <unk> for characters outside the text; `vocab_size` tokens at most (all the
    text's characters are kept even when they alone are more)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(unk_token=UNK))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split("\n", behavior="isolated"),
        pre_tokenizers.Metaspace(replacement=SPACE, prepend_scheme="never", split=True),
    ])  # fmt: skip
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[UNK], show_progress=False)
    tokenizer.train_from_iterator(text.splitlines(keepends=True), trainer)
    return tokenizer


@dataclass(frozen=True)
class Vocabulary:
    """A bijection between tokens and ids 0..V-1.

    Args:
        tokens: the tokens, id i is tokens[i]; all distinct.
        level: "char" (tokens are single characters), "word" or "subword".
        unk: a token in `tokens` that unknown tokens map to; None makes an unknown token a ValueError.
        tokenizer: subword level only: the trained tokenizer's JSON (`tokenizers.Tokenizer.to_str()`), whose
            vocabulary is `tokens` (token i has id i).

    Example:
        >>> v = Vocabulary.build("abca", level="char")
        >>> v.encode("cab"), v.decode([0, 1])
        ([2, 0, 1], 'ab')
    """

    tokens: tuple[str, ...]
    level: Level = "char"
    unk: str | None = None
    tokenizer: str | None = field(default=None, repr=False)
    index: dict[str, int] = field(init=False, repr=False, compare=False)
    _subword: object = field(init=False, default=None, repr=False, compare=False)  # the loaded tokenizer

    def __post_init__(self) -> None:
        object.__setattr__(self, "tokens", tuple(self.tokens))
        if self.level not in LEVELS:
            raise ValueError(f"level must be 'char', 'word' or 'subword', got {self.level!r}")
        if (self.tokenizer is not None) != (self.level == "subword"):
            raise ValueError(
                f"a subword vocabulary needs its tokenizer and only a subword one has one; got level "
                f"{self.level!r} {'with' if self.tokenizer is not None else 'without'} a tokenizer"
            )
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
        if self.tokenizer is not None:
            self._load_tokenizer()

    def _load_tokenizer(self) -> None:
        from tokenizers import Tokenizer

        try:
            subword = Tokenizer.from_str(self.tokenizer)
        except Exception as e:  # tokenizers raises its own Exception subclass for malformed JSON
            raise ValueError(f"the subword vocabulary's tokenizer JSON cannot be read: {e}") from None
        vocab = subword.get_vocab()
        if sorted(vocab, key=vocab.get) != list(self.tokens):
            raise ValueError(
                f"the subword tokenizer's {len(vocab)} tokens are not the vocabulary's {len(self.tokens)} "
                "tokens in id order"
            )
        object.__setattr__(self, "_subword", subword)

    @classmethod
    def build(
        cls, text: str, level: Level = "char", min_freq: int = 1, max_size: int | None = None
    ) -> Vocabulary:
        """The vocabulary of `text`: tokens ordered by falling frequency, ties by code point.

        Tokens seen fewer than `min_freq` times, or beyond the `max_size` most frequent, are dropped and
        `<unk>` is added to stand for them; `<unk>` is also the unk token when the text already holds it
        (WikiText). Subword level: a BPE trained on `text` with at most `max_size` tokens (required; every
        character of the text is kept), `<unk>` first; `min_freq` does not apply.
        """
        if min_freq < 1:
            raise ValueError(f"min_freq must be >= 1, got {min_freq}")
        if max_size is not None and max_size < 1:
            raise ValueError(f"max_size must be >= 1 or None, got {max_size}")
        if level == "subword":
            if max_size is None:
                raise ValueError("a subword vocabulary needs its size: give max_size (e.g. 1000)")
            if not text:
                raise ValueError("cannot build a vocabulary from empty text")
            subword = _train_bpe(text, max_size)
            ids = subword.get_vocab()
            return cls(tuple(sorted(ids, key=ids.get)), "subword", UNK, subword.to_str())
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

    def tokenize(self, text: str) -> list[str]:
        """The tokens of `text` at this vocabulary's level; for subwords, a character the tokenizer never saw
        stays itself (not `<unk>`), so that `encode_known` can name it."""
        if self.level != "subword":
            return tokenize(text, self.level)
        encoding = self._subword.encode(text)
        return [text[start:end] if token == UNK and text[start:end] != UNK else token
                for token, (start, end) in zip(encoding.tokens, encoding.offsets, strict=True)]

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`; an unknown token maps to `unk`, or raises ValueError naming it."""
        return self.encode_tokens(self.tokenize(text))

    def encode_known(
        self, tokens: list[str], unknown: str = "error"
    ) -> tuple[list[int], collections.Counter]:
        """Ids of tokens and the count of each token outside the vocabulary, treated as `unknown` says:

            "error"  ValueError naming the first few unknown tokens and how many there are (the default)
            "skip"   left out
            "unk"    mapped to the `unk` token (ValueError when the vocabulary has none)
        """
        if unknown not in UNKNOWN:
            raise ValueError(f"unknown must be 'error', 'skip' or 'unk', got {unknown!r}")
        unseen = collections.Counter(t for t in tokens if t not in self.index)
        if unseen and unknown == "error":
            shown = ", ".join(f"{_describe(t)} x{k}" for t, k in list(unseen.items())[:5])  # first seen first
            more = f" and {len(unseen) - 5} more" if len(unseen) > 5 else ""
            with_unk = f", --unknown unk maps them to {self.unk}" if self.unk is not None else ""
            raise ValueError(
                f"the text holds {self._count(sum(unseen.values()))} ({len(unseen)} distinct) outside the "
                f"model's vocabulary of {len(self)} tokens: {shown}{more} (--unknown skip drops "
                f"them{with_unk})"
            )
        if unseen and unknown == "unk" and self.unk is None:
            raise ValueError(
                f"--unknown unk: this {self.level}-level vocabulary has no <unk> token to map the "
                f"unknown {self._count(sum(unseen.values()))} to (use --unknown skip)"
            )
        if unknown == "skip":
            tokens = [t for t in tokens if t in self.index]
        return self.encode_tokens(tokens), unseen

    def _count(self, n: int) -> str:
        """"3 characters", "1 word": what a vocabulary of this level does not hold (a subword tokenizer can
        read any word, but not a character it never saw)."""
        unit = "word" if self.level == "word" else "character"
        return f"{n} {unit}{'' if n == 1 else 's'}"

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
        if self.level == "subword":
            return token.replace(SPACE, " ")
        return " \n" if token == EOS else " " + token

    def decode(self, ids) -> str:
        """Text of a sequence of ids (list or 1-D tensor): the concatenation of their pieces."""
        return "".join(self.piece(int(i)) for i in ids)

    def to_json(self) -> dict:
        """A JSON-serialisable dict; `Vocabulary.from_json` inverts it (a subword one holds its tokenizer)."""
        data = {"tokens": list(self.tokens), "level": self.level, "unk": self.unk}
        return data if self.tokenizer is None else {**data, "tokenizer": self.tokenizer}

    @classmethod
    def from_json(cls, data: dict) -> Vocabulary:
        missing = {"tokens", "level"} - set(data)
        if missing:
            raise ValueError(f"vocabulary JSON needs keys tokens and level, missing {sorted(missing)}")
        return cls(tuple(data["tokens"]), data["level"], data.get("unk"), data.get("tokenizer"))

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
