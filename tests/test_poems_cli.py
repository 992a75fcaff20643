"""Tang poems end to end: `rnnkit train` on a tiny poem folder (the real files' formats) -> `rnnkit generate`.

The folder holds tang_poems.jsonl (traditional, one JSON object per poem) and tang_poems.simplified.tsv
(author, title, text; row i is line i of the jsonl), as /work/shared/data/tang_poems does (PROVENANCE.md).
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from rnnkit.cli import main
from rnnkit.data.corpus import read_corpus
from rnnkit.tasks.language_model import (
    TASK,
    LanguageModelRunConfig,
    TextDataConfig,
    load_language_model,
)
from rnnkit.train.checkpoint import save_model
from rnnkit.train.config import to_dict

CONFIG = Path(__file__).resolve().parents[1] / "rnnkit" / "configs" / "tang_poems.yaml"

# (traditional, simplified) pairs; the last two are not regular and must be filtered out.
POEMS = [
    ("床前明月光，疑是地上霜。舉頭望明月，低頭思故鄉。", "床前明月光，疑是地上霜。举头望明月，低头思故乡。"),
    ("白日依山盡，黃河入海流。欲窮千里目，更上一層樓。", "白日依山尽，黄河入海流。欲穷千里目，更上一层楼。"),
    ("春眠不覺曉，處處聞啼鳥。夜來風雨聲，花落知多少。", "春眠不觉晓，处处闻啼鸟。夜来风雨声，花落知多少。"),
    ("春來夏日長，秋風冬雪寒。天地一時靜，山河萬里看。", "春来夏日长，秋风冬雪寒。天地一时静，山河万里看。"),
    (
        "朝辭白帝彩雲間，千里江陵一日還。兩岸猿聲啼不住，輕舟已過萬重山。",
        "朝辞白帝彩云间，千里江陵一日还。两岸猿声啼不住，轻舟已过万重山。",
    ),
    (
        "國破山河在，城春草木深。感時花濺淚，恨別鳥驚心。烽火連三月，家書抵萬金。白頭搔更短，渾欲不勝簪。",
        "国破山河在，城春草木深。感时花溅泪，恨别鸟惊心。烽火连三月，家书抵万金。白头搔更短，浑欲不胜簪。",
    ),
    ("春來發幾枝，願君多采擷。", "春来发几枝，愿君多采撷。"),  # 2 lines: not regular
    ("", ""),  # a record with no text (4 of the real ones are empty)
]
ONLY_TRADITIONAL, ONLY_SIMPLIFIED = set("萬風雲國書"), set("万风云国书")

TINY = [
    "--accelerator", "cpu", "--batch-size", "2", "--bptt", "8", "--hidden-size", "16", "--max-steps", "4",
    "--no-progress-bar", "--set", "model.embedding_size=8", "--set", "data.valid_fraction=0.2",
    "--set", "trainer.val_check_interval=2", "--set", "trainer.limit_val_batches=2",
]  # fmt: skip


def write_poem_folder(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "tang_poems.jsonl", "w", encoding="utf-8") as jsonl:
        for n, (traditional, _) in enumerate(POEMS):
            paragraphs = re.findall(r"[^。]+。", traditional)  # two lines per paragraph, as in the source
            record = {"id": f"id-{n}", "author": "佚名", "title": f"詩{n}", "paragraphs": paragraphs}
            jsonl.write(json.dumps(record, ensure_ascii=False) + "\n")
    rows = ["author\ttitle\ttext"] + [f"佚名\t诗{n}\t{simplified}" for n, (_, simplified) in enumerate(POEMS)]
    (folder / "tang_poems.simplified.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder


def well_formed(poem: str, chars: int, lines: int) -> bool:
    """Oracle, written independently of rnnkit: a verse per line, `chars` CJK ideographs, then ，。，。..."""
    line = f"[\u4e00-\u9fff]{{{chars}}}"
    return re.fullmatch("\n".join([f"{line}，", f"{line}。"] * (lines // 2)), poem) is not None


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out.strip(), err


@pytest.fixture(scope="module")
def poem_runs(tmp_path_factory):
    """One tiny training run per script through the CLI; {script: model file}."""
    root = tmp_path_factory.mktemp("poems")
    data = write_poem_folder(root / "tang_poems")
    models = {}
    for script in ("simplified", "traditional"):
        argv = ["train", "--config", CONFIG, "--data", data, *TINY, "--set", f"data.script={script}",
                "--output-dir", root / "runs", "--run-name", script]  # fmt: skip
        assert main([str(a) for a in argv]) == 0
        models[script] = root / "runs" / script / "model.safetensors"
    return data, models


def test_preset_is_a_poem_config():
    from rnnkit.train.config import load_yaml

    config = load_yaml(LanguageModelRunConfig, CONFIG)
    assert config.data.dataset == "tang_poems" and config.data.level == "char"
    assert config.data.script in ("simplified", "traditional") and config.optim.schedule == "cosine"


@pytest.mark.parametrize("script", ["simplified", "traditional"])
def test_train_then_generate_poems(poem_runs, script, capsys):
    data, models = poem_runs
    model_file = models[script]
    _, vocab, meta = load_language_model(model_file)
    assert meta["config"]["data"]["dataset"] == "tang_poems" and meta["config"]["data"]["script"] == script
    # the vocabulary is the script's: traditional-only characters in one, simplified-only in the other
    expected, other = (ONLY_SIMPLIFIED, ONLY_TRADITIONAL) if script == "simplified" else (
        ONLY_TRADITIONAL, ONLY_SIMPLIFIED)  # fmt: skip
    assert expected <= set(vocab.tokens) and not other & set(vocab.tokens)
    assert "發" not in vocab and "发" not in vocab  # only in the 2-line poem, which is not regular

    for acrostic in ("春夏秋冬", "春夏秋冬天地山河"):
        for chars, seed in [(5, 0), (5, 1), (7, 2), (7, 3)]:
            code, poem, err = run(
                ["generate", model_file, "--poem", "--acrostic", acrostic, "--chars", chars, "--seed", seed],
                capsys,
            )
            assert code == 0, err
            assert well_formed(poem, chars, len(acrostic)), poem
            assert "".join(line[0] for line in poem.split("\n")) == acrostic
            assert set(poem) - {"\n"} <= set(vocab.tokens)

    # a poem model writes poems without --poem; --lines 8 gives regulated verse
    code, poem, err = run(["generate", model_file, "--lines", "8", "--chars", "7", "--seed", "1"], capsys)
    assert code == 0 and well_formed(poem, 7, 8), (poem, err)
    code, poem, err = run(["generate", model_file, "--seed", "2"], capsys)
    assert code == 0 and well_formed(poem, 5, 4), (poem, err)


def test_unseen_character_is_a_clear_error(poem_runs, capsys):
    _, models = poem_runs
    for script, unseen in [("traditional", "万"), ("simplified", "萬")]:
        code, out, err = run(["generate", models[script], "--acrostic", f"春夏秋{unseen}"], capsys)
        assert code == 2 and out == ""
        assert f"acrostic character '{unseen}' (U+{ord(unseen):04X}) is not in the model's vocabulary" in err
    code, _, err = run(["generate", models["simplified"], "--acrostic", "春夏秋"], capsys)
    assert code == 2 and "an acrostic needs 4 characters" in err


def test_poem_and_text_model_mismatch(poem_runs, tmp_path, capsys):
    _, models = poem_runs
    model, vocab, meta = load_language_model(models["simplified"])
    # the same weights and vocabulary, but metadata that says: trained on plain text
    config = LanguageModelRunConfig(model=model.config, data=TextDataConfig(path="book.txt"))
    text_model = tmp_path / "text.safetensors"
    save_model(text_model, model, TASK, config=to_dict(config), vocabulary=vocab.to_json())
    for flags in (["--poem"], ["--acrostic", "春夏秋冬"]):
        code, out, err = run(["generate", text_model, *flags], capsys)
        assert code == 2 and out == ""
        assert "was trained on plain text (data.dataset 'text'), not on poems" in err
    code, out, err = run(["generate", text_model, "--prompt", "春", "--max-new-tokens", "5"], capsys)
    assert code == 0 and out.startswith("春") and len(out) == 6, err  # plain text generation as usual

    # a poem model refuses free-text decoding options
    code, _, err = run(["generate", models["simplified"], "--prompt", "春"], capsys)
    assert code == 2 and "no --beam, no --prompt" in err
    # and a text model refuses the poem form's options
    code, out, err = run(["generate", text_model, "--chars", "7", "--lines", "8"], capsys)
    assert code == 2 and out == "" and "not on poems: --chars/--lines need a model trained" in err

    # a model trained on 7-character regulated verse only: that form by default, another form is an error
    seven = dataclasses.replace(
        LanguageModelRunConfig(model=model.config),
        data=TextDataConfig(dataset="tang_poems", script="simplified", poem_chars=7, poem_lines=8),
    )
    seven_model = tmp_path / "seven.safetensors"
    save_model(seven_model, model, TASK, config=to_dict(seven), vocabulary=vocab.to_json())
    code, poem, err = run(["generate", seven_model, "--seed", "0"], capsys)
    assert code == 0 and well_formed(poem, 7, 8), (poem, err)
    code, _, err = run(["generate", seven_model, "--acrostic", "春夏秋冬"], capsys)
    assert code == 2 and "trained on poems with data.poem_lines=8 only, got lines 4" in err
    code, _, err = run(["generate", seven_model, "--chars", "5"], capsys)
    assert code == 2 and "data.poem_chars=7 only, got chars 5" in err


def test_evaluate_poem_model(poem_runs, capsys):
    data, models = poem_runs
    code, out, err = run(
        ["evaluate", models["traditional"], "--data", data, "--json", "--accelerator", "cpu"],
        capsys,
    )
    assert code == 0, err
    metrics = json.loads(out.splitlines()[-1])
    _, valid = read_corpus(TextDataConfig(path=str(data), dataset="tang_poems", valid_fraction=0.2), seed=0)
    assert 0 < metrics["tokens"] <= len(valid) - 1  # the held-out poems, as split in training


def test_poem_corpus_split_and_filters(tmp_path):
    data = write_poem_folder(tmp_path / "tang_poems")
    regular = [s for _, s in POEMS[:6]]
    config = TextDataConfig(path=str(data), dataset="tang_poems", script="simplified", valid_fraction=0.2)
    train, valid = read_corpus(config, seed=0)
    poems = re.findall(r"\^([^$]*)\$", train + valid)
    assert train + valid == "".join(f"^{p}$" for p in poems)  # every poem wrapped, nothing else
    assert sorted(poems) == sorted(regular) and len(re.findall(r"\^", valid)) == 1  # round(6 * 0.2) = 1
    assert read_corpus(config, seed=0) == (train, valid)  # the seed fixes the split
    orders = {read_corpus(config, seed=s)[0] + read_corpus(config, seed=s)[1] for s in range(6)}
    assert len(orders) > 1  # and another seed shuffles differently

    def kept(**filters):
        train, valid = read_corpus(dataclasses.replace(config, **filters), seed=0)
        return sorted(re.findall(r"\^([^$]*)\$", train + valid))

    assert kept(poem_chars=5) == sorted(regular[:4] + regular[5:])
    assert kept(poem_lines=4) == sorted(regular[:5])
    assert kept(poem_chars=5, poem_lines=4) == sorted(regular[:4])
    traditional = kept(script="traditional", poem_chars=5, poem_lines=4)
    assert traditional == sorted(t for t, _ in POEMS[:4])


def test_poem_data_config_errors(tmp_path):
    with pytest.raises(ValueError, match="data.dataset must be 'text' or 'tang_poems', got 'poems'"):
        TextDataConfig(dataset="poems")
    with pytest.raises(ValueError, match="data.script must be 'traditional' or 'simplified', got 'modern'"):
        TextDataConfig(dataset="tang_poems", script="modern")
    with pytest.raises(ValueError, match="data.poem_chars must be 0 .* got 6 and 0"):
        TextDataConfig(dataset="tang_poems", poem_chars=6)
    with pytest.raises(ValueError, match="'tang_poems' is char level, got data.level 'word'"):
        TextDataConfig(dataset="tang_poems", level="word")
    with pytest.raises(ValueError, match="filter data.dataset 'tang_poems', got dataset 'text'"):
        TextDataConfig(poem_lines=4)
    data = write_poem_folder(tmp_path / "tang_poems")
    with pytest.raises(ValueError, match="holds 1 regular poems with poem_chars=7, poem_lines=0"):
        read_corpus(TextDataConfig(path=str(data), dataset="tang_poems", poem_chars=7))
    (data / "tang_poems.simplified.tsv").unlink()
    with pytest.raises(FileNotFoundError, match="tang_poems.simplified.tsv not found"):
        read_corpus(TextDataConfig(path=str(data), dataset="tang_poems", script="simplified"))


def test_poem_prints_one_verse_per_line(poem_runs, capfd):
    _, models = poem_runs
    assert main(["generate", str(models["simplified"]), "--acrostic", "春夏秋冬", "--seed", "3"]) == 0
    out = capfd.readouterr().out
    lines = out.split("\n")
    assert len(lines) == 5 and lines[-1] == "" and [line[0] for line in lines[:4]] == list("春夏秋冬")
    assert [line[-1] for line in lines[:4]] == list("，。，。") and all(len(line) == 6 for line in lines[:4])


def test_conflicting_poem_options_are_errors(poem_runs, capsys):
    _, models = poem_runs
    model = models["simplified"]
    cases = [
        (["--lines", "4", "--acrostic", "春夏秋冬天地山河"],
         "--lines 4 conflicts with the 8-character --acrostic 春夏秋冬天地山河, which writes 8 lines"),
        (["--lines", "8", "--acrostic", "春夏秋冬"],
         "--lines 8 conflicts with the 4-character --acrostic 春夏秋冬, which writes 4 lines"),
        (["--poem", "--max-new-tokens", "50"], "no --max-new-tokens; got --max-new-tokens 50 (--poem)"),
        (["--acrostic", "春夏秋冬", "--max-new-tokens", "9"], "got --max-new-tokens 9 (--acrostic)"),
        (["--max-new-tokens", "20"], f"got --max-new-tokens 20 ({model} is a poem model)"),
        (["--beam", "2", "--prompt", "春"], "got --beam 2, --prompt '春'"),
    ]  # fmt: skip
    for flags, message in cases:
        code, out, err = run(["generate", model, *flags], capsys)
        assert code == 2 and out == "", flags
        assert message in err and len(err.strip().splitlines()) == 1, (flags, err)
    # the same form twice is no conflict
    code, poem, err = run(["generate", model, "--lines", "8", "--acrostic", "春夏秋冬天地山河"], capsys)
    assert code == 0 and well_formed(poem, 5, 8), err
