"""`emofusion predict`: JSON out, several boxes, detection, the annotated picture, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from emofusion.annotate import draw_predictions, top_emotions
from emofusion.predict import main
from emofusion.testing import tiny_classifier
from emofusion.testing_detection import tiny_person_detector
from modeling_emofusion import EmotionInContextPipeline


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    model, processor = tiny_classifier(task="emotic", seed=11)
    EmotionInContextPipeline(model=model, processor=processor).save_pretrained(root / "fusion")
    model, processor = tiny_classifier(task="emotic", seed=12, modality="vision")
    EmotionInContextPipeline(model=model, processor=processor).save_pretrained(root / "vision")
    detector, image_processor = tiny_person_detector()
    detector.save_pretrained(root / "detector")
    image_processor.save_pretrained(root / "detector")
    photo = root / "photo.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (120, 160, 3), dtype=np.uint8)).save(photo)
    return root, photo


def test_predict_two_boxes_and_annotated_picture(files, capsys):
    root, photo = files
    out_png = root / "annotated.png"
    argv = [str(photo), "--model", str(root / "fusion"), "--bbox", "10,10,70,110", "--bbox", "80,5,200,118"]
    argv += ["--description", "the person looks happy", "--description", "sad", "--save-annotated", str(out_png)]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    subjects = report["subjects"]
    assert [s["bbox"] for s in subjects] == [[10.0, 10.0, 70.0, 110.0], [80.0, 5.0, 160.0, 118.0]]  # 2nd clipped
    assert [s["description"] for s in subjects] == ["the person looks happy", "sad"]
    assert all(len(s["scores"]) == 26 and "vad" in s for s in subjects)
    annotated = Image.open(out_png)
    assert annotated.size == (160, 120)
    # The box outline is drawn in the first palette colour on the left edge of box 1.
    assert annotated.convert("RGB").getpixel((10, 60)) == (0, 200, 255)


def test_predict_detect_finds_people(files, capsys):
    root, photo = files
    argv = [str(photo), "--model", str(root / "vision"), "--detect", "--detector", str(root / "detector")]
    assert main(argv) == 0
    subjects = json.loads(capsys.readouterr().out)["subjects"]
    assert len(subjects) >= 2 and all(s["detection_score"] >= 0.5 and s["bbox"] for s in subjects)


def test_predict_errors(files, capsys):
    root, photo = files
    with pytest.raises(SystemExit):
        main([str(photo), "--model", str(root / "fusion"), "--bbox", "10,10,70"])
    assert "x1,y1,x2,y2" in capsys.readouterr().err
    assert main([str(photo), "--model", str(root / "fusion"), "--bbox", "300,300,400,400", "--description", "x"]) == 1
    assert "wholly outside" in capsys.readouterr().err
    assert main([str(photo), "--model", str(root / "fusion"), "--bbox", "10,10,70,110"]) == 1
    assert "description_model is None" in capsys.readouterr().err
    fusion = [str(photo), "--model", str(root / "fusion")]
    assert main([*fusion, "--bbox", "1,1,9,9", "--detect"]) == 2  # boxes or detection, not both
    assert main([*fusion, "--bbox", "1,1,9,9", "--description", "a", "--description", "b"]) == 2


def test_annotation_without_box_and_top_emotions():
    subject = {
        "bbox": None,
        "labels": ["Peace", "Happiness"],
        "scores": [
            {"label": "Happiness", "score": 0.9},
            {"label": "Peace", "score": 0.6},
            {"label": "Fear", "score": 0.1},
        ],
    }
    assert top_emotions(subject, top_k=1) == [("Happiness", 0.9)]
    assert top_emotions({**subject, "labels": []}, top_k=2) == [("Happiness", 0.9), ("Peace", 0.6)]
    image = Image.new("RGB", (200, 100), (255, 255, 255))
    drawn = draw_predictions(image, [subject])
    assert drawn.getpixel((1, 1)) != (255, 255, 255) and image.getpixel((1, 1)) == (255, 255, 255)
