"""Labelled variable-length sequences for classification: token ids or numeric features, a label vocabulary.

An example is (sequence, label): token ids (T_i,) int64 -- text through `Vocabulary.encode` -- or numeric
features (T_i, F) float32, and a label id. `pad_collate` makes a batch of them

    padded  (B, T_max) int64 or (B, T_max, F) float32   zeros after each sequence's end
    lengths (B,) int64                                   T_i, for the layers' lengths=
    labels  (B,) int64

String labels become ids 0..K-1 through a `LabelVocabulary` (sorted, so the ids do not depend on the order of
the data), stored as JSON with the model.

Example:
    >>> labels = LabelVocabulary.build(["spam", "ham", "spam"])
    >>> labels.labels, labels.encode("spam")
    (('ham', 'spam'), 1)
    >>> data = LabelledSequences([[5, 6, 7], [8]], labels.encode_all(["spam", "ham"]))
    >>> padded, lengths, y = pad_collate([data[0], data[1]])
    >>> padded.tolist(), lengths.tolist(), y.tolist()
    ([[5, 6, 7], [8, 0, 0]], [3, 1], [1, 0])
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import Dataset

__all__ = ["LabelVocabulary", "LabelledSequences", "pad_collate"]


@dataclass(frozen=True)
class LabelVocabulary:
    """A bijection between string labels and ids 0..K-1.

    Args:
        labels: the labels, id i is labels[i]; all distinct, at least one.
    """

    labels: tuple[str, ...]
    index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", tuple(self.labels))
        if not self.labels:
            raise ValueError("a label vocabulary needs at least one label, got none")
        bad = next((x for x in self.labels if not isinstance(x, str)), None)
        if bad is not None:
            raise ValueError(f"labels must be strings, got {bad!r} ({type(bad).__name__})")
        index = {label: i for i, label in enumerate(self.labels)}
        if len(index) != len(self.labels):
            duplicate = next(x for x in self.labels if self.labels.count(x) > 1)
            raise ValueError(f"labels must be distinct, got {duplicate!r} more than once")
        object.__setattr__(self, "index", index)

    @classmethod
    def build(cls, labels: Iterable[str]) -> LabelVocabulary:
        """The distinct labels of `labels`, sorted."""
        return cls(tuple(sorted(set(labels))))

    def __len__(self) -> int:
        return len(self.labels)

    def encode(self, label: str) -> int:
        """The id of `label`; an unknown label raises ValueError naming the known ones."""
        i = self.index.get(label)
        if i is None:
            raise ValueError(f"unknown label {label!r}: expected one of {list(self.labels)}")
        return i

    def encode_all(self, labels: Iterable[str]) -> list[int]:
        return [self.encode(label) for label in labels]

    def decode(self, i: int) -> str:
        if not 0 <= int(i) < len(self.labels):
            raise ValueError(f"label id must be in [0, {len(self.labels)}), got {int(i)}")
        return self.labels[int(i)]

    def to_json(self) -> dict:
        """A JSON-serialisable dict; `LabelVocabulary.from_json` inverts it."""
        return {"labels": list(self.labels)}

    @classmethod
    def from_json(cls, data: dict) -> LabelVocabulary:
        if "labels" not in data:
            raise ValueError(f"label vocabulary JSON needs the key labels, got keys {sorted(data)}")
        return cls(tuple(data["labels"]))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> LabelVocabulary:
        try:
            return cls.from_json(json.loads(Path(path).read_text(encoding="utf-8")))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not a label vocabulary JSON file: {e}") from None


class LabelledSequences(Dataset):
    """(sequence, label) examples: token ids (T_i,) int64 or features (T_i, F) float32, label id int.

    Every sequence is checked once, here: all of one kind (1-D integer ids or 2-D numbers), none empty, no
    negative id, finite features of one width F.

    Args:
        sequences: lists, NumPy arrays or tensors.
        labels: label ids >= 0 (`LabelVocabulary.encode_all` for strings), one per sequence.
        max_length: keep the first `max_length` steps of longer sequences; None keeps all.
    """

    def __init__(
        self, sequences: Sequence, labels: Sequence[int], max_length: int | None = None
    ) -> None:
        if len(sequences) != len(labels):
            raise ValueError(
                f"expected one label per sequence, got {len(sequences)} sequences and {len(labels)} labels"
            )
        if not len(sequences):
            raise ValueError("expected at least one sequence, got none")
        if max_length is not None and max_length < 1:
            raise ValueError(f"max_length must be >= 1 or None, got {max_length}")
        self.sequences = [_checked(s, i)[:max_length] for i, s in enumerate(sequences)]
        first = self.sequences[0]
        for i, s in enumerate(self.sequences):
            if s.dim() != first.dim():
                raise ValueError(
                    f"sequence {i} has shape {tuple(s.shape)}, expected {first.dim()}-D as sequence 0 "
                    f"{tuple(first.shape)} (all token ids (T,) or all features (T, F))"
                )
            if s.dim() == 2 and s.shape[1] != first.shape[1]:
                raise ValueError(
                    f"sequence {i} has {s.shape[1]} features, expected {first.shape[1]} (as sequence 0)"
                )
        self.labels = [int(y) for y in labels]
        bad = next((i for i, y in enumerate(self.labels) if y < 0), None)
        if bad is not None:
            raise ValueError(f"label ids must be >= 0, got {self.labels[bad]} for sequence {bad}")
        self.max_length = max_length

    @property
    def num_features(self) -> int | None:
        """F of numeric sequences; None for token ids."""
        first = self.sequences[0]
        return int(first.shape[1]) if first.dim() == 2 else None

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.sequences[i], self.labels[i]


def _checked(sequence, i: int) -> torch.Tensor:
    """Sequence i as (T,) int64 ids or (T, F) float32 features, or a ValueError that says what is wrong."""
    s = torch.as_tensor(sequence)
    if s.dim() not in (1, 2):
        raise ValueError(
            f"sequence {i}: expected token ids (T,) or features (T, F), got shape {tuple(s.shape)}"
        )
    if s.shape[0] == 0:
        raise ValueError(f"sequence {i} is empty: expected at least one step, got shape {tuple(s.shape)}")
    if s.dim() == 1:
        if s.is_floating_point() or s.is_complex() or s.dtype == torch.bool:
            raise ValueError(
                f"sequence {i}: 1-D sequences are token ids and must be integers, got {s.dtype} "
                "(numeric features are (T, F): add a feature axis)"
            )
        if (s < 0).any():
            raise ValueError(f"sequence {i}: token ids must be >= 0, got {int(s.min())}")
        return s.long()
    if s.shape[1] == 0:
        raise ValueError(f"sequence {i}: expected at least one feature, got shape {tuple(s.shape)}")
    s = s.float()
    finite = torch.isfinite(s)
    if not finite.all():
        step, feature = (int(v) for v in (~finite).nonzero()[0])
        raise ValueError(
            f"sequence {i}: expected finite features, got {float(s[step, feature])} at step {step}, "
            f"feature {feature}"
        )
    return s


def pad_collate(
    batch: Sequence[tuple[torch.Tensor, int]], padding_value: float = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A batch of (sequence, label) -> (padded (B, T_max[, F]), lengths (B,) int64, labels (B,) int64).

    Positions after a sequence's end hold `padding_value`; the layers' `lengths=` never reads them.
    """
    if not len(batch):
        raise ValueError("expected a batch of at least one (sequence, label), got none")
    sequences = [s for s, _ in batch]
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)  # (B,)
    padded = pad_sequence(sequences, batch_first=True, padding_value=padding_value)  # (B, T_max[, F])
    labels = torch.tensor([int(y) for _, y in batch], dtype=torch.long)  # (B,)
    return padded, lengths, labels
