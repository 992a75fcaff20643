"""Non-neural baselines for the tasks, fitted on the same training data and scored with the same metrics.

A results table without the baseline beside the RNN is incomplete: the RNN must beat these to claim anything.

    text.py                     TF-IDF (word 1-2 grams) + logistic regression; NBSVM-style log-count ratios
    series_classification.py    ROCKET-style random convolution features + ridge; 1-NN on z-normalised series
    forecast.py                 the forecasting task's baselines (its own interface)

Every classification baseline is fitted by `fit_baseline(name, inputs, labels, num_classes)` and answers
`predict_proba(inputs) -> (N, K)` over the label ids 0..K-1.
"""

from __future__ import annotations

__all__ = ["BASELINES", "fit_baseline"]

BASELINES = ("tfidf", "nbsvm", "rocket", "knn")


def fit_baseline(name: str, inputs: list, labels: list[int], num_classes: int, seed: int = 0):
    """Fit baseline `name` on texts (tfidf, nbsvm) or (T_i, F) series (rocket, knn) with label ids."""
    if name in ("tfidf", "nbsvm"):
        from .text import NBSVM, TfidfLogistic

        model = TfidfLogistic() if name == "tfidf" else NBSVM()
    elif name in ("rocket", "knn"):
        from .series_classification import NearestNeighbour, RocketRidge

        model = RocketRidge(seed=seed) if name == "rocket" else NearestNeighbour()
    else:
        raise ValueError(f"unknown baseline {name!r}: expected one of {BASELINES}")
    return model.fit(inputs, labels, num_classes)
