"""The report of `emofusion descriptions`: report.json (every figure), report.md (tables, rankings), PNG figures."""

from __future__ import annotations

import json
from pathlib import Path


MENTION_KINDS = {
    "label_mentions": "label words, verbatim",
    "lexicon_mentions": "label words and the --label_words words",
}
# The downstream metrics shown in report.md (report.json has every test metric of each run).
DOWNSTREAM_COLUMNS = ("mAP", "macro_F1", "mean_AUC", "accuracy", "ERS", "VAD_MAE")


def _fmt(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_fmt(v).replace("|", "\\|") for v in row) + " |" for row in rows]
    return lines + [""]


def primary_metric(downstream: dict | None) -> str | None:
    """The metric the sets are ranked on downstream: mAP where every run has it (multi-label), else accuracy."""
    runs = (downstream or {}).get("runs") or []
    for name in ("mAP", "accuracy"):
        if runs and all(name in run["test"] for run in runs):
            return name
    return None


def _ranked(pairs: list[tuple[str, float | None]]) -> list[dict]:
    ordered = sorted(pairs, key=lambda pair: (pair[1] is None, -(pair[1] or 0.0)))
    return [{"set": name, "value": value} for name, value in ordered]


def rankings(report: dict) -> dict:
    """The sets best first: by mention precision against the true labels, and by each model's test metric."""
    ranked = {}
    for key in MENTION_KINDS:
        pairs = [
            (s["name"], s[key]["against_truth"]["precision"])
            for s in report["sets"]
            if "against_truth" in s.get(key, {})
        ]
        if any(value is not None for _, value in pairs):  # none is defined where no description names a label
            ranked[f"{key}_precision"] = _ranked(pairs)
    downstream = report.get("downstream")
    metric = primary_metric(downstream)
    if metric is not None:
        for modality in downstream["modalities"]:
            pairs = [(r["set"], r["test"].get(metric)) for r in downstream["runs"] if r["modality"] == modality]
            if any(value is not None for _, value in pairs):
                ranked[f"test_{metric}_{modality}"] = _ranked(pairs)
    return ranked


def _plots(report: dict, out: Path) -> dict[str, str]:
    """The PNG figures (matplotlib, Agg); {} with a note in the report where matplotlib is not installed."""
    try:
        from modeling_emofusion.metric_plots import _pyplot

        plt = _pyplot()
    except ImportError as error:
        report["notes"].append(f"No figures: {error}")
        return {}
    sets, paths = report["sets"], {}

    fig, ax = plt.subplots(figsize=(7, 3.6))
    for s in sets:
        if s["length_values"]:
            ax.hist(s["length_values"], bins=30, histtype="step", linewidth=1.5, label=s["name"])
    ax.set_xlabel(f"description length ({sets[0]['length']['tokenizer']})")
    ax.set_ylabel("descriptions")
    ax.set_title("Length of the descriptions")
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths["lengths"] = str(out / "lengths.png")
    fig.savefig(paths["lengths"], dpi=110)
    plt.close(fig)

    key = "lexicon_mentions" if "lexicon_mentions" in sets[0] else "label_mentions"
    if key in sets[0] and "against_truth" in sets[0][key]:
        labels = list(sets[0][key]["per_label"])
        fig, axes = plt.subplots(1, 2, figsize=(10, 0.25 * len(labels) + 1.6), sharey=True)
        height = 0.8 / len(sets)
        for column, measure in enumerate(("precision", "recall")):
            for index, s in enumerate(sets):
                per_class = s[key]["against_truth"]["per_class"]
                values = [per_class[label][measure] or 0.0 for label in labels]
                axes[column].barh(
                    [i + index * height for i in range(len(labels))], values, height=height, label=s["name"]
                )
            axes[column].set_xlim(0, 1)
            axes[column].set_title(f"mention {measure} ({MENTION_KINDS[key]})", fontsize=9)
        axes[0].set_yticks([i + 0.4 - height / 2 for i in range(len(labels))], labels, fontsize=7)
        axes[1].legend(fontsize=7, loc="lower right")
        fig.tight_layout()
        paths["mentions"] = str(out / "mentions.png")
        fig.savefig(paths["mentions"], dpi=110)
        plt.close(fig)

    if "overlap" in report:
        matrix = [[v if v is not None else 0.0 for v in row] for row in report["overlap"]["jaccard"]]
        names = report["overlap"]["names"]
        fig, ax = plt.subplots(figsize=(1.0 * len(names) + 2.5, 0.8 * len(names) + 1.8))
        image = ax.imshow(matrix, vmin=0, vmax=1, cmap="viridis")
        for i, row in enumerate(matrix):
            for j, value in enumerate(row):
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", color="white" if value < 0.6 else "black")
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(len(names)), names, fontsize=8)
        ax.set_title("Vocabulary overlap (Jaccard)")
        fig.colorbar(image, ax=ax)
        fig.tight_layout()
        paths["overlap"] = str(out / "overlap.png")
        fig.savefig(paths["overlap"], dpi=110)
        plt.close(fig)

    downstream = report.get("downstream")
    metric = primary_metric(downstream)
    if metric is not None:
        modalities = downstream["modalities"]
        width = 0.8 / len(modalities)
        fig, ax = plt.subplots(figsize=(1.2 * len(sets) + 3, 3.6))
        for index, modality in enumerate(modalities):
            values = {r["set"]: r["test"].get(metric) or 0.0 for r in downstream["runs"] if r["modality"] == modality}
            xs = [i + index * width for i, s in enumerate(sets) if s["name"] in values]
            ax.bar(xs, [values[s["name"]] for s in sets if s["name"] in values], width=width, label=modality)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(sets))], [s["name"] for s in sets], fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_ylabel(f"test {metric}")
        ax.set_title(f"Test {metric} of the same model trained on each set", fontsize=10)
        ax.legend(fontsize=8)
        fig.tight_layout()
        paths["downstream"] = str(out / "downstream.png")
        fig.savefig(paths["downstream"], dpi=110)
        plt.close(fig)
    return paths


def markdown(report: dict, figures: dict[str, str]) -> str:
    """report.md: what each set is, its figures side by side, the rankings, the figures."""
    sets = report["sets"]
    title = "Description set" if report["command"] == "stats" else "Description sets compared"
    lines = [f"# {title}", ""]
    lines += [
        f"Dataset: {report['dataset'] or 'unknown'}"
        + (f" (labels and ids from {report['data_dir']})" if report["data_dir"] else "")
        + ".",
        "",
    ]
    lines += ["## Provenance", ""]
    lines += _table(
        ["set", "source", "model", "revision", "backend", "marking", "prompt template"],
        [
            [
                s["name"],
                s["source"],
                *(s["provenance"].get(k) for k in ("model", "revision", "backend", "marking")),
                " ".join((s["provenance"].get("prompt_template") or "").split())[:120] or None,
            ]
            for s in sets
        ],
    )
    unknown = [s["name"] for s in sets if not s["provenance_known"]]
    if unknown:
        lines += [f"No description_set.json, so no provenance, for: {', '.join(unknown)}.", ""]
    lines += ["## Rows", ""]
    lines += _table(
        ["set", "rows", "ok", "flagged", "error", "used as descriptions"],
        [
            [s["name"], *(s["counts"][k] for k in ("total", "ok", "flagged", "error", "used_as_descriptions"))]
            for s in sets
        ],
    )
    lines += [f"## Length ({sets[0]['length']['tokenizer']})", ""]
    lines += _table(
        ["set", "tokenizer", "descriptions", "mean", "std", "min", "p5", "median", "p95", "max", "empty"],
        [
            [
                s["name"],
                s["length"]["tokenizer"],
                *(s["length"].get(k) for k in ("count", "mean", "std", "min", "p5", "median", "p95", "max", "empty")),
            ]
            for s in sets
        ],
    )
    lines += [f"- {s['name']}: {s['length']['note']}." for s in sets if "note" in s["length"]]
    for key, kind in MENTION_KINDS.items():
        if key not in sets[0]:
            continue
        lines += [f"## Label mentions ({kind})", ""]
        truth = "against_truth" in sets[0][key]
        header = ["set", "descriptions", "naming a label", "rate", "labels per description"]
        if truth:
            header += ["mentions", "true", "false", "precision", "recall", "macro precision", "macro recall"]
        rows = []
        for s in sets:
            m = s[key]
            row = [s["name"], m["descriptions"], m["naming_a_label"], m["rate"], m["labels_named_per_description"]]
            if truth:
                t = m["against_truth"]
                row += [
                    t[k]
                    for k in (
                        "mentions",
                        "true_mentions",
                        "false_mentions",
                        "precision",
                        "recall",
                        "macro_precision",
                        "macro_recall",
                    )
                ]
            rows.append(row)
        lines += _table(header, rows)
        if truth:
            labels = list(sets[0][key]["per_label"])
            lines += ["Per class: mention precision / recall (support).", ""]
            lines += _table(
                ["class", "support", *(s["name"] for s in sets)],
                [
                    [
                        label,
                        sets[0][key]["against_truth"]["per_class"][label]["support"],
                        *(
                            f"{_fmt(c['precision'])} / {_fmt(c['recall'])}"
                            for c in (s[key]["against_truth"]["per_class"][label] for s in sets)
                        ),
                    ]
                    for label in labels
                ],
            )
    if "overlap" in report:
        overlap = report["overlap"]
        lines += ["## Vocabulary overlap (Jaccard of the sets' distinct words)", ""]
        lines += _table(
            ["set", "words", *overlap["names"]],
            [
                [n, size, *row]
                for n, size, row in zip(overlap["names"], overlap["vocabulary_sizes"], overlap["jaccard"])
            ],
        )
        lines += [f"Words every set uses: {overlap['shared_by_all']}.", ""]
    else:
        lines += [f"Vocabulary: {sets[0]['vocabulary_size']} distinct words.", ""]
    if "coverage" in sets[0]:
        lines += ["## Coverage of the dataset's ids", ""]
        rows = []
        for s in sets:
            for split, c in {**s["coverage"]["splits"], "all": s["coverage"]["total"]}.items():
                rows.append([s["name"], split, c["examples"], c["described"], c["error"], c["missing"], c["rate"]])
        lines += _table(["set", "split", "examples", "described", "not used (error)", "no row", "coverage"], rows)
        lines += [
            f"- {s['name']}: {s['coverage']['ids_not_in_dataset']} row(s) with ids not in the dataset." for s in sets
        ]
        lines += [""]
    downstream = report.get("downstream")
    if downstream:
        lines += ["## Downstream: the same model trained on each set", ""]
        lines += [
            f"Config {downstream['config']}, the same for every run (seed {downstream['runs'][0]['seed']}); "
            "examples without a description are kept with an empty one, so every run trains and tests on the "
            "same examples"
            + ("" if downstream.get("same_examples") else " (NOT the case here: see the sample counts)")
            + ". The text-only model sees the description alone: it measures what the description carries.",
            "",
        ]
        columns = [c for c in DOWNSTREAM_COLUMNS if any(c in r["test"] for r in downstream["runs"])]
        lines += _table(
            ["set", "model", "train samples", "test samples", *(f"test {c}" for c in columns)],
            [
                [r["set"], r["modality"], r["train_samples"], r["test_samples"], *(r["test"].get(c) for c in columns)]
                for r in downstream["runs"]
            ],
        )
    if report.get("rankings"):
        lines += ["## Rankings (best first)", ""]
        for key, ranked in report["rankings"].items():
            lines.append(f"- {key}: " + ", ".join(f"{r['set']} ({_fmt(r['value'])})" for r in ranked))
        lines += [""]
    if figures:
        lines += ["## Figures", ""] + [f"![{name}]({Path(path).name})" for name, path in figures.items()] + [""]
    prompts = [
        (s["name"], s["provenance"].get("prompt_template")) for s in sets if s["provenance"].get("prompt_template")
    ]
    if prompts:
        lines += ["## Prompts", ""]
        for name, prompt in prompts:
            lines += [f"{name}:", "", "```text", prompt, "```", ""]
    if report["notes"]:
        lines += ["## Notes", ""] + [f"- {note}" for note in report["notes"]] + [""]
    return "\n".join(lines)


def write_report(report: dict, out: Path, figures: bool = True) -> dict[str, str]:
    """Write report.json, report.md and (unless `figures=False`: a report saved midway) the figures into `out`;
    return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    report["rankings"] = rankings(report)
    notes = list(report["notes"])
    figures = _plots(report, out) if figures else {}
    serialisable = {k: v for k, v in report.items() if k not in ("summary", "paths")}
    serialisable["sets"] = [{k: v for k, v in s.items() if k != "length_values"} for s in report["sets"]]
    serialisable["figures"] = {name: Path(path).name for name, path in figures.items()}
    paths = {"json": str(out / "report.json"), "markdown": str(out / "report.md"), **figures}
    (out / "report.json").write_text(json.dumps(serialisable, indent=2) + "\n", encoding="utf-8")
    (out / "report.md").write_text(markdown(report, figures), encoding="utf-8")
    report["notes"] = notes  # a note of this writing is not repeated by the next one
    return paths


def summary_text(report: dict) -> str:
    """What the command prints: one line per set with its main figures, and where the report is."""
    lines = []
    metric = primary_metric(report.get("downstream"))
    for s in report["sets"]:
        c = s["counts"]
        parts = [
            f"{c['ok']} ok, {c['flagged']} flagged, {c['error']} error",
            f"median length {_fmt(s['length'].get('median'))}",
        ]
        for key in MENTION_KINDS:
            if key in s:
                truth = s[key].get("against_truth")
                parts.append(
                    f"{key.split('_')[0]} mention rate {_fmt(s[key]['rate'])}"
                    + (f", precision {_fmt(truth['precision'])}" if truth else "")
                )
        if "coverage" in s:
            parts.append(f"coverage {_fmt(s['coverage']['total']['rate'])}")
        if metric is not None:
            for r in report["downstream"]["runs"]:
                if r["set"] == s["name"]:
                    parts.append(f"{r['modality']} test {metric} {_fmt(r['test'].get(metric))}")
        lines.append(f"{s['name']}: " + "; ".join(parts))
    lines.append(f"Report: {report['paths']['markdown']} (and report.json, {len(report['paths']) - 2} figure(s)).")
    return "\n".join(lines)
