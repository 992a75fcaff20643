"""rnnkit.data.datasets: loaders on tiny generated files, checksum verification, fetch from a file:// URL."""

from __future__ import annotations

import hashlib
import json

import pytest

from rnnkit.data import datasets
from rnnkit.data.datasets import (
    REMOTES,
    Remote,
    fetch,
    sha256_file,
    tang_poems,
    tiny_shakespeare,
    verify_sha256,
    wikitext2,
)

POEMS = ["床前明月光，疑是地上霜。", "举头望明月，低头思故乡。"]


def test_sha256_file_and_verify(tmp_path):
    path = tmp_path / "data.bin"
    data = bytes(range(256)) * 5000  # > 1 MiB: several chunks
    path.write_bytes(data)
    expected = hashlib.sha256(data).hexdigest()
    assert sha256_file(path) == expected
    verify_sha256(path, expected.upper())  # any case
    wrong = "0" * 64
    with pytest.raises(ValueError, match=f"sha256 mismatch for .*data.bin: expected {wrong}, got {expected}"):
        verify_sha256(path, wrong)


def test_fetch_keeps_only_verified_files(tmp_path):
    source = tmp_path / "source.txt"
    source.write_text("hello\n", encoding="utf-8")
    digest = sha256_file(source)
    target = fetch(source.as_uri(), tmp_path / "out" / "copy.txt", digest)  # file:// URL, no network
    assert target.read_text(encoding="utf-8") == "hello\n"
    with pytest.raises(ValueError, match="sha256 mismatch"):
        fetch(source.as_uri(), tmp_path / "out" / "bad.txt", "f" * 64)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["copy.txt"]  # no bad.txt, no .part


def test_remotes_are_pinned():
    for name, remote in REMOTES.items():
        assert remote.url.startswith("https://raw.githubusercontent.com/"), name
        assert len(remote.sha256) == 64 and int(remote.sha256, 16) >= 0, name
    assert REMOTES["tinyshakespeare/input.txt"].sha256.startswith("86c4e6aa")


def test_tiny_shakespeare_split_and_download(tmp_path, monkeypatch):
    text = "".join(f"LINE {i}: to be or not\n" for i in range(40))
    folder = tmp_path / "tinyshakespeare"
    folder.mkdir()
    (folder / "input.txt").write_text(text, encoding="utf-8")
    splits = tiny_shakespeare(folder)
    cut = int(len(text) * 0.9)
    assert splits == {"train": text[:cut], "valid": text[cut:]}
    assert tiny_shakespeare(folder / "input.txt") == splits

    empty = tmp_path / "empty"
    with pytest.raises(FileNotFoundError, match="download=True"):
        tiny_shakespeare(empty)
    remote = Remote((folder / "input.txt").as_uri(), sha256_file(folder / "input.txt"))
    monkeypatch.setitem(datasets.REMOTES, "tinyshakespeare/input.txt", remote)
    assert tiny_shakespeare(empty, download=True) == splits
    assert (empty / "input.txt").is_file()


def test_wikitext2(tmp_path):
    for split in ("train", "valid", "test"):
        (tmp_path / f"{split}.txt").write_text(f" = {split} = \n the <unk> cat \n", encoding="utf-8")
    data = wikitext2(tmp_path)
    assert set(data) == {"train", "valid", "test"} and data["valid"].startswith(" = valid = ")
    (tmp_path / "test.txt").unlink()
    with pytest.raises(FileNotFoundError, match="test.txt"):
        wikitext2(tmp_path)
    with pytest.raises(ValueError, match="expects the folder"):
        wikitext2(tmp_path / "train.txt")


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")


def test_tang_poems_traditional_and_simplified(tmp_path):
    records = [
        {"id": str(i), "author": "李白", "title": "静夜思", "paragraphs": [p]} for i, p in enumerate(POEMS)
    ]
    records.append({"id": "x", "author": "?", "title": "empty", "paragraphs": []})
    write_jsonl(tmp_path / "tang_poems.jsonl", records)
    rows = "".join(f"李白\t静夜思\t{p}\n" for p in POEMS)
    (tmp_path / "tang_poems.simplified.tsv").write_text("author\ttitle\ttext\n" + rows, encoding="utf-8")
    assert tang_poems(tmp_path) == POEMS  # the poem with no text is skipped
    assert tang_poems(tmp_path, script="simplified") == POEMS
    assert tang_poems(tmp_path / "tang_poems.jsonl") == POEMS
    with pytest.raises(ValueError, match="script must be 'traditional' or 'simplified', got 'latin'"):
        tang_poems(tmp_path, script="latin")


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"id": "1", "paragraphs": ["a"]', "line 2: not valid JSON"),
        ('{"id": "1", "paragraphs": "a"}', "line 2: expected an object with a list 'paragraphs'"),
    ],
)
def test_tang_poems_malformed_jsonl(tmp_path, line, message):
    good = json.dumps({"id": "0", "paragraphs": POEMS}, ensure_ascii=False)
    (tmp_path / "tang_poems.jsonl").write_text(good + "\n" + line + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        tang_poems(tmp_path)


def test_tang_poems_malformed_tsv(tmp_path):
    path = tmp_path / "tang_poems.simplified.tsv"
    path.write_text("title\ttext\nx\ty\n", encoding="utf-8")
    with pytest.raises(ValueError, match="expected the header"):
        tang_poems(path, script="simplified")
    path.write_text("author\ttitle\ttext\na\tb\tc\td\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 2: expected 3 tab-separated fields, got 4"):
        tang_poems(path, script="simplified")
    with pytest.raises(FileNotFoundError, match="cannot be downloaded"):
        tang_poems(tmp_path / "nowhere", script="simplified")


def test_tang_record_matches_the_stored_layout():
    """The rebuild from the source files writes keys in the stored order, whatever the source order."""
    source = {"paragraphs": POEMS, "tags": ["月"], "title": "静夜思", "author": "李白", "id": "7"}
    line = json.dumps(datasets._tang_record(source), ensure_ascii=False)
    assert line == (
        '{"id": "7", "author": "李白", "title": "静夜思", "paragraphs": ["床前明月光，疑是地上霜。", '
        '"举头望明月，低头思故乡。"], "tags": ["月"]}'
    )
