"""Non-neural baselines for classifying numeric series (T_i, F) of unequal lengths.

    RocketRidge        ROCKET (Dempster et al. 2020): random dilated convolution kernels (length 7, 9 or 11,
                       N(0, 1) weights centred, bias U(-1, 1), dilation 2^U(0, log2((T - 1) / (k - 1))),
                       half the kernels zero-padded, each reading a random subset of the channels); per kernel
                       the max and the proportion of positive values (PPV) over the series' valid positions;
                       standardised -> RidgeClassifierCV (alphas 1e-3 .. 1e3)
    NearestNeighbour   1-NN, Euclidean, on series z-normalised per channel and resampled to one length

Padding is never read: a series padded with zeros is what a zero-padded kernel sees anyway, and a kernel's
outputs are pooled only over the positions inside that series. Ridge and 1-NN give scores, not calibrated
probabilities: `predict_proba` is a softmax of ridge's decision values, one-hot for 1-NN.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> t = np.arange(30)[:, None]
    >>> series = [np.sin(t * (1 + k % 2)) + 0.1 * rng.normal(size=(30, 1)) for k in range(20)]
    >>> model = RocketRidge(num_kernels=200).fit(series, [k % 2 for k in range(20)], 2)
    >>> float((model.predict_proba(series).argmax(axis=1) == [k % 2 for k in range(20)]).mean())
    1.0
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["RocketRidge", "NearestNeighbour", "rocket_features"]


def _padded(series: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, F, T_max) float64 zero-padded, lengths (B,)."""
    lengths = torch.tensor([len(s) for s in series])
    x = torch.zeros(len(series), series[0].shape[1], int(lengths.max()), dtype=torch.float64)
    for i, s in enumerate(series):
        x[i, :, : len(s)] = torch.as_tensor(np.asarray(s, dtype=np.float64).T)
    return x, lengths


def make_kernels(num_kernels: int, channels: int, length: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    kernels = []
    for _ in range(num_kernels):
        k = int(rng.choice([7, 9, 11]))
        size = int(2 ** rng.uniform(0, np.log2(channels + 1))) if channels > 1 else 1
        used = rng.choice(channels, size=min(size, channels), replace=False)
        weight = np.zeros((channels, k))
        w = rng.normal(size=(len(used), k))
        weight[used] = w - w.mean(axis=1, keepdims=True)
        dilation = int(2 ** rng.uniform(0, np.log2(max(length - 1, 1) / (k - 1)))) if length > k else 1
        padding = ((k - 1) * dilation) // 2 if rng.integers(2) else 0
        kernels.append({"weight": weight, "bias": rng.uniform(-1, 1), "dilation": dilation,
                        "padding": padding})
    return kernels


def rocket_features(series: list[np.ndarray], kernels: list[dict]) -> np.ndarray:
    """(N, 2 * kernels): max and PPV of each kernel's output over each series' valid positions."""
    x, lengths = _padded(series)  # (B, F, T)
    features = np.zeros((len(series), 2 * len(kernels)))
    for j, kernel in enumerate(kernels):
        w = torch.as_tensor(kernel["weight"])[None]  # (1, F, k)
        d, p, k = kernel["dilation"], kernel["padding"], w.shape[-1]
        span = (k - 1) * d
        out = F.conv1d(x, w, torch.tensor([kernel["bias"]], dtype=torch.float64), padding=p, dilation=d)[:, 0]
        valid_len = (lengths + 2 * p - span).clamp(min=1)  # windows inside the (zero-padded) series
        valid = torch.arange(out.shape[1])[None, :] < valid_len[:, None]  # (B, T_out)
        if out.shape[1] == 0:
            continue
        features[:, 2 * j] = out.masked_fill(~valid, float("-inf")).amax(dim=1).clamp(min=-1e6).numpy()
        features[:, 2 * j + 1] = (((out > 0) & valid).sum(dim=1) / valid.sum(dim=1).clamp(min=1)).numpy()
    return features


class RocketRidge:
    """Random convolution features + RidgeClassifierCV."""

    def __init__(self, num_kernels: int = 2000, seed: int = 0):
        self.num_kernels, self.seed = num_kernels, seed

    def fit(self, series: list[np.ndarray], labels: list[int], num_classes: int) -> RocketRidge:
        from sklearn.linear_model import RidgeClassifierCV
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        self.num_classes = num_classes
        length = int(np.median([len(s) for s in series]))
        self.kernels = make_kernels(self.num_kernels, series[0].shape[1], length, self.seed)
        self.model = make_pipeline(StandardScaler(), RidgeClassifierCV(alphas=np.logspace(-3, 3, 10)))
        self.model.fit(rocket_features(series, self.kernels), labels)
        return self

    def predict_proba(self, series: list[np.ndarray]) -> np.ndarray:
        scores = self.model.decision_function(rocket_features(series, self.kernels))
        classes = self.model.classes_
        if scores.ndim == 1:  # two classes: one decision value for classes[1]
            scores = np.stack([-scores, scores], axis=1)
        out = np.full((len(series), self.num_classes), -np.inf)
        out[:, classes] = scores
        return torch.softmax(torch.as_tensor(out), dim=1).numpy()


def _resampled(series: list[np.ndarray], length: int) -> np.ndarray:
    """(N, length * F): each series z-normalised per channel and linearly resampled to `length` steps."""
    rows = []
    for s in series:
        s = np.asarray(s, dtype=np.float64)
        s = (s - s.mean(axis=0)) / np.where(s.std(axis=0) > 1e-8, s.std(axis=0), 1.0)
        grid = np.linspace(0, len(s) - 1, length)
        channels = [np.interp(grid, np.arange(len(s)), s[:, c]) for c in range(s.shape[1])]
        rows.append(np.stack(channels, axis=1).ravel())
    return np.stack(rows)


class NearestNeighbour:
    """1-NN with Euclidean distance on z-normalised, resampled series."""

    def fit(self, series: list[np.ndarray], labels: list[int], num_classes: int) -> NearestNeighbour:
        self.num_classes, self.length = num_classes, int(np.median([len(s) for s in series]))
        self.train, self.labels = _resampled(series, self.length), np.asarray(labels)
        return self

    def predict_proba(self, series: list[np.ndarray]) -> np.ndarray:
        x = _resampled(series, self.length)
        distances = ((x[:, None, :] - self.train[None]) ** 2).sum(axis=-1)  # (N, N_train)
        out = np.zeros((len(series), self.num_classes))
        out[np.arange(len(series)), self.labels[distances.argmin(axis=1)]] = 1.0
        return out
