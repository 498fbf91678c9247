"""`emofusion predict`: JSON out, several boxes, detection, the annotated picture, any picture size, clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from emofusion.annotate import draw_predictions, top_emotions
from emofusion.errors import run_main
from emofusion.predict import main
from emofusion.testing import tiny_classifier
from emofusion.testing_detection import tiny_person_detector
from modeling_emofusion import EmotionInContextPipeline


REPO = str(Path(__file__).resolve().parents[1])
PALETTE_FIRST = (0, 200, 255)  # annotate.py's outline colour for the first person


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

    def predict(*argv):
        return run_main("emofusion predict", main, list(argv))

    with pytest.raises(SystemExit):
        predict(str(photo), "--model", str(root / "fusion"), "--bbox", "10,10,70")
    assert "x1,y1,x2,y2" in capsys.readouterr().err
    assert predict(str(photo), "--model", str(root / "fusion"), "--bbox", "300,300,400,400", "--description", "x") == 1
    assert "wholly outside the 160x120 image" in capsys.readouterr().err
    # No description and none recorded to write one: the flags to give, as a usage error.
    assert predict(str(photo), "--model", str(root / "fusion"), "--bbox", "10,10,70,110") == 2
    err = capsys.readouterr().err
    assert "--description TEXT" in err and "--describer MODEL_ID" in err
    fusion = [str(photo), "--model", str(root / "fusion")]
    assert predict(*fusion, "--bbox", "1,1,9,9", "--detect") == 2  # boxes or detection, not both
    assert predict(*fusion, "--bbox", "1,1,9,9", "--description", "a", "--description", "b") == 2


def test_predict_12000px_jpeg_reports_boxes_in_the_photos_pixels(files, tmp_path):
    """The real command on a 12000x12000 JPEG: it succeeds, boxes in and out are in the photo's pixels, and the
    annotated picture is the working picture (shorter side 1024), with the box where it belongs."""
    root, _ = files
    photo = tmp_path / "huge.jpg"
    # A grey JPEG keeps the test's own memory at 144 MB; predict reads it as RGB like any photo.
    Image.new("L", (12000, 12000), 128).save(photo, quality=30)
    out_png = tmp_path / "annotated.png"
    command = [sys.executable, "-m", "emofusion.cli", "predict", str(photo), "--model", str(root / "fusion")]
    command += ["--bbox", "6000,3000,13000,11000", "--description", "a person", "--save-annotated", str(out_png)]
    env = {**os.environ, "PYTHONPATH": REPO, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    (subject,) = json.loads(result.stdout)["subjects"]
    assert subject["bbox"] == [6000.0, 3000.0, 12000.0, 11000.0]  # clipped to the photo, in its pixels
    annotated = Image.open(out_png).convert("RGB")
    assert annotated.size == (1024, 1024)
    assert annotated.getpixel((513, 600)) == PALETTE_FIRST  # the left edge, x = 6000 * 1024 / 12000 = 512


def test_working_picture_gives_the_model_the_same_input(tmp_path):
    """Downscaling before marking changes what the model sees by little more than JPEG noise: the
    marked, resized input of a 3000x2000 photo read the new way matches the full-size path."""
    from modeling_emofusion.marking import load_image_for_model

    model, processor = tiny_classifier(task="emotic", seed=5, image_size=224)
    pipe = EmotionInContextPipeline(model=model, processor=processor)
    rng = np.random.default_rng(2)
    small = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)  # smooth content: a 100x upscale of noise
    photo = tmp_path / "photo.jpg"
    Image.fromarray(small).resize((3000, 2000), Image.Resampling.BICUBIC).save(photo, quality=95)
    box = [900.0, 300.0, 2100.0, 1900.0]

    full = Image.open(photo).convert("RGB")
    reference = processor(images=full, bbox=box)["pixel_values"]
    picture = load_image_for_model(photo, min_side=pipe.working_side)
    assert pipe.working_side == 1024 and picture.image.size == (1536, 1024) and picture.original_size == (3000, 2000)
    new = processor(images=picture.image, bbox=picture.to_working(box))["pixel_values"]
    assert (new - reference).abs().mean() < 0.02  # normalised pixels span about 4
    # The pipeline feeds the model exactly that input.
    (inputs,) = list(pipe.preprocess({"image": str(photo), "bbox": box, "description": "x"}))
    assert torch.equal(inputs["pixel_values"], new) and inputs["subject"]["bbox"] == box


def test_rotated_jpeg_is_read_upright_at_working_size(tmp_path):
    """EXIF orientation 6 (a phone held upright): the working picture is the upright photo, downscaled,
    and its size and the boxes' frame are the upright photo's."""
    from PIL import ImageOps

    from modeling_emofusion.marking import load_image_for_model

    stored = Image.new("RGB", (4000, 3000), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 1000, 1000))  # red in the stored top-left corner
    exif = stored.getexif()
    exif[0x0112] = 6
    photo = tmp_path / "rotated.jpg"
    stored.save(photo, exif=exif, quality=95)
    picture = load_image_for_model(photo, min_side=1024)
    assert picture.original_size == (3000, 4000) and picture.image.size == (1024, 1365)
    upright = ImageOps.exif_transpose(Image.open(photo)).resize(picture.image.size)
    difference = np.abs(np.asarray(upright, dtype=np.int16) - np.asarray(picture.image, dtype=np.int16))
    assert difference.mean() < 3
    assert picture.image.getpixel((1000, 100))[0] > 200  # the red corner is now top-right
    assert picture.to_original([512, 0, 1024, 1365]) == [1500.0, 0.0, 3000.0, 4000.0]


def test_detected_boxes_are_mapped_back_to_the_photo(tmp_path):
    """Detection runs on the working picture; the boxes reported are the detector's, scaled to the photo."""
    from transformers import pipeline

    from modeling_emofusion.marking import clip_box, load_image_for_model

    detector, image_processor = tiny_person_detector()
    detect = pipeline("object-detection", model=detector, image_processor=image_processor)
    model, processor = tiny_classifier(task="emotic", seed=7, modality="vision")
    pipe = EmotionInContextPipeline(model=model, processor=processor)
    photo = tmp_path / "big.png"
    noise = np.random.default_rng(4).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    Image.fromarray(noise).resize((2400, 1800)).save(photo)

    picture = load_image_for_model(photo, min_side=pipe.working_side)
    assert picture.image.size == (1365, 1024)
    found = [d["box"] for d in detect(picture.image, threshold=0.5) if d["label"] == "person"]
    assert found, "the tiny detector finds people in any picture"
    expected = [picture.to_original([b["xmin"], b["ymin"], b["xmax"], b["ymax"]]) for b in found]
    expected = sorted([round(v, 2) for v in clip_box(b, (2400, 1800))] for b in expected)
    subjects = pipe(str(photo), detect=True, detector=detect)
    assert sorted(s["bbox"] for s in subjects) == expected
    assert max(b[2] for b in expected) > 1365  # in the photo's pixels, not the working picture's


def test_pipeline_refuses_a_decompression_bomb_with_a_clear_message(files, tmp_path, monkeypatch):
    root, photo = files
    model, processor = tiny_classifier(task="emotic", seed=8)
    pipe = EmotionInContextPipeline(model=model, processor=processor)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5000)  # the 160x120 photo (19,200 pixels) is over 2 x 5000
    with pytest.raises(Image.DecompressionBombError, match="photo.png: the picture has 19,200 pixels.*MAX_IMAGE"):
        pipe(str(photo), description="x")


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
