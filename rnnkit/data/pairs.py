"""Sentence pairs for sequence-to-sequence translation: a tab-separated reader, vocabularies, padded batches.

    pairs  = read_pairs("cmn.txt")          # [("Hi.", "嗨。"), ...] (Tatoeba: English<TAB>Chinese)
    source = pair_vocabulary(tokenize_sentence(s, "word") for s, _ in pairs)
    target = pair_vocabulary(tokenize_sentence(t, "char") for _, t in pairs)
    data   = SentencePairs(pairs, source, target, "word", "char")
    for src, src_lengths, tgt_in, tgt_out in DataLoader(data, batch_size=32, collate_fn=pair_collate): ...

A side is split into words (runs of letters/digits, and each punctuation mark: "Hi, Tom." -> Hi , Tom .) or
into characters (every non-space character: Chinese, Japanese). Both sides share the specials at fixed ids

    0 <pad>   1 <bos>   2 <eos>   3 <unk>

so the vocabularies are rnnkit.data.text.Vocabulary objects (saved as JSON with the model) whose first four
tokens are these; their `level` is "word" -- a token may be longer than one character -- and how the side is
split is the `level` argument here, kept in the task's config. A batch of B pairs is

    src         (B, S) int64   x, padded with <pad>; the source has no specials
    src_lengths (B,)   int64   len(x)
    tgt_in      (B, T) int64   <bos> y, padded with <pad>      (the decoder's inputs, teacher forcing)
    tgt_out     (B, T) int64   y <eos>, padded with <pad>      (its targets: cross-entropy, ignore_index=0)

with T = max len(y) + 1.

Splits and batches: `split_pairs` holds out a seeded share of the distinct first-column sentences (Tatoeba's
English), with all their translations, so no such sentence is on both sides of the split, whichever column is
the source; `length_batches` groups pairs of similar length into batches in an order drawn from (seed, epoch).

Data: ../shared/data/tatoeba_cmn_eng/cmn.txt is Tatoeba's (manythings.org's cmn-eng), CC-BY 2.0 (France); its
third column is each pair's attribution (sentence numbers and authors), which must go with the data wherever
it is redistributed (read_pairs ignores it; the file stays as it is).

Example:
    >>> pairs = [("I run.", "我跑。"), ("Run!", "跑！")]
    >>> source = pair_vocabulary(tokenize_sentence(s, "word") for s, _ in pairs)
    >>> target = pair_vocabulary(tokenize_sentence(t, "char") for _, t in pairs)
    >>> source.tokens[4:], target.tokens[4:]
    (('!', '.', 'I', 'Run', 'run'), ('跑', '。', '我', '！'))
    >>> data = SentencePairs(pairs, source, target, "word", "char")
    >>> src, src_lengths, tgt_in, tgt_out = pair_collate([data[0], data[1]])
    >>> src.tolist(), src_lengths.tolist()
    ([[6, 8, 5], [7, 4, 0]], [3, 2])
    >>> tgt_in.tolist(), tgt_out.tolist()
    ([[1, 6, 4, 5], [1, 4, 7, 0]], [[6, 4, 5, 2], [4, 7, 2, 0]])
    >>> decode_sentence(tgt_out[0], target, "char")
    '我跑。'
"""

from __future__ import annotations

import collections
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

import torch
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import Dataset

from rnnkit.data.text import EOS, UNK, Vocabulary

__all__ = [
    "PAD",
    "BOS",
    "SPECIALS",
    "PAD_ID",
    "BOS_ID",
    "EOS_ID",
    "UNK_ID",
    "SentencePairs",
    "decode_sentence",
    "pair_collate",
    "pair_vocabulary",
    "read_pairs",
    "split_pairs",
    "length_batches",
    "tokenize_sentence",
]

PAD, BOS = "<pad>", "<bos>"
SPECIALS = (PAD, BOS, EOS, UNK)
PAD_ID, BOS_ID, EOS_ID, UNK_ID = range(4)
Level = Literal["word", "char"]
_WORD = re.compile(r"\w+|[^\w\s]")


def read_pairs(path: str | Path) -> list[tuple[str, str]]:
    """(source, target) of every line `source<TAB>target[<TAB>anything]` of a UTF-8 file.

    Further columns (Tatoeba's attribution) are ignored, blank lines skipped, fields stripped of surrounding
    whitespace. A line without a tab, with an empty field, or not valid UTF-8 is a ValueError naming its
    (1-based) line number.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    pairs = []
    for number, raw in enumerate(path.read_bytes().split(b"\n"), start=1):
        try:
            line = raw.decode("utf-8-sig" if number == 1 else "utf-8").rstrip("\r")  # a BOM (Tatoeba's)
        except UnicodeDecodeError as e:
            reason = f"not valid UTF-8 at byte {e.start} of the line ({e.reason})"
            raise ValueError(f"{path}, line {number}: {reason}") from None
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2:
            raise ValueError(
                f"{path}, line {number}: expected 'source<TAB>target', got 1 column: {line[:80]!r}"
            )
        source, target = fields[0].strip(), fields[1].strip()
        if not source or not target:
            side = "source" if not source else "target"
            raise ValueError(f"{path}, line {number}: expected a non-empty {side}, got {line[:80]!r}")
        pairs.append((source, target))
    if not pairs:
        raise ValueError(f"{path} holds no sentence pair")
    return pairs


def tokenize_sentence(sentence: str, level: Level) -> list[str]:
    """Words and punctuation marks ("word") or non-space characters ("char") of a sentence."""
    if level == "word":
        return _WORD.findall(sentence)
    if level == "char":
        return [c for c in sentence if not c.isspace()]
    raise ValueError(f"level must be 'word' or 'char', got {level!r}")


def pair_vocabulary(
    sentences: Iterable[Sequence[str]], min_freq: int = 1, max_size: int | None = None
) -> Vocabulary:
    """The specials, then the tokens of the tokenised `sentences` by falling frequency (ties by code point).

    Tokens seen fewer than `min_freq` times, or beyond the `max_size` most frequent (specials not counted),
    are left out and encode as <unk>.
    """
    if min_freq < 1:
        raise ValueError(f"min_freq must be >= 1, got {min_freq}")
    if max_size is not None and max_size < 1:
        raise ValueError(f"max_size must be >= 1 or None, got {max_size}")
    counts = collections.Counter(token for tokens in sentences for token in tokens)
    ranked = sorted((t for t in counts if t not in SPECIALS), key=lambda t: (-counts[t], t))
    kept = [t for t in ranked if counts[t] >= min_freq][:max_size]
    return Vocabulary(SPECIALS + tuple(kept), level="word", unk=UNK)


def _check_vocabulary(vocabulary: Vocabulary, side: str) -> None:
    if vocabulary.tokens[:4] != SPECIALS or vocabulary.unk != UNK:
        raise ValueError(
            f"the {side} vocabulary must start with {list(SPECIALS)} and have unk {UNK!r} "
            f"(pair_vocabulary), got {list(vocabulary.tokens[:4])} and unk {vocabulary.unk!r}"
        )


class SentencePairs(Dataset):
    """(source ids (S,), target ids (T,)) int64 of sentence pairs, no specials (`pair_collate` adds them).

    Args:
        pairs: (source sentence, target sentence) strings.
        source_vocabulary, target_vocabulary: from `pair_vocabulary`; unknown tokens become <unk>.
        source_level, target_level: how each side is split ("word" or "char").
    """

    def __init__(
        self,
        pairs: Sequence[tuple[str, str]],
        source_vocabulary: Vocabulary,
        target_vocabulary: Vocabulary,
        source_level: Level = "word",
        target_level: Level = "word",
    ) -> None:
        _check_vocabulary(source_vocabulary, "source")
        _check_vocabulary(target_vocabulary, "target")
        if not len(pairs):
            raise ValueError("expected at least one sentence pair, got none")
        self.examples = []
        for i, pair in enumerate(pairs):
            if len(pair) != 2:
                raise ValueError(f"pair {i}: expected (source, target), got {len(pair)} items")
            source = tokenize_sentence(pair[0], source_level)
            target = tokenize_sentence(pair[1], target_level)
            if not source or not target:
                side = "source" if not source else "target"
                raise ValueError(f"pair {i}: the {side} has no token, got {pair!r}")
            self.examples.append(
                (
                    torch.tensor(source_vocabulary.encode_tokens(source), dtype=torch.long),  # (S,)
                    torch.tensor(target_vocabulary.encode_tokens(target), dtype=torch.long),  # (T,)
                )
            )

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.examples[i]


def pair_collate(
    batch: Sequence[tuple[torch.Tensor, torch.Tensor]],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(source, target) ids -> (src (B, S), src_lengths (B,), tgt_in (B, T) = <bos> y, tgt_out = y <eos>)."""
    if not len(batch):
        raise ValueError("expected a batch of at least one (source, target), got none")
    sources = [torch.as_tensor(x, dtype=torch.long) for x, _ in batch]
    targets = [torch.as_tensor(y, dtype=torch.long) for _, y in batch]
    bos, eos = torch.tensor([BOS_ID]), torch.tensor([EOS_ID])
    src = pad_sequence(sources, batch_first=True, padding_value=PAD_ID)  # (B, S)
    src_lengths = torch.tensor([len(x) for x in sources], dtype=torch.long)  # (B,)
    tgt_in = [torch.cat([bos, y]) for y in targets]  # <bos> y
    tgt_out = [torch.cat([y, eos]) for y in targets]  # y <eos>
    tgt_in = pad_sequence(tgt_in, batch_first=True, padding_value=PAD_ID)  # (B, T)
    tgt_out = pad_sequence(tgt_out, batch_first=True, padding_value=PAD_ID)  # (B, T)
    return src, src_lengths, tgt_in, tgt_out


def decode_sentence(ids, vocabulary: Vocabulary, level: Level) -> str:
    """The sentence of a sequence of ids (list or 1-D tensor): up to the first <eos>, <pad>/<bos> skipped;
    words joined by spaces ("word"), characters by nothing ("char")."""
    if level not in ("word", "char"):
        raise ValueError(f"level must be 'word' or 'char', got {level!r}")
    tokens = []
    for i in (int(i) for i in ids):
        if i == EOS_ID:
            break
        if not 0 <= i < len(vocabulary):
            raise ValueError(f"token id must be in [0, {len(vocabulary)}), got {i}")
        if i not in (PAD_ID, BOS_ID):
            tokens.append(vocabulary.tokens[i])
    return (" " if level == "word" else "").join(tokens)


def split_pairs(
    pairs: Sequence[tuple[str, str]], valid_fraction: float, test_fraction: float, seed: int
) -> tuple[list[tuple[str, str]], list[tuple[str, str]], list[tuple[str, str]]]:
    """(train, valid, test) pairs: the distinct first-column sentences are shuffled with `seed` and cut into
    shares, every pair going with its first column, so that no first-column sentence is in two parts.

    The order inside each part is the file's. valid/test each get round(fraction * distinct) sentences, at
    least one when the fraction is > 0.
    """
    for name, f in (("valid_fraction", valid_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= f < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {f}")
    if valid_fraction + test_fraction >= 1.0:
        raise ValueError(f"valid_fraction + test_fraction must be < 1, got {valid_fraction + test_fraction}")
    distinct = list(dict.fromkeys(source for source, _ in pairs))  # first-seen order
    order = torch.randperm(len(distinct), generator=torch.Generator().manual_seed(seed)).tolist()
    sizes = [0 if f == 0 else max(1, round(f * len(distinct))) for f in (valid_fraction, test_fraction)]
    if sum(sizes) >= len(distinct):
        raise ValueError(f"{len(distinct)} distinct source sentences are too few to hold out {sizes[0]} for "
                         f"validation and {sizes[1]} for test and keep some for training")
    part = {distinct[i]: 1 for i in order[: sizes[0]]}
    part.update({distinct[i]: 2 for i in order[sizes[0] : sizes[0] + sizes[1]]})
    parts: tuple[list, list, list] = ([], [], [])
    for pair in pairs:
        parts[part.get(pair[0], 0)].append(pair)
    return parts


def length_batches(
    lengths: Sequence[int], batch_size: int, seed: int, epoch: int, rank: int = 0, world_size: int = 1,
    pool: int = 50,
) -> list[list[int]]:
    """Batches of example indices for epoch `epoch`, a function of (seed, epoch) only, so a resumed run draws
    the same ones: a seeded permutation, cut into pools of `pool` batches, each sorted by length and cut into
    batches (little padding), then the batches shuffled. With world_size W > 1 rank r takes batches r, r + W,
    ... of as many as all ranks get alike (the last few of the epoch are dropped)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(len(lengths), generator=g).tolist()
    batches = []
    span = batch_size * pool
    for start in range(0, len(order), span):
        chunk = sorted(order[start : start + span], key=lambda i: lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    batches = [batches[i] for i in torch.randperm(len(batches), generator=g).tolist()]
    usable = len(batches) - len(batches) % world_size
    return batches[rank:usable:world_size]
