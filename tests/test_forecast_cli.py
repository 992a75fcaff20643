"""The forecasting task end to end through the command line: `rnnkit train` on a noisy sine beats the naive
forecast, `rnnkit evaluate --baselines` prints one table, `rnnkit predict` writes a CSV with intervals and a
PNG,
`rnnkit.load` gives the same forecast from Python, and the scaler comes back from the model file's JSON."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

import rnnkit
from rnnkit.cli import main
from rnnkit.data.series import StandardScaler
from rnnkit.train.checkpoint import load_model_file

CONFIG = {
    "task": "forecast",
    "model": {"kind": "direct", "normalization": "none", "loss": "gaussian",
              "encoder": {"cell": "gru", "hidden_size": 32, "num_layers": 1}},
    "data": {"lookback": 48, "horizon": 12, "batch_size": 32, "season": 24, "train_rows": 420,
             "valid_rows": 90},
    "optim": {"lr": 0.01},
    "trainer": {"max_epochs": 6, "accelerator": "cpu", "progress_bar": False, "log_every_n_steps": 5},
}


def sine_frame(n: int = 600, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return pd.DataFrame({"date": pd.date_range("2024-01-01", periods=n, freq="h"),
                         "load": 10 + 3 * np.sin(2 * np.pi * t / 24) + 0.3 * rng.normal(size=n)})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("forecast")
    data = folder / "sine.csv"
    sine_frame().to_csv(data, index=False)
    config = folder / "sine.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    argv = ["train", "--config", str(config), "--data", str(data), "--output-dir", str(folder),
            "--run-name", "sine", "--seed", "0"]
    assert main(argv) == 0
    return folder, folder / "sine", data


def test_trained_rnn_beats_the_naive_forecast(trained, capsys):
    folder, run, data = trained
    capsys.readouterr()
    assert main(["evaluate", str(run), "--baselines", "--json"]) == 0
    table = json.loads(capsys.readouterr().out)
    assert set(table) >= {"sine", "naive", "seasonal_naive (m=24)", "linear (DLinear-style)"}
    assert table["sine"]["windows"] == 600 - 510 - 12 + 1  # every test window
    assert table["sine"]["mse"] < 0.5 * table["naive"]["mse"]
    assert table["sine"]["mase"] < table["naive"]["mase"]
    assert 0.5 < table["sine"]["coverage"] <= 1.0  # the 90% interval covers most targets
    assert {"ARIMA(2, 0, 2)", "exponential smoothing"} & set(table)  # one series: the classical models too
    assert main(["evaluate", str(run)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[1].split() == ["mse", "mae", "mase", "smape", "coverage", "width", "windows"]
    assert printed[2].split()[0] == "sine" and len(printed) == 3


def test_predict_writes_csv_and_png_and_load_gives_the_same(trained, capsys):
    folder, run, data = trained
    history = pd.read_csv(data).iloc[:300]
    history_csv = folder / "history.csv"
    history.to_csv(history_csv, index=False)
    out = folder / "out" / "forecast.csv"
    argv = ["predict", str(run), "--input", str(history_csv), "--horizon", "6", "--output", str(out)]
    assert main(argv) == 0
    written = pd.read_csv(out)
    assert list(written.columns) == ["date", "load", "load_lower", "load_upper"]
    assert len(written) == 6 and written["date"].iloc[0] == "2024-01-13 12:00:00"
    assert (written["load_lower"] < written["load"]).all() and (written["load"] < written["load_upper"]).all()
    assert out.with_suffix(".png").stat().st_size > 1000
    forecaster = rnnkit.load(run)
    again = forecaster.predict(history, horizon=6)
    np.testing.assert_allclose(again["load"].to_numpy(), written["load"].to_numpy(), rtol=1e-5)
    truth = 10 + 3 * np.sin(2 * np.pi * np.arange(300, 306) / 24)
    assert np.abs(again["load"].to_numpy() - truth).mean() < 1.0  # it learnt the sine, in the series' units
    assert forecaster.evaluate(data, baseline_names=("naive",))["model"]["windows"] == 79


def test_scaler_round_trip_through_the_model_file(trained):
    folder, run, data = trained
    _, meta = load_model_file(run / "model.safetensors")
    assert meta["series"]["columns"] == ["load"] and meta["series"]["time_column"] == "date"
    values = pd.read_csv(data)["load"].to_numpy()[:420, None]
    expected = StandardScaler.fit(values)
    stored = StandardScaler.from_json(meta["series"]["scaler"])
    assert stored == expected and rnnkit.load(run).scaler == expected
    assert json.loads((run / "series.json").read_text())["scaler"] == expected.to_json()


def test_forecast_input_errors(trained, capsys):
    folder, run, data = trained
    forecaster = rnnkit.load(run)
    history = pd.read_csv(data).iloc[:100]
    with pytest.raises(ValueError, match=r"trained on columns \['load'\], the input has \['power'\]"):
        forecaster.predict(history.rename(columns={"load": "power"}))
    with pytest.raises(ValueError, match="input has 20 rows, the model reads a lookback of 48 rows"):
        forecaster.predict(history.iloc[:20])
    with pytest.raises(ValueError, match="forecasts up to 12 steps"):
        forecaster.predict(history, horizon=13)
    arrays = forecaster.predict(history["load"].to_numpy())  # a plain array: steps instead of timestamps
    assert list(arrays.columns[:2]) == ["date", "load"] and arrays["date"].iloc[0] == 100.0
    bad = folder / "bad.csv"
    history.rename(columns={"load": "power"}).to_csv(bad, index=False)
    capsys.readouterr()
    assert main(["predict", str(run), "--input", str(bad), "--output", str(folder / "x.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "trained on columns ['load']" in err
