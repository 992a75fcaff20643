"""The classifier's data side: the `data` section, raw inputs -> sequences (the `Encoding` stored with the
model), the train / validation split, and the training batches (rnnkit.tasks.classifier builds the task).

Text comes as an aclImdb folder, .jsonl, .csv or .tsv (`rnnkit.data.labelled`), numeric series as a UEA/UCR
.ts file or an .npz (`rnnkit.data.ts_format`). The tokenizer (text) or the channel scaler (series) and the
label vocabulary are fitted on the training part only and stored as JSON (`Encoding.to_json`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from rnnkit.data.labelled import (
    encode_texts,
    label_vocabulary,
    make_tokenizer,
    name_labels,
    read_labelled_texts,
    tokenizer_from_json,
)
from rnnkit.data.sequences import LabelledSequences, LabelVocabulary, pad_collate
from rnnkit.data.ts_format import ChannelScaler, read_labelled_series

__all__ = ["ClassifierDataConfig", "Encoding", "NumberedBatches", "SERIES_SUFFIXES", "balanced_weights",
           "crop_collate", "dataset", "format_for", "label_ids", "read_raw", "stratified_split"]

SERIES_SUFFIXES = (".ts", ".npz")


@dataclass(frozen=True)
class ClassifierDataConfig:
    """The `data` section of a classifier run.

    Args:
        path: training data: aclImdb folder, .jsonl / .csv / .tsv (text) or .ts / .npz (numeric series).
        valid_path: validation data in the same form; empty = hold out `valid_fraction` of `path`.
        valid_fraction: the held-out part of each class (seeded with trainer.seed) when valid_path is empty.
        format: "auto" (from the path), "imdb", "jsonl", "csv" or "tsv" for text.
        text_column, label_column: the fields of .jsonl / .csv / .tsv records.
        label_names: label value -> name, e.g. {0: neg, 1: pos} for IMDB's JSONL, so that the classes (and
            predictions) read neg / pos; applied to every file read (training, validation, evaluation). A
            label that already is one of the names passes, any other value is an error. Several values may
            share a name (merging classes). The classes take the order of the names here.
        tokenizer: "word", "bpe" or "wordpiece" (HuggingFace tokenizers, trained on the training part).
        vocab_size: the tokenizer's largest vocabulary, <pad> and <unk> included.
        min_freq: words (or merges) seen fewer times are not in the vocabulary.
        lowercase: lower-case texts before tokenising.
        max_length: keep at most this many tokens (steps) of a sequence (0 = all).
        truncate: keep the "head" (first max_length) or the "tail" (last) of longer sequences.
        scale: standardise each channel of numeric series with the training part's mean and std.
        batch_size: sequences per batch (per process).
        bucket_chunk: bucketing sorts chunks of batch_size * bucket_chunk examples by length (1 = no bucketing
            beyond one batch).
        class_weights: "none", or "balanced": class k's loss weighted N / (K n_k), for imbalanced data.
        crop_train_batches: cut every training batch to its shortest sequence (keeping each one's head, or its
            tail with truncate "tail"), so the batch needs no packing. A speed trade on CPU: torch's packed
            LSTM backward there is about 10x slower than the unpacked one (17 s against 1.8 s for 64 x 256
            steps, H = 128, bidirectional); with length buckets only a few steps are cut. Validation,
            evaluation and prediction always read whole sequences.
    """

    path: str = ""
    valid_path: str = ""
    valid_fraction: float = 0.1
    format: str = "auto"
    text_column: str = "text"
    label_column: str = "label"
    label_names: dict = field(default_factory=dict)
    tokenizer: str = "word"
    vocab_size: int = 30000
    min_freq: int = 2
    lowercase: bool = True
    max_length: int = 400
    truncate: str = "head"
    scale: bool = True
    batch_size: int = 32
    bucket_chunk: int = 50
    class_weights: str = "none"
    crop_train_batches: bool = False

    def __post_init__(self):
        if not 0.0 <= self.valid_fraction < 1.0:
            raise ValueError(f"data.valid_fraction must lie in [0, 1), got {self.valid_fraction}")
        if self.tokenizer not in ("word", "bpe", "wordpiece"):
            raise ValueError(f"data.tokenizer must be 'word', 'bpe' or 'wordpiece', got {self.tokenizer!r}")
        if self.truncate not in ("head", "tail"):
            raise ValueError(f"data.truncate must be 'head' or 'tail', got {self.truncate!r}")
        if self.class_weights not in ("none", "balanced"):
            raise ValueError(f"data.class_weights must be 'none' or 'balanced', got {self.class_weights!r}")
        for name in ("batch_size", "bucket_chunk", "min_freq"):
            if getattr(self, name) < 1:
                raise ValueError(f"data.{name} must be >= 1, got {getattr(self, name)}")
        if self.max_length < 0 or self.vocab_size < 3:
            raise ValueError(f"data.max_length must be >= 0 and data.vocab_size >= 3, got {self.max_length} "
                             f"and {self.vocab_size}")
        if not isinstance(self.label_names, dict):
            raise ValueError(f"data.label_names must map label values to names, got {self.label_names!r}")
        plain = [x for pair in self.label_names.items() for x in pair
                 if isinstance(x, (str, int)) and not isinstance(x, bool) and str(x).strip()]
        if len(plain) != 2 * len(self.label_names):
            raise ValueError(f"data.label_names must map label values to non-empty names, got "
                             f"{self.label_names}")
        # YAML gives {0: neg}; labels are read as strings, and the JSON of a model file keeps only str keys
        object.__setattr__(self, "label_names", {str(v): str(n) for v, n in self.label_names.items()})

    @property
    def numeric(self) -> bool:
        """Whether the data are numeric series (.ts / .npz) rather than texts."""
        return Path(self.path).suffix.lower() in SERIES_SUFFIXES


@dataclass
class Encoding:
    """How raw inputs become sequences: the data config plus what was fitted on the training part
    (tokenizer for text, channel scaler for series) and the label vocabulary; all JSON."""

    data: ClassifierDataConfig
    labels: LabelVocabulary
    tokenizer: object | None = None
    scaler: ChannelScaler | None = None

    @property
    def numeric(self) -> bool:
        return self.tokenizer is None

    @classmethod
    def fit(cls, data: ClassifierDataConfig, raw: list, labels: list[str], tokenizer=None) -> Encoding:
        """Fit on the training part; a given `tokenizer` (a language model's vocabulary) is used as it is."""
        vocab = label_vocabulary(labels, data.label_names)
        if data.numeric:
            return cls(data, vocab, scaler=ChannelScaler.fit(raw) if data.scale else None)
        if tokenizer is None:
            tokenizer = make_tokenizer(raw, data.tokenizer, data.min_freq, data.vocab_size, data.lowercase)
        return cls(data, vocab, tokenizer=tokenizer)

    def sequences(self, raw: list) -> list:
        """Token ids (T_i,) for texts, or scaled (T_i, F) arrays for series, cut to data.max_length."""
        if not raw:
            raise ValueError("expected at least one input, got none")
        if self.numeric:
            if isinstance(raw[0], str):
                raise ValueError("this classifier reads numeric series (T, F), got text")
            series = [np.asarray(s, dtype=np.float32) for s in raw]
            series = [s[:, None] if s.ndim == 1 else s for s in series]
            for i, s in enumerate(series):
                if s.ndim != 2 or s.shape[0] == 0:
                    raise ValueError(f"series {i}: expected shape (T, F) with T >= 1, got {s.shape}")
                if not np.isfinite(s).all():
                    raise ValueError(f"series {i}: expected finite features, got NaN or inf")
            series = self.scaler.transform(series) if self.scaler is not None else series
            limit = self.data.max_length or None
            return [s if limit is None or len(s) <= limit else (s[:limit] if self.data.truncate == "head"
                                                               else s[-limit:]) for s in series]
        bad = next((i for i, t in enumerate(raw) if not isinstance(t, str) or not t.strip()), None)
        if bad is not None:
            raise ValueError(f"input {bad}: expected a non-empty text, got {raw[bad]!r}")
        return encode_texts(self.tokenizer, raw, self.data.max_length, self.data.truncate)

    def to_json(self) -> dict:
        return {"labels": self.labels.to_json(),
                "tokenizer": None if self.tokenizer is None else self.tokenizer.to_json(),
                "scaler": None if self.scaler is None else self.scaler.to_json()}

    @classmethod
    def from_json(cls, data: ClassifierDataConfig, stored: dict) -> Encoding:
        tokenizer = stored.get("tokenizer")
        scaler = stored.get("scaler")
        return cls(data, LabelVocabulary.from_json(stored["labels"]),
                   None if tokenizer is None else tokenizer_from_json(tokenizer),
                   None if scaler is None else ChannelScaler.from_json(scaler))


def read_raw(path: str | Path, data: ClassifierDataConfig, split: str = "train", require_labels: bool = True,
             fmt: str | None = None):
    """(texts or series, labels) of a data file, read as `data` says (series by their suffix; labels named by
    data.label_names, unless they are not required: predict ignores them)."""
    if Path(path).suffix.lower() in SERIES_SUFFIXES:
        raw, labels = read_labelled_series(path)
    else:
        fmt = data.format if fmt is None else fmt
        raw, labels = read_labelled_texts(path, fmt, data.text_column, data.label_column, split,
                                          require_labels)
    return raw, name_labels(labels, data.label_names, path) if require_labels else labels


def stratified_split(labels: list[str], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(train, valid) indices: a seeded `fraction` of each class held out (>= 1 of a class of >= 2)."""
    generator = torch.Generator().manual_seed(seed)
    train, valid = [], []
    for label in sorted(set(labels)):
        members = [i for i, y in enumerate(labels) if y == label]
        order = [members[j] for j in torch.randperm(len(members), generator=generator).tolist()]
        k = min(len(members) - 1, max(1, round(fraction * len(members)))) if fraction > 0 else 0
        valid += order[:k]
        train += order[k:]
    return sorted(train), sorted(valid)


def label_ids(encoding: Encoding, labels: list[str], where) -> list[int]:
    """Label ids; a label training never saw is a ValueError naming the file and the known labels."""
    try:
        return encoding.labels.encode_all(labels)
    except ValueError as e:
        raise ValueError(f"{where}: {e} (the labels the model was trained on)") from None


def dataset(encoding: Encoding, raw: list, labels: list[str], where) -> LabelledSequences:
    return LabelledSequences(encoding.sequences(raw), label_ids(encoding, labels, where))


class NumberedBatches:
    """One epoch's training batches, each (inputs, lengths, targets, step): `step` is the optimiser step that
    takes the batch, epoch * batches per epoch + j (every epoch has the same number of batches), for
    gradual unfreezing; it comes from the position alone, so a resumed run sees the same steps."""

    def __init__(self, data: LabelledSequences, batches: list[list[int]], collate, epoch: int):
        self.data, self.batches, self.collate, self.epoch = data, batches, collate, epoch

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        first = self.epoch * len(self.batches)
        for j, batch in enumerate(self.batches):
            yield (*self.collate([self.data[i] for i in batch]), first + j)


def crop_collate(truncate: str):
    """pad_collate after cutting every sequence of the batch to the shortest one's length (head or tail)."""
    def collate(batch):
        shortest = min(len(s) for s, _ in batch)
        return pad_collate([(s[:shortest] if truncate == "head" else s[-shortest:], y) for s, y in batch])

    return collate


def balanced_weights(labels: list[int], num_classes: int) -> torch.Tensor:
    """w_k = N / (K n_k) (scikit-learn's "balanced"); a class absent from training gets weight 0."""
    counts = torch.bincount(torch.tensor(labels), minlength=num_classes).double()
    return torch.where(counts > 0, len(labels) / (num_classes * counts), 0.0).float()


def format_for(path, data: ClassifierDataConfig) -> str:
    """The training format if the evaluation file is of the same kind, else detected from its path."""
    same = Path(path).is_dir() == Path(data.path).is_dir() and Path(path).suffix == Path(data.path).suffix
    return data.format if same else "auto"
