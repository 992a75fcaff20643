"""Chinese classical poems: filtering regular forms, and constrained decoding that always yields a poem."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from rnnkit.data.poems import (
    POEM_END,
    POEM_START,
    is_hanzi,
    poem_corpus,
    poem_form,
    regular_poems,
    split_poems,
)
from rnnkit.data.text import TokenStream, Vocabulary
from rnnkit.decode import generate_poem
from rnnkit.models.language_model import LanguageModel, LanguageModelConfig
from rnnkit.models.recurrent import RecurrentConfig

QUATRAIN = "床前明月光，疑是地上霜。举头望明月，低头思故乡。"
SEVEN = "朝辞白帝彩云间，千里江陵一日还。两岸猿声啼不住，轻舟已过万重山。"
HANZI = "春夏秋冬山水风月花鸟天地人心江河日夜云雨"
# A vocabulary with the markers, punctuation, and non-Chinese tokens a careless decoder could emit.
VOCAB = Vocabulary(tuple(POEM_START + POEM_END + "，。？！□a1 \n" + HANZI), level="char")


class RandomLogits(nn.Module):
    """A fake model with random logits that strongly prefer every token that must NOT appear inside a line."""

    def __init__(self, vocab: Vocabulary, seed: int):
        super().__init__()
        self.generator = torch.Generator().manual_seed(seed)
        self.bias = torch.tensor([0.0 if is_hanzi(t) else 8.0 for t in vocab.tokens])  # (V,)

    def step(self, token, state=None):
        noise = 3.0 * torch.randn(token.shape[0], len(self.bias), generator=self.generator)  # (B, V)
        return noise + self.bias, state


def well_formed(poem: str, chars: int, lines: int) -> bool:
    """Oracle, written independently of rnnkit: a verse per line, `chars` CJK ideographs, then ，。，。..."""
    line = f"[\u4e00-\u9fff]{{{chars}}}"
    return re.fullmatch("\n".join([f"{line}，", f"{line}。"] * (lines // 2)), poem) is not None


def test_is_hanzi():
    assert all(is_hanzi(c) for c in "月風风𠀀㐀")  # basic, traditional, simplified, extension B, extension A
    assert not any(is_hanzi(c) for c in "，。？！□a1 ^$\n") and not is_hanzi("明月")


def test_poem_form():
    assert poem_form(QUATRAIN) == (5, 4)
    assert poem_form(SEVEN) == (7, 4)
    assert poem_form(QUATRAIN * 2) == (5, 8)
    assert poem_form(SEVEN * 2) == (7, 8)
    assert poem_form(QUATRAIN.replace("。举", "？举")) is None  # wrong punctuation
    assert poem_form(QUATRAIN.replace("。", "，")) is None
    assert poem_form(QUATRAIN.replace("明", "□", 1)) is None  # a lost character
    assert poem_form(QUATRAIN[:12] * 3) is None  # 6 lines
    assert poem_form("床前明月光疑，是地上霜。举头望明月，低头思故乡。") is None


def test_regular_poems_and_corpus():
    poems = [QUATRAIN, SEVEN, "床前明月光。", QUATRAIN[:12] + "\n" + QUATRAIN[12:], SEVEN * 2]
    assert regular_poems(poems) == [QUATRAIN, SEVEN, QUATRAIN, SEVEN * 2]  # whitespace removed
    assert regular_poems(poems, chars=[7]) == [SEVEN, SEVEN * 2]
    assert regular_poems(poems, lines=[8]) == [SEVEN * 2]
    assert poem_corpus([QUATRAIN, SEVEN]) == f"^{QUATRAIN}$^{SEVEN}$"
    with pytest.raises(ValueError, match=r"chars must be among \(5, 7\)"):
        regular_poems(poems, chars=[6])


def test_split_poems_is_a_seeded_shuffle_of_distinct_whole_poems():
    poems = [f"{n:03d}" for n in range(100)] + ["007", "042"]  # two duplicates
    train, valid = split_poems(poems, valid_fraction=0.05, seed=3)
    assert len(valid) == 5 and len(train) == 95  # round(100 * 0.05), of the 100 distinct poems
    assert sorted(train + valid) == sorted(set(poems)) and not set(train) & set(valid)
    assert (train, valid) == split_poems(poems, 0.05, seed=3)
    assert train + valid != sorted(train + valid)  # shuffled
    assert split_poems(poems, 0.05, seed=4) != (train, valid)
    assert split_poems(["a", "b"], 0.01, seed=0)[1] != [] and split_poems(["a", "b"], 0.99, seed=0)[0] != []
    with pytest.raises(ValueError, match="need at least 2 distinct poems .* got 1"):
        split_poems(["a", "a"], 0.1, seed=0)
    with pytest.raises(ValueError, match=r"valid_fraction must be in \(0, 1\), got 1.0"):
        split_poems(poems, 1.0, seed=0)


@pytest.mark.parametrize("chars", [5, 7])
@pytest.mark.parametrize("lines", [4, 8])
def test_random_model_always_gives_a_well_formed_poem(chars, lines):
    for seed in range(40):
        model = RandomLogits(VOCAB, seed)
        sampling = [{}, {"top_k": 3}, {"top_p": 0.5, "temperature": 2.0}, {"greedy": True}][seed % 4]
        poem = generate_poem(model, VOCAB, chars=chars, lines=lines, seed=seed, **sampling)
        assert well_formed(poem, chars, lines), poem


@pytest.mark.parametrize("acrostic", ["春夏秋冬", "天地人心江河日夜"])
@pytest.mark.parametrize("chars", [5, 7])
def test_acrostic_lines_start_with_the_given_characters(acrostic, chars):
    for seed in range(25):
        pieces = []
        poem = generate_poem(
            RandomLogits(VOCAB, seed), VOCAB, chars=chars, acrostic=acrostic, seed=seed, stream=pieces.append
        )
        assert well_formed(poem, chars, len(acrostic)), poem
        assert [line[0] for line in poem.split("\n")] == list(acrostic)
        assert "".join(pieces) == poem


def test_poem_streams_one_verse_per_line():
    pieces = []
    poem = generate_poem(RandomLogits(VOCAB, 0), VOCAB, chars=5, lines=4, seed=3, stream=pieces.append)
    # the punctuation and its line break arrive together, as soon as the line is done; none after the last
    assert len(pieces) == 24 and [p for p in pieces if p[-1] in "，。\n"] == ["，\n", "。\n", "，\n", "。"]
    assert "".join(pieces) == poem and len(poem.splitlines()) == 4
    flat = generate_poem(RandomLogits(VOCAB, 0), VOCAB, chars=5, lines=4, seed=3, line_break="")
    assert flat == poem.replace("\n", "") and poem_form(flat) == (5, 4)  # the form the model was trained on


def test_lines_that_disagree_with_the_acrostic_are_an_error():
    model = RandomLogits(VOCAB, 0)
    with pytest.raises(ValueError, match="lines=4 conflicts with the 8-character acrostic '天地人心江河日"):
        generate_poem(model, VOCAB, lines=4, acrostic="天地人心江河日夜")
    with pytest.raises(ValueError, match="lines=8 conflicts with the 4-character acrostic '春夏秋冬'"):
        generate_poem(model, VOCAB, lines=8, acrostic="春夏秋冬")
    assert len(generate_poem(model, VOCAB, lines=8, acrostic="天地人心江河日夜").splitlines()) == 8
    assert len(generate_poem(model, VOCAB, acrostic="天地人心江河日夜").splitlines()) == 8
    assert len(generate_poem(model, VOCAB).splitlines()) == 4  # no lines, no acrostic: a quatrain


def test_tiny_vocabulary_and_reproducibility():
    tiny = Vocabulary(tuple("^$，。月"), level="char")
    assert (
        generate_poem(RandomLogits(tiny, 0), tiny, chars=7, seed=0)
        == "月月月月月月月，\n月月月月月月月。\n月月月月月月月，\n月月月月月月月。"
    )
    a = generate_poem(RandomLogits(VOCAB, 1), VOCAB, seed=5)
    assert a == generate_poem(RandomLogits(VOCAB, 1), VOCAB, seed=5)


def test_unseen_or_bad_characters_are_named():
    traditional = Vocabulary(tuple("^$，。萬里風雲山"), level="char")
    model = RandomLogits(traditional, 0)
    with pytest.raises(
        ValueError, match=r"acrostic character '万' \(U\+4E07\) is not in the model's vocabulary"
    ):
        generate_poem(model, traditional, acrostic="万里风云")  # simplified script, traditional model
    with pytest.raises(ValueError, match="acrostic character 2 is 'a', not a Chinese character"):
        generate_poem(model, traditional, acrostic="萬a風雲")
    with pytest.raises(ValueError, match="an acrostic needs 4 characters .* or 8 .*, got 3"):
        generate_poem(model, traditional, acrostic="萬里風")
    with pytest.raises(ValueError, match="chars must be 5 or 7, got 6"):
        generate_poem(model, traditional, chars=6)
    with pytest.raises(ValueError, match="lines must be 4 or 8, got 6"):
        generate_poem(model, traditional, lines=6)
    no_start = Vocabulary(tuple("，。萬"), level="char")
    with pytest.raises(ValueError, match="the vocabulary has no '\\^'"):
        generate_poem(RandomLogits(no_start, 0), no_start)


def test_trained_language_model_recites_its_poem():
    """End to end: poem_corpus -> Vocabulary -> TokenStream -> the engine's LanguageModel. After memorising
    one quatrain, greedy constrained decoding recites it, and an acrostic keeps its first characters."""
    torch.manual_seed(0)
    text = poem_corpus([QUATRAIN] * 12)
    vocab = Vocabulary.build(text, level="char")
    model = LanguageModel(
        LanguageModelConfig(
            vocab_size=len(vocab),
            embedding_size=16,
            encoder=RecurrentConfig(cell="gru", hidden_size=48, num_layers=1),
        )
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    stream = TokenStream(torch.tensor(vocab.encode(text)), batch_size=4, bptt=26)
    for _ in range(25):
        state = None
        for x, y in stream:
            _, state, loss = model(x, state, targets=y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            state = state.detach()
    assert loss.item() < 0.1
    assert generate_poem(model, vocab, greedy=True, line_break="") == QUATRAIN
    verses = generate_poem(model, vocab, greedy=True)
    assert verses == "床前明月光，\n疑是地上霜。\n举头望明月，\n低头思故乡。"
    acrostic = generate_poem(model, vocab, acrostic="明月故乡", seed=0)
    assert well_formed(acrostic, 5, 4) and acrostic[0::7] == "明月故乡"
