"""EmoFusion's transformers contracts beyond the common suites: what the outputs hold, token resizing, weight
init on every path, regression, per-encoder `_no_split_modules` and gradients, torch.compile / torch.export,
`device_map="auto"` with offload, and the processor's keyword routing."""

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from transformers import AutoModel, CLIPVisionConfig, CLIPVisionModel

from emofusion.testing import tiny_classifier, tiny_emofusion_config, tiny_processor
from modeling_emofusion import EmoFusionForEmotionClassification, EmoFusionModel


pytestmark = pytest.mark.usefixtures("one_torch_thread")

DESCRIPTIONS = ["the person in the red box seems happy and excited", "he looks tired , sad"]

# Tiny vision towers of the families EmoFusion supports, all 32 wide (the tiny Q-Former's memory width).
ENCODERS = {
    "clip": {"model_type": "clip_vision_model", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
             "num_attention_heads": 4, "image_size": 32, "patch_size": 8},
    "siglip": {"model_type": "siglip_vision_model", "hidden_size": 32, "intermediate_size": 64,
               "num_hidden_layers": 2, "num_attention_heads": 4, "image_size": 32, "patch_size": 8},
    "dinov2": {"model_type": "dinov2", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
               "num_attention_heads": 4, "image_size": 32, "patch_size": 8},
    "vit": {"model_type": "vit", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 4, "image_size": 32, "patch_size": 8},
}  # fmt: skip
ENCODER_LAYERS = {
    "clip": "CLIPEncoderLayer",
    "siglip": "SiglipEncoderLayer",
    "dinov2": "Dinov2Layer",
    "vit": "ViTLayer",
}


@pytest.fixture(scope="module")
def processor():
    return tiny_processor()


@pytest.fixture(scope="module")
def batch(processor):
    rng = np.random.default_rng(0)
    pictures = [Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)) for _ in range(2)]
    return processor(images=pictures, bbox=[[2, 2, 30, 40], None], text=DESCRIPTIONS)


def _model(encoder="clip", seed=0, cls=EmoFusionForEmotionClassification, **overrides):
    config = tiny_emofusion_config("emotic", vision_config=ENCODERS[encoder], **overrides)
    torch.manual_seed(seed)
    return cls(config).eval()


# -- outputs ---------------------------------------------------------------------------------------------------


def test_attentions_and_hidden_states_of_every_part(batch):
    model = _model(num_vad=0)
    model.set_attn_implementation("eager")  # attention weights exist on the eager path only
    out = model(**batch, output_attentions=True, output_hidden_states=True)
    queries, text = model.config.num_query_tokens, batch["input_ids"].shape[1]
    layers, heads = model.config.qformer_config.num_hidden_layers, model.config.qformer_config.num_attention_heads
    vision_tokens = (32 // 8) ** 2 + 1
    assert len(out.hidden_states) == layers + 1
    assert all(h.shape == (2, queries + text, 32) for h in out.hidden_states)
    assert [a.shape for a in out.attentions] == [(2, heads, queries + text, queries + text)] * layers
    # cross-attention: the queries (not the text) over the vision tokens, in every layer (frequency 1)
    assert [a.shape for a in out.cross_attentions] == [(2, heads, queries, vision_tokens)] * layers
    torch.testing.assert_close(out.cross_attentions[0].sum(-1), torch.ones(2, heads, queries))
    vision_layers = model.config.vision_config.num_hidden_layers
    assert len(out.vision_outputs.hidden_states) == vision_layers + 1
    assert [a.shape for a in out.vision_outputs.attentions] == [(2, 4, vision_tokens, vision_tokens)] * vision_layers
    torch.testing.assert_close(out.vision_outputs.last_hidden_state, out.vision_hidden_states)

    # the same, as a tuple, in the same order; and nothing extra when nothing is asked for
    as_tuple = model(**batch, output_attentions=True, output_hidden_states=True, return_dict=False)
    assert len(as_tuple) == len(out)
    torch.testing.assert_close(as_tuple[0], out.logits)
    assert len(as_tuple[-1]) == len(out.vision_outputs)
    plain = model(**batch)
    assert plain.hidden_states is None and plain.attentions is None and plain.vision_outputs is None
    assert len(model(**batch, return_dict=False)) == len(plain)


def test_attentions_asked_for_through_the_config_and_in_clips_and_ablations(processor, batch):
    model = _model(num_vad=0, num_frames=3)
    model.set_attn_implementation("eager")
    model.config.output_attentions = True
    picture = Image.new("RGB", (40, 30), "white")
    clips = processor(videos=[[picture] * 3, [picture]], text=DESCRIPTIONS)
    out = model(**clips)
    # a clip's memory is its frames' tokens one after the other; padded frames are masked out
    assert out.cross_attentions[0].shape[-1] == 3 * 17
    assert torch.all(out.cross_attentions[0][1, :, :, 17:] == 0)
    assert out.vision_outputs.last_hidden_state.shape[0] == 4  # the real frames only
    for modality, memory in (("vision", 17), ("text", 1)):
        ablation = _model(num_vad=0, modality=modality)
        ablation.set_attn_implementation("eager")
        out = ablation(**batch, output_attentions=True)
        assert out.cross_attentions[0].shape[-1] == memory
        assert (out.vision_outputs is None) == (modality == "text")


def test_sdpa_returns_no_attention_weights(batch):
    """The default (SDPA) path computes no weights: the fields are empty, as transformers' own models give them."""
    model = _model(num_vad=0)
    assert model.config._attn_implementation == "sdpa"
    out = model(**batch, output_attentions=True)
    assert out.attentions == () and out.cross_attentions == ()


# -- embeddings and text config ----------------------------------------------------------------------------------


def test_resize_token_embeddings_after_adding_tokens(tmp_path, batch):
    model, processor = tiny_classifier("emotic")
    assert model.config.get_text_config() is model.config.qformer_config
    assert model.get_input_embeddings() is model.emofusion.qformer.embeddings.word_embeddings
    processor.tokenizer.add_tokens(["melancholic", "jubilant"])
    model.resize_token_embeddings(len(processor.tokenizer))
    assert model.config.qformer_config.vocab_size == len(processor.tokenizer)
    assert model.get_input_embeddings().weight.shape[0] == len(processor.tokenizer)
    inputs = processor(images=Image.new("RGB", (40, 30)), text="she looks jubilant")
    assert inputs["input_ids"].max() >= len(processor.tokenizer) - 2  # the new token is used
    logits = model(**inputs).logits
    model.save_pretrained(tmp_path)
    reloaded = EmoFusionForEmotionClassification.from_pretrained(tmp_path)
    assert reloaded.config.qformer_config.vocab_size == len(processor.tokenizer)
    torch.testing.assert_close(reloaded(**inputs).logits, logits)
    new_embeddings = torch.nn.Embedding(len(processor.tokenizer), 32)
    model.set_input_embeddings(new_embeddings)
    assert model.get_input_embeddings() is new_embeddings


# -- weight initialisation -----------------------------------------------------------------------------------------


def _family_stds(vision_model):
    parameters = dict(vision_model.named_parameters())
    return {
        name: parameters[name].std().item()
        for name in ("encoder.layers.0.self_attn.q_proj.weight", "encoder.layers.0.mlp.fc1.weight")
    }


def test_every_path_initialises_the_encoder_with_clip_init(tmp_path):
    """CLIP's own init (q_proj ~0.0625, fc1 ~0.088 at width 64), not the blanket 0.02, on every path."""
    width64 = {**ENCODERS["clip"], "hidden_size": 64, "intermediate_size": 128}
    config = tiny_emofusion_config("emotic", vision_config=width64)
    torch.manual_seed(0)
    reference = _family_stds(
        CLIPVisionModel(CLIPVisionConfig(**{k: v for k, v in width64.items() if k != "model_type"}))
    )

    def assert_family_init(vision_model):
        for name, std in _family_stds(vision_model).items():
            assert abs(std - reference[name]) < 0.2 * reference[name], (name, std, reference[name])

    model = EmoFusionForEmotionClassification(config)
    assert_family_init(model.emofusion.vision_model)
    # from_pretrained with the encoder's layers missing from the checkpoint
    model.save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    kept = {k: v for k, v in weights.items() if ".vision_model.encoder." not in k}
    save_file(kept, tmp_path / "model.safetensors", metadata={"format": "pt"})
    reloaded = EmoFusionForEmotionClassification.from_pretrained(tmp_path)
    assert_family_init(reloaded.emofusion.vision_model)
    for name, tensor in kept.items():  # loaded weights are kept as they are
        torch.testing.assert_close(reloaded.state_dict()[name], tensor)
    # the meta device, then materialised and initialised
    with torch.device("meta"):
        on_meta = EmoFusionForEmotionClassification(config)
    on_meta.to_empty(device="cpu")
    on_meta.initialize_weights()
    assert_family_init(on_meta.emofusion.vision_model)
    assert on_meta.emofusion.query_tokens.std().item() == pytest.approx(0.02, rel=0.5)


# -- regression -----------------------------------------------------------------------------------------------------


def test_regression_is_mean_squared_error(batch):
    model = _model(num_vad=0, problem_type="regression")
    targets = torch.rand(2, model.config.num_labels)
    out = model(**batch, labels=targets)
    torch.testing.assert_close(out.loss, torch.nn.functional.mse_loss(out.logits, targets))
    one = _model(num_vad=0, problem_type="regression", id2label={0: "valence"})
    out = one(**batch, labels=torch.tensor([0.2, 0.7]))
    torch.testing.assert_close(
        out.loss, torch.nn.functional.mse_loss(out.logits.squeeze(-1), torch.tensor([0.2, 0.7]))
    )


# -- sharding units and gradients, per encoder --------------------------------------------------------------------


@pytest.mark.parametrize("encoder", list(ENCODERS))
def test_no_split_modules_and_flags_follow_the_encoder(encoder):
    model = _model(encoder)
    present = {type(module).__name__ for module in model.modules()}
    assert ENCODER_LAYERS[encoder] in model._no_split_modules and "InstructBlipQFormerLayer" in model._no_split_modules
    assert set(model._no_split_modules) <= present
    encoder_class = type(model.emofusion.vision_model)
    assert model._supports_sdpa == encoder_class._supports_sdpa
    assert model._supports_flash_attn == (
        encoder_class._supports_flash_attn and model.emofusion.qformer._supports_flash_attn
    )


@pytest.mark.parametrize("encoder", list(ENCODERS))
@pytest.mark.parametrize("modality", ["fusion", "vision"])
def test_every_trainable_parameter_gets_a_gradient(tmp_path, batch, encoder, modality):
    """What DDP with find_unused_parameters=False (the Trainer's choice under gradient checkpointing) and FSDP need,
    for a new model and for one loaded (loading puts fresh parameters in place)."""
    _model(encoder, modality=modality, num_vad=3).save_pretrained(tmp_path)
    model = EmoFusionForEmotionClassification.from_pretrained(tmp_path).train()
    labels = torch.zeros(2, model.config.num_labels)
    model(**batch, labels=labels, vad_labels=torch.full((2, 3), 5.0)).loss.backward()
    missing = [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []
    assert any(p.requires_grad for p in model.emofusion.vision_model.parameters())


# -- torch.compile and torch.export -------------------------------------------------------------------------------


def test_compile_fullgraph_and_export_give_eager_outputs(batch):
    model = _model()
    inputs = dict(batch)
    with torch.no_grad():
        eager = model(**inputs)
        # fullgraph: one graph, no break (the backend only runs it: inductor's C++ build is not what is tested)
        compiled = torch.compile(model, fullgraph=True, backend="eager")(**inputs)
        exported = torch.export.export(model, args=(), kwargs=inputs).module()(**inputs)
    for name in ("logits", "vad", "query_states"):
        torch.testing.assert_close(compiled[name], eager[name], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(exported[name], eager[name], rtol=1e-4, atol=1e-5)


def test_export_of_clips_gives_eager_outputs(processor):
    """Clips with padded frames: the exported graph encodes every frame and zeroes the padding, eager skips it."""
    model = _model(num_frames=3)
    picture = Image.new("RGB", (40, 30), "white")
    inputs = dict(processor(videos=[[picture] * 3, [picture]], bbox=[[2, 2, 30, 20], None], text=DESCRIPTIONS))
    with torch.no_grad():
        eager = model(**inputs)
        exported = torch.export.export(model, args=(), kwargs=inputs).module()(**inputs)
    torch.testing.assert_close(exported["logits"], eager["logits"], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(exported["vision_hidden_states"], eager["vision_hidden_states"], rtol=1e-4, atol=1e-5)


# -- device_map="auto" with offload -------------------------------------------------------------------------------


@pytest.mark.parametrize("encoder", ["clip", "siglip", "dinov2"])
def test_device_map_auto_with_cpu_and_disk_offload_gives_plain_logits(tmp_path, batch, encoder):
    model = _model(encoder)
    model.save_pretrained(tmp_path / "model")
    plain = EmoFusionForEmotionClassification.from_pretrained(tmp_path / "model")
    size = sum(p.numel() * p.element_size() for p in plain.parameters())
    offloaded = EmoFusionForEmotionClassification.from_pretrained(
        tmp_path / "model",
        device_map="auto",
        max_memory={"cpu": int(size * 0.7)},  # the rest of the model goes to disk
        offload_folder=tmp_path / "offload",
    )
    placement = set(offloaded.hf_device_map.values())
    assert "disk" in placement and "cpu" in placement  # (disk weights are read from the safetensors file itself)
    with torch.no_grad():
        torch.testing.assert_close(offloaded(**batch).logits, plain(**batch).logits)


# -- processor keyword routing ------------------------------------------------------------------------------------


def test_processor_routes_flat_and_nested_kwargs(processor):
    picture = Image.new("RGB", (40, 30), (200, 100, 50))
    default = processor(images=picture, text="she seems happy")
    assert isinstance(default["pixel_values"], torch.Tensor)
    padded = processor(images=picture, text="she seems happy", padding="max_length", max_length=12)
    assert padded["input_ids"].shape == (1, 12) and padded["attention_mask"].sum() < 12
    nested = processor(images=picture, text="she seems happy", text_kwargs={"padding": "max_length", "max_length": 9})
    assert nested["input_ids"].shape == (1, 9)
    raw = processor(images=picture, do_rescale=False, do_normalize=False)
    assert raw["pixel_values"].max() > 1.0  # not rescaled to [0, 1]
    assert (
        processor(images=picture, images_kwargs={"do_rescale": False, "do_normalize": False})["pixel_values"].max()
        > 1.0
    )
    as_numpy = processor(images=picture, text="she seems happy", return_tensors="np")
    assert isinstance(as_numpy["input_ids"], np.ndarray) and isinstance(as_numpy["pixel_values"], np.ndarray)
    truncated = processor(text="she seems happy and excited", max_length=4)
    assert truncated["input_ids"].shape == (1, 4) and "pixel_values" not in truncated
    with pytest.raises(ValueError, match="passed two times"):
        processor(images=picture, text="x", max_length=8, text_kwargs={"max_length": 9})
    with pytest.raises(ValueError, match="not both"):
        processor(images=picture, videos=[picture])


def test_processor_call_arguments_default_to_none():
    import inspect

    from modeling_emofusion import EmoFusionProcessor

    parameters = inspect.signature(EmoFusionProcessor.__call__).parameters
    assert "return_tensors" not in parameters
    assert all(p.default is None for name, p in parameters.items() if name not in ("self", "kwargs"))


def test_base_model_loads_in_the_auto_classes(tmp_path):
    model = _model(cls=EmoFusionModel)
    model.save_pretrained(tmp_path)
    assert type(AutoModel.from_pretrained(tmp_path)) is EmoFusionModel
