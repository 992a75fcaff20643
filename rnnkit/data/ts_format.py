"""Labelled numeric series: the UEA/UCR `.ts` format, `.npz` arrays, and per-channel scaling fitted on train.

`.ts` (sktime / the UEA & UCR archives): header lines `@key value` (`@problemName`, `@timeStamps`,
`@missing`, `@univariate`, `@dimensions`, `@equalLength`, `@seriesLength`, `@classLabel true L1 L2 ...`),
`#` comments, then `@data` and one case a line: the channels separated by `:`, each a comma-separated list
of values, then the class label. Cases may differ in length (`@equalLength false`); `?` is a missing value.

Missing values (documented handling): steps where every channel is `?` at the end of a case are padding and
are cut off; other `?` are filled by linear interpolation within the channel (the nearest value at its
edges). A channel missing entirely in a case stays NaN here and becomes the training mean (0 after
scaling) in `ChannelScaler.transform`. A literal NaN or inf (in a `.ts` or `.npz` file) is an error: it is
not the format's missing marker, and a silent guess would be a wrong answer.

`.npz`: arrays `x` (N, T, F) float, `y` (N,) labels (integers or strings), optional `lengths` (N,) (each in
[1, T]; steps past a length are ignored).

    >>> import io, tempfile, os
    >>> text = "@problemName toy\\n@dimensions 2\\n@classLabel true a b\\n@data\\n1,2,?:3,4,5:a\\n6:7:b\\n"
    >>> path = os.path.join(tempfile.mkdtemp(), "toy.ts")
    >>> _ = open(path, "w").write(text)
    >>> series, labels = read_ts(path)
    >>> series[0].tolist(), labels
    ([[1.0, 3.0], [2.0, 4.0], [2.0, 5.0]], ['a', 'b'])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["read_ts", "read_npz", "read_labelled_series", "fill_missing", "ChannelScaler"]

_HEADER_KEYS = {"problemname", "timestamps", "missing", "univariate", "dimensions", "dimension",
                "equallength", "serieslength", "classlabel", "targetlabel"}


def _header_error(path, line_no: int, message: str) -> ValueError:
    return ValueError(f"{path}, line {line_no}: malformed .ts header: {message}")


def read_ts(path: str | Path) -> tuple[list[np.ndarray], list[str]]:
    """A `.ts` file -> (series: (T_i, C) float32 arrays, missing values filled (module docstring), labels)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such .ts file: {path}")
    header: dict[str, str] = {}
    series, labels = [], []
    in_data = False
    with open(path, encoding="utf-8") as f:
        for line_no, raw in enumerate(f, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if not in_data:
                if not line.startswith("@"):
                    raise _header_error(path, line_no, f"expected an @key line or @data, got {line[:40]!r}")
                key, _, value = line[1:].partition(" ")
                key = key.lower()
                if key == "data":
                    in_data = True
                    classes = _check_header(path, line_no, header)
                    continue
                if key not in _HEADER_KEYS:
                    raise _header_error(path, line_no, f"unknown key @{key}; expected one of "
                                        f"{sorted(_HEADER_KEYS)} or @data")
                header[key] = value.strip()
                continue
            case, label = _parse_case(path, line_no, line, header)
            if classes and label not in classes:
                raise ValueError(f"{path}, line {line_no}: label {label!r} is not one of the @classLabel "
                                 f"labels {classes}")
            series.append(case)
            labels.append(label)
    if not in_data:
        raise ValueError(f"{path}: malformed .ts header: no @data line (is this a .ts file?)")
    if not series:
        raise ValueError(f"{path} holds no cases after @data")
    channels = {s.shape[1] for s in series}
    if len(channels) > 1:
        raise ValueError(f"{path}: cases have different numbers of channels: {sorted(channels)}")
    return series, labels


def _check_header(path, line_no: int, header: dict[str, str]) -> list[str]:
    """The @classLabel labels; errors for what this reader cannot read."""
    if header.get("timestamps", "false").lower() == "true":
        raise _header_error(path, line_no, "@timeStamps true is not supported (expected false)")
    label = header.get("classlabel")
    if label is None:
        raise _header_error(path, line_no, "no @classLabel line before @data (expected "
                            "'@classLabel true L1 L2 ...' for a classification set)")
    flag, *classes = label.split()
    if flag.lower() != "true" or not classes:
        raise _header_error(path, line_no,
                            f"expected '@classLabel true L1 L2 ...', got '@classLabel {label}'")
    for key in ("dimensions", "dimension", "serieslength"):
        if key in header and not header[key].isdigit():
            raise _header_error(path, line_no, f"@{key} must be a positive integer, got {header[key]!r}")
    return classes


def _parse_case(path, line_no: int, line: str, header: dict[str, str]) -> tuple[np.ndarray, str]:
    *channels, label = line.split(":")
    label = label.strip()
    if not channels or not label:
        raise ValueError(f"{path}, line {line_no}: expected channels separated by ':' and a label at the end")
    dims = header.get("dimensions", header.get("dimension"))
    if dims is not None and len(channels) != int(dims):
        raise ValueError(f"{path}, line {line_no}: expected {dims} channels (@dimensions), got "
                         f"{len(channels)}")
    values = []
    for c, text in enumerate(channels):
        if not text.strip():
            raise ValueError(f"{path}, line {line_no}: channel {c} is empty (a sequence of length zero)")
        row = []
        for v in text.split(","):
            v = v.strip()
            if v == "?":
                row.append(np.nan)
                continue
            try:
                x = float(v)
            except ValueError:
                raise ValueError(f"{path}, line {line_no}, channel {c}: expected a number or '?', got {v!r}"
                                 ) from None
            if not np.isfinite(x):
                raise ValueError(f"{path}, line {line_no}, channel {c}: expected a finite number or '?' "
                                 f"(missing), got {v!r}")
            row.append(x)
        values.append(row)
    lengths = {len(r) for r in values}
    if len(lengths) > 1:
        raise ValueError(f"{path}, line {line_no}: channels of one case must have one length, got "
                         f"{[len(r) for r in values]}")
    case = fill_missing(np.asarray(values, dtype=np.float64).T)  # (T, C)
    if case.shape[0] == 0:
        raise ValueError(f"{path}, line {line_no}: every value of the case is missing")
    return case.astype(np.float32), label


def fill_missing(x: np.ndarray) -> np.ndarray:
    """(T, C) with NaN for missing -> trailing all-missing steps cut, the rest interpolated per channel."""
    present = ~np.isnan(x).all(axis=1)  # (T,)
    end = int(np.nonzero(present)[0][-1]) + 1 if present.any() else 0
    x = x[:end].copy()
    t = np.arange(end)
    for c in range(x.shape[1]):
        missing = np.isnan(x[:, c])
        if missing.any() and not missing.all():
            x[missing, c] = np.interp(t[missing], t[~missing], x[~missing, c])
    return x


def read_npz(path: str | Path) -> tuple[list[np.ndarray], list[str]]:
    """An .npz of x (N, T, F), y (N,), optional lengths (N,) -> (series (T_i, F) float32, labels)."""
    path = Path(path)
    with np.load(path, allow_pickle=False) as data:
        missing = {"x", "y"} - set(data.files)
        if missing:
            raise ValueError(f"{path}: expected arrays x (N, T, F) and y (N,), missing {sorted(missing)} "
                             f"(it holds {sorted(data.files)})")
        x, y = data["x"], data["y"]
        lengths = data["lengths"] if "lengths" in data.files else None
    if x.ndim == 2:
        x = x[:, :, None]  # univariate (N, T) -> (N, T, 1)
    if x.ndim != 3 or len(y) != len(x):
        raise ValueError(f"{path}: expected x (N, T, F) and y (N,), got x {x.shape} and y {y.shape}")
    lengths = np.full(len(x), x.shape[1]) if lengths is None else lengths.astype(np.int64)
    if len(lengths) != len(x) or (lengths < 1).any() or (lengths > x.shape[1]).any():
        bad = next((i for i, n in enumerate(lengths) if not 1 <= n <= x.shape[1]), None)
        raise ValueError(f"{path}: lengths must be in [1, {x.shape[1]}], one per series; got "
                         f"{lengths[bad] if bad is not None else len(lengths)} "
                         f"{'for series ' + str(bad) if bad is not None else 'lengths'}")
    series = []
    for i, n in enumerate(lengths):
        s = np.asarray(x[i, :n], dtype=np.float32)
        if not np.isfinite(s).all():
            step, feature = (int(v) for v in np.argwhere(~np.isfinite(s))[0])
            raise ValueError(f"{path}: series {i}: expected finite features, got {s[step, feature]} at step "
                             f"{step}, feature {feature}")
        series.append(s)
    return series, [str(v) for v in y.tolist()]


def read_labelled_series(path: str | Path) -> tuple[list[np.ndarray], list[str]]:
    """(series, labels) from a .ts or .npz file."""
    suffix = Path(path).suffix.lower()
    if suffix == ".ts":
        return read_ts(path)
    if suffix == ".npz":
        return read_npz(path)
    raise ValueError(f"{path}: expected a .ts or .npz file for numeric series, got {suffix!r}")


@dataclass(frozen=True)
class ChannelScaler:
    """Per-channel standardisation, (x - mean) / std, fitted on the training steps; JSON with the model."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def fit(cls, series: Sequence[np.ndarray]) -> ChannelScaler:
        steps = np.concatenate([np.asarray(s, dtype=np.float64) for s in series])  # (sum T_i, C)
        mean = np.nan_to_num(np.nanmean(steps, axis=0))
        std = np.nan_to_num(np.nanstd(steps, axis=0))
        std = np.where(std > 1e-8, std, 1.0)  # a constant channel is only centred
        return cls(tuple(mean.tolist()), tuple(std.tolist()))

    def transform(self, series: Sequence[np.ndarray]) -> list[np.ndarray]:
        mean, std = np.asarray(self.mean), np.asarray(self.std)
        out = []
        for i, s in enumerate(series):
            if s.shape[-1] != len(mean):
                raise ValueError(f"series {i} has {s.shape[-1]} channels, the scaler was fitted on "
                                 f"{len(mean)}")
            out.append(np.nan_to_num((s - mean) / std, nan=0.0).astype(np.float32))  # all-missing -> mean
        return out

    def to_json(self) -> dict:
        return {"mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_json(cls, data: dict) -> ChannelScaler:
        return cls(tuple(data["mean"]), tuple(data["std"]))
