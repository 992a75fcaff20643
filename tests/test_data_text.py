"""rnnkit.data.text: reading files, vocabularies, the 90/10 split and stateful TBPTT batches."""

from __future__ import annotations

import json
import random

import pytest
import torch
from torch.utils.data import DataLoader

from rnnkit.data.text import EOS, UNK, TokenStream, Vocabulary, read_text, split, tokenize


def random_text(n: int, seed: int, alphabet: str = "abcdefgh \n.,éß月") -> str:
    rng = random.Random(seed)
    return "".join(rng.choice(alphabet) for _ in range(n))


# ---- read_text ----


def test_read_text_file_and_folder(tmp_path):
    (tmp_path / "b.txt").write_text("second\n", encoding="utf-8")
    (tmp_path / "a.txt").write_text("first 月\n", encoding="utf-8")
    (tmp_path / "skip.md").write_text("not text", encoding="utf-8")
    assert read_text(tmp_path / "a.txt") == "first 月\n"
    assert read_text(tmp_path) == "first 月\nsecond\n"  # sorted by name, only .txt


@pytest.mark.parametrize(
    "content, message",
    [(b"", "empty"), (b" \n\t\n", "empty"), (b"abc\xff\xfedef", "not valid UTF-8: byte 0xff at offset 3")],
)
def test_read_text_bad_files(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        read_text(path)


def test_read_text_missing_and_empty_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        read_text(tmp_path / "nope.txt")
    with pytest.raises(ValueError, match="holds no .txt file"):
        read_text(tmp_path)


# ---- tokens and vocabulary ----


def test_word_tokens_follow_the_wikitext_convention():
    assert tokenize(" = Title = \n\n a b \n", "word") == ["=", "Title", "=", EOS, EOS, "a", "b", EOS]
    assert tokenize("a b\nc", "word") == ["a", "b", EOS, "c"]  # no newline after c: no <eos>
    assert tokenize("ab\n", "char") == ["a", "b", "\n"]


def test_char_vocabulary_order_roundtrip_and_unknown():
    text = random_text(500, seed=1)
    vocab = Vocabulary.build(text, level="char")
    counts = {c: text.count(c) for c in set(text)}
    assert vocab.tokens == tuple(sorted(counts, key=lambda c: (-counts[c], c)))  # frequency, then code point
    assert vocab.unk is None and len(vocab) == len(counts)
    assert vocab.decode(vocab.encode(text)) == text
    assert vocab.encode(text[:5]) == [vocab.tokens.index(c) for c in text[:5]]
    with pytest.raises(ValueError, match=r"unknown char 'Z' \(U\+005A\) at token 2"):
        vocab.encode("abZ")
    with pytest.raises(ValueError, match=r"token id must be in \[0, "):
        vocab.decode([len(vocab)])


def test_word_vocabulary_unk_min_freq_and_max_size():
    text = "the cat sat\nthe dog sat\nthe end\n"
    vocab = Vocabulary.build(text, level="word")
    assert vocab.tokens[:3] == (EOS, "the", "sat") and vocab.unk is None  # ties: "<" < "t"
    with pytest.raises(ValueError, match="unknown word 'bird'"):
        vocab.encode("the bird")
    small = Vocabulary.build(text, level="word", min_freq=2)
    assert small.tokens == (EOS, "the", "sat", UNK) and small.unk == UNK
    assert small.decode(small.encode("the cat sat\n")) == " the <unk> sat \n"
    capped = Vocabulary.build(text, level="word", max_size=3)
    assert capped.tokens == (EOS, "the", UNK) and len(capped) == 3
    with_unk = Vocabulary.build("a <unk> b\n", level="word")  # WikiText has <unk> in the data
    assert with_unk.unk == UNK and with_unk.encode("zzz") == [with_unk.index[UNK]]


def test_word_decode_reproduces_wikitext_layout():
    text = " = A = \n \n the <unk> , of \n"
    vocab = Vocabulary.build(text, level="word")
    ids = vocab.encode(text)
    assert vocab.decode(ids) == text
    assert "".join(vocab.piece(i) for i in ids) == text  # streamable piece by piece


def test_vocabulary_json_roundtrip_and_validation(tmp_path):
    vocab = Vocabulary.build(random_text(300, seed=2), level="char")
    again = Vocabulary.from_json(json.loads(json.dumps(vocab.to_json())))
    assert again == vocab and again.index == vocab.index
    vocab.save(tmp_path / "vocab.json")
    assert Vocabulary.load(tmp_path / "vocab.json") == vocab
    with pytest.raises(ValueError, match="distinct, got 'a'"):
        Vocabulary(("a", "b", "a"))
    with pytest.raises(ValueError, match="single characters, got 'ab'"):
        Vocabulary(("ab",), level="char")
    with pytest.raises(ValueError, match="unk token '<unk>' is not one of the 2 tokens"):
        Vocabulary(("a", "b"), level="word", unk=UNK)
    with pytest.raises(ValueError, match="level must be 'char', 'word' or 'subword', got 'byte'"):
        Vocabulary(("a",), level="byte")
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="not a vocabulary JSON"):
        Vocabulary.load(tmp_path / "bad.json")


# ---- split ----


def test_split_first_90_percent_last_10():
    ids = torch.arange(1003)
    train, valid = split(ids)
    assert len(train) == 902 and torch.equal(torch.cat([train, valid]), ids)  # int(1003 * 0.9) = 902
    train, valid = split(list(range(10)), valid_fraction=0.3)
    assert train == list(range(7)) and valid == [7, 8, 9]
    with pytest.raises(ValueError, match=r"valid_fraction must be in \(0, 1\), got 1.5"):
        split(ids, 1.5)


# ---- TokenStream ----


def test_token_stream_batches_match_an_index_oracle():
    N, B, T = 103, 4, 7
    ids = torch.randint(0, 50, (N,))
    stream = TokenStream(ids, batch_size=B, bptt=T)
    R = (N - 1) // B  # 25 tokens per row
    batches = list(stream)
    assert len(batches) == len(stream) == 4 and stream.row_length == R  # 7 + 7 + 7 + 4
    for j, (x, y) in enumerate(batches):
        width = min(T, R - j * T)
        assert x.shape == y.shape == (B, width) and x.dtype == torch.long
        for b in range(B):
            for t in range(width):
                assert x[b, t] == ids[b * R + j * T + t]
                assert y[b, t] == ids[b * R + j * T + t + 1]
    # consecutive batches continue each row: glued in time they give the contiguous rows
    rows = torch.cat([x for x, _ in batches], dim=1)
    assert torch.equal(rows, ids[: B * R].view(B, R))
    assert len(TokenStream(ids, B, T, drop_last=True)) == 3


def test_token_stream_ranks_split_rows_and_agree_on_length():
    N, B, T, W = 250, 3, 5, 4
    ids = torch.arange(N)
    streams = [TokenStream(ids, B, T, rank=r, world_size=W) for r in range(W)]
    R = (N - 1) // (W * B)
    assert {len(s) for s in streams} == {-(-R // T)}  # same number of batches on every process
    all_rows = torch.cat([torch.cat([x for x, _ in s], dim=1) for s in streams], dim=0)  # (W*B, R)
    assert torch.equal(all_rows, ids[: W * B * R].view(W * B, R))  # disjoint rows, together in order
    with pytest.raises(ValueError, match=r"rank must be in \[0, 4\), got 4"):
        TokenStream(ids, B, T, rank=4, world_size=W)


def test_token_stream_in_a_dataloader():
    ids = torch.randint(0, 9, (200,))
    stream = TokenStream(ids, batch_size=2, bptt=16)
    loaded = list(DataLoader(stream, batch_size=None))
    assert len(loaded) == len(stream)
    for (x, y), (x2, y2) in zip(loaded, stream, strict=True):
        assert torch.equal(x, x2) and torch.equal(y, y2)


def test_token_stream_too_short():
    with pytest.raises(ValueError, match="10 tokens are too few for 16 rows"):
        TokenStream(torch.arange(10), batch_size=8, bptt=4, world_size=2)
    with pytest.raises(ValueError, match=r"ids must be 1-D \(N,\), got shape \(2, 5\)"):
        TokenStream(torch.zeros(2, 5, dtype=torch.long), batch_size=1, bptt=2)


def test_stateful_tbptt_equals_one_pass_over_each_row():
    """Carrying the LSTM state across batches gives exactly the outputs of running each whole row at once:
    the batches really continue each other."""
    torch.manual_seed(0)
    ids = torch.randint(0, 11, (151,))
    embed, lstm = torch.nn.Embedding(11, 4).double(), torch.nn.LSTM(4, 6, batch_first=True).double()
    stream = TokenStream(ids, batch_size=3, bptt=8)
    state, outs = None, []
    for x, _ in stream:
        out, state = lstm(embed(x), state)
        state = tuple(s.detach() for s in state)
        outs.append(out)
    rows = ids[: 3 * stream.row_length].view(3, -1)
    whole, _ = lstm(embed(rows))
    torch.testing.assert_close(torch.cat(outs, dim=1), whole)


@pytest.mark.parametrize("data, kind", [
    ("hello world\n".encode("utf-16-le"), "UTF-16 text without a byte-order"),
    (b"\x00" * 64, "binary"),
    (b"abc\x00\x01\x02" * 8, "binary"),
])
def test_nul_bytes_are_not_text(tmp_path, data, kind):
    (tmp_path / "t.txt").write_bytes(data)
    with pytest.raises(ValueError, match=f"holds NUL bytes .* looks {kind}"):
        read_text(tmp_path / "t.txt")
