"""The curves of a run from Lightning's metrics.csv: one panel per metric, train and validation together.

Each panel is one metric name ("loss" holds train_loss and valid_loss; "accuracy" holds valid_accuracy),
with the y-axis labelled from the task's units (Task.units, e.g. "cross-entropy (nats)"):

- the raw training curve faint, and its moving average over it (window: a twentieth of the run);
- the validation curve with markers, and a star at the step saved as the best model (model.safetensors);
- a task's reference levels as dashed lines, e.g. the uniform model's ln V for a language model;
- a second y-axis in another unit when the task gives its factor, e.g. bits = nats / ln 2;
- a subtitle with what was trained (task, model, sizes, parameters, data).

The extras come from the task's `Task.plot` ({"subtitle", "references", "secondary"}), kept in the model
file's metadata, so `rnnkit plot RUN [RUN ...]` can redraw a run, or overlay several, from their folders
alone (also after Ctrl-C). Reading the metadata here needs no torch.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

__all__ = ["metrics_file", "plot_loss_curves", "plot_runs", "run_plot_info", "pyplot"]


def pyplot():
    """matplotlib.pyplot on the Agg backend (files only, no screen), imported on first use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _read_series(metrics_csv: Path) -> dict[str, tuple[list[int], list[float]]]:
    """{column: (steps, values)} of every numeric metric column (not step/epoch/lr); steps 1-based."""
    series: dict[str, tuple[list[int], list[float]]] = {}
    with open(metrics_csv, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            step = int(float(row.get("step") or 0)) + 1  # Lightning logs the 0-based index of the step
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


def moving_average(ys: list[float], window: int) -> list[float]:
    """Trailing mean over the last `window` values (fewer at the start)."""
    out, total = [], 0.0
    for i, y in enumerate(ys):
        total += y
        if i >= window:
            total -= ys[i - window]
        out.append(total / min(i + 1, window))
    return out


def run_plot_info(run_dir: str | Path) -> dict:
    """{units, plot, step, metrics, monitor} from the run's model file metadata ({} without one)."""
    from safetensors import safe_open

    for name in ("model.safetensors", "model-last.safetensors"):
        path = Path(run_dir) / name
        if path.is_file():
            try:
                with safe_open(path, framework="numpy") as f:
                    meta = json.loads((f.metadata() or {}).get("rnnkit", "{}"))
            except Exception:  # a damaged model file: draw the curves without the extras
                return {}
            return {key: meta.get(key) for key in ("units", "plot", "step", "metrics", "monitor")}
    return {}


def _panels(names: list[str]):
    plt = pyplot()
    cols = min(len(names), 2)
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(7 * cols, 4.5 * rows), squeeze=False)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    return plt, fig, axes


def _draw_panel(ax, name: str, series: dict, label_prefix: str = "", color=None) -> None:
    for key, (xs, ys) in sorted(series.items()):
        if _metric_name(key) != name:
            continue
        label = f"{label_prefix}{key}"
        if key.startswith("train_") and len(ys) > 5:
            line = ax.plot(xs, ys, alpha=0.25, linewidth=0.8, color=color)[0]
            smooth = moving_average(ys, max(2, len(ys) // 20))
            ax.plot(xs, smooth, color=line.get_color(), label=f"{label} (moving average)")
        else:
            ax.plot(xs, ys, marker="o", markersize=3, label=label, color=color)


def plot_loss_curves(
    metrics_csv: str | Path,
    out_png: str | Path,
    units: dict[str, str] | None = None,
    info: dict | None = None,
) -> Path | None:
    """Every metric against optimiser step, one panel per metric name; None if there is nothing to plot.

    Args:
        metrics_csv: Lightning's CSVLogger file (columns step, train_loss, valid_<name>, ...).
        out_png: where the figure goes.
        units: metric name -> y-axis label, e.g. {"loss": "cross-entropy (nats)", "ppl": "perplexity"}.
        info: `run_plot_info` of the run: the best step and monitored metric, the task's plot extras.
    """
    metrics_csv, out_png, info = Path(metrics_csv), Path(out_png), info or {}
    if not metrics_csv.is_file():
        return None
    series = _read_series(metrics_csv)
    if not series:
        return None
    units = units or info.get("units") or {}
    extras = info.get("plot") or {}
    names = sorted({_metric_name(k) for k in series}, key=lambda n: (n != "loss", n))  # loss first
    plt, fig, axes = _panels(names)
    for ax, name in zip(axes.flat, names, strict=False):
        _draw_panel(ax, name, series)
        for level, text in (extras.get("references") or {}).get(name, []):
            ax.axhline(level, linestyle="--", color="grey", linewidth=1, label=text)
        best = _best_point(info, name, series)
        if best is not None:
            ax.plot(*best, marker="*", markersize=14, color="gold", markeredgecolor="black",
                    linestyle="none", label=f"best model (step {best[0]})")  # fmt: skip
        secondary = (extras.get("secondary") or {}).get(name)
        if secondary:
            label, factor = secondary
            ax.secondary_yaxis("right", functions=(lambda y, f=factor: y * f, lambda y, f=factor: y / f)) \
                .set_ylabel(label)
        ax.set_xlabel("optimiser step")
        ax.set_ylabel(units.get(name, name))
        ax.set_title(f"{metrics_csv.parent.name}: {name}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if extras.get("subtitle"):
        fig.suptitle(extras["subtitle"], fontsize=10)
    return _save(plt, fig, out_png)


def _best_point(info: dict, name: str, series: dict) -> tuple[int, float] | None:
    """(step, value) of the best model on panel `name`, if that panel holds the monitored metric."""
    monitor, step = info.get("monitor"), info.get("step")
    if not monitor or step is None or _metric_name(monitor) != name or monitor not in series:
        return None
    xs, ys = series[monitor]
    return (step, ys[xs.index(step)]) if step in xs else None


def _save(plt, fig, out_png: Path) -> Path:
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out_png, dpi=120)
    plt.close(fig)
    return out_png


def metrics_file(run_dir: str | Path) -> Path:
    """run_dir/metrics.csv; FileNotFoundError when `run_dir` is not a run directory of `rnnkit train`."""
    path = Path(run_dir) / "metrics.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} holds no metrics.csv: expected a run directory of `rnnkit train`")
    return path


def plot_runs(run_dirs: list[str | Path], out_png: str | Path) -> Path:
    """Several runs overlaid, one panel per metric name they share, one colour per run."""
    runs = [Path(r) for r in run_dirs]
    all_series = {}
    for run in runs:
        all_series[run] = _read_series(metrics_file(run))
    names = sorted({_metric_name(k) for s in all_series.values() for k in s}, key=lambda n: (n != "loss", n))
    if not names:
        raise ValueError(f"nothing to plot: the metrics.csv files of {[str(r) for r in runs]} are empty")
    plt, fig, axes = _panels(names)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    units = next((u for r in runs if (u := run_plot_info(r).get("units"))), {})
    for ax, name in zip(axes.flat, names, strict=False):
        for i, run in enumerate(runs):
            color = colors[i % len(colors)]
            _draw_panel(ax, name, all_series[run], label_prefix=f"{run.name}: ", color=color)
        ax.set_xlabel("optimiser step")
        ax.set_ylabel(units.get(name, name))
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(plt, fig, Path(out_png))
