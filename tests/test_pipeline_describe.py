"""Missing descriptions are generated with the VLLM recorded in the model's config (a tiny random LLaVA)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import pipeline

import modeling_emofusion  # noqa: F401
from emofusion.testing import tiny_classifier
from emofusion.testing_detection import tiny_person_detector
from emofusion.testing_llava import tiny_llava
from modeling_emofusion import EmotionInContextPipeline
from modeling_emofusion.describing import DEFAULT_PROMPT_TEMPLATE, TransformersDescriber


GENERATION = {"do_sample": False, "num_beams": 1, "max_new_tokens": 8}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("describe")
    tiny_llava(root / "tiny-llava")
    model, processor = tiny_classifier(task="emotic", seed=21)
    # What training records from a description set made with this VLLM.
    model.config.description_model = str(root / "tiny-llava")
    model.config.description_revision = None
    model.config.prompt_template = DEFAULT_PROMPT_TEMPLATE
    model.config.description_generation = GENERATION
    EmotionInContextPipeline(model=model, processor=processor).save_pretrained(root / "checkpoint")
    pipe = pipeline("emotion-in-context", model=str(root / "checkpoint"), trust_remote_code=True, device=-1)
    llava = str(root / "tiny-llava")
    reference = TransformersDescriber.from_pretrained(llava, device="cpu", marking="box", **GENERATION)
    image = Image.fromarray(np.random.default_rng(3).integers(0, 256, (72, 96, 3), dtype=np.uint8))
    return root, pipe, reference, image


def _expected(reference, image, box, labels):
    return reference.describe([image], [box], prompt=DEFAULT_PROMPT_TEMPLATE, class_names=labels)[0].text


def test_description_generated_with_recorded_vllm(setup):
    _, pipe, reference, image = setup
    labels = list(pipe.model.config.id2label.values())
    (subject,) = pipe(image, bbox=[10, 8, 50, 70])
    assert subject["description_source"] == "generated"
    assert subject["description"] == _expected(reference, image, [10.0, 8.0, 50.0, 70.0], labels)
    # The classifier read exactly that description.
    inputs = pipe.processor(images=image, bbox=[10, 8, 50, 70], text=subject["description"], return_tensors="pt")
    with torch.no_grad():
        expected = torch.sigmoid(pipe.model(**inputs).logits[0]).tolist()
    scores = {e["label"]: e["score"] for e in subject["scores"]}
    assert [scores[n] for n in labels] == pytest.approx(expected, abs=1e-6)


def test_given_and_missing_descriptions_mix(setup):
    _, pipe, reference, image = setup
    labels = list(pipe.model.config.id2label.values())
    subjects = pipe(image, bbox=[[0, 0, 40, 60], [45, 5, 95, 70]], description=["she smiles", None])
    assert [s["description_source"] for s in subjects] == ["given", "generated"]
    assert subjects[0]["description"] == "she smiles"
    assert subjects[1]["description"] == _expected(reference, image, [45.0, 5.0, 95.0, 70.0], labels)
    # Without a box the describer asks about "the person in the image" on the unmarked picture.
    (whole,) = pipe(image)
    assert whole["description"] == _expected(reference, image, None, labels)


def test_detected_people_get_generated_descriptions(setup):
    root, pipe, reference, image = setup
    detector, image_processor = tiny_person_detector()
    detector.save_pretrained(root / "detector")
    image_processor.save_pretrained(root / "detector")
    subjects = pipe(image, detect=True, detector=str(root / "detector"))
    assert len(subjects) >= 2
    labels = list(pipe.model.config.id2label.values())
    for subject in subjects:
        assert subject["description_source"] == "generated"
        assert subject["description"] == _expected(reference, image, subject["bbox"], labels)


def test_clip_is_described_from_its_middle_frame(setup):
    root, _, reference, _ = setup
    model, processor = tiny_classifier(task="bold", seed=22, num_frames=4)
    model.config.description_model = str(root / "tiny-llava")
    model.config.description_generation = GENERATION
    pipe = EmotionInContextPipeline(model=model, processor=processor, device=-1)
    rng = np.random.default_rng(4)
    frames = [Image.fromarray(rng.integers(0, 256, (72, 96, 3), dtype=np.uint8)) for _ in range(4)]
    boxes = [[10 + t, 8, 50 + t, 70] for t in range(4)]  # one box per frame
    (subject,) = pipe(frames=frames, bbox=boxes)
    labels = list(model.config.id2label.values())
    assert subject["description"] == _expected(reference, frames[2], [12.0, 8.0, 52.0, 70.0], labels)
    assert subject["bbox"] == [10.0, 8.0, 53.0, 70.0]  # the union of the frame boxes
    # A describer given to the call serves a model that records none.
    model.config.description_model = None
    with pytest.raises(ValueError, match="description_model is None"):
        pipe(frames=frames, bbox=boxes)
    (given,) = pipe(frames=frames, bbox=boxes, describer=reference)
    assert given["description"] == subject["description"]
