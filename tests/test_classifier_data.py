"""Classification data: text readers, tokenizers, length buckets, the .ts / .npz readers and their errors."""

import json

import numpy as np
import pytest

from rnnkit.data.labelled import (
    SubwordTokenizer,
    WordTokenizer,
    bucket_batches,
    label_vocabulary,
    name_labels,
    read_labelled_texts,
    sorted_batches,
    tokenizer_from_json,
)
from rnnkit.data.ts_format import ChannelScaler, read_npz, read_ts
from rnnkit.tasks.classifier import ClassifierDataConfig

TS = """# a handwritten UEA-style file: unequal lengths, missing values
@problemName toy
@timeStamps false
@missing true
@univariate false
@dimensions 2
@equalLength false
@classLabel true up down
@data
1,2,3,4:0,?,2,3:up
4,?,2:1,1,1:down
5,6,?:1,2,?:up
"""


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_ts_reader_unequal_lengths_and_missing_values(tmp_path):
    series, labels = read_ts(write(tmp_path, "toy_TRAIN.ts", TS))
    assert labels == ["up", "down", "up"]
    assert [s.shape for s in series] == [(4, 2), (3, 2), (2, 2)]  # the all-missing last step is cut
    np.testing.assert_allclose(series[0][:, 1], [0, 1, 2, 3])  # interpolated
    np.testing.assert_allclose(series[1][:, 0], [4, 3, 2])
    assert all(np.isfinite(s).all() for s in series)


@pytest.mark.parametrize("replace, message", [
    ("@classLabel true up down\n", "no @classLabel line before @data"),
    ("@data\n", "expected an @key line or @data"),
    ("@dimensions 2\n", ""),  # removing it is fine
    ("@equalLength false\n", ""),
])
def test_ts_header_lines(tmp_path, replace, message):
    path = write(tmp_path, "x.ts", TS.replace(replace, ""))
    if message:
        with pytest.raises(ValueError, match=message):
            read_ts(path)
    else:
        assert len(read_ts(path)[0]) == 3


@pytest.mark.parametrize("text, message", [
    (TS.replace("@missing true", "@mising true"), r"line 4: malformed .ts header: unknown key @mising"),
    (TS.replace("@classLabel true up down", "@classLabel up down"), "expected '@classLabel true"),
    (TS.replace("@dimensions 2", "@dimensions two"), "@dimensions must be a positive integer"),
    (TS.replace("@timeStamps false", "@timeStamps true"), "@timeStamps true is not supported"),
    (TS.replace("5,6,?:1,2,?:up", "5,6:1,2:sideways"), "label 'sideways' is not one of"),
    (TS.replace("5,6,?:1,2,?:up", "5,6:up"), "expected 2 channels"),
    (TS.replace("5,6,?:1,2,?:up", ":1,2:up"), "channel 0 is empty"),
    (TS.replace("5,6,?:1,2,?:up", "5,nan:1,2:up"), "expected a finite number or '\\?'"),
    (TS.replace("5,6,?:1,2,?:up", "5,x:1,2:up"), "expected a number or '\\?', got 'x'"),
    (TS.replace("5,6,?:1,2,?:up", "5,6,7:1,2:up"), "one length"),
    (TS.replace("5,6,?:1,2,?:up", "?,?:?,?:up"), "every value of the case is missing"),
])
def test_ts_errors_are_one_clear_line(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        read_ts(write(tmp_path, "bad.ts", text))


def test_npz_reader_lengths_and_errors(tmp_path):
    x = np.arange(24, dtype=np.float32).reshape(2, 4, 3)
    np.savez(tmp_path / "a.npz", x=x, y=np.array(["a", "b"]), lengths=np.array([4, 2]))
    series, labels = read_npz(tmp_path / "a.npz")
    assert [s.shape for s in series] == [(4, 3), (2, 3)] and labels == ["a", "b"]
    x[1, 1, 2] = np.nan
    np.savez(tmp_path / "nan.npz", x=x, y=np.array([0, 1]))
    with pytest.raises(ValueError, match="series 1: expected finite features, got nan at step 1, feature 2"):
        read_npz(tmp_path / "nan.npz")
    np.savez(tmp_path / "zero.npz", x=x, y=np.array([0, 1]), lengths=np.array([4, 0]))
    with pytest.raises(ValueError, match=r"lengths must be in \[1, 4\]"):
        read_npz(tmp_path / "zero.npz")
    np.savez(tmp_path / "nolabels.npz", x=x)
    with pytest.raises(ValueError, match=r"missing \['y'\]"):
        read_npz(tmp_path / "nolabels.npz")


def test_channel_scaler_fits_on_train_and_round_trips_json():
    scaler = ChannelScaler.fit([np.array([[0.0, 5.0], [2.0, 5.0]]), np.array([[4.0, 5.0]])])
    assert scaler.mean == (2.0, 5.0) and scaler.std[1] == 1.0  # a constant channel is only centred
    again = ChannelScaler.from_json(json.loads(json.dumps(scaler.to_json())))
    np.testing.assert_allclose(again.transform([np.array([[2.0, 6.0]])])[0], [[0.0, 1.0]])


def test_jsonl_csv_tsv_and_imdb_folder(tmp_path):
    write(tmp_path, "a.jsonl", '{"review": "Fine.", "y": 1}\n\n{"review": "Bad<br />film", "y": 0}\n')
    assert read_labelled_texts(tmp_path / "a.jsonl", text_column="review", label_column="y") == (
        ["Fine.", "Bad<br />film"], ["1", "0"])
    write(tmp_path, "a.csv", 'text,label\n"Fine, really.",pos\nBad,neg\n')
    assert read_labelled_texts(tmp_path / "a.csv") == (["Fine, really.", "Bad"], ["pos", "neg"])
    write(tmp_path, "a.tsv", "label\ttext\npos\tFine\n")
    assert read_labelled_texts(tmp_path / "a.tsv") == (["Fine"], ["pos"])
    for split, label, name in [("train", "pos", "0_9"), ("train", "neg", "1_2"), ("test", "pos", "3_8")]:
        (tmp_path / "aclImdb" / split / label).mkdir(parents=True, exist_ok=True)
        write(tmp_path / "aclImdb" / split / label, f"{name}.txt", f"review {name}")
    assert read_labelled_texts(tmp_path / "aclImdb") == (["review 1_2", "review 0_9"], ["neg", "pos"])
    assert read_labelled_texts(tmp_path / "aclImdb", split="test") == (["review 3_8"], ["pos"])


@pytest.mark.parametrize("name, text, message", [
    ("a.jsonl", '{"text": "ok", "label": 1}\n{"txt": "x", "label": 0}\n',
     r"a.jsonl, line 2: no column 'text'"),
    ("a.jsonl", '{"text": "   ", "label": 1}\n', "line 1: expected a non-empty text"),
    ("a.jsonl", '{"text": "ok"}\n', "line 1: no label in column 'label'"),
    ("a.jsonl", '{"text": "ok", \n', "line 1: not a JSON object"),
    ("a.csv", "body,label\nok,1\n", "line 2: no column 'text'"),
    ("a.txt", "ok\n", "cannot tell the format"),
])
def test_text_reader_errors(tmp_path, name, text, message):
    with pytest.raises(ValueError, match=message):
        read_labelled_texts(write(tmp_path, name, text))


def test_word_tokenizer_min_freq_max_size_and_json():
    texts = ["The film, the FILM!<br />great", "the plot"]
    tok = WordTokenizer.build(texts, min_freq=2, max_size=10)
    assert tok.vocabulary == ["<pad>", "<unk>", "the", "film"]
    assert tok.encode("The plot.") == [2, 1, 1]
    assert WordTokenizer.build(texts, min_freq=1, max_size=4).vocabulary == ["<pad>", "<unk>", "the", "film"]
    again = tokenizer_from_json(json.loads(json.dumps(tok.to_json())))
    assert again.encode("film the") == [3, 2]


@pytest.mark.parametrize("kind", ["bpe", "wordpiece"])
def test_subword_tokenizer_trains_offline_and_round_trips_json(kind):
    texts = ["a lovely lovely film", "a dreadful film<br />truly dreadful"] * 20
    tok = SubwordTokenizer.build(texts, kind, vocab_size=60, min_freq=1)
    assert tok.tokenizer.token_to_id("<pad>") == 0 and tok.tokenizer.token_to_id("<unk>") == 1
    ids = tok.encode("A LOVELY film")
    assert ids and "br" not in tok.tokens("x<br />y")
    assert tokenizer_from_json(json.loads(json.dumps(tok.to_json()))).encode("A LOVELY film") == ids


def test_label_vocabulary_orders_integers_numerically():
    assert label_vocabulary(["10", "2", "1"]).labels == ("1", "2", "10")
    assert label_vocabulary(["pos", "neg"]).labels == ("neg", "pos")


def test_label_names_map_values_keep_names_and_refuse_others():
    names = {"1": "positive", "0": "negative", "2": "negative"}  # several values may share a name
    assert name_labels(["0", "1", "2", "positive", None], names, "f") == ["negative", "positive", "negative",
                                                                         "positive", None]
    assert label_vocabulary(["negative", "positive"], names).labels == ("positive", "negative")  # names order
    assert name_labels(["7"], {}, "f") == ["7"]
    with pytest.raises(ValueError, match=r"f: label '7' is not in data.label_names"):
        name_labels(["7"], names, "f")
    assert ClassifierDataConfig(label_names={0: "neg", 1: "pos"}).label_names == {"0": "neg", "1": "pos"}
    with pytest.raises(ValueError, match="data.label_names must map label values to non-empty names"):
        ClassifierDataConfig(label_names={0: ""})


def test_bucket_batches_seeded_sharded_and_of_similar_lengths():
    lengths = [(i * 37) % 101 + 1 for i in range(200)]
    a = bucket_batches(lengths, 8, seed=3, epoch=1, chunk=5)
    assert a == bucket_batches(lengths, 8, seed=3, epoch=1, chunk=5)
    assert a != bucket_batches(lengths, 8, seed=3, epoch=2, chunk=5)
    assert sorted(i for b in a for i in b) == list(range(200))
    spread = np.mean([max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in a])
    assert spread < 20  # random batches of 8 would spread over ~80
    shards = [bucket_batches(lengths, 8, 3, rank, 2, 1, 5) for rank in range(2)]
    assert len(shards[0]) == len(shards[1])
    assert sorted(i for s in shards for b in s for i in b) == list(range(200))
    assert sorted(i for b in sorted_batches(lengths, 16, 1, 2) for i in b) == list(range(1, 200, 2))


def test_ts_without_data_section(tmp_path):
    with pytest.raises(ValueError, match="no @data line"):
        read_ts(write(tmp_path, "h.ts", "@problemName toy\n@classLabel true a b\n"))
