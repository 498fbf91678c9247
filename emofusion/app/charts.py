"""Per-person bar charts of every label's score, each label's calibrated threshold marked, the axis from 0 to 1."""

from __future__ import annotations

from collections.abc import Sequence

from emofusion.annotate import PALETTE


def score_figure(subjects: Sequence[dict], id2label: dict, thresholds: Sequence[float] | None, multi_label: bool):
    """One matplotlib figure, one panel a person: horizontal bars of all label scores (best at the top),
    the bars at or over their threshold in the person's colour, a red tick at each label's threshold.

    `thresholds` are the model's `decision_thresholds` in label order (None: 0.5 each); single-label
    models decide by the highest score, so no thresholds are drawn for them.
    """
    import matplotlib

    matplotlib.use("Agg")  # no display on a server
    from matplotlib.figure import Figure

    names = [id2label[i] for i in sorted(id2label, key=int)]
    limits = list(thresholds) if thresholds else [0.5] * len(names)
    limit_of = dict(zip(names, limits))
    count = max(1, len(subjects))
    columns = min(count, 3)
    rows = -(-count // columns)
    height = max(2.0, 0.2 * len(names) + 0.9)
    figure = Figure(figsize=(4.3 * columns, height * rows), layout="constrained")
    for index, subject in enumerate(subjects):
        axes = figure.add_subplot(rows, columns, index + 1)
        entries = subject["scores"][::-1]  # best at the top
        labels = [entry["label"] for entry in entries]
        scores = [entry["score"] for entry in entries]
        chosen = set(subject.get("labels") or [])
        colour = tuple(c / 255 for c in PALETTE[index % len(PALETTE)])
        axes.barh(labels, scores, color=[colour if name in chosen else (0.78, 0.78, 0.78) for name in labels])
        if multi_label:
            axes.scatter(
                [limit_of.get(name, 0.5) for name in labels], labels, marker="|", s=160, linewidths=2, color="#b91c1c",
                label="threshold", zorder=3,
            )  # fmt: skip
            axes.legend(loc="lower right", fontsize=7, frameon=False)
        axes.set_xlim(0.0, 1.0)
        axes.set_title(f"Person {index + 1}", fontsize=10)
        axes.tick_params(axis="y", labelsize=7)
        axes.tick_params(axis="x", labelsize=8)
        axes.set_xlabel("score", fontsize=8)
    return figure
