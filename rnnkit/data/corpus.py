"""The text a language model trains on: where it is, how it is split, and its token ids.

`TextDataConfig` is the `data:` section of a language-model run. `token_ids(data, vocab, seed)` reads the
text (a file, a folder of .txt files, a folder with train.txt and valid.txt, or Tang poems), builds the
vocabulary when none is given (char and word level: from all the text read, so validation never meets an
unknown token; subword level: a BPE trained on the training text only, a single text being cut at character
int(N * (1 - valid_fraction)) first) and returns the training and validation ids. `evaluation_ids` reads
text for a trained model's vocabulary, with a choice for tokens it does not hold (`Vocabulary.encode_known`).
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from pathlib import Path

import torch

from rnnkit.data.datasets import tang_poems
from rnnkit.data.poems import poem_corpus, regular_poems, split_poems
from rnnkit.data.text import LEVELS, Vocabulary, read_text, split

__all__ = ["DATASETS", "TextDataConfig", "read_corpus", "read_poems", "token_ids", "evaluation_ids"]

DATASETS = ("text", "tang_poems")


@dataclass(frozen=True)
class TextDataConfig:
    """Where the text is and how it is cut into batches.

    Args:
        path: a text file, a folder of .txt files, or a folder with train.txt and valid.txt; for
            dataset "tang_poems" the folder holding tang_poems.jsonl / tang_poems.simplified.tsv.
        dataset: "text" (plain text) or "tang_poems" (regular Tang poems, each ^poem$; char level only).
        script: tang_poems: "traditional" (the source) or "simplified" (OpenCC t2s).
        poem_chars: tang_poems: keep poems of 5 or 7 characters per line (0 = both).
        poem_lines: tang_poems: keep poems of 4 or 8 lines (0 = both).
        level: "char", "word" or "subword" tokens (subword: a BPE trained on the training text).
        valid_fraction: the fraction held out for validation: the last part of a single text, or a random
            set of whole poems.
        batch_size: B, parallel rows of the stream per process.
        bptt: T, time steps per batch (the truncation length of BPTT).
        min_freq: word level: drop rarer words (they become <unk>).
        max_vocab: word level: keep at most this many tokens (0 = no limit).
        subword_vocab_size: subword level: the BPE's vocabulary size (at most; every character of the
            training text is a token).
    """

    path: str = ""
    dataset: str = "text"
    script: str = "traditional"
    poem_chars: int = 0
    poem_lines: int = 0
    level: str = "char"
    valid_fraction: float = 0.1
    batch_size: int = 32
    bptt: int = 64
    min_freq: int = 1
    max_vocab: int = 0
    subword_vocab_size: int = 1000

    def __post_init__(self):
        if self.level not in LEVELS:
            raise ValueError(f"data.level must be 'char', 'word' or 'subword', got {self.level!r}")
        if not 0.0 < self.valid_fraction < 1.0:
            raise ValueError(f"data.valid_fraction must be in (0, 1), got {self.valid_fraction}")
        for name in ("batch_size", "bptt", "min_freq"):
            if getattr(self, name) < 1:
                raise ValueError(f"data.{name} must be >= 1, got {getattr(self, name)}")
        if self.max_vocab < 0:
            raise ValueError(f"data.max_vocab must be >= 0, got {self.max_vocab}")
        if self.subword_vocab_size < 2:
            raise ValueError(f"data.subword_vocab_size must be >= 2, got {self.subword_vocab_size}")
        if self.level == "subword" and (self.min_freq != 1 or self.max_vocab):
            raise ValueError(
                "data.min_freq and data.max_vocab size a word vocabulary; a subword one is sized by "
                f"data.subword_vocab_size, got min_freq={self.min_freq}, max_vocab={self.max_vocab}"
            )
        if self.dataset not in DATASETS:
            raise ValueError(f"data.dataset must be 'text' or 'tang_poems', got {self.dataset!r}")
        if self.script not in ("traditional", "simplified"):
            raise ValueError(f"data.script must be 'traditional' or 'simplified', got {self.script!r}")
        if self.poem_chars not in (0, 5, 7) or self.poem_lines not in (0, 4, 8):
            raise ValueError(
                "data.poem_chars must be 0 (both), 5 or 7 and data.poem_lines 0 (both), 4 or 8, got "
                f"{self.poem_chars} and {self.poem_lines}"
            )
        if self.dataset == "tang_poems" and self.level != "char":
            raise ValueError(f"data.dataset 'tang_poems' is char level, got data.level {self.level!r}")
        if self.dataset == "text" and (self.poem_chars or self.poem_lines):
            raise ValueError(
                "data.poem_chars and data.poem_lines filter data.dataset 'tang_poems', got dataset 'text' "
                f"with poem_chars={self.poem_chars}, poem_lines={self.poem_lines}"
            )


def read_corpus(data: TextDataConfig, seed: int = 0) -> tuple[str, str | None]:
    """(train text, valid text) for a folder with train.txt/valid.txt or for poems (split with `seed`),
    else (all text, None)."""
    if not data.path:
        raise ValueError("no training text: give --data PATH (or data.path in the config)")
    if data.dataset == "tang_poems":
        return read_poems(data, seed)
    path = Path(data.path)
    if path.is_dir() and (path / "train.txt").is_file() and (path / "valid.txt").is_file():
        return read_text(path / "train.txt"), read_text(path / "valid.txt")
    return read_text(path), None


def read_poems(data: TextDataConfig, seed: int) -> tuple[str, str]:
    """(train, valid) poem streams "^poem$^poem$...": the regular poems of the form asked for, distinct,
    shuffled with `seed` and split by whole poems (`data.valid_fraction` of them validate)."""
    poems = tang_poems(data.path, script=data.script)
    kept = regular_poems(
        poems,
        chars=[data.poem_chars or 5, data.poem_chars or 7],
        lines=[data.poem_lines or 4, data.poem_lines or 8],
    )
    if len(kept) < 2:
        raise ValueError(
            f"{data.path} ({data.script}) holds {len(kept)} regular poems with poem_chars={data.poem_chars}, "
            f"poem_lines={data.poem_lines} (of {len(poems)} poems); need at least 2"
        )
    train, valid = split_poems(kept, data.valid_fraction, seed)
    return poem_corpus(train), poem_corpus(valid)


def token_ids(
    data: TextDataConfig, vocab: Vocabulary | None, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, Vocabulary]:
    """(train ids, valid ids, vocabulary): a single text is split in time by data.valid_fraction."""
    train_text, valid_text = read_corpus(data, seed)
    if data.level == "subword":
        return _subword_ids(data, vocab, train_text, valid_text)
    if vocab is None:
        vocab = Vocabulary.build(
            train_text + (valid_text or ""),
            level=data.level,
            min_freq=data.min_freq,
            max_size=data.max_vocab or None,
        )
    if valid_text is None:
        train_ids, valid_ids = split(torch.tensor(vocab.encode(train_text)), data.valid_fraction)
    else:
        train_ids, valid_ids = torch.tensor(vocab.encode(train_text)), torch.tensor(vocab.encode(valid_text))
    return train_ids, valid_ids, vocab


def _subword_ids(data: TextDataConfig, vocab: Vocabulary | None, train_text: str, valid_text: str | None):
    """Subword level: a single text is cut in characters first, so that the BPE learns from training text
    only; validation text may then hold characters it never saw (<unk>)."""
    if valid_text is None:
        train_text, valid_text = split(train_text, data.valid_fraction)  # in characters
    if vocab is None:
        vocab = Vocabulary.build(train_text, level="subword", max_size=data.subword_vocab_size)
    return torch.tensor(vocab.encode(train_text)), torch.tensor(vocab.encode(valid_text)), vocab


def evaluation_ids(
    data: TextDataConfig, vocab: Vocabulary, seed: int = 0, split_name: str = "valid", unknown: str = "error"
) -> tuple[torch.Tensor, collections.Counter]:
    """The ids of one part of the text, read as in training, for a trained model's vocabulary, and the count
    of each token it does not hold.

    Args:
        split_name: "valid" (the training run's held-out part), "train", or "all".
        unknown: tokens outside the vocabulary: "error" (a ValueError naming them), "skip" or "unk"
            (`Vocabulary.encode_known`). A single text is cut where training cut it, before any is skipped.
    """
    if split_name not in ("valid", "train", "all"):
        raise ValueError(f"split must be 'valid', 'train' or 'all', got {split_name!r}")
    train_text, valid_text = read_corpus(data, seed)
    if valid_text is None and data.level == "subword":
        train_text, valid_text = split(train_text, data.valid_fraction)  # in characters
    if valid_text is None:
        train_tokens, valid_tokens = split(vocab.tokenize(train_text), data.valid_fraction)
    else:
        train_tokens, valid_tokens = vocab.tokenize(train_text), vocab.tokenize(valid_text)
    tokens = {"train": train_tokens, "valid": valid_tokens, "all": train_tokens + valid_tokens}[split_name]
    ids, unseen = vocab.encode_known(tokens, unknown)
    return torch.tensor(ids, dtype=torch.long), unseen
