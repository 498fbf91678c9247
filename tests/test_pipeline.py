"""The emotion-in-context pipeline on saved tiny checkpoints: inputs, outputs, thresholds, errors, detection."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import pipeline

import modeling_emofusion  # noqa: F401  (registers the task)
from emofusion.testing import tiny_classifier
from emofusion.testing_detection import tiny_person_detector
from modeling_emofusion import EmotionInContextPipeline
from modeling_emofusion.pipeline_emofusion import TASK


DESCRIPTION = "based on the image context the person in the red box appears happy and excited"


def _photo(width: int = 96, height: int = 72, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny fusion model with a VAD head, saved with its processor and the pipeline code."""
    model, processor = tiny_classifier(task="emotic", seed=1)
    path = tmp_path_factory.mktemp("checkpoint")
    EmotionInContextPipeline(model=model, processor=processor).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def pipe(checkpoint):
    return pipeline(TASK, model=str(checkpoint), trust_remote_code=True, device=-1)


def _forward_scores(pipe, image, bbox, description):
    """Reference: the processor and the model's forward, by hand."""
    inputs = pipe.processor(images=image, bbox=bbox, text=description, return_tensors="pt")
    with torch.no_grad():
        logits = pipe.model(**inputs).logits[0]
    return dict(zip(pipe.model.config.id2label.values(), torch.sigmoid(logits).tolist()))


def _scores(subject) -> dict[str, float]:
    return {entry["label"]: entry["score"] for entry in subject["scores"]}


def test_saved_checkpoint_records_the_task(checkpoint):
    config = json.loads((checkpoint / "config.json").read_text())
    assert config["custom_pipelines"][TASK]["impl"] == "pipeline_emofusion.EmotionInContextPipeline"
    assert (checkpoint / "pipeline_emofusion.py").is_file() and (checkpoint / "marking.py").is_file()
    assert (checkpoint / "processor_config.json").is_file()


def test_single_input_matches_model_forward(pipe):
    image = _photo()
    (subject,) = pipe(image, bbox=[10, 8, 50, 70], description=DESCRIPTION)
    assert subject["bbox"] == [10.0, 8.0, 50.0, 70.0]
    assert subject["description"] == DESCRIPTION and subject["description_source"] == "given"
    scores = _scores(subject)
    assert list(scores) == sorted(scores, key=scores.get, reverse=True)  # best first
    expected = _forward_scores(pipe, image, [10, 8, 50, 70], DESCRIPTION)
    assert set(scores) == set(expected) and len(scores) == 26
    for name, value in expected.items():
        assert scores[name] == pytest.approx(value, abs=1e-6)
    assert set(subject["vad"]) == {"valence", "arousal", "dominance"}
    inputs = pipe.processor(images=image, bbox=[10, 8, 50, 70], text=DESCRIPTION, return_tensors="pt")
    with torch.no_grad():
        vad = pipe.model(**inputs).vad[0].tolist()
    assert [subject["vad"][k] for k in ("valence", "arousal", "dominance")] == pytest.approx(vad, abs=1e-6)


def test_no_box_means_whole_picture(pipe):
    image = _photo(seed=1)
    (subject,) = pipe({"image": image, "description": DESCRIPTION})
    assert subject["bbox"] is None
    expected = _forward_scores(pipe, image, None, DESCRIPTION)
    assert _scores(subject) == pytest.approx(expected, abs=1e-6)


def test_inputs_as_path_and_array(pipe, tmp_path):
    image = _photo(seed=2)
    path = tmp_path / "photo.png"
    image.save(path)
    from_path = pipe(str(path), bbox=[5, 5, 60, 60], description=DESCRIPTION)[0]
    from_array = pipe(np.asarray(image), bbox=[5, 5, 60, 60], description=DESCRIPTION)[0]
    assert _scores(from_path) == pytest.approx(_scores(from_array), abs=1e-6)


def test_batch_equals_one_at_a_time(pipe):
    inputs = [
        {"image": _photo(seed=3), "bbox": [10, 8, 50, 70], "description": DESCRIPTION},
        {"image": _photo(seed=4), "description": "the person looks tired"},
        {"image": _photo(seed=5), "bbox": [[0, 0, 40, 40], [45, 10, 90, 70]], "description": ["sad", "calm"]},
    ]
    batched = pipe(inputs, batch_size=3)
    single = [pipe(item) for item in inputs]
    assert [len(subjects) for subjects in batched] == [1, 1, 2]
    for got, want in zip(batched, single):
        for a, b in zip(got, want):
            assert a["bbox"] == b["bbox"] and a["labels"] == b["labels"]
            assert _scores(a) == pytest.approx(_scores(b), abs=1e-5)


def test_several_boxes_and_partial_box_clipped(pipe):
    image = _photo(seed=6)
    subjects = pipe(image, bbox=[[-20, -10, 40, 50], [50, 5, 120, 90]], description=["happy", "angry"])
    assert [s["bbox"] for s in subjects] == [[0.0, 0.0, 40.0, 50.0], [50.0, 5.0, 96.0, 72.0]]
    # Clipping is the processor's: the same scores as the clipped box given directly.
    expected = _forward_scores(pipe, image, [0, 0, 40, 50], "happy")
    assert _scores(subjects[0]) == pytest.approx(expected, abs=1e-6)


def test_labels_follow_stored_thresholds():
    model, processor = tiny_classifier(task="emotic", seed=2)
    image = _photo(seed=7)
    pipe = EmotionInContextPipeline(model=model, processor=processor, device=-1)
    scores = _scores(pipe(image, bbox=[10, 8, 50, 70], description=DESCRIPTION)[0])
    names = list(model.config.id2label.values())
    # Every other class just below its score (-> predicted), the rest just above (-> not).
    thresholds = [scores[n] - 1e-4 if i % 2 == 0 else min(scores[n] + 1e-4, 1.0) for i, n in enumerate(names)]
    model.config.decision_thresholds = thresholds
    subject = pipe(image, bbox=[10, 8, 50, 70], description=DESCRIPTION)[0]
    assert subject["labels"] == names[::2]
    model.config.decision_thresholds = None  # default 0.5
    subject = pipe(image, bbox=[10, 8, 50, 70], description=DESCRIPTION)[0]
    assert subject["labels"] == [n for n in names if scores[n] >= 0.5]


def test_single_label_model_gives_argmax():
    model, processor = tiny_classifier(task="caer_s", seed=3)
    pipe = EmotionInContextPipeline(model=model, processor=processor, device=-1)
    (subject,) = pipe(_photo(seed=8), description="she looks surprised")
    best = max(subject["scores"], key=lambda e: e["score"])
    assert subject["labels"] == [best["label"]]
    assert sum(e["score"] for e in subject["scores"]) == pytest.approx(1.0, abs=1e-5)
    assert "vad" not in subject


def test_clip_input():
    model, processor = tiny_classifier(task="bold", seed=4, num_frames=4)
    pipe = EmotionInContextPipeline(model=model, processor=processor, device=-1)
    frames = [_photo(seed=10 + t) for t in range(6)]  # more frames than the model takes
    (subject,) = pipe(frames=frames, bbox=[10, 5, 60, 70], description=DESCRIPTION)
    assert subject["bbox"] == [10.0, 5.0, 60.0, 70.0]
    kept = [frames[i] for i in (0, 2, 3, 5)]  # evenly spaced
    inputs = processor(videos=[kept], bbox=[[10, 5, 60, 70]], text=DESCRIPTION, return_tensors="pt")
    with torch.no_grad():
        expected = torch.sigmoid(model(**inputs).logits[0]).tolist()
    assert [_scores(subject)[n] for n in model.config.id2label.values()] == pytest.approx(expected, abs=1e-5)
    # Clips of different lengths batch together (padded to config.num_frames).
    batch = pipe(
        [{"frames": frames[:2], "description": "calm"}, {"frames": frames, "description": "sad"}], batch_size=2
    )
    assert len(batch) == 2 and all(len(subjects) == 1 for subjects in batch)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bbox": [200, 200, 300, 300]}, "wholly outside"),
        ({"bbox": "10,10,50,50"}, "x1, y1, x2, y2"),
        ({"bbox": [10, 10, 50]}, "x1, y1, x2, y2"),
        ({"bbox": [50, 10, 10, 50]}, "zero or negative area"),
        ({"bbox": [[0, 0, 10, 10], [5, 5, 20, 20]], "description": "only one"}, "one per box"),
    ],
)
def test_bad_boxes_are_clear_errors(pipe, kwargs, message):
    kwargs = {"description": DESCRIPTION, **kwargs}
    with pytest.raises(ValueError, match=message):
        pipe(_photo(), **kwargs)


def test_bad_images_are_clear_errors(pipe, tmp_path):
    with pytest.raises(ValueError, match="empty"):
        pipe(np.zeros((0, 0, 3), dtype=np.uint8), description=DESCRIPTION)
    with pytest.raises(ValueError, match="empty"):
        pipe(Image.new("RGB", (0, 0)), description=DESCRIPTION)
    with pytest.raises(FileNotFoundError, match="missing.jpg"):
        pipe(str(tmp_path / "missing.jpg"), description=DESCRIPTION)
    with pytest.raises(ValueError, match="exactly one of 'image'"):
        pipe({"bbox": [0, 0, 5, 5]})


def test_missing_description_without_vllm_says_what_to_pass(pipe):
    assert pipe.model.config.description_model is None
    with pytest.raises(ValueError, match=r"description_model is None.*description="):
        pipe(_photo(), bbox=[10, 8, 50, 70])


def test_detect_people_with_an_object_detector(tmp_path):
    detector, image_processor = tiny_person_detector()
    detector_dir = tmp_path / "detector"
    detector.save_pretrained(detector_dir)
    image_processor.save_pretrained(detector_dir)
    # A vision-only model needs no description, so only detection is at play here.
    model, processor = tiny_classifier(task="emotic", seed=5, modality="vision")
    pipe = EmotionInContextPipeline(model=model, processor=processor, device=-1)
    image = _photo(160, 120, seed=9)
    subjects = pipe(image, detect=True, detector=str(detector_dir), detection_threshold=0.5)
    found = pipeline("object-detection", model=str(detector_dir), device=-1)(image, threshold=0.5)
    people = [d for d in found if d["label"] == "person" and d["box"]["xmax"] > d["box"]["xmin"]]
    people = [d for d in people if d["box"]["ymax"] > d["box"]["ymin"]]
    assert len(subjects) == len(people) >= 2
    expected_boxes = sorted([[float(d["box"][k]) for k in ("xmin", "ymin", "xmax", "ymax")] for d in people])
    assert sorted(s["bbox"] for s in subjects) == expected_boxes
    for subject in subjects:
        assert subject["detection_score"] >= 0.5 and subject["description"] is None
        inputs = processor(images=image, bbox=subject["bbox"], return_tensors="pt")
        with torch.no_grad():
            expected = torch.sigmoid(model(**inputs).logits[0]).tolist()
        assert [_scores(subject)[n] for n in model.config.id2label.values()] == pytest.approx(expected, abs=1e-6)
    # Nobody above the threshold: no subject. A class the detector lacks: a clear error.
    assert pipe(image, detect=True, detector=str(detector_dir), detection_threshold=0.9999) == []
    with pytest.raises(ValueError, match="no class 'pedestrian'"):
        pipe(image, detect=True, detector=str(detector_dir), person_label="pedestrian")
