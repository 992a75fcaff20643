"""The classifier task end to end: `rnnkit train / evaluate / predict`, rnnkit.load, and bad inputs."""

import json
import random

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.cli import main
from rnnkit.tasks.classifier import load_classifier, token_effects
from rnnkit.train.checkpoint import CheckpointError, save_model

FILLER = ["the", "film", "was", "a", "plot", "and", "actor", "scene", "it", "story"]


def review(rng, label: int) -> str:
    words = [rng.choice(FILLER) for _ in range(rng.randint(3, 12))]
    words.insert(rng.randrange(len(words) + 1), rng.choice(["good", "great"] if label else ["bad", "awful"]))
    return " ".join(words) + rng.choice([".", "!", "<br />"])


def write_jsonl(path, n, seed):
    rng = random.Random(seed)
    rows = [{"id": i, "text": review(rng, i % 2), "label": i % 2} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_config(path, **data):
    lines = ["task: classifier", "model:", "  embedding_size: 16", "  pooling: max", "  dropout: 0.0",
             "  encoder:", "    cell: gru", "    hidden_size: 16", "    num_layers: 1",
             "    bidirectional: true",
             "data:", "  min_freq: 1", "  batch_size: 16", "  valid_fraction: 0.2",
             *[f"  {k}: {v}" for k, v in data.items()],
             "optim:", "  lr: 0.02", "trainer:", "  max_epochs: 100", "  val_check_interval: 10",
             "  accelerator: cpu", "  progress_bar: false"]
    path.write_text("\n".join(lines) + "\n")
    return path


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One text classifier trained through the CLI, shared by the tests below."""
    tmp = tmp_path_factory.mktemp("cls")
    train = write_jsonl(tmp / "train.jsonl", 200, seed=0)
    write_jsonl(tmp / "test.jsonl", 60, seed=1)
    config = write_config(tmp / "tiny.yaml")
    code = main(["train", "--config", str(config), "--data", str(train), "--max-steps", "60",
                 "--output-dir", str(tmp / "runs"), "--run-name", "text"])
    assert code == 0
    return tmp


def test_train_reaches_high_accuracy_and_evaluates(trained, capsys):
    code, out, err = run(["evaluate", trained / "runs" / "text", "--data", trained / "test.jsonl", "--json",
                          "--confusion-png", trained / "cm.png"], capsys)
    assert code == 0, err
    report = json.loads(out)
    assert report["accuracy"] >= 0.95 and report["examples"] == 60
    assert set(report["precision"]) == {"0", "1"} and np.sum(report["confusion_matrix"]) == 60
    assert (trained / "cm.png").stat().st_size > 0
    run_dir = trained / "runs" / "text"
    assert json.loads((run_dir / "encoding.json").read_text())["labels"] == {"labels": ["0", "1"]}


def test_evaluate_with_baselines(trained, capsys):
    code, out, err = run(["evaluate", trained / "runs" / "text", "--data", trained / "test.jsonl",
                          "--baseline", "tfidf", "--baseline", "nbsvm"], capsys)
    assert code == 0, err
    assert "tfidf:" in out and "nbsvm:" in out and "accuracy" in out


def test_evaluate_ensemble_is_the_mean_of_the_probabilities(trained, capsys):
    """model+nbsvm scores the mean of the model's and NBSVM's probabilities, recomputed here from predict and
    from NBSVM fitted on the same training part (the 80% the training run kept)."""
    from rnnkit.baselines import fit_baseline
    from rnnkit.tasks.classifier import ClassifierRunConfig, training_parts
    from rnnkit.train.config import from_dict

    model = trained / "runs" / "text"
    code, out, err = run(["evaluate", model, "--data", trained / "test.jsonl", "--json", "--baseline",
                          "nbsvm", "--ensemble"], capsys)
    assert code == 0, err
    results = json.loads(out)
    assert set(results) == {"model", "nbsvm", "model+nbsvm"}
    classifier = rnnkit.load(model)
    rows = [json.loads(line) for line in (trained / "test.jsonl").read_text().splitlines()]
    texts, targets = [r["text"] for r in rows], np.array([r["label"] for r in rows])
    config = from_dict(ClassifierRunConfig, classifier.metadata["config"])
    raw, labels, _, _ = training_parts(config)
    nbsvm = fit_baseline("nbsvm", raw, [int(y) for y in labels], 2, seed=config.trainer.seed)
    mean = (classifier.predict(texts).probabilities + nbsvm.predict_proba(texts)) / 2
    assert results["model+nbsvm"]["accuracy"] == pytest.approx(np.mean(mean.argmax(axis=1) == targets))
    assert results["model+nbsvm"]["log_loss"] == pytest.approx(
        -np.mean(np.log(mean[np.arange(len(targets)), targets])), rel=1e-5)
    code, _, err = run(["evaluate", model, "--data", trained / "test.jsonl", "--ensemble"], capsys)
    assert code == 2 and "--ensemble averages the model with the baselines: give --baseline NAME" in err
    code, _, err = run(["evaluate", trained / "runs" / "text", "--data", trained / "test.jsonl",
                        "--baseline", "rocket"], capsys)
    assert code == 2 and "baseline 'rocket' does not read text" in err


def test_predict_cli_texts_input_file_and_output(trained, capsys):
    model = trained / "runs" / "text"
    code, out, err = run(["predict", model, "a good film", "an awful plot"], capsys)
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["label"] for r in rows] == ["1", "0"]
    assert abs(sum(rows[0]["probabilities"].values()) - 1) < 1e-6
    code, _, err = run(["predict", model, "--input", trained / "test.jsonl", "--output", trained / "p.csv"],
                       capsys)
    assert code == 0, err
    lines = (trained / "p.csv").read_text().splitlines()
    assert lines[0] == "index,label,p_0,p_1" and len(lines) == 61
    code, _, err = run(["predict", model, "a great story", "--explain", trained / "e.html"], capsys)
    assert code == 0 and "<span" in (trained / "e.html").read_text()


def test_load_round_trip(trained):
    clf = rnnkit.load(trained / "runs" / "text")
    predictions = clf.predict(["great great film", "bad awful"])
    assert predictions.labels == ["1", "0"] and predictions.probabilities.shape == (2, 2)
    assert clf.evaluate(trained / "test.jsonl")["accuracy"] >= 0.95
    one = clf.predict("great great film").probabilities
    np.testing.assert_allclose(one[0], predictions.probabilities[0], atol=1e-6)  # alone = in a batch
    explained = clf.explain("the film was great")
    assert explained["tokens"] == ["the", "film", "was", "great"]
    assert explained["probabilities"].shape == (4, 2)


def test_token_effects_are_the_steps_of_the_running_probability(trained):
    running = rnnkit.load(trained / "runs" / "text").explain("the film was great")["probabilities"]  # (T, K)
    effects = token_effects(running, 1)
    np.testing.assert_allclose(effects[1:], np.diff(running[:, 1]), rtol=0, atol=1e-12)
    assert effects.sum() == pytest.approx(running[-1, 1] - 1 / 2, abs=1e-12)  # from the uniform 1/K
    assert effects[-1] > 0  # "great" raises the positive class


@pytest.mark.parametrize("rows, message", [
    ([{"text": "good", "label": 7}], r"unknown label '7': expected one of \['0', '1'\]"),
    ([{"text": "", "label": 1}], "line 1: expected a non-empty text in column 'text'"),
    ([{"body": "good", "label": 1}], "line 1: no column 'text'"),
    ([{"text": "good"}], "line 1: no label in column 'label'"),
])
def test_bad_evaluation_data_is_one_clear_error(trained, capsys, rows, message):
    bad = trained / "bad.jsonl"
    bad.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, _, err = run(["evaluate", trained / "runs" / "text", "--data", bad], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert pytest.importorskip("re").search(message, err), err


def test_predict_refuses_empty_text_and_nothing(trained, capsys):
    code, _, err = run(["predict", trained / "runs" / "text", "  "], capsys)
    assert code == 2 and "input 0: expected a non-empty text" in err
    code, _, err = run(["predict", trained / "runs" / "text"], capsys)
    assert code == 2 and "nothing to classify" in err


def test_a_language_model_file_is_refused_by_the_classifier(tmp_path):
    path = tmp_path / "lm.safetensors"
    save_model(path, torch.nn.Linear(2, 2), "language_model", config={})
    message = "holds a model for task 'language_model', expected 'classifier'"
    with pytest.raises(CheckpointError, match=message):
        load_classifier(path)


def test_numeric_series_train_evaluate_predict(tmp_path, capsys):
    """A .ts file with unequal lengths and missing values, through the same commands; ROCKET beside it."""
    rng = np.random.default_rng(0)
    lines = ["@problemName waves", "@dimensions 2", "@equalLength false", "@classLabel true slow fast",
             "@data"]
    for i in range(60):
        n, fast = int(rng.integers(8, 16)), i % 2
        t = np.arange(n)
        x = np.stack([np.sin(t * (1.5 if fast else 0.3)), rng.normal(0, 0.1, n)])
        channels = [",".join("?" if (c == 1 and j == 2) else f"{v:.4f}" for j, v in enumerate(row))
                    for c, row in enumerate(x)]
        lines.append(":".join(channels) + (":fast" if fast else ":slow"))
    ts = tmp_path / "waves.ts"
    ts.write_text("\n".join(lines) + "\n")
    config = write_config(tmp_path / "series.yaml")
    code, _, err = run(["train", "--config", config, "--data", ts, "--max-steps", "60", "--output-dir",
                        tmp_path / "runs", "--run-name", "s"], capsys)
    assert code == 0, err
    code, out, err = run(["evaluate", tmp_path / "runs" / "s", "--data", ts, "--json", "--baseline", "rocket",
                          "--baseline", "knn"], capsys)
    assert code == 0, err
    results = json.loads(out)
    assert results["model"]["accuracy"] >= 0.9 and results["rocket"]["accuracy"] >= 0.9
    clf = rnnkit.load(tmp_path / "runs" / "s")
    series = [np.sin(np.arange(12) * 1.5)[:, None].repeat(2, 1)]
    assert clf.predict(series).labels == ["fast"]
    with pytest.raises(ValueError, match="series 0: expected finite features"):
        clf.predict([np.full((5, 2), np.nan)])
    with pytest.raises(ValueError, match=r"series 0: expected shape \(T, F\) with T >= 1"):
        clf.predict([np.zeros((0, 2))])


def test_bpe_tokenizer_is_stored_in_the_model_file(tmp_path, capsys):
    train = write_jsonl(tmp_path / "train.jsonl", 120, seed=2)
    config = write_config(tmp_path / "bpe.yaml", vocab_size=80)
    code, _, err = run(["train", "--config", config, "--data", train, "--tokenizer", "bpe",
                        "--max-steps", "10", "--output-dir", tmp_path / "runs", "--run-name", "bpe"], capsys)
    assert code == 0, err
    _, encoding, meta = load_classifier(tmp_path / "runs" / "bpe" / "model.safetensors")
    assert meta["encoding"]["tokenizer"]["kind"] == "bpe" and len(encoding.tokenizer) <= 80
    predictions = rnnkit.load(tmp_path / "runs" / "bpe").predict(["a good film", "bad"])
    assert predictions.probabilities.shape == (2, 2)


def test_label_names_make_predictions_read_names(tmp_path, capsys):
    """IMDB's JSONL labels 0 / 1 named neg / pos: the classes, predictions and evaluation read the names; an
    aclImdb folder (labels neg / pos already) evaluates too, and a value outside the names is an error."""
    train = write_jsonl(tmp_path / "train.jsonl", 200, seed=3)
    config = write_config(tmp_path / "named.yaml", label_names="{0: neg, 1: pos}")
    code, _, err = run(["train", "--config", config, "--data", train, "--max-steps", "40", "--output-dir",
                        tmp_path / "runs", "--run-name", "named"], capsys)
    assert code == 0, err
    clf = rnnkit.load(tmp_path / "runs" / "named")
    assert clf.classes == ("neg", "pos")
    assert clf.predict(["a great film", "an awful plot"]).labels == ["pos", "neg"]
    code, out, _ = run(["predict", tmp_path / "runs" / "named", "good story"], capsys)
    assert code == 0 and json.loads(out)["label"] == "pos" and set(json.loads(out)["probabilities"]) == {
        "neg", "pos"}
    test = write_jsonl(tmp_path / "test.jsonl", 40, seed=4)
    assert clf.evaluate(test)["accuracy"] >= 0.9
    rng = random.Random(5)
    for label in ("neg", "pos"):
        (tmp_path / "aclImdb" / label).mkdir(parents=True)
        for i in range(10):
            (tmp_path / "aclImdb" / label / f"{i}_1.txt").write_text(review(rng, label == "pos"))
    assert clf.evaluate(tmp_path / "aclImdb")["accuracy"] >= 0.9
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text": "good", "label": 2}) + "\n")
    code, _, err = run(["evaluate", tmp_path / "runs" / "named", "--data", bad], capsys)
    assert code == 2 and "label '2' is not in data.label_names {'0': 'neg', '1': 'pos'}" in err, err
