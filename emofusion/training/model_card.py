"""The model card (README.md) of a trained model, rendered from `emofusion/templates/model_card.md`.

The YAML header comes from `huggingface_hub.ModelCardData` (with a `model-index` of the test
and validation figures, so the Hub shows them); the body is the template filled with
`string.Template`: the metrics table, the per-class figure, the description set and the
training arguments.

A model trained on synthetic data (`emofusion demo`'s, marked by the `emofusion_synthetic.json`
its writer leaves in the data folder) gets a card that says so in its first line, names the data
for what it is and has no `model-index`: its figures are no result on EMOTIC. The only links are
to what exists: the paper, and the project's URL where pyproject.toml sets one.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from importlib import metadata, resources
from string import Template

from transformers.utils import logging


logger = logging.get_logger(__name__)

# What the config (`description_provenance`) and the card say of descriptions that came without a description_set.json.
UNKNOWN_PROVENANCE = "user-provided, provenance unknown"
DATASET_TITLES = {"emotic": "EMOTIC", "caer_s": "CAER-S", "bold": "BoLD"}
MODALITY_SENTENCES = {
    "fusion": "a vision encoder and a VLLM's description of the person, fused by a Q-Former.",
    "vision": "the picture alone (the paper's vision-only ablation: no description).",
    "text": "a VLLM's description alone (the paper's text-only ablation: no pixels).",
}
# Metrics shown in the table, in this order, with their display names.
TABLE_METRICS = {
    "mAP": "mAP (sklearn AP)",
    "mAP_voc11": "mAP (11-point, EMOTIC authors)",
    "mean_AUC": "mean ROC AUC",
    "macro_F1": "macro F1",
    "accuracy": "accuracy",
    "ERS": "ERS",
    "mean_R2": "mean R^2",
    "VAD_MAE": "VAD MAE",
}


@dataclass
class ModelCardInfo:
    """What the card says; filled in as the run goes."""

    dataset: str
    model_name: str
    repo_id: str
    metrics: dict = field(default_factory=dict)
    description_metadata: dict | None = None
    description_source: str | None = None
    base_models: list[str] = field(default_factory=list)
    split_sizes: dict = field(default_factory=dict)
    figures: dict = field(default_factory=dict)
    training_args: dict = field(default_factory=dict)
    data_args: dict = field(default_factory=dict)
    # The data folder's `emofusion_synthetic.json` (`emofusion.synthetic.read_synthetic_marker`), if any.
    synthetic_data: dict | None = None


def _fmt(value) -> str:
    return f"{100 * value:.2f}" if isinstance(value, float) else str(value)


def metrics_table(metrics: dict) -> str:
    """Markdown table: one row per metric, one column per split (`eval`, `test`); percentages except MAE/R^2."""
    splits = [s for s in ("test", "eval") if any(k.startswith(f"{s}_") for k in metrics)]
    rows = []
    for key, title in TABLE_METRICS.items():
        values = [metrics.get(f"{split}_{key}") for split in splits]
        if all(v is None for v in values):
            continue
        raw = key in ("VAD_MAE", "mean_R2")
        cells = ["-" if v is None else (f"{v:.4f}" if raw else _fmt(v)) for v in values]
        rows.append(f"| {title} | " + " | ".join(cells) + " |")
    if not rows:
        return "No evaluation was run."
    names = {"test": "test", "eval": "validation"}
    header = "| metric | " + " | ".join(names[s] for s in splits) + " |"
    rule = "|---|" + "---|" * len(splits)
    note = "\n\nPercentages, except VAD MAE (1..10 scale for EMOTIC) and R^2."
    return "\n".join([header, rule, *rows]) + note


def project_url() -> str | None:
    """The project's home (Homepage, Repository or Source in pyproject's [project.urls]), if one is set."""
    try:
        entries = metadata.metadata("emofusion").get_all("Project-URL") or []
    except metadata.PackageNotFoundError:
        return None
    for entry in entries:
        label, _, url = entry.partition(",")
        if label.strip().lower() in ("homepage", "home", "repository", "source", "source code") and url.strip():
            return url.strip()
    return None


def _card_data(info: ModelCardInfo) -> str:
    from huggingface_hub import EvalResult, ModelCardData

    results = []
    # Figures on synthetic data are no result on a real dataset: no model-index entry for them.
    splits = () if info.synthetic_data else (("test", "test"), ("eval", "validation"))
    for split, split_name in splits:
        for key in ("mAP", "accuracy", "mean_AUC", "ERS"):
            value = info.metrics.get(f"{split}_{key}")
            if value is not None:
                results.append(
                    EvalResult(
                        task_type="image-classification",
                        task_name="Emotion recognition in context",
                        dataset_type=info.dataset,
                        dataset_name=DATASET_TITLES[info.dataset],
                        dataset_split=split_name,
                        metric_type=key,
                        metric_name=TABLE_METRICS[key],
                        metric_value=round(float(value), 6),
                    )
                )
    data = ModelCardData(
        library_name="transformers",
        license="other",
        tags=[
            "emofusion",
            "emotion-recognition",
            "emotion-in-context",
            "synthetic-data" if info.synthetic_data else info.dataset,
            "q-former",
        ],
        base_model=info.base_models or None,
        model_name=info.model_name,
        eval_results=results or None,
    )
    return data.to_yaml()


def _description_section(info: ModelCardInfo) -> str:
    meta = info.description_metadata
    if not meta and info.description_source:
        return (
            f"- Descriptions: {UNKNOWN_PROVENANCE} (`{info.description_source}`, a table without a "
            "`description_set.json`): which model or person wrote them, with which prompt and subject marking, "
            "is not recorded.\n\nThe config records no description model, so none is generated at inference: "
            "give each person's description yourself (`description=` in the pipeline, `--description` in "
            "`emofusion predict`), written the way the training ones were."
        )
    if not meta:
        return "This model was trained without VLLM descriptions."
    written_by = (
        f"- VLLM: `{meta.get('model')}` (revision `{meta.get('revision')}`, backend {meta.get('backend')})"
        if meta.get("model")
        # emofusion.synthetic's descriptions (backend "synthetic") name the program that wrote them.
        else f"- Written by: `{(meta.get('generation') or {}).get('writer', 'unrecorded')}`, not by a VLLM "
        f"(backend {meta.get('backend')})"
    )
    lines = [
        f"- Description set: `{info.description_source}`",
        written_by,
        f"- Marking: `{meta.get('marking')}`",
        f"- Generation: `{json.dumps(meta.get('generation'), sort_keys=True)}`",
    ]
    if meta.get("prompt_template"):
        lines += ["- Prompt template:", "", "```text", str(meta["prompt_template"]), "```"]
    splits = meta.get("splits") or {}
    if splits:
        counts = ", ".join(f"{s}: {c.get('ok', 0)} ok / {c.get('error', 0)} error" for s, c in splits.items())
        lines.insert(4, f"- Counts: {counts}")
    if meta.get("model"):
        lines.append(
            "\nThe same VLLM, revision, prompt and marking are recorded in this model's config, so a new "
            "photo can be described the way the training data was."
        )
    return "\n".join(lines)


def _data_values(info: ModelCardInfo) -> dict[str, str]:
    """The card's words for the data: the dataset as its owners ship it, or synthetic data named as such."""
    title = DATASET_TITLES[info.dataset]
    synthetic = info.synthetic_data
    if not synthetic:
        data_dir = info.data_args.get("data_dir")
        prepared = data_dir is not None and os.path.isfile(os.path.join(data_dir, "conversion.json"))
        return {
            "data_notice": "",
            "dataset_title": title,
            "data_sentence": (
                f"{title} prepared by `emofusion convert` from its owners' files (`dataset_scripts`)"
                if prepared
                else f"{title} as its owners ship it, read by `dataset_scripts`"
            ),
            "data_dir_hint": f"<{title} folder>",
            "limitations": (
                f"The model recognises *apparent* emotion as annotators perceived it in {title}; it does not\n"
                "read anyone's inner state. Its figures hold for data like its training data and for descriptions\n"
                "made the same way (same VLLM, prompt and marking); other descriptions can change its output."
            ),
        }
    name = synthetic.get("name", "synthetic data")
    writer = synthetic.get("writer", "an unrecorded program")
    made = [f"seed {synthetic['seed']}"] if "seed" in synthetic else []
    for key, unit in (("num_images", "images"), ("num_clips", "clips")):  # the image demo's, the BoLD demo's
        if synthetic.get(key):
            splits, counts = zip(*synthetic[key].items())
            made.append(f"{'/'.join(map(str, counts))} {'/'.join(splits)} {unit}")
    how = f" ({', '.join(made)})" if made else ""
    # What set the labels, as the data's marker says (the BoLD demo's clips add the walking direction).
    cues = synthetic.get("cues", "coloured patches and words")
    media = synthetic.get("media", "photos")
    return {
        "data_notice": (
            f"**Trained and tested on synthetic data ({name}), not on {title} or any real {media}**: "
            "its figures check the machinery and say nothing about recognising emotions.\n\n"
        ),
        "dataset_title": f"synthetic data in {title}'s file layout",
        "data_sentence": (
            f"{name}, written by `{writer}`{how} in {title}'s file layout and read by the {title} builder of "
            "`dataset_scripts`"
        ),
        "data_dir_hint": "<emofusion demo's output_dir>/data",
        "limitations": (
            f"The labels were set by a program, from {cues}, not by people perceiving\n"
            "emotions: the model has learned nothing about emotion, only the synthetic rule. Use it to check\n"
            f"that training, saving and the pipeline work, never to recognise emotions in {media}."
        ),
    }


def render_model_card(info: ModelCardInfo, config, template: str | None = None) -> str:
    """The card's Markdown text for `config` (the trained model's) and `info`."""
    import datasets
    import torch
    import transformers

    from emofusion import __version__

    if template is None:
        template = resources.files("emofusion").joinpath("templates/model_card.md").read_text(encoding="utf-8")
    single = config.problem_type == "single_label_classification"
    args = info.training_args
    figure_key = "test" if "test" in info.figures else "eval"
    figure = info.figures.get(figure_key)
    figure_md = (
        f"![per-class figure ({figure_key})]({os.path.basename(figure)})"
        if figure
        else "No per-class figure was drawn."
    )
    per_class = ", ".join(f"`{split}_per_class.json`" for split in ("eval", "test") if f"{split}_loss" in info.metrics)
    thresholds = config.decision_thresholds
    values = {
        "card_data": _card_data(info),
        "model_name": info.model_name,
        "repo_id": info.repo_id,
        "dataset": info.dataset,
        **_data_values(info),
        "project_link": f"[emofusion]({url})" if (url := project_url()) else "emofusion",
        "modality_sentence": MODALITY_SENTENCES[config.modality],
        "problem_type": "single-label classification" if single else "multi-label classification",
        "num_labels": config.num_labels,
        "vad_sentence": ", plus valence/arousal/dominance regression" if config.num_vad else "",
        "vision_model": getattr(config.vision_config, "_name_or_path", "") or config.vision_config.model_type,
        "vision_state": "frozen" if config.freeze_vision else "fine-tuned",
        "num_query_tokens": config.num_query_tokens,
        "pooling": config.pooling,
        "marking": config.marking,
        "threshold_sentence": (
            "argmax (single-label)"
            if single
            else "per class, the validation score that maximises F1 (ties to the lowest), stored in "
            "`config.decision_thresholds`"
            if thresholds
            else "0.5 for every class (not calibrated)"
        ),
        "metrics_table": metrics_table(info.metrics),
        "figure": figure_md,
        "per_class_files": per_class or "none",
        "description_section": _description_section(info),
        "score_fn": ".softmax(-1)" if single else ".sigmoid()",
        "inputs_snippet": _inputs_snippet(config.num_frames),
        # The figures shown are the test split's when there are any (BoLD's test split has no labels).
        "reproduce_split": "test" if any(k.startswith("test_") for k in info.metrics) else "validation",
        "reproduce_flag": "--do_predict" if any(k.startswith("test_") for k in info.metrics) else "--do_eval",
        "descriptions_flag": f"--descriptions {info.description_source} " if info.description_source else "",
        "eval_extra": " --per_device_eval_batch_size " + str(args.get("per_device_eval_batch_size", 8)),
        "split_sizes": ", ".join(f"{k}: {v}" for k, v in info.split_sizes.items()) or "sizes not recorded",
        "seed": args.get("seed"),
        "epochs": args.get("num_train_epochs"),
        "train_batch": args.get("per_device_train_batch_size", 0) * args.get("gradient_accumulation_steps", 1),
        "learning_rate": args.get("learning_rate"),
        "lr_scheduler": args.get("lr_scheduler_type"),
        "emofusion_version": __version__,
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "datasets_version": datasets.__version__,
        "training_args_json": json.dumps(args, indent=2, sort_keys=True, default=str),
        "data_args_json": json.dumps(info.data_args, indent=2, sort_keys=True, default=str),
    }
    return Template(template).substitute(values)


def _inputs_snippet(num_frames: int) -> str:
    """The card's input line: a photo for an image model, `num_frames` frames with a box each for a clip model."""
    if num_frames <= 1:
        return (
            'inputs = processor(images=Image.open("photo.jpg"), bbox=[x1, y1, x2, y2], '
            "text=\"<the VLLM's description>\")"
        )
    return (
        f"# A clip: {num_frames} frames (config.num_frames), the person's box in each; or pipeline(video=...).\n"
        f'frames = [Image.open(f"frame_{{i}}.jpg") for i in range({num_frames})]\n'
        "inputs = processor(videos=[frames], bbox=[[[x1, y1, x2, y2]] * len(frames)], "
        'text=["<the VLLM\'s description>"], return_tensors="pt")'
    )


def write_model_card(info: ModelCardInfo, config, output_dir: str) -> str:
    """Render the card and write it to `output_dir/README.md`; returns the path."""
    path = os.path.join(output_dir, "README.md")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(render_model_card(info, config))
    return path
