"""Metrics of the three datasets against values worked out by hand (numbers in the comments)."""

import logging
import math

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import average_precision_score, roc_auc_score

from modeling_emofusion import metrics
from modeling_emofusion.metric_modules import BoldMetric, CaerSMetric, EmoticMetric, load_emotion_metric
from modeling_emofusion.metric_plots import plot_confusion_matrix, plot_per_class_scores


# Class "a": ranked 0.9 (+), 0.8 (-), 0.7 (+), 0.1 (-).
#   sklearn AP = 1/2 * 1 + 1/2 * 2/3 = 5/6; VOC 11-point = (6 * 1 + 5 * 2/3) / 11 = 28/33;
#   AUC: positive > negative in 3 of 4 pairs = 3/4.
# Class "b": no positive -> AP and AUC undefined.
# Class "c": all positive -> AP = 1, AUC undefined.
REFS = [[1, 0, 1], [0, 0, 1], [1, 0, 1], [0, 0, 1]]
SCORES = [[0.9, 0.1, 0.3], [0.8, 0.2, 0.4], [0.7, 0.3, 0.5], [0.1, 0.4, 0.6]]
NAMES = ["a", "b", "c"]

# VAD: valence y=[1,2,3], p=[1,2,4] -> MAE 1/3, R^2 = 1 - 1/2 = 0.5
#      arousal y=[2,NaN,6], p=[3,9,5] -> MAE 1, R^2 on the two known = 1 - 2/8 = 0.75
#      dominance y=[5,5,5] -> MAE 0, R^2 undefined (constant target)
VAD_REFS = [[1, 2, 5], [2, math.nan, 5], [3, 6, 5]]
VAD_PREDS = [[1, 3, 5], [2, 9, 5], [4, 5, 5]]
VAD_REFS_4 = VAD_REFS + [[2, 4, 5]]
VAD_PREDS_4 = VAD_PREDS + [[2, 4, 5]]


def test_average_precision_hand_values_and_undefined_classes(caplog):
    ap = metrics.average_precision_per_class(REFS, SCORES, NAMES)
    assert ap["a"] == pytest.approx(5 / 6)
    assert ap["b"] is None
    assert ap["c"] == pytest.approx(1.0)
    voc = metrics.voc11_average_precision_per_class(REFS, SCORES, NAMES)
    assert voc["a"] == pytest.approx(28 / 33)
    assert voc["b"] is None
    auc = metrics.roc_auc_per_class(REFS, SCORES, NAMES)
    assert auc == {"a": pytest.approx(0.75), "b": None, "c": None}
    with caplog.at_level(logging.WARNING):
        assert metrics.mean_of_defined(ap, "AP") == pytest.approx((5 / 6 + 1) / 2)
    assert "left out of the mean: b" in caplog.text
    assert metrics.mean_of_defined({"x": None}, "AP") is None


def test_average_precision_agrees_with_sklearn_on_ties():
    rng = np.random.default_rng(0)
    refs = rng.integers(0, 2, size=(60, 5)).astype(float)
    scores = np.round(rng.random((60, 5)), 1)  # many tied scores
    ours = metrics.average_precision_per_class(refs, scores)
    theirs = average_precision_score(refs, scores, average=None)
    np.testing.assert_allclose(list(ours.values()), theirs)
    auc = metrics.roc_auc_per_class(refs, scores)
    np.testing.assert_allclose(list(auc.values()), [roc_auc_score(refs[:, j], scores[:, j]) for j in range(5)])


def test_voc11_perfect_and_worst_ranking():
    assert metrics.voc11_average_precision([1, 1, 0], [0.9, 0.8, 0.1]) == pytest.approx(1.0)
    # The single positive ranked last of 4: precision 1/4 at every recall level.
    assert metrics.voc11_average_precision([0, 0, 0, 1], [0.9, 0.8, 0.7, 0.1]) == pytest.approx(0.25)


def test_emotic_metric_set(caplog):
    with caplog.at_level(logging.WARNING):
        report = metrics.task_metrics(
            "emotic", REFS, SCORES, NAMES, vad_references=VAD_REFS_4, vad_predictions=VAD_PREDS_4
        )
    scalars = report["scalars"]
    assert scalars["mAP"] == pytest.approx((5 / 6 + 1) / 2)
    assert scalars["mAP_voc11"] == pytest.approx((28 / 33 + 1) / 2)
    assert scalars["mean_AUC"] == pytest.approx(0.75)
    # F1 at 0.5: a predicts {0.9, 0.8, 0.7} -> tp 2, fp 1, fn 0 -> 4/5; b no positive, none predicted -> undefined;
    # c predicts {0.5, 0.6} of 4 positives -> 2 * 2 / (2 + 4) = 2/3
    assert scalars["macro_F1"] == pytest.approx((0.8 + 2 / 3) / 2)
    # Fourth VAD row is exact: valence MAE (0 + 0 + 1 + 0) / 4, arousal (1 + 1 + 0) / 3, dominance 0.
    assert scalars["MAE_valence"] == pytest.approx(0.25)
    assert scalars["MAE_arousal"] == pytest.approx(2 / 3)
    assert scalars["VAD_MAE"] == pytest.approx((0.25 + 2 / 3 + 0) / 3)
    assert "ERS" not in scalars
    assert report["undefined"] == {"AP": ["b"], "AUC": ["b", "c"], "F1": ["b"], "R2": ["dominance"]}
    assert report["per_class"]["a"]["support"] == 2
    assert not any(isinstance(v, float) and math.isnan(v) for v in scalars.values())
    assert "b, c" in caplog.text


def test_bold_metric_set_soft_labels_r2_and_ers():
    soft = [[0.5, 0.1, 0.9], [0.49, 0.2, 0.6], [0.7, 0.0, 0.5], [0.0, 0.3, 0.55]]  # same positives as REFS
    report = metrics.task_metrics("bold", soft, SCORES, NAMES, vad_references=VAD_REFS, vad_predictions=VAD_PREDS)
    scalars = report["scalars"]
    assert scalars["mAP"] == pytest.approx((5 / 6 + 1) / 2)
    assert scalars["R2_valence"] == pytest.approx(0.5)
    assert scalars["R2_arousal"] == pytest.approx(0.75)
    assert "R2_dominance" not in scalars
    assert scalars["mean_R2"] == pytest.approx(0.625)
    assert scalars["ERS"] == pytest.approx(0.5 * (0.625 + 0.5 * ((5 / 6 + 1) / 2 + 0.75)))
    # Without VAD the ERS is undefined: absent, not NaN.
    assert "ERS" not in metrics.task_metrics("bold", soft, SCORES, NAMES)["scalars"]


def test_caer_s_metric_set():
    refs = [0, 0, 1, 2, 2, 2]
    preds = [0, 1, 1, 2, 2, 0]
    report = metrics.task_metrics("caer_s", refs, preds, ["w", "x", "y", "z"])
    # per-class F1: w P=R=1/2 -> 1/2; x P=1/2 R=1 -> 2/3; y P=1 R=2/3 -> 4/5; z never seen nor predicted -> 0
    assert report["scalars"] == {
        "accuracy": pytest.approx(4 / 6),
        "macro_F1": pytest.approx((0.5 + 2 / 3 + 0.8 + 0) / 4),
    }
    assert report["confusion_matrix"] == [[1, 1, 0, 0], [0, 1, 0, 0], [1, 0, 2, 0], [0, 0, 0, 0]]
    assert report["per_class"]["y"] == {"precision": 1.0, "recall": pytest.approx(2 / 3), "F1": 0.8, "support": 3}
    logits = np.eye(4)[preds] * 3.0 - 1.0
    assert metrics.task_metrics("caer_s", refs, logits, ["w", "x", "y", "z"])["scalars"] == report["scalars"]
    with pytest.raises(ValueError, match="outside 0..3"):
        metrics.task_metrics("caer_s", [0, 4], [0, 1], ["w", "x", "y", "z"])


def test_calibrate_thresholds_rule():
    # cuts 0.9: F1 2/3; 0.8: 1/2; 0.7: 4/5 (best); 0.1: 2/3
    assert metrics.calibrate_thresholds([[1], [0], [1], [0]], [[0.9], [0.8], [0.7], [0.1]]) == [0.7]
    # F1 ties at 0.9 and 0.3 (both 2/3): the lowest wins
    assert metrics.calibrate_thresholds([[1], [0], [0], [1]], [[0.9], [0.5], [0.4], [0.3]]) == [0.3]
    # tied scores are one cut; no positive -> default 0.5
    assert metrics.calibrate_thresholds([[1, 0], [1, 0], [0, 0]], [[0.6, 0.9], [0.6, 0.2], [0.2, 0.1]]) == [0.6, 0.5]


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="same shape"):
        metrics.average_precision_per_class([[1, 0]], [[0.1, 0.2, 0.3]])
    with pytest.raises(ValueError, match="NaN or infinite"):
        metrics.average_precision_per_class([[1], [0]], [[math.nan], [0.1]])
    with pytest.raises(ValueError, match="decision thresholds"):
        metrics.multilabel_metrics(REFS, SCORES, NAMES, thresholds=[0.5])
    with pytest.raises(ValueError, match="Unknown dataset"):
        metrics.task_metrics("affectnet", REFS, SCORES, NAMES)


def test_evaluate_modules_match_the_functions_and_accumulate_batches():
    emotic = load_emotion_metric("emotic", with_vad=True)
    assert isinstance(emotic, EmoticMetric)
    for start in (0, 2):  # two batches, as an evaluation loop adds them
        emotic.add_batch(
            predictions=SCORES[start : start + 2],
            references=REFS[start : start + 2],
            vad_predictions=VAD_PREDS_4[start : start + 2],
            vad_references=VAD_REFS_4[start : start + 2],
        )
    scalars = emotic.compute(label_names=NAMES)
    expected = metrics.task_metrics(
        "emotic", REFS, SCORES, NAMES, vad_references=VAD_REFS_4, vad_predictions=VAD_PREDS_4
    )["scalars"]
    assert scalars.keys() == expected.keys()
    for key, value in expected.items():
        assert scalars[key] == pytest.approx(value, rel=1e-6), key  # float32 storage inside evaluate

    bold = BoldMetric(config_name="vad", keep_in_memory=True)
    out = bold.compute(
        predictions=SCORES[:3],
        references=REFS[:3],
        vad_predictions=VAD_PREDS,
        vad_references=VAD_REFS,
        label_names=NAMES,
        return_report=True,
    )
    assert out["scalars"]["mean_R2"] == pytest.approx(0.625)
    assert "ERS" in out["scalars"]

    caer = CaerSMetric(keep_in_memory=True)
    assert caer.compute(predictions=[0, 1, 1], references=[0, 1, 0], label_names=["x", "y"])["accuracy"] == 2 / 3
    full = load_emotion_metric("caer_s").compute(predictions=[[0.1] * 6 + [0.9]], references=[6], return_report=True)
    assert len(full["confusion_matrix"]) == 7  # CAER-S's seven classes by default
    with pytest.raises(ValueError, match="no valence"):
        load_emotion_metric("caer_s", with_vad=True)


def test_plots_write_png(tmp_path):
    bars = plot_per_class_scores({"a": 0.8, "b": None, "c": 0.3}, tmp_path / "ap.png", mean=0.55)
    matrix = plot_confusion_matrix([[3, 1], [0, 2]], ["x", "y"], tmp_path / "cm.png")
    for path in (bars, matrix):
        with Image.open(path) as image:
            assert image.format == "PNG" and image.width > 100
    with pytest.raises(ValueError, match="does not match"):
        plot_confusion_matrix([[1]], ["x", "y"], tmp_path / "bad.png")
