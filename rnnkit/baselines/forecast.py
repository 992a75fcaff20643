"""Forecasting baselines: what an RNN forecast must beat before it means anything.

Window baselines read the same lookback windows as the models, past (W, L, F) -> forecasts (W, P, F):

    naive            y_hat_{t+h} = y_t, the last value (a random walk's optimal forecast; hard to beat on
                     prices)
    seasonal_naive   y_hat_{t+h} = y_{t+h-m k}, the value one season m earlier (k = ceil(h / m))
    LinearBaseline   one linear map of the lookback to the horizon, shared by every series (DLinear with
                     individual=False, Zeng et al. 2023: its trend + remainder decomposition is linear, so the
                     sum of its two layers is one linear map, fitted here in closed form by ridge least
                     squares on the training windows instead of by SGD)

History baselines (univariate) read the whole history before each window's first forecast step, as a
classical forecaster would, series (N,) -> forecasts (W, P):

    arima_forecasts  statsmodels ARIMA, the order chosen by AIC on the training rows and its parameters
                     fitted there once; each window filters its history with those parameters (`apply`)
    ets_forecasts    statsmodels ExponentialSmoothing (additive trend, damped; additive season when m > 1 and
                     the history holds two seasons), fitted on each window's history

    >>> import numpy as np
    >>> past = np.arange(12.0).reshape(1, 6, 2)                 # (W=1, L=6, F=2)
    >>> naive(past, 3)[0, :, 0].tolist(), seasonal_naive(past, 3, 2)[0, :, 0].tolist()
    ([10.0, 10.0, 10.0], [8.0, 10.0, 8.0])
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence

import numpy as np

__all__ = ["naive", "seasonal_naive", "LinearBaseline", "select_arima_order", "arima_forecasts",
           "ets_forecasts"]


def naive(past: np.ndarray, horizon: int) -> np.ndarray:
    """(W, L, F) -> (W, horizon, F): the last value repeated."""
    return np.repeat(past[:, -1:, :], horizon, axis=1)


def seasonal_naive(past: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """(W, L, F) -> (W, horizon, F): the last full season repeated; season 1 is the naive forecast."""
    L = past.shape[1]
    if not 1 <= season <= L:
        raise ValueError(f"seasonal naive needs 1 <= season <= lookback {L}, got season {season}")
    index = L - season + np.arange(horizon) % season  # (horizon,) rows of the last season
    return past[:, index, :]


class LinearBaseline:
    """y_hat = past @ A + b per series, A (L, P) shared by all F series, fitted by ridge least squares.

    Args:
        alpha: the ridge penalty on A (not on b), relative to the number of training rows.
    """

    def __init__(self, alpha: float = 1e-3):
        self.alpha = alpha
        self.weight: np.ndarray | None = None  # (L + 1, P), the last row is the bias

    def fit(self, past: np.ndarray, future: np.ndarray) -> LinearBaseline:
        """past (W, L, F), future (W, P, F): the training windows."""
        W, L, Fn = past.shape
        X = np.concatenate([past.transpose(0, 2, 1).reshape(W * Fn, L), np.ones((W * Fn, 1))], axis=1)
        Y = future.transpose(0, 2, 1).reshape(W * Fn, -1)  # (W F, P): channel-independent rows
        penalty = self.alpha * len(X) * np.eye(L + 1)
        penalty[-1, -1] = 0.0
        self.weight = np.linalg.solve(X.T @ X + penalty, X.T @ Y)  # (L + 1, P)
        return self

    def predict(self, past: np.ndarray) -> np.ndarray:
        if self.weight is None:
            raise ValueError("LinearBaseline.predict before fit")
        W, L, Fn = past.shape
        if L + 1 != len(self.weight):
            raise ValueError(f"expected a lookback of {len(self.weight) - 1}, got {L}")
        rows = past.transpose(0, 2, 1).reshape(W * Fn, L) @ self.weight[:-1] + self.weight[-1]  # (W F, P)
        return rows.reshape(W, Fn, -1).transpose(0, 2, 1)  # (W, P, F)


def select_arima_order(train: np.ndarray, max_p: int = 3, max_d: int = 1,
                       max_q: int = 2) -> tuple[int, int, int]:
    """The (p, d, q) of least AIC on `train` (N,), over p <= max_p, d <= max_d, q <= max_q."""
    from statsmodels.tsa.arima.model import ARIMA

    best, best_aic = (1, 0, 0), np.inf
    for p, d, q in itertools.product(range(max_p + 1), range(max_d + 1), range(max_q + 1)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                aic = ARIMA(train, order=(p, d, q), trend="c" if d == 0 else "n").fit().aic
            except (ValueError, np.linalg.LinAlgError):
                continue
        if np.isfinite(aic) and aic < best_aic:
            best, best_aic = (p, d, q), aic
    return best


def arima_forecasts(series: np.ndarray, starts: Sequence[int], horizon: int, train_end: int,
                    order: tuple[int, int, int] | None = None) -> tuple[np.ndarray, tuple[int, int, int]]:
    """ARIMA fitted on series[:train_end] -> (forecasts (W, horizon) from each history series[:t], order)."""
    from statsmodels.tsa.arima.model import ARIMA

    order = select_arima_order(series[:train_end]) if order is None else order
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = ARIMA(series[:train_end], order=order, trend="c" if order[1] == 0 else "n").fit()
        out = np.stack([fitted.apply(series[:t]).forecast(horizon) for t in starts])  # (W, horizon)
    return out, order


def ets_forecasts(series: np.ndarray, starts: Sequence[int], horizon: int, season: int = 1) -> np.ndarray:
    """Exponential smoothing fitted on each history series[:t] -> forecasts (W, horizon)."""
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for t in starts:
            history = series[:t]
            seasonal = "add" if season > 1 and len(history) >= 2 * season else None
            model = ExponentialSmoothing(history, trend="add", damped_trend=True, seasonal=seasonal,
                                         seasonal_periods=season if seasonal else None,
                                         initialization_method="estimated")
            out.append(model.fit().forecast(horizon))
    return np.stack(out)  # (W, horizon)
