"""Forecasting data: every bad input is a clear one-line error, gaps are filled or masked, splits keep every
window (rnnkit.data.timeseries_csv, rnnkit.tasks.forecast.prepare)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from rnnkit.data.timeseries_csv import calendar_features, future_times, read_series
from rnnkit.tasks.forecast import SeriesDataConfig, prepare, window_arrays


def frame(n: int = 10, **columns) -> pd.DataFrame:
    data = {"date": pd.date_range("2024-01-01", periods=n, freq="D").astype(str)}
    data.update(columns or {"y": np.arange(n, dtype=float)})
    return pd.DataFrame(data)


def one_line_error(call, *needles):
    with pytest.raises(ValueError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message, message
    for needle in needles:
        assert needle in message, message
    return message


def test_bad_inputs_are_one_line_errors_naming_what_was_expected():
    one_line_error(lambda: read_series(frame(y=["1", "2", "x", "4", "5", "6", "7", "8", "9", "10"])),
                   "'y' must be numeric", "'x'", "row 2")
    one_line_error(lambda: read_series(frame(), "time"), "time column 'time' not found", "'date'")
    bad_time = frame()
    bad_time.loc[3, "date"] = "not a date"
    one_line_error(lambda: read_series(bad_time), "cannot parse 'not a date' (row 3)")
    duplicated = frame()
    duplicated.loc[4, "date"] = duplicated.loc[3, "date"]
    one_line_error(lambda: read_series(duplicated), "duplicated timestamps", "row 4", "row 3")
    unsorted = frame()
    unsorted.loc[[2, 3], "date"] = unsorted.loc[[3, 2], "date"].to_numpy()
    one_line_error(lambda: read_series(unsorted), "out of order", "row 3", "row 2")
    irregular = frame().drop(index=5).reset_index(drop=True)
    one_line_error(lambda: read_series(irregular), "irregular spacing", "1 days", "2 days", "row 4")
    one_line_error(lambda: read_series(frame(y=[np.nan] * 10)), "'y' has no values", "all 10 rows")
    gap = frame(y=[1.0, 2.0, np.nan, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0])
    one_line_error(lambda: read_series(gap, missing="error"), "missing a value at row 2")
    data = SeriesDataConfig(lookback=8, horizon=4, train_fraction=0.5, valid_fraction=0.25)
    one_line_error(lambda: prepare(data, source=frame(20)), "lookback 8 + horizon 4 = 12 rows", "has 10 rows")
    data = SeriesDataConfig(lookback=4, horizon=6, train_rows=12, valid_rows=4)
    one_line_error(lambda: prepare(data, source=frame(20)), "valid split has 4 rows", "fewer than horizon 6")


def test_gaps_are_interpolated_or_masked_never_propagated():
    table = read_series(frame(y=[1.0, np.nan, np.nan, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, np.nan]), missing="mask")
    assert table.values[:, 0].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 9.0]
    assert table.observed[:, 0].tolist() == [True, False, False] + [True] * 6 + [False]
    co2 = read_series("statsmodels:co2", missing="mask")  # weekly, with gaps
    assert np.isfinite(co2.values).all() and (~co2.observed).sum() == 59
    assert co2.step == pd.Timedelta(days=7)


def test_numeric_times_monthly_steps_and_calendar_features():
    sunspots = read_series("statsmodels:sunspots")
    assert sunspots.step == 1.0 and sunspots.columns == ("SUNACTIVITY",) and len(sunspots) == 309
    monthly = pd.DataFrame({"date": pd.date_range("2020-01-01", periods=14, freq="MS"), "y": np.arange(14.0)})
    table = read_series(monthly)
    assert str(future_times(table.times, table.step, 2)[0].date()) == "2021-03-01"
    times = pd.DatetimeIndex(["2024-01-01 00:00", "2024-01-07 23:00"])  # a Monday, a Sunday
    features = calendar_features(times, ("hour", "dayofweek"))
    np.testing.assert_allclose(features, [[-0.5, -0.5], [0.5, 0.5]])


def test_split_keeps_every_window_and_scales_with_training_rows_only():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(200, 2)).cumsum(axis=0)
    source = frame(200, a=values[:, 0], b=values[:, 1])
    data = SeriesDataConfig(lookback=24, horizon=12, train_rows=120, valid_rows=40, test_rows=40)
    prepared = prepare(data, source=source)
    counts = {name: len(w) for name, w in prepared.windows.items()}
    assert counts == {"train": 120 - 24 - 12 + 1, "valid": 40 - 12 + 1, "test": 40 - 12 + 1}
    np.testing.assert_allclose(prepared.scaler.mean, values[:120].mean(axis=0))
    np.testing.assert_allclose(prepared.scaler.std, values[:120].std(axis=0))
    arrays = window_arrays(prepared.windows["test"])
    assert arrays["past_target"].shape == (29, 24, 2) and arrays["future_target"].shape == (29, 12, 2)
    first = prepared.windows["test"][0]  # the dataset and the all-at-once arrays agree
    assert (arrays["past_target"][0] == first["past_target"]).all()
    assert int(arrays["starts"][0]) == 160 and int(arrays["starts"][-1]) + 12 == 200


def test_ett_protocol_all_test_windows(tmp_path):
    """ETTh1's layout (hourly `date`, 6 loads, OT; 12/4/4 months = 8640/2880/2880 rows), generated here."""
    rng = np.random.default_rng(0)
    dates = pd.date_range("2016-07-01", periods=14400, freq="h")
    columns = ["HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"]
    frame = pd.DataFrame(rng.normal(size=(14400, 7)).cumsum(axis=0), columns=columns)
    frame.insert(0, "date", dates.strftime("%Y-%m-%d %H:%M:%S"))
    frame.to_csv(tmp_path / "ETTh1.csv", index=False)
    for horizon, expected in ((96, 2785), (720, 2161)):
        data = SeriesDataConfig(path=str(tmp_path / "ETTh1.csv"), lookback=96, horizon=horizon,
                                train_rows=8640, valid_rows=2880, test_rows=2880)
        prepared = prepare(data)
        assert len(prepared.windows["test"]) == expected  # 2880 - horizon + 1: none dropped
        assert prepared.table.columns[-1] == "OT"


def test_masked_gaps_reach_the_batches_and_leave_the_loss(tmp_path):
    from rnnkit.models.forecaster import ForecasterConfig
    from rnnkit.models.recurrent import RecurrentConfig
    from rnnkit.tasks.forecast import ForecastRunConfig, forecast_task

    values = np.sin(np.arange(120) / 4.0)
    values[[50, 51, 90]] = np.nan
    path = tmp_path / "gaps.csv"
    frame(120, y=values).to_csv(path, index=False)
    encoder = RecurrentConfig(cell="gru", hidden_size=8, num_layers=1)
    config = ForecastRunConfig(
        model=ForecasterConfig(kind="direct", encoder=encoder),
        data=SeriesDataConfig(path=str(path), lookback=16, horizon=8, missing="mask", batch_size=200,
                              train_rows=80, valid_rows=20))
    task, resolved, prepared = forecast_task(config)
    assert resolved.model.lookback == 16 and resolved.model.num_targets == 1
    batch = next(iter(task.train_batches(0, 1, 0)))  # every training window in one batch
    assert batch["future_mask"].shape == (80 - 16 - 8 + 1, 8, 1)
    starts = prepared.windows["train"].first + torch.arange(len(batch["future_mask"]))
    covers_gap = ((starts <= 51) & (starts + 8 > 50)).sum()
    assert int((batch["future_mask"] == 0).any(dim=1).sum()) == int(covers_gap)
    step = task.loss(task.model, batch, None)
    assert step.count == int(batch["future_mask"].sum()) and torch.isfinite(step.loss)
