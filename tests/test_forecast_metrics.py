"""Forecasting metrics and baselines, checked by hand: MASE, sMAPE, MSE/MAE on the normalised scale, interval
coverage, and the baselines' forecasts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rnnkit.baselines.forecast import LinearBaseline, naive, seasonal_naive
from rnnkit.data.series import StandardScaler
from rnnkit.models.forecaster import ForecasterConfig, gaussian_nll
from rnnkit.tasks.forecast import ForecastErrors, error_sums, scores
from rnnkit.train.metrics import StepOutput

Z90 = 1.6448536269514722  # the standard normal's 0.95 quantile: the 90% interval is mu +- 1.645 sigma


def gaussian_bounds(mean, log_var, z=Z90):
    half = z * torch.exp(0.5 * log_var)
    return mean - half, mean + half


def sums(y_hat, y, scaler_mean=0.0, scaler_std=1.0, mase_scale=1.0, log_var=None, bounds=None):
    """error_sums on (1, n, 1) normalised forecasts of one series in units with the given scaler; intervals
    from a log variance (mu +- 1.645 sigma) or given (lower, upper)."""
    shape = (1, len(y), 1)
    mean = ((torch.tensor(y_hat, dtype=torch.float64) - scaler_mean) / scaler_std).view(shape)
    target = ((torch.tensor(y, dtype=torch.float64) - scaler_mean) / scaler_std).view(shape)
    if log_var is not None:
        bounds = gaussian_bounds(mean, torch.tensor(log_var, dtype=torch.float64).view(shape))
    elif bounds is not None:
        bounds = tuple(torch.tensor(b, dtype=torch.float64).view(shape) for b in bounds)
    return error_sums(mean, target, torch.ones(shape), bounds, torch.tensor([scaler_mean]),
                      torch.tensor([scaler_std]), torch.tensor([mase_scale]))


def test_mase_smape_mse_mae_by_hand():
    # training rows 1, 2, 4, 7: the in-sample naive error |y_t - y_{t-1}| averages (1 + 2 + 3) / 3 = 2
    mase_scale = np.abs(np.diff([1.0, 2.0, 4.0, 7.0])).mean()
    out = scores(sums([12.0, 16.0], [10.0, 20.0], scaler_mean=5.0, scaler_std=2.0, mase_scale=mase_scale),
                 probabilistic=False)
    assert out["mase"] == pytest.approx((2 / 2 + 4 / 2) / 2)  # 1.5
    assert out["smape"] == pytest.approx((200 * 2 / 22 + 200 * 4 / 36) / 2)  # 20.2020...
    assert out["mse"] == pytest.approx((1.0**2 + 2.0**2) / 2)  # errors 2 and -4 in units, / std 2
    assert out["mae"] == pytest.approx((1.0 + 2.0) / 2)


def test_smape_of_zero_over_zero_is_zero_and_masked_targets_do_not_count():
    out = scores(sums([0.0, 1.0], [0.0, 3.0]), probabilistic=False)
    assert out["smape"] == pytest.approx((0 + 200 * 2 / 4) / 2)
    shape = (1, 3, 1)
    mean, target = torch.zeros(shape, dtype=torch.float64), torch.tensor([1.0, 2.0, 100.0]).view(shape)
    mask = torch.tensor([1.0, 1.0, 0.0]).view(shape)  # the 100 was a filled gap
    masked = error_sums(mean, target, mask, None, torch.zeros(1), torch.ones(1), torch.ones(1))
    assert scores(masked, False)["mse"] == pytest.approx((1 + 4) / 2)


def test_interval_coverage():
    # sigma 1 (log variance 0), level 0.9: z = 1.645; |errors| 0.5 and 1.6 are inside, 1.7 and 3.5 outside
    out = scores(sums([0.0] * 4, [0.5, 1.7, -1.6, 3.5], log_var=[0.0] * 4), probabilistic=True)
    assert out["coverage"] == pytest.approx(0.5)
    assert out["width"] == pytest.approx(2 * Z90)
    wide = scores(sums([0.0] * 4, [0.5, 1.7, -1.6, 3.5], log_var=[2 * math.log(2.0)] * 4), True)  # sigma 2
    assert wide["coverage"] == pytest.approx(0.75)
    # given bounds (a quantile model's): targets 1, 5, 2 in [0, 2], [1, 3], [2, 6]; the ends count as inside
    given = scores(sums([1.0, 2.0, 4.0], [1.0, 5.0, 2.0], bounds=([0.0, 1.0, 2.0], [2.0, 3.0, 6.0])), True)
    assert given["coverage"] == pytest.approx(2 / 3)
    assert given["width"] == pytest.approx((2 + 2 + 4) / 3)


def test_validation_metric_matches_the_table_function():
    scaler = StandardScaler((5.0, 0.0), (2.0, 1.0))  # a target and a covariate column
    metric = ForecastErrors(scaler, 1, (2.0,), probabilistic=True)
    rng = torch.Generator().manual_seed(0)
    mean, target, log_var = (torch.randn(6, 4, 1, generator=rng) for _ in range(3))
    lower, upper = gaussian_bounds(mean, log_var)
    mask = torch.ones_like(target)
    for part in (slice(0, 4), slice(4, 6)):  # two batches
        outputs = torch.stack([mean[part], lower[part], upper[part]], -1)
        targets = torch.stack([target[part], mask[part]], -1)
        metric.update(StepOutput(torch.tensor(0.0), None, 1, outputs, targets))
    whole = scores(error_sums(mean, target, mask, (lower, upper), torch.tensor([5.0]), torch.tensor([2.0]),
                              torch.tensor([2.0])), True)
    assert metric.compute() == pytest.approx(whole)


def test_baselines():
    past = np.arange(24.0).reshape(1, 12, 2)  # rows 0..11 of two series
    assert naive(past, 3)[0, :, 1].tolist() == [23.0, 23.0, 23.0]
    assert seasonal_naive(past, 5, 4)[0, :, 0].tolist() == [16.0, 18.0, 20.0, 22.0, 16.0]
    with pytest.raises(ValueError, match="season 13"):
        seasonal_naive(past, 3, 13)
    # a linear relation of the lookback is recovered exactly by the linear baseline
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 6, 3))
    weight = rng.normal(size=(6, 2))
    y = np.einsum("wlf,lp->wpf", x, weight) + 0.5
    fitted = LinearBaseline(alpha=0.0).fit(x, y)
    np.testing.assert_allclose(fitted.predict(x[:5]), y[:5], atol=1e-8)


def test_gaussian_nll_is_torchs():
    mean, target, log_var = torch.randn(5), torch.randn(5), torch.randn(5)
    ours = gaussian_nll(mean, log_var, target).mean()
    theirs = torch.nn.functional.gaussian_nll_loss(mean, target, log_var.exp(), full=True)
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-6)
    assert ForecasterConfig(loss="gaussian").outputs_per_value == 2
