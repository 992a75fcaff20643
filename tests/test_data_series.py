"""rnnkit.data.series: windows, chronological splits without leakage, the training-rows scaler."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from rnnkit.data.series import (
    SeriesSplit,
    SeriesWindows,
    StandardScaler,
    check_series,
    split_by_fraction,
    split_by_index,
    split_windows,
)


def random_series(n: int, f: int) -> torch.Tensor:
    return torch.randn(n, f, generator=torch.Generator().manual_seed(random.randrange(2**31))) * 3 + 5


def test_windows_hold_the_past_and_future_rows():
    x = random_series(12, 4)
    windows = SeriesWindows(x, context=3, horizon=2, targets=[2, 0], covariates=[3], start=4, end=11)
    assert len(windows) == 6  # t = 4..9
    for i in range(len(windows)):
        t, w = 4 + i, windows[i]
        assert torch.equal(w["past_target"], x[t - 3 : t][:, [2, 0]])
        assert torch.equal(w["future_target"], x[t : t + 2][:, [2, 0]])
        assert torch.equal(w["past_covariates"], x[t - 3 : t][:, [3]])
        assert torch.equal(w["future_covariates"], x[t : t + 2][:, [3]])
    with pytest.raises(IndexError):
        windows[6]
    plain = SeriesWindows(x, context=5, horizon=1, targets=[1])
    assert set(plain[0]) == {"past_target", "future_target"} and len(plain) == 12 - 5  # t = 5..11


def test_windows_batch_through_the_default_collate():
    windows = SeriesWindows(random_series(30, 3), 8, 4, targets=[0], covariates=[1, 2])
    batch = next(iter(DataLoader(windows, batch_size=5)))
    assert batch["past_target"].shape == (5, 8, 1) and batch["future_target"].shape == (5, 4, 1)
    assert batch["past_covariates"].shape == (5, 8, 2) and batch["future_covariates"].shape == (5, 4, 2)


def test_no_window_reads_a_later_split_and_a_split_forecasts_only_its_own_rows():
    n = 50
    rows = torch.arange(n, dtype=torch.float32)
    series = torch.stack([rows, rows], dim=1)  # every value is its row index: target 0, covariate 1
    split = split_by_index(n, 20, 35, 47)
    for start, end in split.bounds().values():
        windows = SeriesWindows(series, 6, 3, targets=[0], covariates=[1], start=start, end=end)
        read = torch.cat([torch.cat(list(w.values())).flatten() for w in windows])
        future = torch.cat([w["future_target"].flatten() for w in windows])
        assert read.max() < end and future.min() >= start  # the past may reach back, never forward
        # every target row of the split (from `context` on) is forecast at some horizon
        assert set(future.long().tolist()) == set(range(max(start, 6), end))


def test_ett_convention_gives_the_informer_window_counts():
    """ETTh1 12/4/4 months by index, context 96, horizon 24: Informer's 8521 / 2857 / 2857 windows."""
    train, valid, test, _ = split_windows(
        random_series(17420, 2), 96, 24, targets=[1], split=split_by_index(17420, 8640, 11520, 14400)
    )
    assert (len(train), len(valid), len(test)) == (8521, 2857, 2857)
    assert (valid.first, test.first) == (8640, 11520)


def test_split_by_fraction_and_index():
    assert split_by_fraction(100) == SeriesSplit(70, 80, 100)
    assert split_by_fraction(10, train=0.6, valid=0.2) == SeriesSplit(6, 8, 10)
    assert split_by_index(10, 5, 7).bounds() == {"train": (0, 5), "valid": (5, 7), "test": (7, 10)}


def test_scaler_is_fitted_on_the_training_rows_only():
    x = random_series(40, 3)
    split = split_by_index(40, 25, 32)
    train, _, _, scaler = split_windows(x, 4, 2, targets=[0], covariates=[2], split=split)
    expected = x[:25].double().numpy()
    np.testing.assert_allclose(scaler.mean, expected.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(scaler.std, expected.std(axis=0), rtol=1e-12)  # population std
    changed = x.clone()
    changed[25:] *= 100  # later rows do not move the statistics
    assert split_windows(changed, 4, 2, targets=[0], covariates=[2], split=split)[3] == scaler
    # the windows hold the scaled series; inverse_transform of the targets gives the series back
    w = train[3]  # t = 7
    torch.testing.assert_close(scaler.inverse_transform(w["future_target"], columns=[0]), x[7:9, [0]])
    torch.testing.assert_close(scaler.inverse_transform(w["past_covariates"], columns=[2]), x[3:7, [2]])


def test_scaler_by_hand_json_and_round_trip():
    scaler = StandardScaler.fit(torch.tensor([[1.0, 4.0, 7.0], [3.0, 4.0, 9.0]]))
    assert scaler.mean == (2.0, 4.0, 8.0) and scaler.std == (1.0, 1.0, 1.0)  # constant column: std 1
    scaler = StandardScaler.fit(np.array([[0.0], [4.0], [8.0], [12.0]]))
    assert scaler.mean == (6.0,) and scaler.std == pytest.approx((np.sqrt(20.0),))
    again = StandardScaler.from_json(json.loads(json.dumps(scaler.to_json())))
    assert again == scaler
    x = random_series(7, 3)
    fitted = StandardScaler.fit(x)
    scaled = fitted.transform(x)
    torch.testing.assert_close(scaled.mean(0), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(fitted.inverse_transform(scaled), x)
    y = torch.randn(2, 5, 2)  # (B, horizon, targets) forecasts of columns 2 and 0
    std, mean = torch.tensor([fitted.std[2], fitted.std[0]]), torch.tensor([fitted.mean[2], fitted.mean[0]])
    expected = y * std + mean
    torch.testing.assert_close(fitted.inverse_transform(y, columns=[2, 0]), expected)


def test_check_series():
    assert check_series([1, 2, 3]).shape == (3, 1) and check_series([1, 2, 3]).dtype == torch.float32
    with pytest.raises(ValueError, match="got nan at row 2, column 1"):
        check_series(np.array([[0, 0], [1, 1], [2, np.nan]]))
    with pytest.raises(ValueError, match=r"got shape \(0, 3\)"):
        check_series(torch.zeros(0, 3))
    with pytest.raises(ValueError, match="real-valued"):
        check_series(torch.zeros(3, 2, dtype=torch.bool))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(context=0), "context and horizon must be >= 1, got 0 and 2"),
        (dict(horizon=0), "context and horizon must be >= 1, got 3 and 0"),
        (dict(context=9), r"rows \[0, 10\) .* hold no window of context 9 and horizon 2"),
        (dict(start=9, end=10), r"got 10 - 2 < 9"),
        (dict(targets=[]), "at least one target column"),
        (dict(targets=[4]), r"column must be in \[0, 3\) .* got 4"),
        (dict(covariates=[0, 1]), r"both a target and a covariate .* got \[0\]"),
        (dict(end=11), r"expected 0 <= start <= end <= 10, got start 0, end 11"),
    ],
)
def test_bad_windows(kwargs, message):
    args = dict(context=3, horizon=2, targets=[0], covariates=[], start=0, end=None)
    with pytest.raises(ValueError, match=message):
        SeriesWindows(random_series(10, 3), **{**args, **kwargs})


def test_bad_splits_and_scalers():
    with pytest.raises(ValueError, match="expected 0 < train_end <= valid_end <= test_end, got 5, 4, 10"):
        split_by_index(10, 5, 4)
    with pytest.raises(ValueError, match="test_end must be <= the 10 rows of the series, got 11"):
        split_by_index(10, 5, 7, 11)
    with pytest.raises(ValueError, match="train \\+ valid <= 1, got 0.8, 0.3"):
        split_by_fraction(10, 0.8, 0.3)
    with pytest.raises(ValueError, match="the split ends at row 12, the series has 10 rows"):
        split_windows(random_series(10, 1), 2, 1, [0], split=SeriesSplit(4, 6, 12))
    with pytest.raises(ValueError, match=r"hold no window"):  # too short a series for its valid split
        split_windows(random_series(10, 1), 2, 3, [0], split=split_by_index(10, 6, 8))
    with pytest.raises(ValueError, match=r"every std > 0, got \[1.0, 0.0\]"):
        StandardScaler((0.0, 0.0), (1.0, 0.0))
    with pytest.raises(ValueError, match=r"missing \['std'\]"):
        StandardScaler.from_json({"mean": [0.0]})
    with pytest.raises(ValueError, match=r"expected 2 columns in the last dimension, got shape \(4, 3\)"):
        StandardScaler((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)).transform(torch.zeros(4, 3), columns=[0, 1])
