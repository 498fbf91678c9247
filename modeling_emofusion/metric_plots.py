"""Per-class figures of an evaluation: a bar chart of a per-class score (multi-label) and a
confusion matrix (single-label), written as PNG.

matplotlib is the `plot` extra (`pip install "emofusion[plot]"`): it is imported only when a
figure is drawn, with the non-interactive Agg backend so that it works on servers.

>>> from modeling_emofusion.metric_plots import plot_per_class_scores
>>> plot_per_class_scores({"Anger": 0.4, "Fear": None, "Pain": 0.1}, "/tmp/ap.png", title="test AP")
'/tmp/ap.png'
"""

from __future__ import annotations

import os
from collections.abc import Sequence


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ImportError(
            'Drawing per-class figures needs matplotlib: pip install "emofusion[plot]" (or matplotlib).'
        ) from None
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def plot_per_class_scores(
    scores: dict[str, float | None],
    path: str | os.PathLike,
    title: str = "Average precision per class",
    metric_name: str = "AP",
    mean: float | None = None,
) -> str:
    """A horizontal bar per class, sorted by score; undefined classes (None) are listed as "n/a".

    `mean` draws a vertical line (e.g. the mAP). Returns the PNG path.
    """
    plt = _pyplot()
    defined = sorted(((name, value) for name, value in scores.items() if value is not None), key=lambda item: item[1])
    undefined = [name for name, value in scores.items() if value is None]
    names = [f"{name} (n/a)" for name in undefined] + [name for name, _ in defined]
    values = [0.0] * len(undefined) + [value for _, value in defined]

    fig, ax = plt.subplots(figsize=(7, 0.28 * len(names) + 1.2))
    bars = ax.barh(range(len(names)), values, color="#4c72b0")
    for bar, value in zip(bars[len(undefined) :], values[len(undefined) :]):
        ax.text(bar.get_width() + 0.005, bar.get_y() + bar.get_height() / 2, f"{value:.3f}", va="center", fontsize=7)
    if mean is not None:
        ax.axvline(mean, color="#c44e52", linestyle="--", linewidth=1, label=f"mean {metric_name} {mean:.3f}")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_xlim(0, 1.08)
    ax.set_xlabel(metric_name)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return str(path)


def plot_confusion_matrix(
    matrix: Sequence[Sequence[int]],
    label_names: Sequence[str],
    path: str | os.PathLike,
    title: str = "Confusion matrix",
    normalize: bool = True,
) -> str:
    """A confusion matrix (rows = true class, columns = predicted), row-normalised by default,
    with the raw counts written in each cell. Returns the PNG path."""
    import numpy as np

    plt = _pyplot()
    counts = np.asarray(matrix, dtype=np.float64)
    if counts.shape != (len(label_names), len(label_names)):
        raise ValueError(f"confusion matrix of shape {counts.shape} does not match {len(label_names)} label names.")
    shown = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1) if normalize else counts
    size = 0.6 * len(label_names) + 2
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    threshold = shown.max() / 2 if shown.size else 0
    for i in range(counts.shape[0]):
        for j in range(counts.shape[1]):
            color = "white" if shown[i, j] > threshold else "black"
            ax.text(j, i, f"{int(counts[i, j])}", ha="center", va="center", color=color, fontsize=8)
    ax.set_xticks(range(len(label_names)), label_names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(label_names)), label_names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return str(path)
