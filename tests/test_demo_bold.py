"""`emofusion demo --dataset bold` at a small size, run as a user runs it: BoLD's on-disk layout, the BoLD
builder, clip models trained, scored (mAP, mean AUC, R^2, ERS) and saved, the pipeline on a test video, and the
saved cards say the data is synthetic."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml


REPO = Path(__file__).resolve().parents[1]
# Much smaller than the documented run (150/50/4 clips of 4 frames, width 64) so that the suite stays quick
# (narrower models, 3 frames); the default learning rate and batch of the BoLD demo. Seed fixed: the numbers are
# reproducible.
SMALL = {
    "train_clips": 40, "val_clips": 12, "test_clips": 1, "num_frames": 3, "num_train_epochs": 25,
    "hidden_size": 32,
}  # fmt: skip
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """One `emofusion demo --dataset bold` run in a subprocess: its folder, its results file, its stdout and stderr."""
    out = tmp_path_factory.mktemp("demo-bold")
    flags = [f"--{name}={value}" for name, value in SMALL.items()]
    run = subprocess.run(
        [sys.executable, "-m", "emofusion.cli", "demo", "--dataset", "bold", "--output_dir", str(out), *flags],
        env=ENV, capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads((out / "demo_results.json").read_text(encoding="utf-8"))
    return out, summary, run.stdout, run.stderr


def test_fusion_beats_each_modality_with_bold_figures(demo):
    _, summary, stdout, _ = demo
    results = summary["results"]
    print({m: {k: round(v, 3) for k, v in r.items()} for m, r in results.items()})
    assert results["fusion"]["mAP"] > results["vision"]["mAP"] and results["fusion"]["mAP"] > results["text"]["mAP"]
    # BoLD's figures, scored on its validation split (its test split has no labels).
    assert summary["split_scored"] == "validation" and summary["num_frames"] == SMALL["num_frames"]
    for modality in ("vision", "text", "fusion"):
        figures = results[modality]
        assert {"mAP", "mAP_visual", "mAP_text", "mean_AUC", "mean_R2", "ERS"} <= set(figures)
        expected_ers = 0.5 * (figures["mean_R2"] + 0.5 * (figures["mAP"] + figures["mean_AUC"]))
        assert figures["ERS"] == pytest.approx(expected_ers, abs=1e-6)
        assert re.search(rf"^\| {modality} +\| {figures['mAP']:.3f} .*\| {figures['ERS']:.3f} +\|$", stdout, re.M)


def test_real_bold_layout_on_disk(demo):
    out, summary, _, _ = demo
    root = out / "data" / "BOLD_public"
    with open(root / "annotations" / "train.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert len(rows) == 2 * SMALL["train_clips"] and {len(row) for row in rows} == {37}  # no header, 37 columns
    float(rows[0][4])  # the first row is data, not a header
    with open(root / "annotations" / "test_meta.csv", newline="") as handle:
        assert {len(row) for row in csv.reader(handle)} == {4}  # BoLD's test labels are not public
    video = rows[0][0]
    assert re.fullmatch(r"\d{3}/[\w-]{11}\.mp4/\d{4}\.mp4", video) and (root / "videos" / video).is_file()
    joints = np.load(root / "joints" / (video[: -len(".mp4")] + ".npy"), allow_pickle=False)
    assert joints.ndim == 2 and joints.shape[1] == 56 and set(joints[:, 1]) == {0.0, 1.0}
    assert summary["sizes"] == {"train": 2 * SMALL["train_clips"], "validation": 2 * SMALL["val_clips"], "test": 2}
    meta = json.loads((out / "descriptions" / "description_set.json").read_text())
    assert meta["model"] is None and meta["dataset"] == "bold"
    assert json.loads((out / "data" / "emofusion_synthetic.json").read_text())["synthetic"] is True


def test_saved_clip_model_reloads_and_runs_on_a_video(demo):
    from dataset_scripts.bold_frames import decode_video_frames
    from modeling_emofusion import EmoFusionForEmotionClassification, load_pipeline

    out, summary, _, _ = demo
    example = summary["example"]
    for modality in ("vision", "text", "fusion"):
        folder = out / "models" / modality
        config = json.loads((folder / "config.json").read_text())
        assert config["modality"] == modality and config["num_frames"] == SMALL["num_frames"]
        assert len(config["decision_thresholds"]) == 26 and config["num_vad"] == 3
        assert (folder / "model.safetensors").is_file() and not list(folder.glob("*.bin"))
    subject = example["subject"]
    assert len(subject["scores"]) == 26 and set(subject["vad"]) == {"valence", "arousal", "dominance"}
    assert example["id"].startswith("test/") and (out / "annotated.png").is_file()
    # The saved fusion model, reloaded afresh, gives the demo's answer on the same video, boxes and description.
    pipe = load_pipeline(str(out / "models" / "fusion"))
    assert (
        isinstance(pipe.model, EmoFusionForEmotionClassification)
        and pipe.model.config.num_frames == SMALL["num_frames"]
    )
    boxes = example["frame_boxes"]
    first, last = example["frames"]
    frames = decode_video_frames(example["video"], list(range(first, last + 1)))
    (again,) = pipe(frames=frames, bbox=boxes, description=example["description"])
    assert again["labels"] == subject["labels"]
    assert again["scores"][0]["score"] == pytest.approx(subject["scores"][0]["score"], abs=1e-5)


def test_output_and_cards_say_the_data_is_synthetic(demo):
    out, summary, stdout, stderr = demo
    steps = [line for line in stderr.splitlines() if line.strip()]
    assert [line[:5] for line in steps] == [f"[{i}/6]" for i in range(1, 7)], stderr[-2000:]
    flat = " ".join(stdout.split())
    assert "vision: the clip alone; text: the description alone; fusion: both" in flat
    assert "not the accuracy of the method on real videos" in flat and "synthetic" in summary["notice"]
    for modality in ("vision", "text", "fusion"):
        card = (out / "models" / modality / "README.md").read_text(encoding="utf-8")
        _, header, body = card.split("---\n", 2)
        meta = yaml.safe_load(header)
        assert "model-index" not in meta and "bold" not in meta["tags"] and "synthetic-data" in meta["tags"]
        lines = [line for line in body.splitlines() if line.strip()]
        assert "synthetic data" in lines[1].lower() and "not on BoLD or any real videos" in lines[1]
        assert "emofusion.synthetic_bold.write_synthetic_bold" in card and "change colour during the clip" in card
        # A clip model's card shows clip inputs, and reproduces the validation figures it reports (no test labels).
        assert "processor(videos=[frames]" in card and "images=Image.open" not in card
        assert "Reproduce the validation figures" in card and "--do_eval" in card and "--do_predict" not in card


def test_whole_video_through_the_video_path(demo):
    """The demo's last step runs `pipe(video=...)` on the test video: one tracked person, a timeline whose
    window holds its scores, an annotated H.264 video with every frame of the file, and the plot."""
    import av
    from PIL import Image

    out, summary, stdout, _ = demo
    video = summary["example"]["video_path"]
    assert video["tracks"] == 1 and video["windows"] and "pipeline's video path" in stdout
    timeline = json.loads(Path(video["timeline"]).read_text(encoding="utf-8"))
    (track,) = timeline["tracks"]
    assert all(len(window["scores"]) == 26 and window["box"] for window in track["windows"])
    assert timeline["window_frames"] == SMALL["num_frames"]
    with av.open(video["annotated_video"]) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and sum(1 for _ in container.decode(stream)) == 20
    with Image.open(video["plot"]) as plot:
        assert plot.format == "PNG"
