"""save_pretrained / from_pretrained, the Auto classes, remote code, and building from pretrained parts."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from transformers import AutoConfig, AutoModel, AutoModelForImageClassification, AutoProcessor

from emofusion.testing import tiny_classifier, tiny_image_processor
from modeling_emofusion import EmoFusionConfig, EmoFusionForEmotionClassification, EmoFusionModel, EmoFusionProcessor
from tests.isolation import BLOCK_PROJECT_IMPORTS


TEXT = ["she seems happy and excited at the party", "a tired man sitting alone"]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    model, processor = tiny_classifier(num_vad=3, decision_thresholds=[0.3] * 26, description_model="llava-hf/x")
    rng = np.random.default_rng(1)
    pictures = [Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)) for _ in range(2)]
    inputs = processor(images=pictures, bbox=[[3, 3, 30, 30], None], text=TEXT)
    path = tmp_path_factory.mktemp("checkpoint")
    model.save_pretrained(path)
    processor.save_pretrained(path)
    with torch.no_grad():
        logits = model(**inputs).logits
    return path, model, dict(inputs), logits


def test_save_load_identical_logits_safetensors_only(saved):
    path, _, inputs, logits = saved
    files = set(os.listdir(path))
    assert "model.safetensors" in files and not any(f.endswith((".bin", ".pt", ".pkl")) for f in files)
    assert {
        "configuration_emofusion.py",
        "modeling_emofusion.py",
        "processing_emofusion.py",
        "pipeline_emofusion.py",
    } <= files
    assert "emotion-in-context" in json.loads((path / "config.json").read_text())["custom_pipelines"]
    reloaded = EmoFusionForEmotionClassification.from_pretrained(path).eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**inputs).logits, logits)
    assert reloaded.config.decision_thresholds == [0.3] * 26
    assert reloaded.config.description_model == "llava-hf/x"


def test_auto_classes_load_it(saved):
    path, _, inputs, logits = saved
    assert isinstance(AutoConfig.from_pretrained(path), EmoFusionConfig)
    assert isinstance(AutoModel.from_pretrained(path), EmoFusionModel)
    model = AutoModelForImageClassification.from_pretrained(path).eval()
    assert isinstance(model, EmoFusionForEmotionClassification)
    processor = AutoProcessor.from_pretrained(path)
    assert isinstance(processor, EmoFusionProcessor) and processor.marking == "box" and processor.max_text_length == 64
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs).logits, logits)
    config = json.loads((path / "config.json").read_text())
    assert config["auto_map"]["AutoConfig"] == "configuration_emofusion.EmoFusionConfig"
    assert (
        config["auto_map"]["AutoModelForImageClassification"] == "modeling_emofusion.EmoFusionForEmotionClassification"
    )


def test_remote_code_loads_without_emofusion_installed(saved, tmp_path):
    path, _, inputs, logits = saved
    save_file({k: v.contiguous() for k, v in inputs.items()}, str(tmp_path / "inputs.safetensors"))
    save_file({"logits": logits}, str(tmp_path / "expected.safetensors"))
    script = BLOCK_PROJECT_IMPORTS + textwrap.dedent(
        f"""
        import torch
        from safetensors.torch import load_file
        from transformers import AutoModelForImageClassification, AutoProcessor

        model = AutoModelForImageClassification.from_pretrained({str(path)!r}, trust_remote_code=True).eval()
        processor = AutoProcessor.from_pretrained({str(path)!r}, trust_remote_code=True)
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        inputs = load_file({str(tmp_path / "inputs.safetensors")!r})
        with torch.no_grad():
            logits = model(**inputs).logits
        torch.testing.assert_close(logits, load_file({str(tmp_path / "expected.safetensors")!r})["logits"])
        print("REMOTE", type(model).__name__, type(processor).__name__)
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["HF_MODULES_CACHE"] = str(tmp_path / "modules")
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "REMOTE EmoFusionForEmotionClassification EmoFusionProcessor" in result.stdout


# -- building from pretrained parts ----------------------------------------------------------


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    """A tiny CLIP dual encoder, a tiny BERT (with its WordPiece tokenizer) and a tiny InstructBLIP on disk."""
    from transformers import (
        BertConfig,
        BertModel,
        BertTokenizerFast,
        CLIPConfig,
        CLIPModel,
        InstructBlipConfig,
        InstructBlipForConditionalGeneration,
    )

    root = tmp_path_factory.mktemp("parts")
    torch.manual_seed(0)
    vision = {"hidden_size": 24, "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4}
    clip = CLIPModel(
        CLIPConfig(
            vision_config={**vision, "image_size": 32, "patch_size": 8},
            text_config={**vision, "vocab_size": 99, "max_position_embeddings": 16},
            projection_dim=16,
        )
    )
    clip.save_pretrained(root / "clip")
    tiny_image_processor(32).save_pretrained(root / "clip")

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "happy", "sad", "person", "the", "looks", "##ly"]
    word_piece = {token: index for index, token in enumerate(vocab)}
    BertTokenizerFast(vocab=word_piece).save_pretrained(root / "bert")
    bert = BertModel(
        BertConfig(
            vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=40
        )
    )
    bert.eval().save_pretrained(root / "bert")

    blip = InstructBlipForConditionalGeneration(
        InstructBlipConfig(
            vision_config={
                "hidden_size": 40,
                "intermediate_size": 48,
                "num_hidden_layers": 1,
                "num_attention_heads": 4,
                "image_size": 32,
                "patch_size": 8,
            },
            qformer_config={
                "hidden_size": 32,
                "num_hidden_layers": 2,
                "num_attention_heads": 4,
                "intermediate_size": 40,
                "vocab_size": len(vocab),
            },
            text_config={
                "model_type": "llama",
                "hidden_size": 16,
                "intermediate_size": 32,
                "num_hidden_layers": 1,
                "num_attention_heads": 2,
                "num_key_value_heads": 2,
                "vocab_size": 50,
            },
            num_query_tokens=6,
        )
    )
    with torch.no_grad():
        blip.query_tokens.normal_()
    blip.save_pretrained(root / "instructblip")
    BertTokenizerFast(vocab=word_piece).save_pretrained(root / "instructblip" / "qformer_tokenizer")
    return root, clip, bert, blip


def test_bert_initialised_qformer_copies_bert_weights(parts):
    root, clip, bert, _ = parts
    model = EmoFusionForEmotionClassification.from_pretrained_parts(
        str(root / "clip"), str(root / "bert"), num_query_tokens=5
    )
    base, bert_state = model.emofusion, bert.state_dict()
    # The vision tower is CLIP's.
    for name, value in clip.vision_model.state_dict().items():
        torch.testing.assert_close(base.vision_model.state_dict()[name], value)
    q = base.qformer.state_dict()
    assert base.qformer.config.encoder_hidden_size == 24 and base.vision_projection is None
    torch.testing.assert_close(q["embeddings.word_embeddings.weight"], bert_state["embeddings.word_embeddings.weight"])
    torch.testing.assert_close(
        q["embeddings.position_embeddings.weight"],
        bert_state["embeddings.position_embeddings.weight"] + bert_state["embeddings.token_type_embeddings.weight"][0],
    )
    torch.testing.assert_close(q["embeddings.layernorm.weight"], bert_state["embeddings.LayerNorm.weight"])
    for layer in range(2):
        for ours, theirs in [
            ("attention.attention.query.weight", "attention.self.query.weight"),
            ("attention.attention.value.bias", "attention.self.value.bias"),
            ("attention.output.dense.weight", "attention.output.dense.weight"),
            ("intermediate.dense.weight", "intermediate.dense.weight"),
            ("intermediate_query.dense.weight", "intermediate.dense.weight"),
            ("output_query.LayerNorm.bias", "output.LayerNorm.bias"),
            ("output.dense.weight", "output.dense.weight"),
        ]:
            torch.testing.assert_close(
                q[f"encoder.layer.{layer}.{ours}"], bert_state[f"encoder.layer.{layer}.{theirs}"]
            )
    # BERT's text embeddings are reproduced exactly (token type 0 folded into positions).
    ids = torch.tensor([[2, 5, 8, 3]])
    with torch.no_grad():
        torch.testing.assert_close(base.qformer.embeddings(input_ids=ids), bert.embeddings(input_ids=ids))

    processor = EmoFusionProcessor.from_pretrained_parts(str(root / "clip"), str(root / "bert"))
    batch = processor(images=Image.new("RGB", (64, 40)), bbox=[1, 1, 20, 20], text="the person looks happy")
    assert batch["input_ids"].tolist() == [[2, 8, 7, 9, 5, 3]]
    assert model(**batch).logits.shape == (1, 26)


def test_instructblip_initialised_qformer_and_queries(parts):
    root, _, _, blip = parts
    model = EmoFusionForEmotionClassification.from_pretrained_parts(str(root / "clip"), str(root / "instructblip"))
    base = model.emofusion
    assert model.config.num_query_tokens == 6 and base.qformer.config.encoder_hidden_size == 40
    assert base.vision_projection.in_features == 24 and base.vision_projection.out_features == 40
    torch.testing.assert_close(base.query_tokens, blip.query_tokens)
    for name, value in blip.qformer.state_dict().items():
        torch.testing.assert_close(base.qformer.state_dict()[name], value)
    processor = EmoFusionProcessor.from_pretrained_parts(str(root / "clip"), str(root / "instructblip"))
    batch = processor(images=Image.new("RGB", (32, 32)), text="the person looks sad")
    assert model(**batch).logits.shape == (1, 26)
