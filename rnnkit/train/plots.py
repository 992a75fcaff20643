"""The curves of a run from Lightning's metrics.csv: one panel per metric, train and validation together.

A metric's panel is named after it ("loss" holds train_loss and valid_loss; "accuracy" holds
valid_accuracy), its y-axis labelled with the task's unit for it (Task.units, e.g. "cross-entropy (nats)"),
else with the name itself.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

__all__ = ["plot_loss_curves", "pyplot"]


def pyplot():
    """matplotlib.pyplot on the Agg backend (files only, no screen), imported on first use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _read_series(metrics_csv: Path) -> dict[str, tuple[list[int], list[float]]]:
    """{column: (steps, values)} of every numeric metric column (not step/epoch/lr)."""
    series: dict[str, tuple[list[int], list[float]]] = {}
    with open(metrics_csv, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            step = int(float(row.get("step") or 0))
            for key, value in row.items():
                if key in ("step", "epoch") or key.startswith("lr") or value in ("", None):
                    continue
                try:
                    number = float(value)
                except ValueError:
                    continue
                xs, ys = series.setdefault(key, ([], []))
                xs.append(step)
                ys.append(number)
    return series


def _metric_name(column: str) -> str:
    return column.removeprefix("train_").removeprefix("valid_")


def plot_loss_curves(
    metrics_csv: str | Path, out_png: str | Path, units: dict[str, str] | None = None
) -> Path | None:
    """Every metric against optimiser step, one panel per metric name; None if there is nothing to plot.

    Args:
        metrics_csv: Lightning's CSVLogger file (columns step, train_loss, valid_<name>, ...).
        out_png: where the figure goes.
        units: metric name -> y-axis label, e.g. {"loss": "cross-entropy (nats)", "ppl": "perplexity"}.
    """
    metrics_csv, out_png = Path(metrics_csv), Path(out_png)
    if not metrics_csv.is_file():
        return None
    series = _read_series(metrics_csv)
    if not series:
        return None
    names = sorted({_metric_name(k) for k in series}, key=lambda n: (n != "loss", n))  # loss first
    plt = pyplot()
    cols = min(len(names), 2)
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(7 * cols, 4.5 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        for key, (xs, ys) in sorted(series.items()):
            if _metric_name(key) == name:
                ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, markersize=3, label=key)
        ax.set_xlabel("optimiser step")
        ax.set_ylabel((units or {}).get(name, name))
        ax.set_title(f"{metrics_csv.parent.name}: {name}")
        ax.grid(alpha=0.3)
        ax.legend()
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out_png, dpi=120)
    plt.close(fig)
    return out_png
