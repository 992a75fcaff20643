"""Pair files, the split by distinct source sentence, length batches, synthetic tasks, BLEU/chrF scoring."""

from __future__ import annotations

import calendar
import math

import pytest

from rnnkit.data.pairs import length_batches, read_pairs, split_pairs
from rnnkit.data.synthetic_pairs import addition_pairs, date_pairs, reverse_pairs, sort_pairs, write_pairs
from rnnkit.tasks.translate import TranslationDataConfig, detokenize, score_translations, translation_pairs


def tatoeba_like(tmp_path):
    lines = ["\ufeffHi.\t嗨。\tCC-BY 2.0 (France) Attribution: tatoeba.org #538123 (CM) & #891077 (Martha)",
             "Hi.\t你好。\tCC-BY 2.0 (France) Attribution: tatoeba.org #538123 (CM) & #4857568 (x)"]
    lines += [f"Sentence number {i}.\t第{i}句。\tattribution {i}" for i in range(40)]
    path = tmp_path / "cmn.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_read_pairs_strips_the_bom_and_ignores_the_attribution(tmp_path):
    pairs = read_pairs(tatoeba_like(tmp_path))
    assert pairs[:2] == [("Hi.", "嗨。"), ("Hi.", "你好。")]
    assert len(pairs) == 42


def test_split_keeps_every_source_sentence_on_one_side_in_both_directions(tmp_path):
    path = tatoeba_like(tmp_path)
    pairs = read_pairs(path)
    train, valid, test = split_pairs(pairs, 0.2, 0.2, seed=3)
    assert sorted(train + valid + test) == sorted(pairs)
    sides = [{s for s, _ in part} for part in (train, valid, test)]
    assert not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2])
    assert sum(s == "Hi." for s, _ in train + valid + test) == 2  # both translations go together
    assert split_pairs(pairs, 0.2, 0.2, seed=3) == (train, valid, test)  # seeded
    assert split_pairs(pairs, 0.2, 0.2, seed=4) != (train, valid, test)
    forward = translation_pairs(TranslationDataConfig(path=str(path), valid_fraction=0.2, test_fraction=0.2))
    backward = translation_pairs(TranslationDataConfig(path=str(path), reverse=True, valid_fraction=0.2,
                                                       test_fraction=0.2))
    for name in ("train", "valid", "test"):
        assert backward[name] == [(t, s) for s, t in forward[name]]  # same split, the other direction


def test_max_length_filters_every_part(tmp_path):
    path = tatoeba_like(tmp_path)
    parts = translation_pairs(TranslationDataConfig(path=str(path), max_length=3, valid_fraction=0.2,
                                                    test_fraction=0.2))
    for part in parts.values():
        assert all(s == "Hi." for s, _ in part)  # "Sentence number i ." has 4 words, "第i句。" 4+ chars


@pytest.mark.parametrize("content,message", [
    (b"only one column\n", "line 1: expected 'source<TAB>target', got 1 column"),
    (b"a\tb\n\tc\n", "line 2: expected a non-empty source"),
    (b"ok\tfine\nbad\t" + "caf\u00e9".encode("latin-1") + b"\n", "line 2: not valid UTF-8"),
])
def test_bad_pair_files_are_one_line_errors(tmp_path, content, message):
    path = tmp_path / "pairs.tsv"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as e:
        read_pairs(path)
    assert "\n" not in str(e.value)


def test_length_batches_depend_on_seed_and_epoch_only():
    lengths = [i % 17 + 1 for i in range(1000)]
    batches = length_batches(lengths, 32, seed=0, epoch=2)
    assert batches == length_batches(lengths, 32, seed=0, epoch=2)
    assert batches != length_batches(lengths, 32, seed=0, epoch=3)
    assert sorted(i for b in batches for i in b) == list(range(1000))
    spread = [max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches if len(b) == 32]
    assert sum(spread) / len(spread) < 2  # pools sorted by length: little padding
    ranks = [length_batches(lengths, 32, 0, 2, rank=r, world_size=3) for r in range(3)]
    assert len({len(r) for r in ranks}) == 1 and len(ranks[0]) == len(batches) // 3


def test_synthetic_tasks_are_what_they_say():
    for source, target in reverse_pairs(20, (1, 20), 6, seed=1):
        assert target.split() == source.split()[::-1]
    for source, target in sort_pairs(20, 7, seed=1):
        assert target.split() == sorted(source.split()) and len(source.split()) == 7
    for source, target in addition_pairs(20, 4, seed=1):
        a, b = source.split("+")
        assert int(target) == int(a) + int(b)
    months = {name: i for i, name in enumerate(calendar.month_name)}
    for source, target in date_pairs(50, seed=2):
        year, month, day = map(int, target.split("-"))
        if "/" in source:
            assert source == f"{day}/{month}/{year}"
        elif " of " in source:
            assert source.split(" of ")[1] == f"{calendar.month_name[month]} {year}"
        else:
            assert months[source.split()[0]] == month and source.endswith(f"{day}, {year}")
    assert date_pairs(5, seed=0) == date_pairs(5, seed=0)


def test_write_pairs_round_trips(tmp_path):
    pairs = date_pairs(10, seed=0)
    assert read_pairs(write_pairs(pairs, tmp_path / "d.tsv")) == pairs


def test_bleu_and_chrf_on_hand_checked_strings():
    # one sentence, 5 tokens, the last wrong: p_n = 4/5, 3/4, 2/3, 1/2, no brevity penalty
    expected = 100 * math.exp(sum(math.log(p) for p in (4 / 5, 3 / 4, 2 / 3, 1 / 2)) / 4)  # 66.87
    assert score_translations(["a b c d e"], ["a b c d f"], "13a")["bleu"] == pytest.approx(expected)
    # tokenize "zh" splits Chinese into characters: the same 5-token case; 13a sees one word and scores 0
    assert score_translations(["甲乙丙丁戊"], ["甲乙丙丁己"], "zh")["bleu"] == pytest.approx(expected)
    assert score_translations(["甲乙丙丁戊"], ["甲乙丙丁己"], "13a")["bleu"] == 0.0
    perfect = score_translations(["我爱你。", "Tom is here."], ["我爱你。", "Tom is here."], "zh")
    assert perfect == {"bleu": pytest.approx(100.0), "chrf": pytest.approx(100.0)}
    # shorter than the reference: brevity penalty exp(1 - 5/4) on perfect precisions
    short = score_translations(["a b c d"], ["a b c d e"], "13a")["bleu"]
    assert short == pytest.approx(100 * math.exp(-0.25))
    with pytest.raises(ValueError, match="as many hypotheses as references"):
        score_translations(["a"], [], "13a")


def test_detokenize():
    assert detokenize(["我", "爱", "你", "。"], "char") == "我爱你。"
    assert detokenize(["I", "don", "'", "t", "know", ",", "Tom", "."], "word") == "I don't know, Tom."
    assert detokenize(["Is", "it", "Tom", "'", "s", "?"], "word") == "Is it Tom's?"
