"""The non-neural baselines on tiny data: text (TF-IDF + LR, NBSVM) and series (ROCKET + ridge, 1-NN)."""

import random

import numpy as np
import pytest

from rnnkit.baselines import fit_baseline
from rnnkit.baselines.series_classification import make_kernels, rocket_features


def texts(n, seed):
    rng = random.Random(seed)
    cue = {0: ["dull", "awful"], 1: ["great", "superb"], 2: ["odd", "strange"]}
    rows = [(" ".join(rng.choice(["the", "film", "plot", "was", "a"]) for _ in range(6)) + " "
             + rng.choice(cue[i % 3]) + "<br />", i % 3) for i in range(n)]
    return [t for t, _ in rows], [y for _, y in rows]


@pytest.mark.parametrize("name", ["tfidf", "nbsvm"])
@pytest.mark.parametrize("classes", [2, 3])
def test_text_baselines_separate_cue_words(name, classes):
    x, y = texts(90, 0)
    keep = [i for i, label in enumerate(y) if label < classes]
    x, y = [x[i] for i in keep], [y[i] for i in keep]
    model = fit_baseline(name, x, y, classes)
    p = model.predict_proba(["a film that was superb", "the plot was awful", "strange film"][:classes])
    assert p.shape == (classes, classes)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert p.argmax(axis=1).tolist() == [1, 0, 2][:classes]


def waves(n, seed):
    rng = np.random.default_rng(seed)
    series, labels = [], []
    for i in range(n):
        length = int(rng.integers(20, 40))
        t = np.arange(length)[:, None]
        series.append(np.concatenate([np.sin(t * (0.3 + 0.9 * (i % 2))), rng.normal(size=(length, 1))], 1))
        labels.append(i % 2)
    return series, labels


@pytest.mark.parametrize("name", ["rocket", "knn"])
def test_series_baselines_on_unequal_lengths(name):
    x, y = waves(40, 0)
    model = fit_baseline(name, x, y, 2)
    test_x, test_y = waves(20, 1)
    p = model.predict_proba(test_x)
    assert p.shape == (20, 2)
    assert (p.argmax(axis=1) == test_y).mean() >= 0.9


def test_rocket_features_ignore_padding():
    x, _ = waves(3, 2)
    kernels = make_kernels(50, 2, 30, seed=0)
    together = rocket_features(x, kernels)
    alone = np.concatenate([rocket_features([s], kernels) for s in x])
    np.testing.assert_allclose(together, alone, atol=1e-9)


def test_unknown_baseline():
    with pytest.raises(ValueError, match="unknown baseline 'svm'"):
        fit_baseline("svm", [], [], 2)
