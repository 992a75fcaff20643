"""Time series from a CSV file or a pandas DataFrame: a time column and value columns, checked on entry.

`read_series(source, time_column, value_columns)` returns a `TimeSeriesTable`: the values (N, F) as float64,
the column names, the timestamps and their regular step. Everything that would make a forecast silently
wrong is refused with a one-line message naming what was expected and what was given:

    the time column missing or unparsable      duplicated or unsorted timestamps      irregular spacing
    a value column that is not numeric          a series with no value at all (all NaN)

Missing values are handled explicitly, never propagated (statsmodels' weekly CO2 series has 59 gaps):

    missing="interpolate"  linear in time between the neighbours; the ends take the nearest observed value
    missing="mask"         the same filled values as inputs, and `observed` (N, F) marks the real ones, so a
                           task can leave the filled targets out of its loss and metrics
    missing="error"        a ValueError naming the first gap

The time column may hold timestamps (parsed by pandas) or numbers (e.g. years, 1700.0, 1701.0, ...); a
DataFrame may carry its timestamps as its index (time_column=None). `calendar_features(times)` derives the
covariates known in advance from the timestamps (hour of day, day of week, day of year, month), each scaled
to [-0.5, 0.5] as in Informer's time features, and `future_times(times, step, horizon)` the timestamps to
forecast.

    >>> import pandas as pd
    >>> frame = pd.DataFrame({"day": ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"],
    ...                       "sales": [1.0, None, 3.0, 4.0]})
    >>> table = read_series(frame, "day")
    >>> table.columns, table.values[:, 0].tolist(), table.step
    (('sales',), [1.0, 2.0, 3.0, 4.0], Timedelta('1 days 00:00:00'))
    >>> table.observed[:, 0].tolist()
    [True, False, True, True]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["MISSING", "CALENDAR", "NAMED", "STOCKS", "TimeSeriesTable", "read_series", "named_series",
           "calendar_features", "future_times"]

MISSING = ("interpolate", "mask", "error")
CALENDAR = ("hour", "dayofweek", "dayofyear", "month")
NAMED = ("statsmodels:sunspots", "statsmodels:co2",  # series that ship with installed packages
         "vega_datasets:stocks", "vega_datasets:seattle-weather")
STOCKS = ("AAPL", "AMZN", "GOOG", "IBM", "MSFT")


@dataclass(frozen=True)
class TimeSeriesTable:
    """A checked, regularly spaced series.

    Args:
        values: (N, F) float64, gaps filled (see the module docstring).
        columns: the F value column names.
        times: (N,) timestamps (pandas DatetimeIndex) or numbers (a float Index, e.g. years).
        step: the constant spacing of `times` (a Timedelta, or a number).
        observed: (N, F) bool, False where a value was missing and filled.
        time_column: the name of the time column ("" for a DataFrame's index).
    """

    values: np.ndarray
    columns: tuple[str, ...]
    times: pd.Index
    step: object
    observed: np.ndarray
    time_column: str = ""

    def __len__(self) -> int:
        return len(self.values)


def named_series(name: str) -> pd.DataFrame:
    """A series shipped with an installed package, as a DataFrame with a "date" column; read from the
    package's own files, never the network.

        statsmodels:sunspots           yearly sunspot numbers 1700-2008 (309 rows), date = the year
        statsmodels:co2                weekly Mauna Loa CO2 1958-2001 (2,284 rows, 59 gaps)
        vega_datasets:stocks           monthly closing prices 2000-01 to 2010-03 (123 month starts) of AAPL,
                                       AMZN, GOOG, IBM, MSFT, pivoted from vega's long (symbol, date, price)
                                       table to one column per ticker; GOOG is NaN before its listing in
                                       2004-08 (55 rows): choose the columns, or let `missing` handle them
        vega_datasets:seattle-weather  daily Seattle weather 2012-2015 (1,461 rows): precipitation (mm),
                                       temp_max, temp_min (deg C), wind (m/s); vega's text label `weather`
                                       (rain, sun, ...) is left out, the value columns must be numeric
    """
    if name == "statsmodels:sunspots":
        import statsmodels.api as sm

        frame = sm.datasets.sunspots.load_pandas().data
        return frame.rename(columns={"YEAR": "date"})
    if name == "statsmodels:co2":
        import statsmodels.api as sm

        frame = sm.datasets.co2.load_pandas().data
        return frame.rename_axis("date").reset_index()
    if name == "vega_datasets:stocks":
        from vega_datasets import local_data

        long = local_data.stocks()  # (560, 3): symbol, date, price
        wide = long.pivot(index="date", columns="symbol", values="price")  # (123, 5), NaN where unlisted
        return wide[list(STOCKS)].rename_axis(columns=None).reset_index()
    if name == "vega_datasets:seattle-weather":
        from vega_datasets import local_data

        return local_data.seattle_weather()[["date", "precipitation", "temp_max", "temp_min", "wind"]]
    raise ValueError(f"unknown named series {name!r}: expected one of {NAMED}")


def _read_frame(source) -> pd.DataFrame:
    if isinstance(source, str) and source.split(":")[0] in ("statsmodels", "vega_datasets"):
        return named_series(source)
    if isinstance(source, pd.DataFrame):
        return source
    if isinstance(source, pd.Series):
        return source.to_frame()
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"no such CSV file: {path}")
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: cannot read as CSV: {e}") from e


def _times(frame: pd.DataFrame, time_column: str | None) -> tuple[pd.Index, str]:
    """The timestamps, from `time_column` (or the index when None), parsed; errors name the bad row."""
    if time_column is None:
        raw, name = pd.Series(frame.index, index=frame.index), ""
        if not isinstance(frame.index, pd.DatetimeIndex) and not pd.api.types.is_numeric_dtype(frame.index):
            raise ValueError(
                f"expected a time column (time_column=...) or a DataFrame indexed by timestamps, got an "
                f"index "
                f"of dtype {frame.index.dtype}"
            )
    else:
        if time_column not in frame.columns:
            raise ValueError(f"time column {time_column!r} not found: the columns are {list(frame.columns)}")
        raw, name = frame[time_column], time_column
    where = f"time column {name!r}" if name else "the index"
    if raw.isna().any():
        row = int(np.flatnonzero(raw.isna().to_numpy())[0])
        raise ValueError(f"{where} has no timestamp at row {row}")
    if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        return pd.Index(raw.to_numpy(dtype=np.float64)), name
    if pd.api.types.is_datetime64_any_dtype(raw):
        return pd.DatetimeIndex(raw), name
    parsed = pd.to_datetime(raw, errors="coerce", format="mixed")
    if parsed.isna().any():
        row = int(np.flatnonzero(parsed.isna().to_numpy())[0])
        raise ValueError(f"{where}: cannot parse {raw.iloc[row]!r} (row {row}) as a timestamp")
    return pd.DatetimeIndex(parsed), name


def _step(times: pd.Index, where: str):
    """The constant spacing of sorted, unique `times`, or the first pair of rows that breaks it."""
    if len(times) < 2:
        raise ValueError(f"expected at least 2 time steps, got {len(times)}")
    diffs = np.diff(times.to_numpy())
    order = np.flatnonzero(diffs <= diffs.dtype.type(0))
    if len(order):
        i = int(order[0])
        kind = "duplicated timestamps" if diffs[i] == diffs.dtype.type(0) else "timestamps out of order"
        raise ValueError(
            f"{where} has {kind}: row {i + 1} ({times[i + 1]}) follows row {i} ({times[i]}); expected "
            f"strictly "
            "increasing times (sort the rows and drop duplicates first)"
        )
    values, counts = np.unique(diffs, return_counts=True)
    step = values[np.argmax(counts)]
    if len(values) > 1:
        if isinstance(times, pd.DatetimeIndex) and _calendar_monthly(times):
            return pd.DateOffset(months=1)
        i = int(np.flatnonzero(diffs != step)[0])
        show = pd.Timedelta if isinstance(times, pd.DatetimeIndex) else float
        raise ValueError(
            f"irregular spacing in {where}: expected a step of {show(step)} (the most common), got "
            f"{show(diffs[i])} between row {i} ({times[i]}) and row {i + 1} ({times[i + 1]}); resample to a "
            "regular grid (missing values may then be NaN)"
        )
    return pd.Timedelta(step) if isinstance(times, pd.DatetimeIndex) else float(step)


def _calendar_monthly(times: pd.DatetimeIndex) -> bool:
    """Month starts or month ends one month apart (unequal in days, regular in the calendar)."""
    months = times.year * 12 + times.month
    same_day = (times.day == times.day[0]).all() or times.is_month_end.all()
    return bool(same_day and (np.diff(months) == 1).all())


def _values(frame: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    out = np.empty((len(frame), len(columns)), dtype=np.float64)
    for j, column in enumerate(columns):
        if column not in frame.columns:
            raise ValueError(f"value column {column!r} not found: the columns are {list(frame.columns)}")
        raw = frame[column]
        numbers = pd.to_numeric(raw, errors="coerce")
        bad = numbers.isna() & raw.notna()
        if bad.any() or pd.api.types.is_bool_dtype(raw):
            row = int(np.flatnonzero(bad.to_numpy())[0]) if bad.any() else 0
            raise ValueError(
                f"value column {column!r} must be numeric, got {raw.iloc[row]!r} at row {row} "
                f"(dtype {raw.dtype})"
            )
        out[:, j] = numbers.to_numpy(dtype=np.float64)
    return out


def _fill(values: np.ndarray, columns: Sequence[str], missing: str) -> tuple[np.ndarray, np.ndarray]:
    """Linear interpolation over the row index (the spacing is regular); ends take the nearest value."""
    observed = np.isfinite(values)  # (N, F); inf counts as missing too
    for j, column in enumerate(columns):
        if not observed[:, j].any():
            raise ValueError(f"value column {column!r} has no values: all {len(values)} rows are missing")
    if missing == "error" and not observed.all():
        row, j = (int(v) for v in np.argwhere(~observed)[0])
        raise ValueError(
            f"value column {columns[j]!r} is missing a value at row {row} ({int((~observed).sum())} "
            f"missing in "
            "all); use missing='interpolate' or 'mask'"
        )
    filled = values.copy()
    rows = np.arange(len(values))
    for j in range(values.shape[1]):
        keep = observed[:, j]
        if not keep.all():
            filled[:, j] = np.interp(rows, rows[keep], values[keep, j])
    return filled, observed


def read_series(
    source,
    time_column: str | None = "date",
    value_columns: Sequence[str] | None = None,
    missing: str = "interpolate",
) -> TimeSeriesTable:
    """Read and check a time series (see the module docstring).

    Args:
        source: a CSV path, a pandas DataFrame or Series, or a name in NAMED.
        time_column: the column of timestamps (or numbers); None: the DataFrame's index.
        value_columns: the series to read, in this order; None: every other column.
        missing: "interpolate", "mask" or "error".
    Returns:
        a TimeSeriesTable with values (N, F) and observed (N, F).
    """
    if missing not in MISSING:
        raise ValueError(f"missing must be one of {MISSING}, got {missing!r}")
    frame = _read_frame(source)
    times, name = _times(frame, time_column)
    columns = [c for c in frame.columns if c != time_column] if value_columns is None else list(value_columns)
    if not columns:
        raise ValueError(f"expected at least one value column besides the time column, got "
                         f"{list(frame.columns)}")
    step = _step(times, f"time column {name!r}" if name else "the index")
    values, observed = _fill(_values(frame, columns), columns, missing)
    return TimeSeriesTable(values, tuple(str(c) for c in columns), times, step, observed, name)


def future_times(times: pd.Index, step, horizon: int) -> pd.Index:
    """The `horizon` timestamps after the last of `times`, `step` apart."""
    last = times[-1]
    return pd.Index([last + step * (k + 1) for k in range(horizon)])


def calendar_features(times: pd.Index, names: Sequence[str] = CALENDAR) -> np.ndarray:
    """(N, len(names)) calendar covariates in [-0.5, 0.5]: hour / 23, (day of week) / 6, (day of year - 1) /
    365, (month - 1) / 11, each minus 0.5 (Informer's time features). Numeric times (years) have none."""
    if not isinstance(times, pd.DatetimeIndex):
        times = pd.DatetimeIndex(times) if len(times) and isinstance(times[0], pd.Timestamp) else times
    if not isinstance(times, pd.DatetimeIndex):
        raise ValueError("calendar features need timestamps; the time column holds numbers")
    scale = {"hour": (times.hour, 23.0), "dayofweek": (times.day_of_week, 6.0),
             "dayofyear": (times.day_of_year - 1, 365.0), "month": (times.month - 1, 11.0)}
    unknown = [n for n in names if n not in scale]
    if unknown:
        raise ValueError(f"calendar features must be among {CALENDAR}, got {unknown}")
    return np.stack([np.asarray(scale[n][0], dtype=np.float64) / scale[n][1] - 0.5 for n in names], axis=1)
