"""`emofusion demo` at a small size: the real path end to end, and the synthetic task needs both modalities."""

from __future__ import annotations

import json

import pytest
import scipy.io

from emofusion.demo import DemoArguments, run_demo


# Smaller than the documented run (400/100/200 images, 30 epochs) so the suite stays quick; a larger
# learning rate makes up for the fewer steps. Seed fixed: the numbers are reproducible.
SMALL = {"train_images": 160, "val_images": 40, "test_images": 80, "num_train_epochs": 40, "learning_rate": 2e-3}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return out, run_demo(DemoArguments(output_dir=str(out), seed=0, **SMALL))


def test_fusion_beats_each_modality_on_held_out_data(demo):
    _, summary = demo
    results = summary["results"]
    vision, text, fusion = (results[m]["mAP"] for m in ("vision", "text", "fusion"))
    print(f"test mAP: vision {vision:.3f}, text {text:.3f}, fusion {fusion:.3f}")
    assert fusion >= vision + 0.15 and fusion >= text + 0.15
    # Each single modality recovers its own half of the labels and is near chance on the other half.
    assert results["vision"]["mAP_visual"] > results["vision"]["mAP_text"] + 0.2
    assert results["text"]["mAP_text"] > results["text"]["mAP_visual"] + 0.2


def test_real_formats_on_disk(demo):
    out, summary = demo
    annotations = scipy.io.loadmat(out / "data" / "Annotations" / "Annotations.mat", squeeze_me=True)
    assert {"train", "val", "test"} <= set(annotations)
    assert len(list((out / "data" / "emotic").glob("*/images/*.jpg"))) == sum(
        SMALL[f"{s}_images"] for s in ("train", "val", "test")
    )
    meta = json.loads((out / "descriptions" / "description_set.json").read_text())
    assert meta["format"] == "emofusion-descriptions" and meta["model"] is None  # not written by a VLLM
    assert sum(counts["ok"] for counts in meta["splits"].values()) == sum(summary["sizes"].values())


def test_checkpoints_and_pipeline_example(demo):
    out, summary = demo
    for modality in ("vision", "text", "fusion"):
        folder = out / "models" / modality
        config = json.loads((folder / "config.json").read_text())
        assert config["modality"] == modality and "emotion-in-context" in config["custom_pipelines"]
        assert (folder / "model.safetensors").is_file() and (folder / "pipeline_emofusion.py").is_file()
        assert len(config["decision_thresholds"]) == 26  # calibrated on validation
        assert not list(folder.glob("*.bin"))  # no pickles
    example = summary["example"]
    assert (out / "annotated.png").is_file() and example["annotated"].endswith("annotated.png")
    assert len(example["subjects"]) == len(example["true_labels"]) >= 1
    for subject in example["subjects"]:
        assert len(subject["scores"]) == 26 and subject["description_source"] == "given"
    assert "machinery" in summary["notice"] and "not the accuracy" in summary["notice"]
