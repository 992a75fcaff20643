"""The quantile (pinball) loss, checked by hand: its value, gradient and minimiser; the model's quantiles
sorted and denormalised; intervals of both probabilistic losses; a trained quantile model's coverage."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

import rnnkit
from rnnkit.cli import main
from rnnkit.models.forecaster import Forecast, Forecaster, ForecasterConfig, pinball_loss, quantile_bounds
from rnnkit.models.recurrent import RecurrentConfig
from rnnkit.tasks.forecast import ForecastRunConfig, SeriesDataConfig, forecast_task

SMALL = RecurrentConfig(cell="gru", hidden_size=8, num_layers=1)


def test_pinball_loss_by_hand():
    # y = 3 against quantiles 0, 1, 4 at tau 0.1, 0.5, 0.9: u = y - q = 3, 2, -1
    # rho = 0.1 * 3, 0.5 * 2, (0.9 - 1) * -1 = 0.3, 1.0, 0.1; the mean over the levels 1.4 / 3
    q = torch.tensor([[0.0, 1.0, 4.0]], requires_grad=True)
    loss = pinball_loss(q, torch.tensor([3.0]), (0.1, 0.5, 0.9))
    assert loss.item() == pytest.approx(1.4 / 3)
    loss.sum().backward()  # d rho / d q = -tau below the target, 1 - tau above it; / 3 for the mean
    torch.testing.assert_close(q.grad, torch.tensor([[-0.1, -0.5, 0.1]]) / 3)
    # the elementwise shape: (..., Q) quantiles and (...) targets -> (...)
    levels = [0.1, 0.3, 0.5, 0.7, 0.9]
    assert pinball_loss(torch.zeros(2, 4, 3, 5), torch.zeros(2, 4, 3), levels).shape == (2, 4, 3)


def test_pinball_minimiser_is_the_quantile():
    # y = 1, 2, 3, 4, 10 and tau 0.7: 3 of 5 values are <= 3 (0.6 < 0.7), 4 of 5 are <= 4 (0.8 >= 0.7), so
    # the 0.7-quantile is 4. There: u = -3, -2, -1, 0, 6 cost 0.3 * (3 + 2 + 1) + 0.7 * 6 = 6.0 over 5 values.
    y = torch.tensor([1.0, 2.0, 3.0, 4.0, 10.0])
    grid = torch.arange(0.0, 11.0, 0.25)  # candidate constant forecasts
    losses = torch.stack([pinball_loss(c.expand(5, 1), y, (0.7,)).mean() for c in grid])
    assert grid[losses.argmin()].item() == 4.0 and losses.min().item() == pytest.approx(1.2)


def quantile_model(**kwargs) -> Forecaster:
    sizes = {"kind": "direct", "lookback": 6, "horizon": 2, "num_targets": 2, "encoder": SMALL,
             "loss": "quantile", "quantiles": (0.05, 0.5, 0.95)}
    torch.manual_seed(0)
    return Forecaster(ForecasterConfig(**{**sizes, **kwargs})).eval()


def test_quantiles_are_sorted_and_follow_the_last_value():
    net = quantile_model(normalization="last")
    torch.nn.init.zeros_(net.head.weight)
    with torch.no_grad():  # raw outputs +1, -1, 0 for the levels 0.05, 0.5, 0.95: crossing, out of order
        net.head.bias.copy_(torch.tensor([1.0, -1.0, 0.0]).repeat(2 * 2))
    past = torch.randn(3, 6, 2)
    out = net(past)
    last = past[:, -1:, :]  # (B, 1, F)
    expected = last[..., None] + torch.tensor([-1.0, 0.0, 1.0])  # (B, 1, F, Q): sorted, shifted back
    torch.testing.assert_close(out.quantiles, expected.expand(3, 2, 2, 3))
    torch.testing.assert_close(out.mean, last.expand(3, 2, 2))  # the point forecast is the median
    lower, upper = net.interval(out, 0.9)
    torch.testing.assert_close(lower, out.mean - 1.0)
    torch.testing.assert_close(upper, out.mean + 1.0)
    with pytest.raises(ValueError, match="a 0.5 interval needs the quantiles 0.25 and 0.75"):
        net.interval(out, 0.5)


def test_revin_denormalises_every_quantile():
    net = quantile_model(normalization="revin")
    past = torch.randn(4, 6, 2)
    base, scaled = net(past), net(3.0 * past + 7.0)
    torch.testing.assert_close(scaled.quantiles, 3.0 * base.quantiles + 7.0, rtol=1e-4, atol=1e-4)
    assert (base.quantiles.diff(dim=-1) >= 0).all()


def test_gaussian_interval_by_hand_and_point_models_have_none():
    net = quantile_model(loss="gaussian")
    mean, log_var = torch.zeros(1, 2, 2), torch.full((1, 2, 2), 2 * np.log(2.0))  # sigma = 2
    lower, upper = net.interval(Forecast(mean, log_var), 0.9)
    torch.testing.assert_close(upper, torch.full((1, 2, 2), 2 * 1.6448536269514722))  # z_0.95 sigma
    torch.testing.assert_close(lower, -upper)
    with pytest.raises(ValueError, match="a mse model gives no intervals"):
        quantile_model(loss="mse").interval(Forecast(mean), 0.9)


def test_quantile_config_errors_name_what_was_given():
    with pytest.raises(ValueError, match=r"hold 0.5 \(the point forecast\), got \[0.1, 0.9\]"):
        ForecasterConfig(loss="quantile", quantiles=(0.1, 0.9))
    with pytest.raises(ValueError, match=r"must increase within \(0, 1\)"):
        ForecasterConfig(loss="quantile", quantiles=(0.5, 0.3, 0.9))
    assert quantile_bounds((0.05, 0.25, 0.5, 0.75, 0.95), 0.5) == (1, 3)
    frame = pd.DataFrame({"date": pd.date_range("2024-01-01", periods=60, freq="D"), "y": np.arange(60.0)})
    data = SeriesDataConfig(lookback=8, horizon=4, interval_level=0.8)
    config = ForecastRunConfig(model=ForecasterConfig(kind="direct", loss="quantile", encoder=SMALL),
                               data=dataclasses.replace(data, path=frame))  # prepare() reads a DataFrame too
    with pytest.raises(ValueError, match=r"a 0.8 interval needs the quantiles 0.1 and 0.9"):
        forecast_task(config)


CONFIG = {
    "task": "forecast",
    "model": {"kind": "direct", "normalization": "none", "loss": "quantile",
              "quantiles": [0.05, 0.25, 0.5, 0.75, 0.95],
              "encoder": {"cell": "gru", "hidden_size": 32, "num_layers": 1}},
    "data": {"lookback": 48, "horizon": 12, "batch_size": 32, "season": 24, "train_rows": 420,
             "valid_rows": 90, "interval_level": 0.9},
    "optim": {"lr": 0.01},
    "trainer": {"max_epochs": 6, "accelerator": "cpu", "progress_bar": False, "log_every_n_steps": 5},
}


def test_trained_quantile_model_reports_coverage_and_writes_intervals(tmp_path, capsys):
    rng = np.random.default_rng(0)
    t = np.arange(600)
    frame = pd.DataFrame({"date": pd.date_range("2024-01-01", periods=600, freq="h"),
                          "load": 10 + 3 * np.sin(2 * np.pi * t / 24) + 0.3 * rng.normal(size=600)})
    data, config = tmp_path / "sine.csv", tmp_path / "quantile.yaml"
    frame.to_csv(data, index=False)
    config.write_text(yaml.safe_dump(CONFIG))
    argv = ["train", "--config", str(config), "--data", str(data), "--output-dir", str(tmp_path),
            "--run-name", "q", "--seed", "0"]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "q"), "--baselines", "--json"]) == 0
    table = json.loads(capsys.readouterr().out)
    assert table["q"]["mse"] < 0.5 * table["naive"]["mse"]
    assert 0.6 < table["q"]["coverage"] <= 1.0 and table["q"]["width"] > 0  # the 90% band, on test windows
    assert "coverage" not in table["naive"]
    forecaster = rnnkit.load(tmp_path / "q")
    history = frame.iloc[:300]
    wide, narrow = forecaster.predict(history), forecaster.predict(history, level=0.5)
    assert list(wide.columns) == ["date", "load", "load_lower", "load_upper"]
    assert (wide["load_lower"] <= narrow["load_lower"]).all()  # the 90% band holds the 50% band
    assert (narrow["load_upper"] <= wide["load_upper"]).all()
    assert (narrow["load_lower"] <= wide["load"]).all() and (wide["load"] <= narrow["load_upper"]).all()
    with pytest.raises(ValueError, match="a 0.8 interval needs the quantiles 0.1 and 0.9"):
        forecaster.predict(history, level=0.8)
