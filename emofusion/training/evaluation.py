"""From model outputs to the figures of a split: scores, metrics, thresholds, per-class files.

`make_compute_metrics` is the Trainer's `compute_metrics`, computed with the local evaluate
modules of `modeling_emofusion.metric_modules`; `write_split_report` writes the per-class JSON,
the per-class figure and the per-example predictions of a split beside `*_results.json`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

import numpy as np
from transformers import EvalPrediction
from transformers.utils import logging

from modeling_emofusion.metric_modules import load_emotion_metric
from modeling_emofusion.metrics import DEFAULT_DECISION_THRESHOLD, calibrate_thresholds, task_metrics


logger = logging.get_logger(__name__)


def split_outputs(predictions) -> tuple[np.ndarray, np.ndarray | None]:
    """(logits, vad or None) from what `Trainer.predict` returns (an array or a tuple of arrays)."""
    if isinstance(predictions, (tuple, list)):
        logits = np.asarray(predictions[0])
        vad = np.asarray(predictions[1]) if len(predictions) > 1 and predictions[1] is not None else None
        return logits, vad
    return np.asarray(predictions), None


def split_labels(label_ids) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(labels, vad_labels or None) from `EvalPrediction.label_ids`."""
    if label_ids is None:
        return None, None
    if isinstance(label_ids, (tuple, list)):
        vad = np.asarray(label_ids[1]) if len(label_ids) > 1 and label_ids[1] is not None else None
        return np.asarray(label_ids[0]), vad
    return np.asarray(label_ids), None


def scores_from_logits(logits: np.ndarray, single_label: bool) -> np.ndarray:
    """Softmax probabilities (single-label) or per-class sigmoid probabilities (multi-label)."""
    logits = np.asarray(logits, dtype=np.float64)
    if single_label:
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)
    return 1.0 / (1.0 + np.exp(-logits))


def make_compute_metrics(task: str, config) -> Callable[[EvalPrediction], dict]:
    """The Trainer's `compute_metrics` for `task`, reading `config.decision_thresholds` at call time.

    Returns scalars only (mAP, accuracy, ERS, ...); undefined figures are absent, never NaN.
    """
    single_label = config.problem_type == "single_label_classification"
    label_names = [config.id2label[i] for i in range(config.num_labels)]

    def compute_metrics(eval_prediction: EvalPrediction) -> dict:
        logits, vad = split_outputs(eval_prediction.predictions)
        labels, vad_labels = split_labels(eval_prediction.label_ids)
        with_vad = vad is not None and vad_labels is not None and task != "caer_s"
        metric = load_emotion_metric(task, with_vad=with_vad)
        inputs = {"predictions": scores_from_logits(logits, single_label).tolist(), "references": labels.tolist()}
        if with_vad:
            inputs.update(vad_predictions=vad.tolist(), vad_references=vad_labels.tolist())
        kwargs = {"label_names": label_names}
        if not single_label:
            kwargs["thresholds"] = config.decision_thresholds
        return metric.compute(**inputs, **kwargs)

    return compute_metrics


def calibrate_on(prediction_output) -> list[float]:
    """Per-class thresholds from a validation `PredictionOutput` (`metrics.calibrate_thresholds`' rule)."""
    logits, _ = split_outputs(prediction_output.predictions)
    labels, _ = split_labels(prediction_output.label_ids)
    if labels is None:
        raise ValueError("Calibrating decision thresholds needs labelled validation data.")
    from modeling_emofusion.metrics import binarize

    return calibrate_thresholds(binarize(labels), scores_from_logits(logits, single_label=False))


def full_report(task: str, prediction_output, config) -> dict | None:
    """Every figure of a labelled split (per class too), or None for unlabelled data."""
    labels, vad_labels = split_labels(prediction_output.label_ids)
    if labels is None:
        return None
    logits, vad = split_outputs(prediction_output.predictions)
    single_label = config.problem_type == "single_label_classification"
    label_names = [config.id2label[i] for i in range(config.num_labels)]
    # Through float32, as the evaluate modules store them, so both give the same numbers.
    scores = scores_from_logits(logits, single_label).astype(np.float32)
    return task_metrics(
        task,
        labels.astype(np.float32) if not single_label else labels,
        scores,
        label_names,
        thresholds=None if single_label else config.decision_thresholds,
        vad_references=vad_labels.astype(np.float32) if vad_labels is not None and task != "caer_s" else None,
        vad_predictions=vad.astype(np.float32) if vad is not None and vad_labels is not None else None,
    )


def write_split_report(
    output_dir: str, prefix: str, task: str, prediction_output, config, ids: list[str], plot: bool = True
) -> dict[str, str]:
    """Write `<prefix>_per_class.json`, `<prefix>_per_class.png` and `<prefix>_predictions.jsonl`.

    The figure is a per-class AP bar chart (multi-label) or a confusion matrix (single-label);
    it is skipped with a warning where matplotlib is missing. Returns the paths written.
    """
    os.makedirs(output_dir, exist_ok=True)
    paths: dict[str, str] = {}
    single_label = config.problem_type == "single_label_classification"
    label_names = [config.id2label[i] for i in range(config.num_labels)]
    report = full_report(task, prediction_output, config)
    if report is not None:
        report_path = os.path.join(output_dir, f"{prefix}_per_class.json")
        with open(report_path, "w", encoding="utf-8") as handle:
            json.dump({"dataset": task, "split": prefix, "num_examples": len(ids), **report}, handle, indent=2)
        paths["per_class"] = report_path
        if plot:
            paths.update(_plot(output_dir, prefix, report, label_names, single_label))
    paths["predictions"] = _write_predictions(output_dir, prefix, prediction_output, config, ids, label_names)
    return paths


def _plot(output_dir: str, prefix: str, report: dict, label_names: list[str], single_label: bool) -> dict:
    from modeling_emofusion.metric_plots import plot_confusion_matrix, plot_per_class_scores

    path = os.path.join(output_dir, f"{prefix}_per_class.png")
    try:
        if single_label:
            accuracy = report["scalars"]["accuracy"]
            plot_confusion_matrix(
                report["confusion_matrix"], label_names, path, title=f"{prefix}: accuracy {accuracy:.4f}"
            )
        else:
            ap = {name: values["AP"] for name, values in report["per_class"].items()}
            plot_per_class_scores(ap, path, title=f"{prefix}: average precision", mean=report["scalars"].get("mAP"))
    except ImportError as err:
        logger.warning("No per-class figure: %s", err)
        return {}
    return {"figure": path}


def _write_predictions(output_dir, prefix, prediction_output, config, ids, label_names) -> str:
    """One JSON line per example: id, per-class scores, predicted labels (thresholds applied) and VAD."""
    logits, vad = split_outputs(prediction_output.predictions)
    single_label = config.problem_type == "single_label_classification"
    scores = scores_from_logits(logits, single_label)
    thresholds = np.asarray(config.decision_thresholds or [DEFAULT_DECISION_THRESHOLD] * len(label_names))
    path = os.path.join(output_dir, f"{prefix}_predictions.jsonl")
    with open(path, "w", encoding="utf-8") as handle:
        for i, example_id in enumerate(ids):
            if single_label:
                predicted = [label_names[int(scores[i].argmax())]]
            else:
                predicted = [name for name, s, t in zip(label_names, scores[i], thresholds) if s >= t]
            row = {
                "id": example_id,
                "scores": {name: round(float(s), 6) for name, s in zip(label_names, scores[i])},
                "labels": predicted,
            }
            if vad is not None:
                row["vad"] = [round(float(v), 6) for v in vad[i]]
            handle.write(json.dumps(row) + "\n")
    return path
