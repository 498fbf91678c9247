"""Evaluation metrics of the three datasets, as the papers and public baselines report them.

Plain functions over numpy arrays (scikit-learn underneath), so they can be checked by hand:

- multi-label (EMOTIC, BoLD): per-class average precision as `sklearn.metrics.average_precision_score`
  computes it (what the public PyTorch EMOTIC baselines report) and its mean, `mAP`; the EMOTIC
  authors' VOC2007-style 11-point interpolated AP under its own name, `mAP_voc11`; per-class ROC AUC
  and `mean_AUC` (BoLD); F1 at the decision thresholds;
- single-label (CAER-S): `accuracy`, `macro_F1`, the confusion matrix;
- valence/arousal/dominance: mean absolute error (EMOTIC, 1..10 scale) and R^2 per dimension (BoLD);
- BoLD's challenge score `ERS = 1/2 * (mean R^2 + 1/2 * (mAP + mean AUC))`.

A class without positives (AP) or with a single class present (AUC) has no defined value: it is
reported as undefined (None), left out of the mean, and named in a warning. A mean over no defined
value is itself undefined. No function returns NaN or raises on such data.

`calibrate_thresholds` picks per-class decision thresholds on validation scores (rule in its
docstring); `config.decision_thresholds` stores them and the pipeline applies them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from sklearn.metrics import average_precision_score, f1_score, precision_recall_fscore_support, r2_score, roc_auc_score
from sklearn.metrics import confusion_matrix as sk_confusion_matrix
from transformers.utils import logging


logger = logging.get_logger(__name__)

# BoLD's categories are soft scores in [0, 1]; the challenge counts a category as present at >= 0.5.
BOLD_POSITIVE_THRESHOLD = 0.5
# Decision threshold on sigmoid probabilities for a class that validation cannot calibrate.
DEFAULT_DECISION_THRESHOLD = 0.5
VAD_NAMES = ("valence", "arousal", "dominance")


def _as_2d(array, name: str) -> np.ndarray:
    array = np.asarray(array, dtype=np.float64)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise ValueError(f"{name} must be a (num_samples, num_classes) array, got shape {array.shape}.")
    return array


def _check_same_shape(y_true: np.ndarray, y_score: np.ndarray) -> None:
    if y_true.shape != y_score.shape:
        raise ValueError(
            f"references and predictions must have the same shape, got {y_true.shape} and {y_score.shape}."
        )


def _names(label_names: Sequence[str] | None, n: int) -> list[str]:
    if label_names is None:
        return [str(i) for i in range(n)]
    if len(label_names) != n:
        raise ValueError(f"Got {len(label_names)} label names for {n} classes.")
    return list(label_names)


def _check_finite(array: np.ndarray, name: str) -> None:
    if not np.isfinite(array).all():
        raise ValueError(f"{name} holds NaN or infinite values; scores and labels must be finite numbers.")


def _score_arrays(y_true, y_score, finite: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """References and scores as (num_samples, num_classes) float arrays of one shape; scores finite unless told."""
    y_true, y_score = _as_2d(y_true, "references"), _as_2d(y_score, "predictions")
    _check_same_shape(y_true, y_score)
    if finite:
        _check_finite(y_score, "predictions")
    return y_true, y_score


def _per_class(
    y_true, y_score, label_names: Sequence[str] | None, metric: Callable[[np.ndarray, np.ndarray], float | None]
) -> dict[str, float | None]:
    """`metric(positives, scores)` of every column, keyed by label name; None for a class without positives."""
    y_true, y_score = _score_arrays(y_true, y_score)
    names = _names(label_names, y_true.shape[1])
    result: dict[str, float | None] = {}
    for j, name in enumerate(names):
        positives = y_true[:, j] > 0
        result[name] = metric(positives, y_score[:, j]) if positives.any() else None
    return result


def mean_of_defined(values: dict[str, float | None], what: str) -> float | None:
    """Mean of the values that are not None; warn naming the classes left out.

    >>> mean_of_defined({"Anger": 0.5, "Fear": None, "Pain": 1.0}, "AP")  # warns about Fear
    0.75
    """
    undefined = [name for name, value in values.items() if value is None]
    defined = [value for value in values.values() if value is not None]
    if undefined:
        logger.warning(
            "%s is undefined for %d class(es) and left out of the mean: %s.",
            what,
            len(undefined),
            ", ".join(undefined),
        )
    if not defined:
        return None
    return float(np.mean(defined))


def binarize(y_true, threshold: float = BOLD_POSITIVE_THRESHOLD) -> np.ndarray:
    """Multi-hot 0/1 labels from soft scores: positive where `score >= threshold` (BoLD's rule).

    >>> binarize([[0.2, 0.5, 0.9]]).tolist()
    [[0.0, 1.0, 1.0]]
    """
    return (np.asarray(y_true, dtype=np.float64) >= threshold).astype(np.float64)


def average_precision_per_class(y_true, y_score, label_names: Sequence[str] | None = None) -> dict[str, float | None]:
    """Per-class AP, identical to `sklearn.metrics.average_precision_score` on each column.

    `y_true` is 0/1 (num_samples, num_classes); a class without positives maps to None.

    >>> average_precision_per_class([[1, 0], [0, 0], [1, 0]], [[0.1, 0.2], [0.3, 0.3], [0.4, 0.1]], ["a", "b"])
    {'a': 0.8333333333333333, 'b': None}
    """
    return _per_class(
        y_true, y_score, label_names, lambda positives, scores: float(average_precision_score(positives, scores))
    )


def voc11_average_precision(y_true, y_score) -> float | None:
    """The EMOTIC authors' AP: VOC2007 11-point interpolated average precision of one class.

    Samples are ranked by descending score (a stable sort, as MATLAB's `sort` is, so tied scores
    keep their input order); precision and recall are taken after each sample; the AP is the mean,
    over recall levels 0, 0.1, ..., 1, of the best precision reached at a recall >= that level (0
    where no point reaches it). None when there is no positive.

    >>> round(voc11_average_precision([1, 0, 1], [0.9, 0.8, 0.7]), 6)  # (6 * 1 + 5 * 2/3) / 11
    0.848485
    """
    y_true = np.asarray(y_true, dtype=np.float64).ravel() > 0
    y_score = np.asarray(y_score, dtype=np.float64).ravel()
    if y_true.shape != y_score.shape:
        raise ValueError(
            f"references and predictions must have the same length, got {y_true.size} and {y_score.size}."
        )
    num_positives = int(y_true.sum())
    if num_positives == 0:
        return None
    order = np.argsort(-y_score, kind="stable")
    true_positives = np.cumsum(y_true[order])
    ranks = np.arange(1, y_true.size + 1)
    recall = true_positives / num_positives
    precision = true_positives / ranks
    levels = np.linspace(0.0, 1.0, 11)
    best = [precision[recall >= level - 1e-12].max() if (recall >= level - 1e-12).any() else 0.0 for level in levels]
    return float(np.mean(best))


def voc11_average_precision_per_class(
    y_true, y_score, label_names: Sequence[str] | None = None
) -> dict[str, float | None]:
    """`voc11_average_precision` of every column; None for a class without positives."""
    return _per_class(y_true, y_score, label_names, voc11_average_precision)


def roc_auc_per_class(y_true, y_score, label_names: Sequence[str] | None = None) -> dict[str, float | None]:
    """Per-class ROC AUC (`sklearn.metrics.roc_auc_score`); None where only one class is present.

    >>> roc_auc_per_class([[1, 1], [0, 1], [1, 1]], [[0.9, 0.2], [0.3, 0.3], [0.4, 0.1]], ["a", "b"])
    {'a': 1.0, 'b': None}
    """
    # A class whose samples are all positive has no ROC curve either.
    return _per_class(
        y_true,
        y_score,
        label_names,
        lambda positives, scores: float(roc_auc_score(positives, scores)) if not positives.all() else None,
    )


def f1_at_thresholds(y_true, y_score, thresholds, label_names: Sequence[str] | None = None) -> dict[str, float | None]:
    """Per-class F1 when class j is predicted at `score >= thresholds[j]`.

    A class with neither positives nor predicted positives has no F1 (0/0): None. A class with
    predicted positives but no true ones scores 0.

    >>> f1_at_thresholds([[1, 0, 0], [0, 0, 0]], [[0.9, 0.1, 0.7], [0.6, 0.2, 0.1]], 0.5, ["a", "b", "c"])
    {'a': 0.6666666666666666, 'b': None, 'c': 0.0}
    """
    y_true, y_score = _score_arrays(y_true, y_score, finite=False)
    thresholds = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (y_true.shape[1],))
    names = _names(label_names, y_true.shape[1])
    positives = y_true > 0
    predicted = y_score >= thresholds[None, :]
    scores = f1_score(positives, predicted, average=None, zero_division=0)
    defined = positives.any(axis=0) | predicted.any(axis=0)
    return {name: float(score) if ok else None for name, score, ok in zip(names, scores, defined)}


def calibrate_thresholds(y_true, y_score, default: float = DEFAULT_DECISION_THRESHOLD) -> list[float]:
    """Per-class decision thresholds that maximise F1 on validation.

    Rule: for class j, the candidates are the distinct validation scores of that class; predicting
    positive at `score >= t`, the threshold is the candidate with the highest F1, and among equal
    F1 the LOWEST candidate (it keeps the most positives). A class without validation positives
    cannot be calibrated and gets `default` (0.5 on sigmoid probabilities).

    >>> calibrate_thresholds([[1, 0], [1, 0], [0, 0]], [[0.9, 0.4], [0.6, 0.2], [0.3, 0.1]])
    [0.6, 0.5]
    """
    y_true, y_score = _score_arrays(y_true, y_score)
    thresholds = []
    for j in range(y_true.shape[1]):
        positives = y_true[:, j] > 0
        num_positives = int(positives.sum())
        if num_positives == 0:
            thresholds.append(float(default))
            continue
        order = np.argsort(-y_score[:, j], kind="stable")
        scores, hits = y_score[order, j], positives[order]
        true_positives = np.cumsum(hits)
        # Predicting the top k as positive; only the last position of each run of tied scores is a
        # reachable cut, since a threshold cannot separate equal scores.
        last_of_tie = np.append(scores[1:] != scores[:-1], True)
        k = np.arange(1, scores.size + 1)[last_of_tie]
        f1 = 2 * true_positives[last_of_tie] / (k + num_positives)
        candidates = scores[last_of_tie]
        best = np.flatnonzero(f1 == f1.max())
        # Candidates are in descending order, so the last best one is the lowest threshold.
        thresholds.append(float(candidates[best[-1]]))
    return thresholds


def accuracy(y_true, y_pred) -> float:
    """Top-1 accuracy of integer class predictions."""
    y_true, y_pred = np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"references and predictions must have the same length, got {y_true.size} and {y_pred.size}.")
    if y_true.size == 0:
        raise ValueError("accuracy needs at least one sample.")
    return float(np.mean(y_true == y_pred))


def macro_f1(y_true, y_pred, num_classes: int) -> float:
    """Macro-averaged F1 over all `num_classes` classes (a class never seen nor predicted scores 0)."""
    return float(f1_score(y_true, y_pred, labels=list(range(num_classes)), average="macro", zero_division=0))


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) counts: row = true class, column = predicted class."""
    return sk_confusion_matrix(y_true, y_pred, labels=list(range(num_classes)))


def _vad_pairs(vad_true, vad_pred) -> tuple[np.ndarray, np.ndarray]:
    vad_true, vad_pred = _as_2d(vad_true, "VAD references"), _as_2d(vad_pred, "VAD predictions")
    if vad_true.shape != vad_pred.shape:
        raise ValueError(
            f"VAD references and predictions must have the same shape, got {vad_true.shape} and {vad_pred.shape}."
        )
    _check_finite(vad_pred, "VAD predictions")
    return vad_true, vad_pred


def vad_mae(vad_true, vad_pred, names: Sequence[str] = VAD_NAMES) -> dict[str, float | None]:
    """Mean absolute error per dimension over the samples whose reference is not NaN (None if none is)."""
    vad_true, vad_pred = _vad_pairs(vad_true, vad_pred)
    result: dict[str, float | None] = {}
    for j, name in enumerate(_names(names, vad_true.shape[1])):
        known = ~np.isnan(vad_true[:, j])
        result[name] = float(np.abs(vad_true[known, j] - vad_pred[known, j]).mean()) if known.any() else None
    return result


def vad_r2(vad_true, vad_pred, names: Sequence[str] = VAD_NAMES) -> dict[str, float | None]:
    """Coefficient of determination per dimension (`sklearn.metrics.r2_score`), NaN references skipped.

    None where fewer than two references are known or they are all equal (R^2 is then undefined).
    """
    vad_true, vad_pred = _vad_pairs(vad_true, vad_pred)
    result: dict[str, float | None] = {}
    for j, name in enumerate(_names(names, vad_true.shape[1])):
        known = ~np.isnan(vad_true[:, j])
        target = vad_true[known, j]
        defined = target.size >= 2 and not np.all(target == target[0])
        result[name] = float(r2_score(target, vad_pred[known, j])) if defined else None
    return result


def emotion_recognition_score(mean_r2: float | None, mean_ap: float | None, mean_auc: float | None) -> float | None:
    """BoLD's ERS = 1/2 * (mean R^2 + 1/2 * (mAP + mean AUC)); None if any part is undefined.

    >>> emotion_recognition_score(0.2, 0.3, 0.7)
    0.35
    """
    if mean_r2 is None or mean_ap is None or mean_auc is None:
        return None
    return 0.5 * (mean_r2 + 0.5 * (mean_ap + mean_auc))


def _scalar(scalars: dict, name: str, value: float | None) -> None:
    # Undefined values stay out of the scalar dict: logs and JSON never carry a NaN.
    if value is not None:
        scalars[name] = float(value)


def multilabel_metrics(
    references,
    predictions,
    label_names: Sequence[str],
    thresholds: Sequence[float] | None = None,
    vad_references=None,
    vad_predictions=None,
    with_ers: bool = False,
) -> dict:
    """All multi-label figures of one split (EMOTIC, BoLD).

    `references` are 0/1 or soft scores (positive at >= 0.5), `predictions` per-class probabilities,
    both (num_samples, num_classes); `vad_*` are (num_samples, 3) with NaN where unknown.

    Returns `{"scalars": {...}, "per_class": {name: {...}}, "undefined": {...}}`. Scalars:
    `mAP` (sklearn AP), `mAP_voc11` (EMOTIC authors' AP), `mean_AUC`, `macro_F1` at the decision
    thresholds (0.5 where none are given; classes without positives nor predictions left out), and
    with VAD `MAE_<dim>`, `VAD_MAE`, `R2_<dim>`, `mean_R2`, plus `ERS` when `with_ers`.
    Undefined figures are absent from the scalars.

    >>> report = multilabel_metrics([[1, 0], [0, 1], [1, 1]], [[0.9, 0.2], [0.3, 0.8], [0.4, 0.1]], ["a", "b"])
    >>> round(report["scalars"]["mAP"], 4)
    0.9167
    """
    positives = binarize(_as_2d(references, "references"))
    scores = _as_2d(predictions, "predictions")
    _check_same_shape(positives, scores)
    names = _names(label_names, positives.shape[1])
    if thresholds is None:
        thresholds = [DEFAULT_DECISION_THRESHOLD] * len(names)
    if len(thresholds) != len(names):
        raise ValueError(f"Got {len(thresholds)} decision thresholds for {len(names)} classes.")

    ap = average_precision_per_class(positives, scores, names)
    ap_voc11 = voc11_average_precision_per_class(positives, scores, names)
    auc = roc_auc_per_class(positives, scores, names)
    f1 = f1_at_thresholds(positives, scores, thresholds, names)
    support = positives.sum(axis=0)

    scalars: dict[str, float] = {}
    _scalar(scalars, "mAP", mean_of_defined(ap, "AP"))
    _scalar(scalars, "mAP_voc11", mean_of_defined(ap_voc11, "VOC 11-point AP"))
    _scalar(scalars, "mean_AUC", mean_of_defined(auc, "ROC AUC"))
    _scalar(scalars, "macro_F1", mean_of_defined(f1, "F1"))
    per_class = {
        name: {
            "AP": ap[name],
            "AP_voc11": ap_voc11[name],
            "AUC": auc[name],
            "F1": f1[name],
            "threshold": float(thresholds[j]),
            "support": int(support[j]),
        }
        for j, name in enumerate(names)
    }
    undefined = {
        "AP": [n for n, v in ap.items() if v is None],
        "AUC": [n for n, v in auc.items() if v is None],
        "F1": [n for n, v in f1.items() if v is None],
    }
    report = {"scalars": scalars, "per_class": per_class, "undefined": undefined}
    if vad_references is not None and vad_predictions is not None:
        report["vad"] = vad_metrics(vad_references, vad_predictions)
        scalars.update(report["vad"]["scalars"])
        undefined["R2"] = report["vad"]["undefined"]["R2"]
    if with_ers:
        ers = emotion_recognition_score(scalars.get("mean_R2"), scalars.get("mAP"), scalars.get("mean_AUC"))
        if ers is None:
            logger.warning("ERS is undefined: it needs mean R^2 (a VAD head and VAD labels), mAP and mean AUC.")
        _scalar(scalars, "ERS", ers)
    return report


def vad_metrics(vad_references, vad_predictions, names: Sequence[str] = VAD_NAMES) -> dict:
    """MAE and R^2 per VAD dimension and their means (`VAD_MAE`, `mean_R2`), NaN references skipped."""
    mae = vad_mae(vad_references, vad_predictions, names)
    r2 = vad_r2(vad_references, vad_predictions, names)
    scalars: dict[str, float] = {}
    for name in names:
        _scalar(scalars, f"MAE_{name}", mae[name])
    _scalar(scalars, "VAD_MAE", mean_of_defined(mae, "VAD MAE"))
    for name in names:
        _scalar(scalars, f"R2_{name}", r2[name])
    _scalar(scalars, "mean_R2", mean_of_defined(r2, "R^2"))
    return {
        "scalars": scalars,
        "per_dimension": {name: {"MAE": mae[name], "R2": r2[name]} for name in names},
        "undefined": {"MAE": [n for n, v in mae.items() if v is None], "R2": [n for n, v in r2.items() if v is None]},
    }


def single_label_metrics(references, predictions, label_names: Sequence[str]) -> dict:
    """All single-label figures of one split (CAER-S): `accuracy`, `macro_F1`, per-class and confusion matrix.

    `references` are class indices (num_samples,); `predictions` are class indices (num_samples,)
    or scores/logits (num_samples, num_classes), of which the argmax is taken.

    >>> single_label_metrics([0, 1, 1], [[2.0, 0.1], [0.3, 0.5], [0.9, 0.1]], ["x", "y"])["scalars"]
    {'accuracy': 0.6666666666666666, 'macro_F1': 0.6666666666666666}
    """
    names = list(label_names)
    references = np.asarray(references).ravel().astype(np.int64)
    predictions = np.asarray(predictions)
    if predictions.ndim == 2:
        if predictions.shape[1] != len(names):
            raise ValueError(f"predictions have {predictions.shape[1]} columns for {len(names)} classes.")
        predictions = predictions.argmax(axis=1)
    predictions = predictions.ravel().astype(np.int64)
    bad = references[(references < 0) | (references >= len(names))]
    if bad.size:
        raise ValueError(f"references hold class indices outside 0..{len(names) - 1}: {sorted(set(bad.tolist()))}.")
    labels = list(range(len(names)))
    precision, recall, f1, support = precision_recall_fscore_support(
        references, predictions, labels=labels, zero_division=0
    )
    scalars = {
        "accuracy": accuracy(references, predictions),
        "macro_F1": macro_f1(references, predictions, len(names)),
    }
    per_class = {
        name: {
            "precision": float(precision[j]),
            "recall": float(recall[j]),
            "F1": float(f1[j]),
            "support": int(support[j]),
        }
        for j, name in enumerate(names)
    }
    return {
        "scalars": scalars,
        "per_class": per_class,
        "confusion_matrix": confusion_matrix(references, predictions, len(names)).tolist(),
        "undefined": {},
    }


def task_metrics(
    task: str,
    references,
    predictions,
    label_names: Sequence[str],
    thresholds: Sequence[float] | None = None,
    vad_references=None,
    vad_predictions=None,
) -> dict:
    """The metric set of a dataset: `emotic` and `bold` multi-label (BoLD adds ERS), `caer_s` single-label."""
    if task == "caer_s":
        return single_label_metrics(references, predictions, label_names)
    if task in ("emotic", "bold"):
        return multilabel_metrics(
            references,
            predictions,
            label_names,
            thresholds=thresholds,
            vad_references=vad_references,
            vad_predictions=vad_predictions,
            with_ers=task == "bold",
        )
    raise ValueError(f"Unknown dataset {task!r}: expected one of ['bold', 'caer_s', 'emotic'].")
