"""The named series that ship with installed packages (statsmodels, vega_datasets' local files): shapes,
dates, steps and their missing values, read with the network blocked; the stocks and seattle_weather presets'
windows."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import rnnkit
from rnnkit.data.timeseries_csv import NAMED, STOCKS, named_series, read_series
from rnnkit.tasks.forecast import ForecastRunConfig, prepare
from rnnkit.train.config import load_yaml

CONFIGS = Path(rnnkit.__file__).parent / "configs"


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Every named series is read from the package's own files: a connection attempt fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("a named series tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_stocks_one_column_per_ticker_goog_missing_before_its_listing():
    frame = named_series("vega_datasets:stocks")
    assert list(frame.columns) == ["date", *STOCKS] and frame.shape == (123, 6)
    dates = frame["date"].dt.strftime("%Y-%m-%d")
    assert dates.iloc[0] == "2000-01-01" and dates.iloc[-1] == "2010-03-01"
    assert frame.drop(columns=["date", "GOOG"]).notna().all().all()
    goog = frame["GOOG"]
    assert int(goog.isna().sum()) == 55 and dates[goog.first_valid_index()] == "2004-08-01"
    assert frame.loc[122, "AAPL"] == 223.02 and frame.loc[122, "GOOG"] == 560.19  # vega's 2010-03 prices
    four = ["AAPL", "AMZN", "IBM", "MSFT"]
    table = read_series("vega_datasets:stocks", value_columns=four, missing="error")
    assert table.step == pd.DateOffset(months=1) and table.values.shape == (123, 4)
    assert np.isfinite(table.values).all()
    with pytest.raises(ValueError, match=r"'GOOG' is missing a value at row 0 \(55 missing in all\)"):
        read_series("vega_datasets:stocks", missing="error")
    masked = read_series("vega_datasets:stocks", missing="mask")  # GOOG's first 55 months: filled, unobserved
    assert masked.observed[:, 2].tolist() == [False] * 55 + [True] * 68
    assert masked.observed[:, [0, 1, 3, 4]].all()


def test_seattle_weather_daily_numeric_columns_no_gaps():
    table = read_series("vega_datasets:seattle-weather", missing="error")
    assert table.columns == ("precipitation", "temp_max", "temp_min", "wind")  # the text label is left out
    assert table.values.shape == (1461, 4) and table.step == pd.Timedelta(days=1)
    assert str(table.times[0].date()) == "2012-01-01" and str(table.times[-1].date()) == "2015-12-31"
    assert table.observed.all() and np.isfinite(table.values).all()
    values = table.values
    assert (values[:, 1] >= values[:, 2]).all() and (values[:, 0] >= 0).all()  # max >= min, no negative rain
    np.testing.assert_allclose(values[0], [0.0, 12.8, 5.0, 4.7])  # 2012-01-01 as vega ships it


def test_every_named_series_reads_and_unknown_names_are_errors():
    lengths = {name: len(read_series(name, missing="mask")) for name in NAMED}
    assert lengths == {"statsmodels:sunspots": 309, "statsmodels:co2": 2284, "vega_datasets:stocks": 123,
                       "vega_datasets:seattle-weather": 1461}
    with pytest.raises(ValueError, match="unknown named series 'vega_datasets:cars'"):
        named_series("vega_datasets:cars")


@pytest.mark.parametrize("preset, windows, season", [
    ("stocks", {"train": 87 - 12 - 3 + 1, "valid": 12 - 3 + 1, "test": 24 - 3 + 1}, 12),
    ("seattle_weather", {"train": 731 - 28 - 7 + 1, "valid": 365 - 7 + 1, "test": 365 - 7 + 1}, 1),
])
def test_presets_cut_every_window(preset, windows, season):
    config = load_yaml(ForecastRunConfig, CONFIGS / f"{preset}.yaml")
    prepared = prepare(config.data)
    assert {name: len(w) for name, w in prepared.windows.items()} == windows
    assert prepared.season == season and prepared.split.train_end == config.data.train_rows
