"""Bag-of-words baselines for text classification (scikit-learn).

    TfidfLogistic   TF-IDF of word 1-2 grams (sublinear tf, min_df 2) -> L2 logistic regression
    NBSVM           Wang & Manning 2012 (NBSVM / NB-LR): binary 1-2 gram indicators x scaled by the
                    log-count ratio r = log((p / |p|_1) / (q / |q|_1)), p = alpha + sum of x over the class,
                    q = alpha + sum over the rest; logistic regression on x * r, one class against the rest
                    (91.2% on IMDB with bigrams in the paper, its SVM variant)

Texts are normalised as the RNN's word tokenizer does (`<br />` removed, lower-cased, words and punctuation
split: rnnkit.data.labelled). Both take a fixed regularisation (C), not tuned on test data.

    >>> texts = ["good film", "great good fun", "bad film", "awful bad plot"] * 3
    >>> model = TfidfLogistic(C=10.0).fit(texts, [1, 1, 0, 0] * 3, 2)
    >>> model.predict_proba(["good fun", "awful plot"]).argmax(axis=1).tolist()
    [1, 0]
"""

from __future__ import annotations

import numpy as np

from rnnkit.data.labelled import WordTokenizer

__all__ = ["TfidfLogistic", "NBSVM"]


_tokens = WordTokenizer(["<pad>", "<unk>"]).tokens  # the RNN's normalisation and split, no vocabulary


def _proba(scores_by_class: np.ndarray) -> np.ndarray:
    """(N, K) probabilities from one-against-the-rest probabilities (N, K): normalised per row."""
    return scores_by_class / scores_by_class.sum(axis=1, keepdims=True).clip(min=1e-12)


class TfidfLogistic:
    """TF-IDF (word 1-2 grams) + logistic regression."""

    def __init__(self, C: float = 4.0, ngram_range: tuple[int, int] = (1, 2), min_df: int = 2):
        self.C, self.ngram_range, self.min_df = C, ngram_range, min_df

    def fit(self, texts: list[str], labels: list[int], num_classes: int) -> TfidfLogistic:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        self.num_classes = num_classes
        self.vectorizer = TfidfVectorizer(tokenizer=_tokens, lowercase=False, token_pattern=None,
                                          ngram_range=self.ngram_range, min_df=min(self.min_df, len(texts)),
                                          sublinear_tf=True)
        X = self.vectorizer.fit_transform(texts)
        self.model = LogisticRegression(C=self.C, max_iter=2000).fit(X, labels)
        return self

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        p = self.model.predict_proba(self.vectorizer.transform(texts))  # (N, classes seen in training)
        out = np.zeros((len(texts), self.num_classes))
        out[:, self.model.classes_] = p
        return out


class NBSVM:
    """Naive-Bayes log-count-ratio features + logistic regression, one class against the rest."""

    def __init__(self, C: float = 4.0, alpha: float = 1.0, ngram_range: tuple[int, int] = (1, 2)):
        self.C, self.alpha, self.ngram_range = C, alpha, ngram_range

    def fit(self, texts: list[str], labels: list[int], num_classes: int) -> NBSVM:
        from sklearn.feature_extraction.text import CountVectorizer
        from sklearn.linear_model import LogisticRegression

        self.num_classes = num_classes
        self.vectorizer = CountVectorizer(tokenizer=_tokens, lowercase=False, token_pattern=None,
                                          ngram_range=self.ngram_range, binary=True)
        X = self.vectorizer.fit_transform(texts)  # (N, V) 0/1
        y = np.asarray(labels)
        self.ratios, self.models = [], []
        positives = [1] if num_classes == 2 else range(num_classes)  # two classes: one model suffices
        for k in positives:
            p = self.alpha + np.asarray(X[y == k].sum(axis=0)).ravel()  # (V,)
            q = self.alpha + np.asarray(X[y != k].sum(axis=0)).ravel()
            r = np.log((p / p.sum()) / (q / q.sum()))  # (V,) log-count ratio
            self.ratios.append(r)
            self.models.append(LogisticRegression(C=self.C, max_iter=2000).fit(X.multiply(r).tocsr(), y == k))
        return self

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        X = self.vectorizer.transform(texts)
        ones = np.stack([m.predict_proba(X.multiply(r).tocsr())[:, 1] for m, r in
                         zip(self.models, self.ratios, strict=True)], axis=1)  # (N, models)
        if self.num_classes == 2:
            return np.concatenate([1 - ones, ones], axis=1)
        return _proba(ones)

