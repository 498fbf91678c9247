"""Explanations (`explain=True`): shapes for every modality and clips, the plain path unchanged, rendering,
`emofusion predict --explain` (the faithfulness run on the demo's task is in test_demo.py, on its model)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import pipeline

import modeling_emofusion  # noqa: F401  (registers the task)
from emofusion.explain_render import explanations_html, render_explanations
from emofusion.testing import tiny_classifier
from modeling_emofusion import EmotionInContextPipeline
from modeling_emofusion.explaining import PictureView, explain_subject, merge_word_pieces, patch_grid
from modeling_emofusion.pipeline_emofusion import TASK


REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
DESCRIPTION = "based on the image context the person in the red box appears happy and excited"
BOX = [10, 5, 60, 70]


def _photo(width: int = 96, height: int = 72, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8))


def _pipe(**overrides):
    model, processor = tiny_classifier(task="emotic", seed=1, **overrides)
    return pipeline(TASK, model=model, processor=processor, device=-1)


@pytest.fixture(scope="module")
def fusion_pipe():
    return _pipe()


def _strip(subjects):
    return [{k: v for k, v in s.items() if k != "explanations"} for s in subjects]


def test_fusion_image_shapes_and_words():
    pipe = _pipe()
    photo = _photo(96, 72)
    (plain,) = pipe(photo, bbox=BOX, description=DESCRIPTION)
    # Thresholds that only the two best labels pass: by default, the predicted labels are explained.
    ranked = {entry["label"]: entry["score"] for entry in plain["scores"]}
    second = sorted(ranked.values())[-2]
    pipe.model.config.decision_thresholds = [second - 1e-6] * pipe.model.config.num_labels
    (subject,) = pipe(photo, bbox=BOX, description=DESCRIPTION, explain=True)
    explanations = subject["explanations"]
    assert len(subject["labels"]) == 2
    assert [e["label"] for e in explanations] == [s["label"] for s in subject["scores"][:2]]  # best first
    # No label above its threshold: the best-scored one is explained.
    pipe.model.config.decision_thresholds = [1.0] * pipe.model.config.num_labels
    (nothing,) = pipe(photo, bbox=BOX, description=DESCRIPTION, explain=True)
    assert nothing["labels"] == [] and [e["label"] for e in nothing["explanations"]] == [subject["scores"][0]["label"]]
    for entry in explanations:
        heatmap = entry["heatmap"]
        assert isinstance(heatmap, np.ndarray) and heatmap.shape == (72, 96)  # the photo's own pixels
        assert heatmap.min() >= 0 and heatmap.max() <= 1 + 1e-6
        assert entry["words"] == DESCRIPTION.split()  # word-level tokens, [CLS]/[SEP] left out
        assert len(entry["word_attributions"]) == len(entry["words"])
        assert all(np.isfinite(entry["word_attributions"]))
        assert entry["score"] == pytest.approx({s["label"]: s["score"] for s in subject["scores"]}[entry["label"]])


def test_chosen_labels_and_unknown_label(fusion_pipe):
    (subject,) = fusion_pipe(
        _photo(), bbox=BOX, description=DESCRIPTION, explain=True, explain_labels=["Anger", "Happiness"]
    )
    assert [e["label"] for e in subject["explanations"]] == ["Anger", "Happiness"]
    with pytest.raises(ValueError, match="not one of this model's labels"):
        fusion_pipe(_photo(), bbox=BOX, description=DESCRIPTION, explain=True, explain_labels=["Joyful"])


def test_explain_off_is_identical_and_attention_path_restored(fusion_pipe):
    photo = _photo(seed=3)
    before = fusion_pipe(photo, bbox=BOX, description=DESCRIPTION)
    implementation = fusion_pipe.model.config._attn_implementation
    explained = fusion_pipe(photo, bbox=BOX, description=DESCRIPTION, explain=True, explain_labels=["Pain"])
    after = fusion_pipe(photo, bbox=BOX, description=DESCRIPTION, explain=False)
    assert after == before and "explanations" not in before[0]
    assert _strip(explained) == before  # explaining changes none of the prediction's fields
    assert fusion_pipe.model.config._attn_implementation == implementation


def test_batched_explanations_match_one_by_one(fusion_pipe):
    inputs = [
        {"image": _photo(seed=5), "bbox": BOX, "description": DESCRIPTION},
        {"image": _photo(seed=6), "bbox": [0, 0, 40, 40], "description": "the person looks calm"},
    ]
    batched = fusion_pipe(inputs, batch_size=2, explain=True, explain_labels=["Peace"])
    for item, result in zip(inputs, batched):
        (single,) = fusion_pipe(item, explain=True, explain_labels=["Peace"])
        (entry,), (reference,) = result[0]["explanations"], single["explanations"]
        assert entry["words"] == reference["words"]
        np.testing.assert_allclose(entry["word_attributions"], reference["word_attributions"], atol=1e-4)
        np.testing.assert_allclose(entry["heatmap"], reference["heatmap"], atol=1e-4)


def test_vision_only_model_has_heatmap_and_no_words():
    pipe = _pipe(modality="vision")
    (subject,) = pipe(_photo(80, 60), bbox=BOX, explain=True, explain_labels=["Peace"])
    (entry, *_) = subject["explanations"]
    assert entry["heatmap"].shape == (60, 80) and entry["words"] is None and entry["word_attributions"] is None


def test_text_only_model_has_words_and_no_heatmap():
    pipe = _pipe(modality="text")
    (subject,) = pipe(_photo(), description=DESCRIPTION, explain=True, explain_labels=["Peace"])
    (entry, *_) = subject["explanations"]
    assert entry["heatmap"] is None and entry["words"] == DESCRIPTION.split()


def test_crop_marking_maps_the_heatmap_into_the_box():
    pipe = _pipe(marking="crop")
    (subject,) = pipe(
        _photo(96, 72), bbox=[20, 10, 60, 50], description=DESCRIPTION, explain=True, explain_labels=["Peace"]
    )
    heatmap = subject["explanations"][0]["heatmap"]
    assert heatmap.shape == (72, 96) and heatmap.max() > 0
    outside = np.ones_like(heatmap, dtype=bool)
    outside[10:50, 20:60] = False
    assert float(heatmap[outside].max()) == 0.0


def test_clip_one_heatmap_per_real_frame():
    model, processor = tiny_classifier(task="bold", seed=4, num_frames=4)
    pipe = pipeline(TASK, model=model, processor=processor, device=-1)
    frames = [_photo(80, 64, seed=10 + t) for t in range(3)]  # padded to 4 frames inside
    (subject,) = pipe(frames=frames, bbox=[10, 5, 60, 60], description=DESCRIPTION, explain=True, explain_labels=[0])
    entry = subject["explanations"][0]
    assert isinstance(entry["heatmap"], list) and len(entry["heatmap"]) == 3
    assert all(h.shape == (64, 80) for h in entry["heatmap"])
    assert entry["words"] == DESCRIPTION.split()


def test_heatmap_is_gradient_weighted_cross_attention_over_patches_only():
    model, processor = tiny_classifier(task="emotic", seed=2)
    inputs = dict(processor(images=_photo(), bbox=BOX, text=DESCRIPTION, return_tensors="pt"))
    with torch.no_grad():
        tokens = model.get_vision_features(inputs["pixel_values"]).shape[1]
    prefix, rows, cols = patch_grid(tokens, tuple(inputs["pixel_values"].shape[-2:]), 8)
    assert prefix == 1 and rows * cols == tokens - 1  # CLIP: the class token is left out
    (entry,) = explain_subject(
        model, inputs, [3], [PictureView((96, 72), (192, 144))], processor.tokenizer, DESCRIPTION
    )
    assert entry["heatmaps"][0].shape == (144, 192)  # upsampled to the original photo


def test_word_pieces_merge_into_words():
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "she": 4, "is": 5, "smil": 6, "##ing": 7, "##ly": 8}
    backend = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]")
    text = "She is smiling"
    ids = tokenizer(text)["input_ids"]
    assert ids == [2, 1, 5, 6, 7, 3]  # "She" is unknown (no lowercasing), "smiling" two pieces
    words, scores = merge_word_pieces(tokenizer, text, ids, [9.0, 0.5, 0.25, 1.0, 2.0, 9.0])
    assert words == ["She", "is", "smiling"] and scores == [0.5, 0.25, 3.0]


def test_rendering_png_and_html(fusion_pipe, tmp_path):
    photo = _photo()
    subjects = fusion_pipe(photo, bbox=BOX, description=DESCRIPTION, explain=True, explain_labels=["Fear", "Pain"])
    canvas = render_explanations(photo, subjects, min_size=192)
    # Two rows (one per label), each the annotated picture and its overlay side by side, words below.
    assert canvas.width >= 2 * 192 and canvas.height > 2 * 144
    page = explanations_html(subjects, "x.png")
    assert page.count("<h3>") == 2 and page.count("<span") == 2 * len(DESCRIPTION.split())


def test_explaining_module_is_import_light():
    # Saved next to checkpoints as remote code: no emofusion.* import, captum only inside functions.
    tree = ast.parse((REPO / "modeling_emofusion" / "explaining.py").read_text(encoding="utf-8"))
    top = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    names = [alias.name for node in top for alias in node.names] + [
        node.module for node in top if isinstance(node, ast.ImportFrom) and node.module
    ]
    assert not any(name.startswith(("captum", "emofusion")) for name in names)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            assert not node.module.startswith("emofusion")


def test_remote_code_checkpoint_explains(tmp_path):
    model, processor = tiny_classifier(task="emotic", seed=1)
    EmotionInContextPipeline(model=model, processor=processor).save_pretrained(tmp_path)
    assert (tmp_path / "explaining.py").is_file()  # copied with the pipeline code it is imported by
    pipe = pipeline(TASK, model=str(tmp_path), trust_remote_code=True, device=-1)
    (subject,) = pipe(_photo(), bbox=BOX, description=DESCRIPTION, explain=True, explain_labels=["Pain"])
    assert subject["explanations"][0]["heatmap"].shape == (72, 96)


def test_predict_explain_cli(tmp_path):
    model, processor = tiny_classifier(task="emotic", seed=1)
    model.config.decision_thresholds = [1.0] * model.config.num_labels  # one label explained: the best
    EmotionInContextPipeline(model=model, processor=processor).save_pretrained(tmp_path / "model")
    photo = tmp_path / "photo.png"
    _photo().save(photo)
    out = tmp_path / "explained.png"
    command = [sys.executable, "-m", "emofusion.cli", "predict", str(photo), "--model", str(tmp_path / "model")]
    command += ["--bbox", "10,5,60,70", "--description", DESCRIPTION]
    run = subprocess.run([*command, "--explain", str(out)], env=ENV, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(run.stdout)
    assert report["explained"] == str(out) and Path(report["explained_html"]).is_file()
    assert Image.open(out).size[0] > 96
    entry = report["subjects"][0]["explanations"][0]
    assert "heatmap" not in entry and entry["words"] == DESCRIPTION.split()
    plain = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300)
    assert plain.returncode == 0 and "explanations" not in json.loads(plain.stdout)["subjects"][0]
    bad = subprocess.run([*command, "--explain", str(tmp_path / "x.jpg")], env=ENV, capture_output=True, text=True)
    assert bad.returncode == 2 and "--explain" in bad.stderr and "PNG" in bad.stderr
