"""rnnkit.data.sequences: labelled token / numeric sequences, pad_collate, the label vocabulary."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from rnnkit.data.sequences import LabelledSequences, LabelVocabulary, pad_collate
from rnnkit.data.text import Vocabulary


def test_label_vocabulary_is_sorted_and_round_trips_through_json(tmp_path):
    labels = LabelVocabulary.build(["neg", "pos", "neutral", "pos", "月"])
    assert labels.labels == ("neg", "neutral", "pos", "月")
    assert labels.encode_all(["pos", "neg", "月"]) == [2, 0, 3]
    assert [labels.decode(i) for i in range(4)] == list(labels.labels)
    labels.save(tmp_path / "labels.json")
    saved = json.loads((tmp_path / "labels.json").read_text(encoding="utf-8"))
    assert saved == {"labels": ["neg", "neutral", "pos", "月"]}
    assert LabelVocabulary.load(tmp_path / "labels.json") == labels
    assert LabelVocabulary.from_json(labels.to_json()) == labels


def test_label_vocabulary_errors(tmp_path):
    labels = LabelVocabulary(("cat", "dog"))
    with pytest.raises(ValueError, match=r"unknown label 'cow': expected one of \['cat', 'dog'\]"):
        labels.encode("cow")
    with pytest.raises(ValueError, match=r"label id must be in \[0, 2\), got 2"):
        labels.decode(2)
    with pytest.raises(ValueError, match="'cat' more than once"):
        LabelVocabulary(("cat", "cat"))
    with pytest.raises(ValueError, match="at least one label"):
        LabelVocabulary.build([])
    with pytest.raises(ValueError, match=r"strings, got 3 \(int\)"):
        LabelVocabulary(("a", 3))
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="not a label vocabulary JSON file"):
        LabelVocabulary.load(tmp_path / "bad.json")
    with pytest.raises(ValueError, match=r"needs the key labels, got keys \['tokens'\]"):
        LabelVocabulary.from_json({"tokens": []})


def test_text_sequences_pad_collate_by_hand():
    vocab = Vocabulary.build("abcab", level="char")  # a:0 b:1 c:2
    texts, names = ["cab", "a", "bb"], ["x", "y", "x"]
    labels = LabelVocabulary.build(names)
    data = LabelledSequences([vocab.encode(t) for t in texts], labels.encode_all(names))
    assert data.num_features is None and len(data) == 3
    padded, lengths, y = pad_collate([data[i] for i in range(3)])
    assert padded.dtype == lengths.dtype == y.dtype == torch.int64
    assert padded.tolist() == [[2, 0, 1], [0, 0, 0], [1, 1, 0]]
    assert lengths.tolist() == [3, 1, 2] and y.tolist() == [0, 1, 0]


def test_numeric_sequences_through_a_dataloader():
    rng = np.random.default_rng(random.randrange(2**31))
    lengths = [4, 1, 3, 2]
    xs = [rng.standard_normal((n, 3)) for n in lengths]
    data = LabelledSequences(xs, [1, 0, 2, 1])
    assert data.num_features == 3
    padded, got_lengths, y = next(iter(DataLoader(data, batch_size=4, collate_fn=pad_collate)))
    assert padded.shape == (4, 4, 3) and padded.dtype == torch.float32
    assert got_lengths.tolist() == lengths and y.tolist() == [1, 0, 2, 1]
    for b, x in enumerate(xs):
        torch.testing.assert_close(padded[b, : lengths[b]], torch.tensor(x, dtype=torch.float32))
        assert (padded[b, lengths[b] :] == 0).all()


def test_padding_value():
    padded, _, _ = pad_collate([(torch.tensor([[1.0]]), 0), (torch.tensor([[2.0], [3.0]]), 1)], float("nan"))
    assert padded[0, 1].isnan().all() and padded[1].tolist() == [[2.0], [3.0]]


def test_max_length_keeps_the_first_steps():
    data = LabelledSequences([list(range(10)), [7, 8]], [0, 1], max_length=4)
    assert data[0][0].tolist() == [0, 1, 2, 3] and data[1][0].tolist() == [7, 8]
    x = torch.randn(6, 2)
    assert torch.equal(LabelledSequences([x], [0], max_length=5)[0][0], x[:5])


@pytest.mark.parametrize(
    "sequences, labels, message",
    [
        ([[1, 2], []], [0, 0], r"sequence 1 is empty: expected at least one step, got shape \(0,\)"),
        ([torch.zeros(2, 3), torch.zeros(0, 3)], [0, 0], "sequence 1 is empty"),
        ([torch.zeros(2, 3), torch.zeros(2, 4)], [0, 0], r"sequence 1 has 4 features, expected 3 \(as"),
        ([[1, 2], torch.zeros(2, 3)], [0, 0], r"sequence 1 has shape \(2, 3\), expected 1-D as sequence 0"),
        ([torch.tensor([[0.0, float("nan")], [1.0, 2.0]])], [0], "got nan at step 0, feature 1"),
        ([torch.tensor([[0.0, 1.0], [1.0, float("inf")]])], [0], "got inf at step 1, feature 1"),
        ([[0.5, 1.5]], [0], "1-D sequences are token ids and must be integers, got torch.float32"),
        ([[3, -1]], [0], "token ids must be >= 0, got -1"),
        ([torch.zeros(2, 2, 2)], [0], r"got shape \(2, 2, 2\)"),
        ([[1], [2]], [0], "got 2 sequences and 1 labels"),
        ([], [], "at least one sequence"),
        ([[1], [2]], [0, -1], "label ids must be >= 0, got -1 for sequence 1"),
    ],
)
def test_bad_sequences(sequences, labels, message):
    with pytest.raises(ValueError, match=message):
        LabelledSequences(sequences, labels)


def test_bad_max_length_and_empty_batch():
    with pytest.raises(ValueError, match="max_length must be >= 1 or None, got 0"):
        LabelledSequences([[1]], [0], max_length=0)
    with pytest.raises(ValueError, match="got none"):
        pad_collate([])
