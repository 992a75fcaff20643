"""What a trained classifier's outputs become: the metrics report (accuracy, macro-F1, per-class precision and
recall, the confusion matrix; torchmetrics), its PNG, and the per-token explanation (`token_effects`, the
HTML page of `rnnkit predict --explain`). rnnkit.tasks.classifier's commands call these.
"""

from __future__ import annotations

import html
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)

__all__ = ["classification_report", "confusion_png", "explain_html", "token_effects"]


def classification_report(probabilities: np.ndarray, targets: list[int], classes: tuple[str, ...]) -> dict:
    """Metrics of predicted probabilities (N, K) against target ids (torchmetrics)."""
    K = len(classes)
    p, y = torch.from_numpy(probabilities), torch.tensor(targets)
    per_class = {"precision": MulticlassPrecision(K, average=None),
                 "recall": MulticlassRecall(K, average=None),
                 "f1": MulticlassF1Score(K, average=None)}
    report = {
        "examples": len(targets),
        "accuracy": float(MulticlassAccuracy(K, average="micro")(p, y)),
        "macro_f1": float(MulticlassF1Score(K, average="macro")(p, y)),
        "log_loss": float(F.nll_loss(torch.log(p.clamp_min(1e-12)), y)),
    }
    for name, metric in per_class.items():
        report[name] = dict(zip(classes, map(float, metric(p, y)), strict=True))
    report["confusion_matrix"] = MulticlassConfusionMatrix(K)(p, y).tolist()
    report["classes"] = list(classes)
    return report


def confusion_png(report: dict, path: str | Path, title: str) -> None:
    """The confusion matrix (rows: true class, columns: predicted) as a PNG with counts in the cells."""
    from rnnkit.train.plots import pyplot

    plt = pyplot()
    matrix, classes = np.asarray(report["confusion_matrix"]), report["classes"]
    fig, ax = plt.subplots(figsize=(1.2 + 0.6 * len(classes), 1.0 + 0.6 * len(classes)))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for (i, j), n in np.ndenumerate(matrix):
        ax.text(j, i, str(n), ha="center", va="center", color="white" if n > matrix.max() / 2 else "black")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def token_effects(running: np.ndarray, k: int) -> np.ndarray:
    """How each token moved class k's running probability (`TrainedClassifier.explain`): the probability
    after the token minus the one before it, with the uniform 1/K before the first token,

        effect_t = p_t(k) - p_{t-1}(k),   p_0(k) = 1/K

    so that the effects sum to p_T(k) - 1/K (positive: the token raised class k's probability).

    Args:
        running: (T, K) class probabilities after each token.
        k: the class, 0 <= k < K.
    Returns:
        (T,) float64 array.

    Example:
        >>> token_effects(np.array([[0.6, 0.4], [0.9, 0.1]]), 0).round(3).tolist()
        [0.1, 0.3]
    """
    running = np.asarray(running, dtype=np.float64)  # (T, K)
    before = np.concatenate([[1.0 / running.shape[1]], running[:-1, k]])  # (T,) p before each token
    return running[:, k] - before


def explain_html(classifier, text: str, path: str | Path) -> None:
    """One text's words (`classifier`: a TrainedClassifier) coloured by their effect on the finally predicted
    class (green raised its probability, red lowered it), with the running probability as a tooltip;
    attention weights underlined by strength."""
    result = classifier.explain(text)
    running = result["probabilities"]  # (T, K)
    k = int(running[-1].argmax())
    effect = token_effects(running, k)
    scale = max(float(np.abs(effect).max()), 1e-6)
    spans = []
    for t, token in enumerate(result["tokens"]):
        e = effect[t] / scale
        colour = f"rgba(0,160,0,{e:.2f})" if e > 0 else f"rgba(220,0,0,{-e:.2f})"
        style = f"background:{colour}"
        if result["attention"] is not None:
            a = float(result["attention"][t] / result["attention"].max())
            style += f";border-bottom:3px solid rgba(0,0,255,{a:.2f})"
        spans.append(f'<span style="{style}" title="p({html.escape(classifier.classes[k])}) = '
                     f'{running[t, k]:.3f}">{html.escape(token)}</span>')
    page = (f"<html><meta charset='utf-8'><body style='font-family:sans-serif;line-height:1.8'>"
            f"<p>predicted <b>{html.escape(classifier.classes[k])}</b> with probability "
            f"{running[-1, k]:.3f}; "
            "green words raised it, red lowered it (hover: the running probability)"
            + ("; blue underline: attention" if result["attention"] is not None else "")
            + f"</p><p>{' '.join(spans)}</p></body></html>")
    Path(path).write_text(page, encoding="utf-8")
    print(f"explanation written to {path}", file=sys.stderr)
