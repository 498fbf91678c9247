"""EmoFusion config, model and processor on tiny random configs (offline)."""

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import InstructBlipQFormerModel

from emofusion.testing import tiny_classifier, tiny_emofusion_config, tiny_processor
from modeling_emofusion import EmoFusionConfig, EmoFusionForEmotionClassification, EmoFusionModel


DESCRIPTIONS = ["the person in the red box seems happy and excited", "he looks tired , sad and a bit bored"]


@pytest.fixture(scope="module")
def processor():
    return tiny_processor()


@pytest.fixture(scope="module")
def pictures():
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)) for _ in range(2)]


def _labels(task, batch=2):
    if task == "caer_s":
        return torch.tensor([3, 5])
    return (torch.arange(batch * 26).reshape(batch, 26) % 3 == 0).float()


@pytest.mark.parametrize("modality", ["fusion", "vision", "text"])
@pytest.mark.parametrize("task", ["emotic", "caer_s"])
@pytest.mark.parametrize("clips", [False, True])
def test_forward_backward_every_mode(processor, pictures, modality, task, clips):
    num_vad = 3 if task == "emotic" else 0
    model, _ = tiny_classifier(task, modality=modality, num_vad=num_vad, num_frames=3 if clips else 1)
    model.train()
    if clips:
        batch = processor(
            videos=[pictures + pictures[:1], pictures[:1]], bbox=[[2, 2, 30, 40], None], text=DESCRIPTIONS
        )
        assert batch["pixel_values"].shape[:2] == (2, 3) and batch["frame_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    else:
        batch = processor(images=pictures, bbox=[[2, 2, 30, 40], None], text=DESCRIPTIONS)
    vad = torch.tensor([[5.0, float("nan"), 3.0], [1.0, 2.0, 3.0]]) if num_vad else None
    out = model(**batch, labels=_labels(task), vad_labels=vad)
    assert out.logits.shape == (2, model.config.num_labels)
    assert (out.vad is not None) == bool(num_vad)
    assert out.query_states.shape == (2, model.config.num_query_tokens, 32)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert model.emofusion.query_tokens.grad is not None and model.emofusion.query_tokens.grad.abs().sum() > 0
    assert model.classifier.weight.grad.abs().sum() > 0


def test_loss_is_chosen_by_problem_type(processor, pictures):
    batch = processor(images=pictures, text=DESCRIPTIONS)
    multi, _ = tiny_classifier("emotic", num_vad=0)
    out = multi(**batch, labels=_labels("emotic"))
    expected = torch.nn.functional.binary_cross_entropy_with_logits(out.logits, _labels("emotic"))
    torch.testing.assert_close(out.loss, expected)
    single, _ = tiny_classifier("caer_s")
    out = single(**batch, labels=_labels("caer_s"))
    torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(out.logits, _labels("caer_s")))


def test_vad_loss_ignores_missing_values(processor, pictures):
    model, _ = tiny_classifier("emotic", num_vad=3, vad_loss_weight=1.0)
    batch = processor(images=pictures, text=DESCRIPTIONS)
    targets = torch.tensor([[5.0, float("nan"), 3.0], [1.0, 2.0, float("nan")]])
    out = model(**batch, vad_labels=targets)
    present = ~torch.isnan(targets)
    torch.testing.assert_close(out.loss, (out.vad[present] - targets[present]).abs().mean())


def test_vision_only_ignores_text_and_text_only_ignores_pixels(processor, pictures):
    batch = processor(images=pictures, text=DESCRIPTIONS)
    other_text = processor(images=pictures, text=["angry crowd at night", "calm water"])
    other_pixels = processor(images=[p.rotate(90) for p in pictures], text=DESCRIPTIONS)

    vision, _ = tiny_classifier(modality="vision")
    base = vision(**batch).logits
    torch.testing.assert_close(vision(**other_text).logits, base)
    torch.testing.assert_close(vision(pixel_values=batch["pixel_values"]).logits, base)
    assert not torch.allclose(vision(**other_pixels).logits, base)

    text, _ = tiny_classifier(modality="text")
    assert text.emofusion.vision_model is None
    base = text(**batch).logits
    torch.testing.assert_close(text(**other_pixels).logits, base)
    torch.testing.assert_close(text(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits, base)
    assert not torch.allclose(text(**other_text).logits, base)

    fusion, _ = tiny_classifier(modality="fusion")
    base = fusion(**batch).logits
    assert not torch.allclose(fusion(**other_text).logits, base)
    assert not torch.allclose(fusion(**other_pixels).logits, base)


def test_fusion_block_is_transformers_instructblip_qformer(processor, pictures):
    model, _ = tiny_classifier()
    batch = processor(images=pictures, text=DESCRIPTIONS)
    reference = InstructBlipQFormerModel(model.config.qformer_config).eval()
    reference.load_state_dict(model.emofusion.qformer.state_dict())
    with torch.no_grad():
        ours = model(**batch).query_states
        vision = model.get_vision_features(batch["pixel_values"])
        queries = model.emofusion.query_tokens.expand(2, -1, -1)
        mask = torch.cat([torch.ones(2, queries.shape[1], dtype=torch.long), batch["attention_mask"]], dim=1)
        expected = reference(
            input_ids=batch["input_ids"], attention_mask=mask, query_embeds=queries, encoder_hidden_states=vision
        ).last_hidden_state[:, : queries.shape[1]]
    torch.testing.assert_close(ours, expected)


def test_clip_padding_frames_are_masked(processor, pictures):
    model, _ = tiny_classifier(num_frames=4)
    short = processor(videos=[pictures], text=DESCRIPTIONS[:1])
    padded = processor(videos=[pictures, pictures * 2], text=DESCRIPTIONS[:1] * 2)
    assert padded["frame_mask"].tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]
    with torch.no_grad():
        torch.testing.assert_close(model(**short).logits[0], model(**padded).logits[0])
    with pytest.raises(ValueError, match="at most config.num_frames=4"):
        model(**processor(videos=[pictures * 3], text=DESCRIPTIONS[:1]))


def test_vision_hidden_states_skip_the_encoder(processor, pictures):
    model, _ = tiny_classifier()
    batch = processor(images=pictures, text=DESCRIPTIONS)
    with torch.no_grad():
        features = model.get_vision_features(batch["pixel_values"])
        cached = model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], vision_hidden_states=features
        )
        torch.testing.assert_close(cached.logits, model(**batch).logits)


def test_gradient_checkpointing_and_frozen_vision(processor, pictures):
    model, _ = tiny_classifier(freeze_vision=True)
    assert not any(p.requires_grad for p in model.emofusion.vision_model.parameters())
    getattr(model, "activation_checkpointing_enable", model.gradient_checkpointing_enable)()
    model.train()
    out = model(**processor(images=pictures, text=DESCRIPTIONS), labels=_labels("emotic"))
    out.loss.backward()
    assert all(p.grad is None for p in model.emofusion.vision_model.parameters())
    assert model.emofusion.qformer.encoder.layer[0].attention.attention.query.weight.grad is not None


def test_config_validation_errors():
    with pytest.raises(ValueError, match="modality='audio'"):
        tiny_emofusion_config(modality="audio")
    with pytest.raises(ValueError, match="decision_thresholds has 3 values"):
        tiny_emofusion_config(decision_thresholds=[0.5, 0.5, 0.5])
    with pytest.raises(ValueError, match="pooling"):
        tiny_emofusion_config(pooling="max")
    with pytest.raises(ValueError, match="max_position_embeddings"):
        tiny_emofusion_config(max_text_length=1000)
    config = tiny_emofusion_config(decision_thresholds=[0.25] * 26)
    assert config.decision_thresholds == [0.25] * 26
    default = EmoFusionConfig()
    assert default.vision_config.hidden_size == 1024 and default.vision_config.patch_size == 14
    assert default.qformer_config.encoder_hidden_size == 1024 and default.num_labels == 26


def test_processor_marks_clips_and_checks_boxes(processor, pictures):
    marked = np.asarray(processor.mark(pictures[0], [10, 10, 40, 30]))
    assert (marked[10:30, 10] == [255, 0, 0]).all()
    crop = tiny_processor(marking="crop")
    torch.testing.assert_close(
        crop(images=pictures[0], bbox=[10, 10, 40, 30])["pixel_values"],
        crop(images=pictures[0].crop((10, 10, 40, 30)))["pixel_values"],
    )
    # A box partly outside the picture is clipped, as mark_subject does.
    torch.testing.assert_close(
        processor(images=pictures[0], bbox=[-20, -20, 30, 30])["pixel_values"],
        processor(images=pictures[0], bbox=[0, 0, 30, 30])["pixel_values"],
    )
    with pytest.raises(ValueError, match="bbox of sample 0"):
        processor(images=pictures[0], bbox=[[1, 2, 3]])
    with pytest.raises(ValueError, match="zero or negative area"):
        processor(images=pictures[0], bbox=[10, 10, 5, 40])
    with pytest.raises(ValueError, match="wholly outside"):
        processor(images=pictures[0], bbox=[100, 100, 200, 200])
    with pytest.raises(ValueError, match="one bbox for 2 samples"):
        processor(images=pictures, bbox=[1, 2, 3, 4])
    with pytest.raises(ValueError, match="2 descriptions for 1 samples"):
        processor(images=pictures[0], text=DESCRIPTIONS)
    with pytest.raises(ValueError, match="empty"):
        processor(images=np.zeros((0, 5, 3), dtype=np.uint8))
    long_text = " ".join(["happy"] * 500)
    assert processor(images=pictures[0], text=long_text)["input_ids"].shape[1] == processor.max_text_length


def test_base_model_is_reusable(processor, pictures):
    config = tiny_emofusion_config()
    model = EmoFusionModel(config).eval()
    out = model(**processor(images=pictures, text=DESCRIPTIONS))
    assert out.pooler_output.shape == (2, 32)
    torch.testing.assert_close(out.pooler_output, out.last_hidden_state.mean(1))
    assert isinstance(EmoFusionForEmotionClassification(config).emofusion, EmoFusionModel)


@pytest.mark.parametrize("vision_type", ["siglip_vision_model", "dinov2", "vit"])
def test_any_transformers_vision_encoder(processor, pictures, vision_type):
    vision = {"model_type": vision_type, "hidden_size": 24, "intermediate_size": 48, "num_hidden_layers": 1}
    vision.update(num_attention_heads=4, image_size=32, patch_size=8)
    config = tiny_emofusion_config(vocab_size=len(processor.tokenizer), vision_config=vision)
    model = EmoFusionForEmotionClassification(config)
    # The Q-Former's memory width (32) differs from the encoder's (24): a projection bridges them.
    assert model.emofusion.vision_projection.in_features == 24
    out = model(**processor(images=pictures, text=DESCRIPTIONS), labels=_labels("emotic"))
    out.loss.backward()
    assert out.logits.shape == (2, 26)
