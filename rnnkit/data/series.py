"""Time-series windows for forecasting: chronological splits, a scaler fitted on training rows, windows.

A series is a (N, F) float array of N time steps; some columns are the targets to forecast, some (optional)
are covariates known in advance for the past and the future (calendar features, a planned load, ...). The
window whose first forecast step is t reads

    past_target       rows [t - context, t)    of the target columns      (context, n_targets)
    future_target     rows [t, t + horizon)    of the target columns      (horizon, n_targets)
    past_covariates   rows [t - context, t)    of the covariate columns   (context, n_covariates)
    future_covariates rows [t, t + horizon)    of the covariate columns   (horizon, n_covariates)

(NeuralForecast's insample_y / futr_exog, as a dict; DataLoader's default collate stacks it into (B, ...)).

Chronological splits, without leakage. The rows are cut at train_end <= valid_end <= test_end (N by
default): train [0, train_end), valid [train_end, valid_end), test [valid_end, test_end). A split [a, b)
holds every window with a <= t and t + horizon <= b (and t >= context): its forecasts cover targets of its
own rows only, and its past may reach back into earlier splits -- history known at forecast time -- but a
window never reads a row of a later split. This is the Informer / Autoformer convention: ETTh1 is cut 12/4/4
months by index, `split_by_index(N, 12 * 30 * 24, 16 * 30 * 24, 20 * 30 * 24)`, and the first validation
window's past is the last `context` training rows. `split_by_fraction` cuts at int(N * fraction).

Scaling. `StandardScaler.fit` sees the training rows [0, train_end) only (what the train windows read), per
column: (x - mean) / std with the population std (std 0 -> 1, as scikit-learn). Its statistics go into the
model file's JSON metadata (`to_json`); forecasts go back to the series' units with
`inverse_transform(y, columns=targets)`.

Example:
    >>> series = torch.arange(20.0).reshape(10, 2)          # (N=10, F=2): column 0 target, 1 covariate
    >>> split = split_by_index(10, train_end=6, valid_end=8)
    >>> train, valid, test, scaler = split_windows(series, 3, 2, [0], [1], split)
    >>> len(train), len(valid), len(test)                     # t in 3..4, t = 6, t = 8
    (2, 1, 1)
    >>> w = valid[0]
    >>> scaler.inverse_transform(w["past_target"], [0]).squeeze(-1).tolist()    # rows 3, 4, 5
    [6.0, 8.0, 10.0]
    >>> scaler.inverse_transform(w["future_target"], [0]).squeeze(-1).tolist()  # rows 6, 7
    [12.0, 14.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

__all__ = [
    "SeriesSplit",
    "StandardScaler",
    "SeriesWindows",
    "check_series",
    "split_by_fraction",
    "split_by_index",
    "split_windows",
]


def check_series(series) -> torch.Tensor:
    """The series as a (N, F) float tensor ((N,) becomes (N, 1)), or a ValueError naming a NaN's row."""
    x = torch.as_tensor(series)
    if x.dim() == 1:
        x = x[:, None]
    if x.dim() != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"expected a series (N, F) with N, F >= 1, got shape {tuple(x.shape)}")
    if x.dtype == torch.bool or x.is_complex():
        raise ValueError(f"expected a real-valued series, got dtype {x.dtype}")
    x = x if x.is_floating_point() else x.float()
    finite = torch.isfinite(x)
    if not finite.all():
        row, column = (int(v) for v in (~finite).nonzero()[0])
        raise ValueError(f"expected finite values, got {float(x[row, column])} at row {row}, column {column}")
    return x


@dataclass(frozen=True)
class SeriesSplit:
    """Rows [0, train_end) train, [train_end, valid_end) valid, [valid_end, test_end) test."""

    train_end: int
    valid_end: int
    test_end: int

    def __post_init__(self) -> None:
        if not 0 < self.train_end <= self.valid_end <= self.test_end:
            raise ValueError(
                "expected 0 < train_end <= valid_end <= test_end, got "
                f"{self.train_end}, {self.valid_end}, {self.test_end}"
            )

    def bounds(self) -> dict[str, tuple[int, int]]:
        """{"train": (0, train_end), "valid": (train_end, valid_end), "test": (valid_end, test_end)}."""
        return {
            "train": (0, self.train_end),
            "valid": (self.train_end, self.valid_end),
            "test": (self.valid_end, self.test_end),
        }


def split_by_index(
    num_rows: int, train_end: int, valid_end: int, test_end: int | None = None
) -> SeriesSplit:
    """Cut N rows at the given row indices (test_end defaults to N; rows after it are unused)."""
    test_end = num_rows if test_end is None else test_end
    if test_end > num_rows:
        raise ValueError(f"test_end must be <= the {num_rows} rows of the series, got {test_end}")
    return SeriesSplit(train_end, valid_end, test_end)


def split_by_fraction(num_rows: int, train: float = 0.7, valid: float = 0.1) -> SeriesSplit:
    """Cut N rows at int(N * train) and int(N * (train + valid)); the rest is the test split."""
    if not (0 < train < 1 and 0 <= valid and train + valid <= 1):
        raise ValueError(f"expected 0 < train < 1, valid >= 0 and train + valid <= 1, got {train}, {valid}")
    return SeriesSplit(max(int(num_rows * train), 1), int(num_rows * (train + valid)), num_rows)


@dataclass(frozen=True)
class StandardScaler:
    """Per-column (x - mean) / std, fitted on training rows; JSON-ready for the model file.

    Args:
        mean, std: one value per column of the series; every std > 0.
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "std", tuple(float(s) for s in self.std))
        if len(self.mean) != len(self.std) or not self.mean:
            raise ValueError(
                f"expected one mean and one std per column, got {len(self.mean)} and {len(self.std)}"
            )
        if not all(s > 0 for s in self.std):
            raise ValueError(f"expected every std > 0, got {list(self.std)}")

    @classmethod
    def fit(cls, rows) -> StandardScaler:
        """Mean and population std of each column of `rows` (n, F); a constant column gets std 1."""
        x = check_series(rows).double()  # (n, F), float64 so the statistics do not depend on the input dtype
        std = x.std(dim=0, unbiased=False)
        return cls(tuple(x.mean(dim=0).tolist()), tuple(torch.where(std > 0, std, 1.0).tolist()))

    def _stats(self, x: torch.Tensor, columns: Sequence[int] | None) -> tuple[torch.Tensor, torch.Tensor]:
        columns = range(len(self.mean)) if columns is None else columns
        if x.shape[-1] != len(columns):
            raise ValueError(
                f"expected {len(columns)} columns in the last dimension, got shape {tuple(x.shape)}"
            )
        bad = next((c for c in columns if not 0 <= c < len(self.mean)), None)
        if bad is not None:
            raise ValueError(f"column must be in [0, {len(self.mean)}), got {bad}")
        dtype = x.dtype if x.is_floating_point() else torch.float32
        mean = torch.tensor([self.mean[c] for c in columns], dtype=dtype, device=x.device)  # (C,)
        std = torch.tensor([self.std[c] for c in columns], dtype=dtype, device=x.device)  # (C,)
        return mean, std

    def transform(self, x, columns: Sequence[int] | None = None) -> torch.Tensor:
        """(..., C) in the series' units -> scaled; C is every column, or `columns` of them in that order."""
        x = torch.as_tensor(x)
        mean, std = self._stats(x, columns)
        return (x - mean) / std

    def inverse_transform(self, x, columns: Sequence[int] | None = None) -> torch.Tensor:
        """Scaled (..., C) -> the series' units: x * std + mean (e.g. forecasts with columns=targets)."""
        x = torch.as_tensor(x)
        mean, std = self._stats(x, columns)
        return x * std + mean

    def to_json(self) -> dict:
        """A JSON-serialisable dict; `StandardScaler.from_json` inverts it."""
        return {"mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_json(cls, data: dict) -> StandardScaler:
        missing = {"mean", "std"} - set(data)
        if missing:
            raise ValueError(f"scaler JSON needs keys mean and std, missing {sorted(missing)}")
        return cls(tuple(data["mean"]), tuple(data["std"]))


class SeriesWindows(Dataset):
    """The windows of rows [start, end) of a series: every first forecast step t with max(start, context)
    <= t and t + horizon <= end, in time order (see the module docstring for what a window holds).

    Args:
        series: (N, F) float (already scaled); checked by `check_series`.
        context, horizon: past and future lengths, >= 1.
        targets: target column indices (at least one).
        covariates: known-future covariate column indices (none by default); disjoint from `targets`.
        start, end: the rows whose targets the windows forecast; end defaults to N.
    """

    def __init__(
        self,
        series,
        context: int,
        horizon: int,
        targets: Sequence[int],
        covariates: Sequence[int] = (),
        start: int = 0,
        end: int | None = None,
    ) -> None:
        self.series = check_series(series)
        num_rows, num_columns = self.series.shape
        end = num_rows if end is None else end
        if context < 1 or horizon < 1:
            raise ValueError(f"context and horizon must be >= 1, got {context} and {horizon}")
        self.targets, self.covariates = [int(c) for c in targets], [int(c) for c in covariates]
        if not self.targets:
            raise ValueError("expected at least one target column, got none")
        for c in self.targets + self.covariates:
            if not 0 <= c < num_columns:
                raise ValueError(f"column must be in [0, {num_columns}) (the series' columns), got {c}")
        both = sorted(set(self.targets) & set(self.covariates))
        if both:
            raise ValueError(
                f"a column cannot be both a target and a covariate (its future would leak), got {both}"
            )
        if not 0 <= start <= end <= num_rows:
            raise ValueError(f"expected 0 <= start <= end <= {num_rows}, got start {start}, end {end}")
        self.context, self.horizon, self.start, self.end = context, horizon, start, end
        self.first = max(start, context)  # t of window 0
        if end - horizon < self.first:
            raise ValueError(
                f"rows [{start}, {end}) of a series of {num_rows} rows hold no window of context {context} "
                f"and horizon {horizon}: expected end - horizon >= max(start, context), "
                f"got {end} - {horizon} < {self.first}"
            )

    def __len__(self) -> int:
        return self.end - self.horizon - self.first + 1

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if not 0 <= i < len(self):
            raise IndexError(f"window index must be in [0, {len(self)}), got {i}")
        t = self.first + i
        past = self.series[t - self.context : t]  # (context, F)
        future = self.series[t : t + self.horizon]  # (horizon, F)
        window = {"past_target": past[:, self.targets], "future_target": future[:, self.targets]}
        if self.covariates:
            window["past_covariates"] = past[:, self.covariates]  # (context, n_covariates)
            window["future_covariates"] = future[:, self.covariates]  # (horizon, n_covariates)
        return window


def split_windows(
    series,
    context: int,
    horizon: int,
    targets: Sequence[int],
    covariates: Sequence[int] = (),
    split: SeriesSplit | None = None,
) -> tuple[SeriesWindows, SeriesWindows, SeriesWindows, StandardScaler]:
    """Train, valid and test windows of a scaled series, and the scaler fitted on the training rows.

    Args:
        series: (N, F) in its own units.
        split: the chronological cut; `split_by_fraction(N)` (70/10/20) by default.

    Returns:
        (train, valid, test, scaler): `SeriesWindows` of the scaled series over the split's rows.
    """
    x = check_series(series)
    split = split_by_fraction(len(x)) if split is None else split
    if split.test_end > len(x):
        raise ValueError(f"the split ends at row {split.test_end}, the series has {len(x)} rows")
    scaler = StandardScaler.fit(x[: split.train_end])
    scaled = scaler.transform(x)  # (N, F)
    windows = [
        SeriesWindows(scaled, context, horizon, targets, covariates, start, end)
        for start, end in split.bounds().values()
    ]
    return windows[0], windows[1], windows[2], scaler
