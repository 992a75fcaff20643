"""rnnkit.data.pairs: the tab-separated reader, tokenising, vocabularies with specials, seq2seq batches."""

from __future__ import annotations

import random

import pytest
import torch
from torch.utils.data import DataLoader

from rnnkit.data.pairs import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    SPECIALS,
    UNK_ID,
    SentencePairs,
    decode_sentence,
    pair_collate,
    pair_vocabulary,
    read_pairs,
    tokenize_sentence,
)
from rnnkit.data.text import Vocabulary


def test_read_pairs_tatoeba_lines(tmp_path):
    path = tmp_path / "cmn.txt"
    path.write_text(
        "Hi.\t嗨。\tCC-BY 2.0 (France) Attribution: tatoeba.org #538123 (CM) & #891077 (Martha)\n"
        "Run!\t你用跑的。\n"
        "\n"
        "  Who?  \t谁？\r\n",
        encoding="utf-8",
    )
    assert read_pairs(path) == [("Hi.", "嗨。"), ("Run!", "你用跑的。"), ("Who?", "谁？")]


@pytest.mark.parametrize(
    "content, message",
    [
        (b"a\tb\nno tab here\nc\td\n", r"line 2: expected 'source<TAB>target', got 1 column: 'no tab here'"),
        (b"a\tb\nc\td\n\t\xe8\xb0\x81\n", "line 3: expected a non-empty source"),
        (b"a\t \n", "line 1: expected a non-empty target"),
        (b"a\tb\nc\t\xff\n", "line 2: not valid UTF-8 at byte 2"),
        (b"\n\n", "holds no sentence pair"),
    ],
)
def test_read_pairs_malformed_lines_name_the_line(tmp_path, content, message):
    path = tmp_path / "pairs.tsv"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        read_pairs(path)
    with pytest.raises(FileNotFoundError):
        read_pairs(tmp_path / "missing.tsv")


def test_tokenize():
    assert tokenize_sentence("Hi, Tom. I'm 20!", "word") == ["Hi", ",", "Tom", ".", "I", "'", "m", "20", "!"]
    assert tokenize_sentence("我叫 Tom。", "char") == ["我", "叫", "T", "o", "m", "。"]
    with pytest.raises(ValueError, match="level must be 'word' or 'char', got 'byte'"):
        tokenize_sentence("a", "byte")


def test_build_vocabulary_specials_frequency_min_freq_max_size():
    sentences = [["b", "a", "b"], ["c", "b", "a"], ["d", "<eos>"]]  # b:3 a:2 c:1 d:1, specials stay first
    vocab = pair_vocabulary(sentences)
    assert vocab.tokens == SPECIALS + ("b", "a", "c", "d") and vocab.unk == "<unk>"
    assert (PAD_ID, BOS_ID, EOS_ID, UNK_ID) == (0, 1, 2, 3)
    assert pair_vocabulary(sentences, min_freq=2).tokens == SPECIALS + ("b", "a")
    assert pair_vocabulary(sentences, max_size=3).tokens == SPECIALS + ("b", "a", "c")
    assert Vocabulary.from_json(vocab.to_json()) == vocab  # saved with the model as the LM's vocabulary is
    with pytest.raises(ValueError, match="min_freq must be >= 1, got 0"):
        pair_vocabulary(sentences, min_freq=0)


def test_batches_by_hand():
    pairs = [("a b a", "x y"), ("c", "zzx"), ("b q", "y")]  # q is not in the source vocabulary
    source = pair_vocabulary(tokenize_sentence(s, "word") for s, _ in pairs[:2])  # a:4 b:5 c:6
    target = pair_vocabulary(tokenize_sentence(t, "char") for t in ["x y", "zzx", "w"])  # x:4 z:5 w:6 y:7
    assert source.tokens[4:] == ("a", "b", "c") and target.tokens[4:] == ("x", "z", "w", "y")
    data = SentencePairs(pairs, source, target, "word", "char")
    assert data[2][0].tolist() == [5, UNK_ID]
    src, src_lengths, tgt_in, tgt_out = pair_collate([data[0], data[1], data[2]])
    assert src.tolist() == [[4, 5, 4], [6, 0, 0], [5, 3, 0]]
    assert src_lengths.tolist() == [3, 1, 2]
    assert tgt_in.tolist() == [[1, 4, 7, 0], [1, 5, 5, 4], [1, 7, 0, 0]]
    assert tgt_out.tolist() == [[4, 7, 2, 0], [5, 5, 4, 2], [7, 2, 0, 0]]
    assert all(t.dtype == torch.int64 for t in (src, src_lengths, tgt_in, tgt_out))
    assert decode_sentence(tgt_out[1], target, "char") == "zzx"
    assert decode_sentence(src[0], source, "word") == "a b a"
    assert decode_sentence([BOS_ID, 4, PAD_ID, 5, EOS_ID, 6], target, "char") == "xz"  # stops at <eos>


def test_random_pairs_through_a_dataloader():
    rng = random.Random(random.randrange(2**31))
    words, chars = ["alpha", "beta", "gamma", "delta"], "一二三四五"
    pairs = [
        (" ".join(rng.choices(words, k=rng.randint(1, 6))), "".join(rng.choices(chars, k=rng.randint(1, 7))))
        for _ in range(23)
    ]
    source = pair_vocabulary(tokenize_sentence(s, "word") for s, _ in pairs)
    target = pair_vocabulary(tokenize_sentence(t, "char") for _, t in pairs)
    data = SentencePairs(pairs, source, target, "word", "char")
    seen = 0
    for src, src_lengths, tgt_in, tgt_out in DataLoader(data, batch_size=5, collate_fn=pair_collate):
        for b in range(len(src)):
            s, t = pairs[seen]
            n = len(t)
            assert src_lengths[b] == len(s.split()) and decode_sentence(src[b], source, "word") == s
            assert tgt_in[b, 0] == BOS_ID and tgt_out[b, n] == EOS_ID
            assert torch.equal(tgt_in[b, 1 : n + 1], tgt_out[b, :n])  # the targets are the inputs shifted
            assert (tgt_in[b, n + 1 :] == PAD_ID).all() and (tgt_out[b, n + 1 :] == PAD_ID).all()
            assert decode_sentence(tgt_out[b], target, "char") == t
            seen += 1
        assert tgt_in.shape == tgt_out.shape == (len(src), int((tgt_out != PAD_ID).sum(1).max()))
    assert seen == 23


def test_bad_inputs():
    vocab = pair_vocabulary([["a"]])
    with pytest.raises(ValueError, match=r"source vocabulary must start with \['<pad>'"):
        SentencePairs([("a", "a")], Vocabulary.build("ab", level="char"), vocab)
    with pytest.raises(ValueError, match=r"pair 1: the target has no token, got \('a', ' '\)"):
        SentencePairs([("a", "a"), ("a", " ")], vocab, vocab)
    with pytest.raises(ValueError, match="got none"):
        SentencePairs([], vocab, vocab)
    with pytest.raises(ValueError, match="got none"):
        pair_collate([])
    with pytest.raises(ValueError, match=r"token id must be in \[0, 5\), got 9"):
        decode_sentence([4, 9], vocab, "word")
