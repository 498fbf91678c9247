"""The metric sets of EMOTIC, CAER-S and BoLD as local `evaluate.Metric` modules (no Hub fetch).

`evaluate.load("accuracy")` and friends download a script from the Hub; these classes are built
in place instead and computed through `metrics.py`. Each returns the scalar figures (undefined
ones absent, never NaN); `compute(..., return_report=True)` returns the full report with
per-class values and, for CAER-S, the confusion matrix.

>>> from modeling_emofusion.metric_modules import load_emotion_metric
>>> metric = load_emotion_metric("caer_s")
>>> metric.compute(predictions=[[0.9, 0.1], [0.2, 0.8]], references=[0, 0], label_names=["a", "b"])
{'accuracy': 0.5, 'macro_F1': 0.3333333333333333}
"""

from __future__ import annotations

from collections.abc import Sequence

import datasets
import evaluate

from .labels import TASKS
from .metrics import task_metrics


_CITATION = """\
@inproceedings{xenos2025vllms,
  title={VLLMs Provide Better Context for Emotion Understanding Through Common Sense Reasoning},
  author={Xenos, Alexandros and Foteinopoulou, Niki Maria and Ntinou, Ioanna and Patras, Ioannis and
          Tzimiropoulos, Georgios},
  booktitle={IJCNN},
  year={2025}
}
"""

_MULTILABEL_INPUTS = """
Args:
    predictions: per-class probabilities, one list of num_labels floats per sample.
    references: per-class 0/1 labels (EMOTIC) or soft scores in [0, 1] (BoLD, positive at >= 0.5).
    vad_predictions, vad_references (config "vad" only): valence/arousal/dominance per sample,
        NaN in the references where unknown.
    label_names: class names (defaults to the dataset's 26 categories).
    thresholds: per-class decision thresholds for F1 (defaults to 0.5).
    return_report: return the full report (per-class values, undefined classes) instead of the scalars.
Returns:
    mAP, mAP_voc11, mean_AUC, macro_F1[, MAE_*, VAD_MAE, R2_*, mean_R2][, ERS (BoLD)].
"""

_SINGLE_LABEL_INPUTS = """
Args:
    predictions: per-class scores (one list per sample; argmax taken) or class indices.
    references: class indices.
    label_names: class names (defaults to CAER-S's seven classes).
    return_report: return the full report (per-class values, confusion matrix) instead of the scalars.
Returns:
    accuracy, macro_F1.
"""


def _float_list() -> datasets.List:
    return datasets.List(datasets.Value("float32"))


class _EmotionMetric(evaluate.Metric):
    """Shared plumbing: the dataset name picks the label names and the metric set."""

    task: str = ""

    def _compute(
        self,
        predictions,
        references,
        vad_predictions=None,
        vad_references=None,
        label_names: Sequence[str] | None = None,
        thresholds: Sequence[float] | None = None,
        return_report: bool = False,
    ) -> dict:
        names = list(label_names) if label_names is not None else list(TASKS[self.task]["labels"])
        report = task_metrics(
            self.task,
            references,
            predictions,
            names,
            thresholds=thresholds,
            vad_references=vad_references,
            vad_predictions=vad_predictions,
        )
        return report if return_report else report["scalars"]


class _MultiLabelEmotionMetric(_EmotionMetric):
    def _info(self) -> evaluate.MetricInfo:
        features = {"predictions": _float_list(), "references": _float_list()}
        if self.config_name == "vad":
            features.update(vad_predictions=_float_list(), vad_references=_float_list())
        elif self.config_name != "default":
            name = type(self).__name__
            raise ValueError(f"{name}: config_name must be 'default' or 'vad', got {self.config_name!r}.")
        return evaluate.MetricInfo(
            description=self.__doc__,
            citation=_CITATION,
            inputs_description=_MULTILABEL_INPUTS,
            features=datasets.Features(features),
        )


class EmoticMetric(_MultiLabelEmotionMetric):
    """EMOTIC: per-class AP and mAP (sklearn's AP and the authors' 11-point AP), mean AUC, F1;
    with config "vad", VAD mean absolute error on the 1..10 scale (and R^2)."""

    task = "emotic"


class BoldMetric(_MultiLabelEmotionMetric):
    """BoLD: mAP and mean ROC AUC over 26 categories positive at soft score >= 0.5; with config
    "vad", R^2 per VAD dimension and ERS = 1/2 (mean R^2 + 1/2 (mAP + mean AUC))."""

    task = "bold"


class CaerSMetric(_EmotionMetric):
    """CAER-S: top-1 accuracy, macro-F1, per-class precision/recall/F1 and the confusion matrix."""

    task = "caer_s"

    def _info(self) -> evaluate.MetricInfo:
        index = datasets.Value("int64")
        return evaluate.MetricInfo(
            description=self.__doc__,
            citation=_CITATION,
            inputs_description=_SINGLE_LABEL_INPUTS,
            features=[
                datasets.Features({"predictions": _float_list(), "references": index}),
                datasets.Features({"predictions": index, "references": index}),
            ],
        )


METRIC_CLASSES: dict[str, type[_EmotionMetric]] = {"emotic": EmoticMetric, "caer_s": CaerSMetric, "bold": BoldMetric}


def load_emotion_metric(task: str, with_vad: bool = False, **kwargs) -> evaluate.Metric:
    """The local metric module of a dataset (`emotic`, `caer_s`, `bold`); `with_vad` adds the VAD inputs.

    `kwargs` go to `evaluate.Metric` (e.g. `keep_in_memory=True`, `num_process`/`process_id`).
    """
    if task not in METRIC_CLASSES:
        raise ValueError(f"Unknown dataset {task!r}: expected one of {sorted(METRIC_CLASSES)}.")
    if with_vad and task == "caer_s":
        raise ValueError("CAER-S has no valence/arousal/dominance labels: use with_vad=False.")
    kwargs.setdefault("keep_in_memory", True)
    return METRIC_CLASSES[task](config_name="vad" if with_vad else "default", **kwargs)
