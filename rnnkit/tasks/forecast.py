"""The forecasting task: a CSV or DataFrame -> windows (lookback L, horizon P) -> `Forecaster`, vs baselines.

Data (`data` section): a CSV file with a time column and value columns (rnnkit.data.timeseries_csv: every bad
input is a one-line error, missing values are interpolated or masked, never propagated), or a named series
(rnnkit.data.timeseries_csv.NAMED: statsmodels' sunspots and co2, vega_datasets' stocks and seattle-weather).
The rows are cut chronologically (rnnkit.data.series): by row counts (`train_rows`, `valid_rows`,
`test_rows`; ETT's 12/4/4 months are 8640/2880/2880) or by fractions;
every column is z-scored with the training rows' mean and std (the scaler goes into the model file's JSON
metadata, never a pickle). Calendar features of the timestamps (`calendar`) are covariates known in advance.

Metrics, computed the same way for the models and every baseline (`error_sums`), over *all* windows of the
split (no drop_last):

    mse, mae   over windows x horizon x series on the normalised scale (the long-horizon literature's tables)
    mase       mean |y - y_hat| / s_f in the series' units, s_f = mean |y_t - y_{t-m}| over the training rows
               (m = data.season; Hyndman & Koehler 2006), averaged over the series
    smape      mean 200 |y - y_hat| / (|y| + |y_hat|) in percent (0 where both are 0)
    coverage   (loss gaussian or quantile) the fraction of targets inside the central `interval_level`
               interval (mu +- z sigma, or the model's outer quantiles); a calibrated model's is the level
    width      the interval's mean width on the normalised scale (a wide band covers easily)

Validation monitors mse (min). `rnnkit evaluate MODEL --baselines` prints one table: the model(s) beside the
naive, seasonal naive and linear (DLinear-style) baselines, and ARIMA / exponential smoothing for a single
series, on the same windows. `rnnkit predict MODEL --input history.csv` writes the next P values (and the
interval bounds) to a CSV and a PNG.

    >>> ForecastRunConfig().model.kind
    'segrnn'
"""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset, Subset
from torchmetrics import Metric

from rnnkit.baselines import forecast as baselines
from rnnkit.data.sampler import ResumableShuffleSampler
from rnnkit.data.series import SeriesSplit, SeriesWindows, StandardScaler, split_by_fraction, split_by_index
from rnnkit.data.timeseries_csv import MISSING, TimeSeriesTable, calendar_features, future_times, read_series
from rnnkit.models.forecaster import PROBABILISTIC, Forecaster, ForecasterConfig, quantile_bounds
from rnnkit.train.checkpoint import CheckpointError, load_model_file
from rnnkit.train.config import OptimConfig, TrainerConfig, from_dict, to_dict
from rnnkit.train.metrics import MeanLoss, StepOutput
from rnnkit.train.module import Task
from rnnkit.train.run import BuiltTask

__all__ = ["TASK", "SeriesDataConfig", "ForecastRunConfig", "PreparedSeries", "prepare", "ForecastErrors",
           "error_sums", "scores", "TrainedForecaster", "evaluate_forecasts", "plot_forecast", "BASELINES"]

TASK = "forecast"
BASELINES = ("naive", "seasonal_naive", "linear", "ets", "arima")


@dataclass(frozen=True)
class SeriesDataConfig:
    """The `data` section of a forecasting preset.

    Args:
        path: a CSV file, or a named series (rnnkit.data.timeseries_csv.NAMED, e.g. "statsmodels:sunspots",
            "vega_datasets:stocks").
        time_column: the timestamps (or numbers, e.g. years); "" = a DataFrame's index.
        columns: the series to forecast; empty = every column but the time column.
        calendar: calendar covariates known in advance: among hour, dayofweek, dayofyear, month.
        missing: "interpolate", "mask" (filled inputs; filled targets left out of loss and metrics) or
            "error".
        lookback, horizon: L past steps read, P future steps forecast.
        train_rows, valid_rows, test_rows: the chronological cut by rows (test_rows 0 = the rest); used when
            train_rows > 0, else train_fraction / valid_fraction (the test split is the rest).
        season: m, the seasonal period in steps for seasonal naive and MASE (0 = from the spacing: hourly 24,
            daily 7, weekly 52, monthly 12, else 1).
        batch_size: windows per batch.
        interval_level: the central probability of the prediction intervals (loss gaussian or quantile;
            quantile: model.quantiles must hold (1 -+ level) / 2).
    """

    path: str = ""
    time_column: str = "date"
    columns: tuple[str, ...] = ()
    calendar: tuple[str, ...] = ()
    missing: str = "interpolate"
    lookback: int = 96
    horizon: int = 96
    train_rows: int = 0
    valid_rows: int = 0
    test_rows: int = 0
    train_fraction: float = 0.7
    valid_fraction: float = 0.1
    season: int = 0
    batch_size: int = 32
    interval_level: float = 0.9

    def __post_init__(self):
        if self.missing not in MISSING:
            raise ValueError(f"data.missing must be one of {MISSING}, got {self.missing!r}")
        for name in ("lookback", "horizon", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"data.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("train_rows", "valid_rows", "test_rows", "season"):
            if getattr(self, name) < 0:
                raise ValueError(f"data.{name} must be >= 0, got {getattr(self, name)}")
        if not 0 < self.interval_level < 1:
            raise ValueError(f"data.interval_level must lie in (0, 1), got {self.interval_level}")


@dataclass(frozen=True)
class ForecastRunConfig:
    """The whole configuration of `rnnkit train` for a forecaster (what its presets hold)."""

    task: str = TASK
    model: ForecasterConfig = field(default_factory=ForecasterConfig)
    data: SeriesDataConfig = field(default_factory=SeriesDataConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-3))
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    def __post_init__(self):
        if self.task != TASK:
            raise ValueError(f"task must be {TASK!r} for a ForecastRunConfig, got {self.task!r}")


def upgrade_config(data: dict) -> dict:
    """Forecasting configs have had one form so far."""
    return data


# ---- data: table -> scaled series -> windows ------------------------------------------------------------


def default_season(table: TimeSeriesTable) -> int:
    """The usual period of the table's spacing: hourly 24, daily 7, weekly 52, monthly 12, else 1."""
    step = table.step
    if isinstance(step, pd.DateOffset):
        return 12
    if isinstance(step, pd.Timedelta):
        return {pd.Timedelta(hours=1): 24, pd.Timedelta(days=1): 7, pd.Timedelta(days=7): 52}.get(step, 1)
    return 1


def _step_json(step) -> dict:
    if isinstance(step, pd.DateOffset):
        return {"months": int(step.months)}
    if isinstance(step, pd.Timedelta):
        return {"seconds": step.total_seconds()}
    return {"number": float(step)}


def _step_from_json(data: dict):
    if "months" in data:
        return pd.DateOffset(months=data["months"])
    if "seconds" in data:
        return pd.Timedelta(seconds=data["seconds"])
    return float(data["number"])


@dataclass
class PreparedSeries:
    """A table made ready for the model: scaled series (N, F + C), the split, windows, scales of MASE."""

    table: TimeSeriesTable
    scaled: torch.Tensor  # (N, F + C): targets then calendar covariates, z-scored
    observed: torch.Tensor  # (N, F) bool
    split: SeriesSplit
    scaler: StandardScaler
    season: int
    mase_scale: tuple[float, ...]  # (F,) in the series' units
    windows: dict[str, SeriesWindows]

    @property
    def num_targets(self) -> int:
        return len(self.table.columns)


def _split(data: SeriesDataConfig, num_rows: int) -> SeriesSplit:
    if data.train_rows:
        valid_end = data.train_rows + data.valid_rows
        test_end = valid_end + data.test_rows if data.test_rows else num_rows
        if test_end > num_rows:
            raise ValueError(f"data: train_rows + valid_rows + test_rows = {test_end} but the series has "
                             f"{num_rows} rows")
        return split_by_index(num_rows, data.train_rows, valid_end, test_end)
    return split_by_fraction(num_rows, data.train_fraction, data.valid_fraction)


def _check_lengths(data: SeriesDataConfig, split: SeriesSplit, num_rows: int) -> None:
    """Enough rows for one window of every split, or an error with the numbers."""
    need = data.lookback + data.horizon
    if split.train_end < need:
        raise ValueError(
            f"data: lookback {data.lookback} + horizon {data.horizon} = {need} rows are needed for one "
            f"training "
            f"window, but the training split has {split.train_end} rows (of {num_rows}); lower "
            f"data.lookback or "
            "data.horizon, or give more data"
        )
    for name, (start, end) in split.bounds().items():
        if name != "train" and 0 < end - start < data.horizon:
            raise ValueError(f"data: the {name} split has {end - start} rows, fewer than horizon "
                             f"{data.horizon}")
    if split.valid_end - split.train_end < data.horizon:
        raise ValueError(f"data: the validation split has {split.valid_end - split.train_end} rows; it "
                         f"needs at "
                         f"least horizon {data.horizon} (raise data.valid_rows or data.valid_fraction)")


def prepare(data: SeriesDataConfig, scaler: StandardScaler | None = None,
            columns: tuple[str, ...] | None = None, source=None) -> PreparedSeries:
    """Read `data.path` (or `source`, a DataFrame or path), split, scale (a given scaler, else fitted on the
    training rows) and cut into windows; `columns` (a model's) must be the table's columns."""
    table = read_series(data.path if source is None else source, data.time_column or None,
                        data.columns or columns or None, data.missing)
    if columns is not None and tuple(table.columns) != tuple(columns):
        raise ValueError(f"the model was trained on columns {list(columns)}, the data has "
                         f"{list(table.columns)}")
    values = table.values
    if data.calendar:
        values = np.concatenate([values, calendar_features(table.times, data.calendar)], axis=1)
    split = _split(data, len(values))
    _check_lengths(data, split, len(values))
    series = torch.as_tensor(values)  # (N, F + C) float64
    scaler = StandardScaler.fit(series[: split.train_end]) if scaler is None else scaler
    if len(scaler.mean) != series.shape[1]:
        raise ValueError(f"the scaler holds {len(scaler.mean)} columns, the data {series.shape[1]}")
    scaled = scaler.transform(series).float()  # (N, F + C)
    F = len(table.columns)
    season = data.season or default_season(table)
    train = table.values[: split.train_end]  # (n, F)
    lag = season if season < len(train) else 1
    mase_scale = np.abs(train[lag:] - train[:-lag]).mean(axis=0)  # (F,)
    mase_scale = tuple(float(s) if s > 0 else 1.0 for s in mase_scale)
    targets, covariates = list(range(F)), list(range(F, series.shape[1]))
    windows = {name: SeriesWindows(scaled, data.lookback, data.horizon, targets, covariates, start, end)
               for name, (start, end) in split.bounds().items() if end - start >= data.horizon}
    observed = torch.as_tensor(table.observed)
    return PreparedSeries(table, scaled, observed, split, scaler, season, mase_scale, windows)


class MaskedWindows(Dataset):
    """SeriesWindows plus "future_mask" (horizon, F): 1 where the target was observed, 0 where filled."""

    def __init__(self, windows: SeriesWindows, observed: torch.Tensor):
        self.windows, self.observed = windows, observed

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> dict:
        window = self.windows[i]
        t = self.windows.first + i
        window["future_mask"] = self.observed[t : t + self.windows.horizon].float()  # (horizon, F)
        return window


def window_arrays(windows: SeriesWindows, observed: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """All windows at once: past (W, L, F), future (W, P, F), mask (W, P, F), covariates, starts (W,)."""
    t = windows.first + torch.arange(len(windows))  # (W,) first forecast rows
    past_rows = t[:, None] - windows.context + torch.arange(windows.context)  # (W, L)
    future_rows = t[:, None] + torch.arange(windows.horizon)  # (W, P)
    s, targets, covs = windows.series, windows.targets, windows.covariates
    out = {"past_target": s[past_rows][..., targets], "future_target": s[future_rows][..., targets],
           "starts": t}
    if covs:
        out["past_covariates"] = s[past_rows][..., covs]
        out["future_covariates"] = s[future_rows][..., covs]
    mask = torch.ones_like(out["future_target"]) if observed is None else observed[future_rows].float()
    out["future_mask"] = mask
    return out


# ---- metrics --------------------------------------------------------------------------------------------


def error_sums(mean: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
               bounds: tuple[torch.Tensor, torch.Tensor] | None, scaler_mean: torch.Tensor,
               scaler_std: torch.Tensor, mase_scale: torch.Tensor) -> dict[str, torch.Tensor]:
    """Sums over (..., F) forecasts on the normalised scale; `scores` divides them (module docstring).

    Args:
        bounds: (lower, upper) (..., F) of the prediction intervals, or None.
    Returns:
        {n, se, ae, smape: scalars; n_f, ase_f: (F,) per series; covered, width: scalars (0 without
        bounds)}.
    """
    mean, target, mask = mean.double(), target.double(), mask.double()
    err = (mean - target) * mask  # (..., F)
    y, y_hat = target * scaler_std + scaler_mean, mean * scaler_std + scaler_mean  # the series' units
    abs_err = (y - y_hat).abs() * mask
    denom = y.abs() + y_hat.abs()
    smape = torch.where(denom > 0, 200.0 * abs_err / denom.clamp_min(1e-300), torch.zeros_like(denom))
    dims = tuple(range(mean.dim() - 1))
    sums = {"n": mask.sum(), "se": (err**2).sum(), "ae": err.abs().sum(), "smape": smape.sum(),
            "n_f": mask.sum(dim=dims), "ase_f": (abs_err / mase_scale).sum(dim=dims)}
    covered = width = torch.zeros((), dtype=torch.float64)
    if bounds is not None:
        lower, upper = (b.double() for b in bounds)
        covered = (((lower <= target) & (target <= upper)).double() * mask).sum()
        width = ((upper - lower) * mask).sum()
    sums["covered"], sums["width"] = covered, width
    return sums


def scores(sums: dict[str, torch.Tensor], probabilistic: bool) -> dict[str, float]:
    """{mse, mae, mase, smape (, coverage, width)} from `error_sums`."""
    n = float(sums["n"])
    per_series = sums["ase_f"] / sums["n_f"].clamp_min(1.0)  # (F,)
    out = {"mse": float(sums["se"]) / n, "mae": float(sums["ae"]) / n, "mase": float(per_series.mean()),
           "smape": float(sums["smape"]) / n}
    if probabilistic:
        out["coverage"] = float(sums["covered"]) / n
        out["width"] = float(sums["width"]) / n
    return out


class ForecastErrors(Metric):
    """Validation metrics of the task on StepOutput(outputs (B, P, F, 3) = [mean, lower, upper], targets
    (B, P, F, 2) = [target, mask]): {mse, mae, mase, smape (, coverage, width)}, reduced across processes."""

    full_state_update = False

    def __init__(self, scaler: StandardScaler, num_targets: int, mase_scale, probabilistic: bool, **kwargs):
        super().__init__(**kwargs)
        self.register_buffer("scaler_mean", torch.tensor(scaler.mean[:num_targets], dtype=torch.float64))
        self.register_buffer("scaler_std", torch.tensor(scaler.std[:num_targets], dtype=torch.float64))
        self.register_buffer("mase_scale", torch.tensor(mase_scale, dtype=torch.float64))
        self.probabilistic = probabilistic
        for name in ("n", "se", "ae", "smape", "covered", "width"):
            self.add_state(name, torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        for name in ("n_f", "ase_f"):
            self.add_state(name, torch.zeros(num_targets, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, step: StepOutput) -> None:
        out, tgt = step.outputs.detach(), step.targets
        bounds = (out[..., 1], out[..., 2]) if self.probabilistic else None
        sums = error_sums(out[..., 0], tgt[..., 0], tgt[..., 1], bounds, self.scaler_mean, self.scaler_std,
                          self.mase_scale)
        for name, value in sums.items():
            setattr(self, name, getattr(self, name) + value.to(self.n.device))

    def compute(self) -> dict[str, float]:
        names = ("n", "se", "ae", "smape", "covered", "width", "n_f", "ase_f")
        return scores({k: getattr(self, k) for k in names}, self.probabilistic)


UNITS = {"loss": "training loss", "mse": "MSE (normalised)", "mae": "MAE (normalised)", "mase": "MASE",
         "smape": "sMAPE (%)", "coverage": "interval coverage", "width": "interval width (normalised)"}


# ---- the task -------------------------------------------------------------------------------------------


def _run_model(model: Forecaster, batch: dict):
    return model(batch["past_target"], batch.get("future_covariates"), batch.get("past_covariates"),
                 batch["future_target"], batch.get("future_mask"))


def forecast_loss(model: Forecaster, batch: dict, carry, level: float = 0.9) -> StepOutput:
    """One batch of windows -> StepOutput(loss, None, observed targets, [mean, lower, upper], [target, mask]);
    lower = upper = mean for a point forecaster."""
    out = _run_model(model, batch)
    target = batch["future_target"]  # (B, P, F)
    mask = batch.get("future_mask", torch.ones_like(target))  # (B, P, F)
    probabilistic = model.config.loss in PROBABILISTIC
    lower, upper = model.interval(out, level) if probabilistic else (out.mean, out.mean)
    outputs = torch.stack([out.mean, lower, upper], dim=-1)  # (B, P, F, 3)
    return StepOutput(out.loss, None, max(int(mask.sum()), 1), outputs, torch.stack([target, mask], dim=-1))


def _filled_model_config(config: ForecastRunConfig, prepared: PreparedSeries) -> ForecasterConfig:
    data, model = config.data, config.model
    sizes = {"lookback": data.lookback, "horizon": data.horizon, "num_targets": prepared.num_targets,
             "num_covariates": len(data.calendar)}
    for name, value in sizes.items():
        if getattr(model, name) not in (0, value):
            raise ValueError(f"model.{name} is {getattr(model, name)} but the data gives {value} (set it "
                             f"to 0 "
                             "to take it from the data)")
    if model.loss == "quantile":
        quantile_bounds(model.quantiles, data.interval_level)  # the interval must be among the quantiles
    return dataclasses.replace(model, **sizes)


def series_metadata(config: ForecastRunConfig, prepared: PreparedSeries) -> dict:
    """What a model file needs to forecast from a new history: columns, time, scaler, season, MASE scales."""
    table = prepared.table
    return {"columns": list(table.columns), "time_column": table.time_column,
            "time_kind": "datetime" if isinstance(table.times, pd.DatetimeIndex) else "number",
            "step": _step_json(table.step), "scaler": prepared.scaler.to_json(), "season": prepared.season,
            "mase_scale": list(prepared.mase_scale)}


def forecast_task(config: ForecastRunConfig) -> tuple[Task, ForecastRunConfig, PreparedSeries]:
    """The Task (model, windows, metrics) and the config with the model's sizes filled in from the data."""
    prepared = prepare(config.data)
    config = dataclasses.replace(config, model=_filled_model_config(config, prepared))
    data, masked = config.data, config.data.missing == "mask"
    datasets = {name: MaskedWindows(w, prepared.observed) if masked else w
                for name, w in prepared.windows.items()}

    def train_batches(rank: int, world_size: int, epoch: int) -> DataLoader:
        train = datasets["train"]
        sampler = ResumableShuffleSampler(len(train), config.trainer.seed, rank, world_size, epoch)
        return DataLoader(train, batch_size=data.batch_size, sampler=sampler)

    def valid_batches(rank: int, world_size: int, epoch: int) -> DataLoader:
        valid = datasets["valid"]
        return DataLoader(Subset(valid, range(rank, len(valid), world_size)), batch_size=data.batch_size)

    probabilistic = config.model.loss in PROBABILISTIC
    task = Task(
        name=TASK,
        model=Forecaster(config.model),
        loss=functools.partial(forecast_loss, level=data.interval_level),
        train_batches=train_batches,
        valid_batches=valid_batches,
        metrics=lambda: {"loss": MeanLoss(), "errors": ForecastErrors(
            prepared.scaler, prepared.num_targets, prepared.mase_scale, probabilistic)},
        monitor="mse",
        units=UNITS,
        metadata={"config": to_dict(config), "series": series_metadata(config, prepared)},
    )
    return task, config, prepared


def build(config: ForecastRunConfig, resume_dir: Path | None) -> BuiltTask:
    """The engine's build step; series.json (columns, scaler, ...) is kept in the run directory (a resume
    re-reads the same data and refits the same scaler)."""
    task, config, _ = forecast_task(config)
    return BuiltTask(task, config, {"series.json": json.dumps(task.metadata["series"], indent=1)})


# ---- a trained forecaster -------------------------------------------------------------------------------


def _as_history(history, columns: list[str], time_column: str) -> pd.DataFrame:
    """A forecast input as a DataFrame with the model's columns, or an error naming both column sets."""
    if isinstance(history, pd.DataFrame):
        given = [c for c in history.columns if c != time_column]
        if sorted(map(str, given)) != sorted(columns):
            raise ValueError(f"the model was trained on columns {columns}, the input has {given}"
                             + (f" (besides the time column {time_column!r})" if time_column else ""))
        return history
    values = np.asarray(history, dtype=np.float64)
    values = values[:, None] if values.ndim == 1 else values
    if values.ndim != 2 or values.shape[1] != len(columns):
        raise ValueError(f"the model was trained on {len(columns)} columns {columns}, the input array has "
                         f"shape "
                         f"{values.shape}")
    frame = pd.DataFrame(values, columns=columns)
    frame.insert(0, time_column or "step", np.arange(len(values), dtype=np.float64))
    return frame


@dataclass
class TrainedForecaster:
    """A trained forecaster, ready to use (`rnnkit.load(path)` returns one for a forecasting model file).

        >>> forecaster = rnnkit.load("runs/ett_h1_segrnn")                       # doctest: +SKIP
        >>> forecaster.predict(pd.read_csv("history.csv"))                       # doctest: +SKIP
        >>> forecaster.evaluate("../shared/data/ett/ETTh1.csv")["model"]["mse"]   # doctest: +SKIP
    """

    model: Forecaster
    config: ForecastRunConfig
    metadata: dict
    path: Path

    @classmethod
    def from_file(cls, path: str | Path) -> TrainedForecaster:
        state_dict, meta = load_model_file(path, task=TASK)
        try:
            config = from_dict(ForecastRunConfig, upgrade_config(meta["config"]))
            meta["series"]["scaler"]  # noqa: B018 -- present, or the file is incomplete
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{path}: forecasting metadata is incomplete: {e!r}") from e
        model = Forecaster(config.model)
        try:
            model.load_state_dict(state_dict)
        except RuntimeError as e:
            raise CheckpointError(f"{path}: weights do not fit the model its metadata describes: {e}") from e
        return cls(model.eval(), config, meta, Path(path))

    @property
    def columns(self) -> list[str]:
        return list(self.metadata["series"]["columns"])

    @property
    def scaler(self) -> StandardScaler:
        return StandardScaler.from_json(self.metadata["series"]["scaler"])

    @property
    def probabilistic(self) -> bool:
        return self.config.model.loss in PROBABILISTIC

    @torch.no_grad()
    def forecast_windows(self, arrays: dict[str, torch.Tensor], level: float | None = None,
                         batch_size: int = 256):
        """Normalised forecasts of window arrays -> (mean (W, P, F), (lower, upper) (W, P, F) of the central
        `level` interval (default: the training config's) or None for a point forecaster)."""
        level = self.config.data.interval_level if level is None else level
        means, lowers, uppers = [], [], []
        for i in range(0, len(arrays["past_target"]), batch_size):
            part = {k: v[i : i + batch_size] for k, v in arrays.items() if k != "starts"}
            out = self.model(part["past_target"], part.get("future_covariates"), part.get("past_covariates"))
            means.append(out.mean)
            if self.probabilistic:
                lower, upper = self.model.interval(out, level)
                lowers.append(lower)
                uppers.append(upper)
        return torch.cat(means), ((torch.cat(lowers), torch.cat(uppers)) if self.probabilistic else None)

    def predict(self, history, horizon: int | None = None, level: float | None = None) -> pd.DataFrame:
        """The next `horizon` values (default and at most the model's) after the history's last row.

        Args:
            history: a DataFrame with the training time column and value columns (as the training CSV), or
                an array (N, F) / (N,) of values; its last `lookback` rows are read.
            level: the central interval probability (default: the training config's interval_level).
        Returns:
            a DataFrame: the time column (the future timestamps, or steps for an array), the forecast of each
            column, and `<column>_lower` / `<column>_upper` when the model is probabilistic.
        """
        data, series = self.config.data, self.metadata["series"]
        horizon = data.horizon if horizon is None else horizon
        if not 1 <= horizon <= data.horizon:
            raise ValueError(f"this model forecasts up to {data.horizon} steps (its horizon), got horizon "
                             f"{horizon}")
        level = data.interval_level if level is None else level
        time_column = series["time_column"]
        frame = _as_history(history, self.columns, time_column)
        table = read_series(frame, time_column or None, self.columns, "interpolate")
        if len(table) < data.lookback:
            raise ValueError(f"the input has {len(table)} rows, the model reads a lookback of "
                             f"{data.lookback} rows")
        trained_step = _step_from_json(series["step"])
        if isinstance(table.times, pd.DatetimeIndex) and table.step != trained_step:
            raise ValueError(f"the model was trained on a time step of {trained_step}, the input's step is "
                             f"{table.step}")
        times = future_times(table.times, table.step, horizon)
        values = table.values[-data.lookback :]  # (L, F)
        scaler, F = self.scaler, len(self.columns)
        past = scaler.transform(torch.as_tensor(values), list(range(F))).float()[None]  # (1, L, F)
        cov = {}
        if data.calendar:
            ahead = future_times(table.times, table.step, data.horizon)
            all_times = table.times[-data.lookback :].append(ahead)
            feats = torch.as_tensor(calendar_features(all_times, data.calendar))  # (L + P, C)
            feats = scaler.transform(feats, list(range(F, F + len(data.calendar)))).float()
            cov = {"past_covariates": feats[None, : data.lookback],
                   "future_covariates": feats[None, data.lookback :]}
        with torch.no_grad():
            out = self.model(past, cov.get("future_covariates"), cov.get("past_covariates"))

        def units(x: torch.Tensor) -> np.ndarray:  # (1, P, F) normalised -> (horizon, F) in the series' units
            return scaler.inverse_transform(x[0, :horizon].double(), list(range(F))).numpy()

        mean = units(out.mean)
        result = pd.DataFrame({time_column or "step": times})
        for j, column in enumerate(self.columns):
            result[column] = mean[:, j]
        if self.probabilistic:
            lower, upper = (units(b) for b in self.model.interval(out, level))
            for j, column in enumerate(self.columns):
                result[f"{column}_lower"] = lower[:, j]
                result[f"{column}_upper"] = upper[:, j]
        return result

    def evaluate(self, data_path=None, split: str = "test",
                 baseline_names: tuple[str, ...] = BASELINES) -> dict:
        """{row name: {mse, mae, mase, smape (, coverage), windows}} of this model ("model") and the baselines
        on the windows of `split` of `data_path` (default: the training data), as `rnnkit evaluate`."""
        return evaluate_forecasts([self], data_path, split, baseline_names, names=["model"])


def evaluate_forecasts(models: list[TrainedForecaster], data_path=None, split: str = "test",
                       baseline_names: tuple[str, ...] = (), names: list[str] | None = None) -> dict:
    """One table over the same windows: each model and each baseline -> its scores (see module docstring).

    The data is read as in the first model's training (its split, lookback, horizon), scaled with its scaler;
    every model must share its lookback, horizon and columns.
    """
    first = models[0]
    data = first.config.data
    data = data if data_path is None else dataclasses.replace(data, path=str(data_path))
    for other in models[1:]:
        o = other.config.data
        if (o.lookback, o.horizon, other.columns) != (data.lookback, data.horizon, first.columns):
            raise ValueError(f"models compared in one table must share lookback, horizon and columns: "
                             f"{first.path} "
                             f"has {data.lookback}/{data.horizon}/{first.columns}, {other.path} has "
                             f"{o.lookback}/{o.horizon}/{other.columns}")
    prepared = prepare(data, first.scaler, tuple(first.columns))
    if split not in prepared.windows:
        raise ValueError(f"the {split} split of {data.path} holds no window of horizon {data.horizon}")
    windows = prepared.windows[split]
    arrays = window_arrays(windows, prepared.observed)
    F, level = prepared.num_targets, data.interval_level
    stats = (torch.tensor(prepared.scaler.mean[:F], dtype=torch.float64),
             torch.tensor(prepared.scaler.std[:F], dtype=torch.float64),
             torch.tensor(prepared.mase_scale, dtype=torch.float64))
    target, mask = arrays["future_target"], arrays["future_mask"]

    def row(mean, bounds=None) -> dict:
        sums = error_sums(torch.as_tensor(mean), target, mask, bounds, *stats)
        return {**scores(sums, bounds is not None), "windows": len(windows)}

    table = {}
    names = names or [_row_name(m) for m in models]
    for name, model in zip(names, models, strict=True):
        if model.config.data.calendar != data.calendar:
            raise ValueError(f"{model.path} reads calendar covariates {model.config.data.calendar}, the "
                             f"first "
                             f"model {data.calendar}")
        table[name] = row(*model.forecast_windows(arrays, level))
    past = arrays["past_target"].double().numpy()  # (W, L, F)
    P = data.horizon
    for name in baseline_names:
        if name == "naive":
            table[name] = row(baselines.naive(past, P))
        elif name == "seasonal_naive" and 1 < prepared.season <= data.lookback:
            forecasts = baselines.seasonal_naive(past, P, prepared.season)
            table[f"seasonal_naive (m={prepared.season})"] = row(forecasts)
        elif name == "linear":
            train = window_arrays(prepared.windows["train"])
            fitted = baselines.LinearBaseline().fit(train["past_target"].double().numpy(),
                                                    train["future_target"].double().numpy())
            table["linear (DLinear-style)"] = row(fitted.predict(past))
        elif name in ("ets", "arima") and F == 1:
            series = prepared.scaled[:, 0].double().numpy()  # (N,) the normalised series
            starts = arrays["starts"].tolist()
            if name == "arima":
                forecasts, order = baselines.arima_forecasts(series, starts, P, prepared.split.train_end)
                table[f"ARIMA{order}"] = row(forecasts[..., None])
            else:
                table["exponential smoothing"] = row(baselines.ets_forecasts(series, starts, P,
                                                                              prepared.season)[..., None])
    return table


def _row_name(model: TrainedForecaster) -> str:
    path = model.path
    return path.parent.name if path.name == "model.safetensors" else path.stem


def format_table(table: dict, title: str) -> str:
    """The evaluate table: one row per model or baseline, its metrics in columns."""
    keys = ["mse", "mae", "mase", "smape", "coverage", "width"]
    keys = [k for k in keys if any(k in r for r in table.values())]
    width = max(len(n) for n in table) + 2
    lines = [title, f"{'':<{width}}" + "".join(f"{k:>10}" for k in keys) + f"{'windows':>10}"]
    for name, r in table.items():
        cells = "".join(f"{r[k]:>10.4f}" if k in r else f"{'':>10}" for k in keys)
        lines.append(f"{name:<{width}}{cells}{r['windows']:>10d}")
    return "\n".join(lines)


def plot_forecast(history: pd.DataFrame, forecast: pd.DataFrame, columns: list[str], time_column: str,
                  path: str | Path, context: int) -> None:
    """The last `context` rows of history, the forecast and its interval band, one panel per series (<= 8)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = columns[:8]
    fig, axes = plt.subplots(len(shown), 1, figsize=(9, 2.4 * len(shown)), squeeze=False)
    past = history.iloc[-context:]
    past_t = past[time_column] if time_column in past else pd.Series(np.arange(len(past)), dtype=float)
    if time_column in past and not pd.api.types.is_numeric_dtype(past_t):
        past_t = pd.to_datetime(past_t)
    for ax, column in zip(axes[:, 0], shown, strict=False):
        ax.plot(past_t, past[column], color="black", linewidth=1, label="history")
        joined_t = [past_t.iloc[-1], *forecast.iloc[:, 0]]  # the forecast line starts at the last value
        joined = [past[column].iloc[-1], *forecast[column]]
        ax.plot(joined_t, joined, color="tab:blue", linewidth=1.5, label="forecast")
        if f"{column}_lower" in forecast:
            ax.fill_between(forecast.iloc[:, 0], forecast[f"{column}_lower"], forecast[f"{column}_upper"],
                            color="tab:blue", alpha=0.25, label="interval")
        ax.set_ylabel(column)
    axes[0, 0].legend(loc="upper left")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ---- the command line -----------------------------------------------------------------------------------

TRAIN_FLAGS = (
    ("--kind", "model.kind", str, "direct, segrnn or seq2seq"),
    ("--lookback", "data.lookback", int, "past steps each forecast reads (L)"),
    ("--horizon", "data.horizon", int, "future steps forecast at once (P)"),
    ("--hidden-size", "model.encoder.hidden_size", int, "width of the recurrent layer (H; segrnn: d)"),
    ("--batch-size", "data.batch_size", int, "windows per batch"),
    ("--loss", "model.loss", str, "mse, mae, or gaussian / quantile (prediction intervals)"),
)


def add_evaluate_arguments(parser) -> None:
    parser.add_argument("--data", metavar="PATH", default=None,
                        help="CSV (or statsmodels:NAME) read as in training (default: the training data)")
    parser.add_argument("--split", choices=["test", "valid", "train"], default="test",
                        help="which chronological split's windows (default: test, all of them)")
    parser.add_argument("--baselines", action="store_true",
                        help="add naive, seasonal naive, linear (DLinear-style) and, for one series, ARIMA "
                        "and exponential smoothing on the same windows")
    parser.add_argument("--compare", nargs="+", metavar="MODEL", default=[],
                        help="more model files / run directories (same lookback, horizon, columns) in the "
                             "table")


def evaluate_command(args) -> int:
    """`rnnkit evaluate MODEL`: one table of the model(s) and baselines on stdout (JSON with --json)."""
    from rnnkit.tasks import resolve_model_path

    models = [TrainedForecaster.from_file(args.model)]
    models += [TrainedForecaster.from_file(resolve_model_path(p)) for p in args.compare]
    table = evaluate_forecasts(models, args.data, args.split, BASELINES if args.baselines else ())
    if args.json:
        print(json.dumps(table))
        return 0
    data = models[0].config.data
    title = (f"{args.data or data.path}, {args.split} split: lookback {data.lookback}, horizon "
             f"{data.horizon}; "
             "mse/mae on the normalised scale, mase/smape in the series' units")
    print(format_table(table, title))
    return 0


def add_predict_arguments(parser) -> None:
    parser.add_argument("--input", required=True, metavar="CSV",
                        help="the history: a CSV with the training time and value columns (its last lookback "
                        "rows are read)")
    parser.add_argument("--horizon", type=int, default=None, help="steps to forecast (default: the model's)")
    parser.add_argument("--output", default="forecast.csv", metavar="CSV",
                        help="where the forecast goes (default: forecast.csv); the plot goes beside it as "
                             ".png")
    parser.add_argument("--level", type=float, default=None,
                        help="central probability of the intervals (default: the model's, e.g. 0.9)")


def predict_command(args) -> int:
    """`rnnkit predict MODEL --input history.csv`: forecast CSV and PNG (history, forecast, band)."""
    forecaster = TrainedForecaster.from_file(args.model)
    path = Path(args.input)
    if not path.is_file():
        raise FileNotFoundError(f"no such input file: {path}")
    history = pd.read_csv(path)
    forecast = forecaster.predict(history, args.horizon, args.level)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    forecast.to_csv(output, index=False)
    plot = output.with_suffix(".png")
    time_column = forecaster.metadata["series"]["time_column"]
    plot_forecast(history, forecast, forecaster.columns, time_column, plot,
                  context=max(forecaster.config.data.lookback, 2 * len(forecast)))
    print(f"forecast of {len(forecast)} steps: {output} (plot {plot})")
    print(forecast.head(min(5, len(forecast))).to_string(index=False))
    return 0


def _spec():
    from rnnkit.tasks import TaskSpec

    return TaskSpec(
        name=TASK,
        summary="a time-series forecaster (direct, SegRNN or seq2seq) from a CSV: lookback -> horizon, "
        "against naive / linear / ARIMA baselines",
        config_class=ForecastRunConfig,
        build=build,
        upgrade_config=upgrade_config,
        train_flags=TRAIN_FLAGS,
        add_evaluate_arguments=add_evaluate_arguments,
        evaluate=evaluate_command,
        add_predict_arguments=add_predict_arguments,
        predict=predict_command,
        load=TrainedForecaster.from_file,
    )


SPEC = _spec()
