"""Tiny random builds of the VLLM families stage 1 supports, offline, for the describer's tests.

Each `build_<family>(out_dir)` saves a model and its processor to `out_dir` with the family's real
architecture and processing path (vision tower, projector, language model, the family's own processor
and prompt layout), a hidden size of 32, 2 layers and a word-level tokenizer, so that
`TransformersDescriber.from_pretrained(out_dir)` loads it like the published checkpoint. Nothing is
downloaded. Recipes and the traps behind them: docs of the project (VLLM families, offline).

Without torchvision, five stock processors cannot be built here (their `__init__` takes a video
processor, which needs torchvision: LLaVA-OneVision, Qwen2-VL, Qwen2.5-VL, InternVL; Pixtral's module
imports torchvision: Mistral 3). This module defines image-only subclasses and registers them with
`AutoProcessor` on import: that is a test stand-in, never part of the package. SmolVLM is saved with a
stock `Idefics3Processor` (same prompt format), since `SmolVLMProcessor` also needs torchvision and num2words.
"""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import (
    AutoProcessor,
    AyaVisionConfig,
    AyaVisionForConditionalGeneration,
    AyaVisionProcessor,
    BartConfig,
    CLIPImageProcessorPil,
    CLIPVisionConfig,
    Cohere2Config,
    Florence2Config,
    Florence2ForConditionalGeneration,
    Florence2Processor,
    Florence2VisionConfig,
    Gemma3Config,
    Gemma3ForConditionalGeneration,
    Gemma3ImageProcessorPil,
    Gemma3Processor,
    Gemma3TextConfig,
    GemmaConfig,
    GotOcr2ImageProcessorPil,
    Idefics3Config,
    Idefics3ForConditionalGeneration,
    Idefics3ImageProcessorPil,
    Idefics3Processor,
    Idefics3VisionConfig,
    InternVLConfig,
    InternVLForConditionalGeneration,
    InternVLProcessor,
    InternVLVisionConfig,
    Llama4Config,
    Llama4TextConfig,
    Llama4VisionConfig,
    LlamaConfig,
    LlavaNextConfig,
    LlavaNextForConditionalGeneration,
    LlavaNextImageProcessorPil,
    LlavaNextProcessor,
    LlavaOnevisionConfig,
    LlavaOnevisionForConditionalGeneration,
    LlavaOnevisionImageProcessorPil,
    LlavaOnevisionProcessor,
    Mistral3Config,
    Mistral3ForConditionalGeneration,
    MistralConfig,
    PaliGemmaConfig,
    PaliGemmaForConditionalGeneration,
    PaliGemmaProcessor,
    PixtralImageProcessorPil,
    PixtralVisionConfig,
    PreTrainedTokenizerFast,
    ProcessorMixin,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLProcessor,
    Qwen2Config,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen2VLImageProcessorPil,
    Qwen2VLProcessor,
    SiglipImageProcessorPil,
    SiglipVisionConfig,
    SmolVLMConfig,
    SmolVLMForConditionalGeneration,
    SmolVLMImageProcessorPil,
    SmolVLMVisionConfig,
)

from emofusion.testing_llava import SPECIAL_TOKENS, tiny_vocabulary


# Words of the families' chat markers, so that they are words and not [UNK].
MARKER_WORDS = ["USER", "ASSISTANT", "User", "Assistant", "user", "assistant", "model", "system", "TILE_GLOBAL"]
MARKER_WORDS += [f"TILE_{i}" for i in range(1, 13)]


def tiny_tokenizer(specials, bos_on_tokenize: bool = False, **named) -> PreTrainedTokenizerFast:
    """Word-level tokenizer: `specials` first (never split), then the prompts' words.

    `bos_on_tokenize`: the tokenizer adds its BOS in front of every text it tokenizes, as Gemma's and
    Llama 3's do (on top of any the chat template writes).
    """
    vocab = {}
    for token in list(specials) + tiny_vocabulary(MARKER_WORDS)[len(SPECIAL_TOKENS) :]:
        vocab.setdefault(token, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=named["unk_token"]))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.add_special_tokens(list(specials))
    if bos_on_tokenize:
        bos = named["bos_token"]
        backend.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, vocab[bos])]
        )
    return PreTrainedTokenizerFast(tokenizer_object=backend, padding_side="left", **named)


def text_kwargs(tok, hidden: int = 32, **extra) -> dict:
    """A 2-layer language model's config arguments matching `tok`."""
    values = dict(
        vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=1024,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )  # fmt: skip
    values["bos_token_id"] = tok.bos_token_id  # None too: Qwen2's default is the real vocabulary's
    return {**values, **extra}


def vision_kwargs(hidden: int = 32, **extra) -> dict:
    return {"hidden_size": hidden, "intermediate_size": 2 * hidden, "num_hidden_layers": 2, "num_attention_heads": 2,
            **extra}  # fmt: skip


def save(model_class, config, processor, out_dir, eos=None, seed: int = 0, **generation):
    """Random weights from `seed`; generation config with the tokenizer's pad and eos (or `eos`); both saved."""
    torch.manual_seed(seed)
    model = model_class(config).eval()
    tok = processor.tokenizer
    gc = model.generation_config
    gc.pad_token_id = tok.pad_token_id
    gc.eos_token_id = tok.eos_token_id if eos is None else eos
    if tok.bos_token_id is not None:
        gc.bos_token_id = tok.bos_token_id
    for name, value in generation.items():
        setattr(gc, name, value)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return model, processor


def content_template(begin: str, turn: str, image: str, end: str, generation: str) -> str:
    """A single-turn chat template: `begin`, then per message `turn` (a Jinja expression of the role), its
    content (`image` for an image, the text for text) and `end`; `generation` opens the assistant's turn."""
    return (
        f"{begin}{{% for message in messages %}}{{{{ {turn} }}}}"
        "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
        f"{{% for c in message['content'] %}}{{% if c['type'] == 'image' %}}{{{{ {image!r} }}}}"
        "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}"
        f"{{{{ {end!r} }}}}{{% endfor %}}{{% if add_generation_prompt %}}{{{{ {generation!r} }}}}{{% endif %}}"
    )


CHATML_TEMPLATE_QWEN = content_template(
    "",
    "'<|im_start|>' + message['role'] + '\\n'",
    "<|vision_start|><|image_pad|><|vision_end|>",
    "<|im_end|>\n",
    "<|im_start|>assistant\n",
)


# --- LLaVA-1.5, LLaVA-NeXT, LLaVA-OneVision ------------------------------------------------------------------


def build_llava(out_dir):
    from emofusion.testing_llava import tiny_llava

    return tiny_llava(out_dir)


def build_llava_next(out_dir, image_size=32, patch_size=8):
    pinpoints = [[32, 64], [64, 32], [64, 64]]
    tok = tiny_tokenizer(["<pad>", "<s>", "</s>", "[UNK]", "<image>", "[INST]", "[/INST]"], bos_token="<s>",
                         eos_token="</s>", pad_token="<pad>", unk_token="[UNK]",
                         extra_special_tokens={"image_token": "<image>"})  # fmt: skip
    # llava-hf/llava-v1.6-mistral-7b-hf: "[INST] <image>\ntext [/INST]"
    template = content_template("", "'[INST] '", "<image>\n", " [/INST]", "")
    image_processor = LlavaNextImageProcessorPil(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size},
        image_grid_pinpoints=pinpoints,
    )  # fmt: skip
    processor = LlavaNextProcessor(image_processor=image_processor, tokenizer=tok, patch_size=patch_size,
                                   vision_feature_select_strategy="default", num_additional_image_tokens=1,
                                   chat_template=template)  # fmt: skip
    config = LlavaNextConfig(
        vision_config=CLIPVisionConfig(**vision_kwargs(image_size=image_size, patch_size=patch_size,
                                                       projection_dim=32)),
        text_config=LlamaConfig(**text_kwargs(tok)), image_token_id=tok.convert_tokens_to_ids("<image>"),
        image_grid_pinpoints=pinpoints, image_seq_length=(image_size // patch_size) ** 2,
        vision_feature_select_strategy="default", vision_feature_layer=-2,
    )  # fmt: skip
    return save(LlavaNextForConditionalGeneration, config, processor, out_dir)


class ImageOnlyLlavaOnevisionProcessor(LlavaOnevisionProcessor):
    """LlavaOnevisionProcessor without its video processor (which needs torchvision); every init arg named,
    since reloading passes only named ones."""

    def __init__(self, image_processor=None, tokenizer=None, num_image_tokens=None,
                 vision_feature_select_strategy=None, chat_template=None, image_token="<image>",
                 video_token="<video>", vision_aspect_ratio="anyres_max_9", **kwargs):  # fmt: skip
        super().__init__(image_processor, tokenizer, None, num_image_tokens=num_image_tokens,
                         vision_feature_select_strategy=vision_feature_select_strategy, chat_template=chat_template,
                         image_token=image_token, video_token=video_token, vision_aspect_ratio=vision_aspect_ratio,
                         **kwargs)  # fmt: skip


def build_llava_onevision(out_dir, image_size=32, patch_size=8):
    pinpoints = [[32, 32], [32, 64], [64, 32], [64, 64]]
    tok = tiny_tokenizer(["<|endoftext|>", "<|im_start|>", "<|im_end|>", "[UNK]", "<image>", "<video>"],
                         eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token="[UNK]",
                         extra_special_tokens={"image_token": "<image>", "video_token": "<video>"})  # fmt: skip
    template = content_template("", "'<|im_start|>' + message['role'] + '\\n'", "<image>\n", "<|im_end|>\n",
                                "<|im_start|>assistant\n")  # fmt: skip
    image_processor = LlavaOnevisionImageProcessorPil(size={"height": image_size, "width": image_size},
                                                      image_grid_pinpoints=pinpoints)  # fmt: skip
    processor = ImageOnlyLlavaOnevisionProcessor(
        image_processor=image_processor, tokenizer=tok, num_image_tokens=(image_size // patch_size) ** 2,
        vision_feature_select_strategy="full", vision_aspect_ratio="anyres_max_9", chat_template=template,
    )  # fmt: skip
    config = LlavaOnevisionConfig(
        vision_config=SiglipVisionConfig(**vision_kwargs(image_size=image_size, patch_size=patch_size)),
        text_config=Qwen2Config(**text_kwargs(tok)), image_token_id=tok.convert_tokens_to_ids("<image>"),
        video_token_id=tok.convert_tokens_to_ids("<video>"), image_grid_pinpoints=pinpoints,
        vision_feature_select_strategy="full", vision_feature_layer=-1, vision_aspect_ratio="anyres_max_9",
    )  # fmt: skip
    return save(LlavaOnevisionForConditionalGeneration, config, processor, out_dir)


# --- Idefics3, SmolVLM ------------------------------------------------------------------------------------------


def _idefics3_parts(image_processor_class, tile, patch_size, scale_factor):
    specials = ["<pad>", "<|begin_of_text|>", "<end_of_utterance>", "[UNK]", "<image>", "<fake_token_around_image>",
                "<global-img>"] + [f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)]  # fmt: skip
    tok = tiny_tokenizer(specials, bos_token="<|begin_of_text|>", eos_token="<end_of_utterance>", pad_token="<pad>",
                         unk_token="[UNK]")  # fmt: skip
    # HuggingFaceM4/Idefics3-8B-Llama3: "<|begin_of_text|>User:<image>text<end_of_utterance>\nAssistant:"
    template = (
        "<|begin_of_text|>{% for message in messages %}{{ message['role'].capitalize() }}"
        "{% if message['content'][0]['type'] == 'image' %}{{ ':' }}{% else %}{{ ': ' }}{% endif %}"
        "{% for c in message['content'] %}{% if c['type'] == 'text' %}{{ c['text'] }}"
        "{% elif c['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
        "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
    )
    image_processor = image_processor_class(size={"longest_edge": 2 * tile}, max_image_size={"longest_edge": tile},
                                            do_image_splitting=True)  # fmt: skip
    processor = Idefics3Processor(image_processor=image_processor, tokenizer=tok, chat_template=template,
                                  image_seq_len=(tile // patch_size) ** 2 // scale_factor**2)  # fmt: skip
    return tok, processor


def build_idefics3(out_dir, tile=32, patch_size=8, scale_factor=2):
    tok, processor = _idefics3_parts(Idefics3ImageProcessorPil, tile, patch_size, scale_factor)
    config = Idefics3Config(
        vision_config=Idefics3VisionConfig(**vision_kwargs(image_size=tile, patch_size=patch_size)),
        text_config=LlamaConfig(**text_kwargs(tok)), image_token_id=tok.convert_tokens_to_ids("<image>"),
        scale_factor=scale_factor,
    )  # fmt: skip
    return save(Idefics3ForConditionalGeneration, config, processor, out_dir)


def build_smolvlm(out_dir, tile=32, patch_size=8, scale_factor=2):
    tok, processor = _idefics3_parts(SmolVLMImageProcessorPil, tile, patch_size, scale_factor)
    config = SmolVLMConfig(
        vision_config=SmolVLMVisionConfig(**vision_kwargs(image_size=tile, patch_size=patch_size)),
        text_config=LlamaConfig(**text_kwargs(tok)), image_token_id=tok.convert_tokens_to_ids("<image>"),
        scale_factor=scale_factor,
    )  # fmt: skip
    return save(SmolVLMForConditionalGeneration, config, processor, out_dir)


# --- PaliGemma, Gemma 3 -------------------------------------------------------------------------------------------


def build_paligemma(out_dir, image_size=32, patch_size=8):
    """PaliGemma checkpoints ship no chat template; the processor writes the image tokens, `<bos>` and "\\n"."""
    tok = tiny_tokenizer(
        ["<pad>", "<eos>", "<bos>", "<unk>", "<image>"],
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        extra_special_tokens={"image_token": "<image>"},
    )
    image_processor = SiglipImageProcessorPil(size={"height": image_size, "width": image_size},
                                              image_seq_length=(image_size // patch_size) ** 2)  # fmt: skip
    processor = PaliGemmaProcessor(image_processor=image_processor, tokenizer=tok)
    tok = processor.tokenizer  # the processor adds its <locXXXX> and <segXXX> tokens
    config = PaliGemmaConfig(
        vision_config=SiglipVisionConfig(**vision_kwargs(image_size=image_size, patch_size=patch_size)),
        text_config=GemmaConfig(**text_kwargs(tok, num_key_value_heads=1, head_dim=16)),
        image_token_id=tok.convert_tokens_to_ids("<image>"), vocab_size=len(tok), projection_dim=32, hidden_size=32,
        tie_word_embeddings=False,  # tied random embeddings make greedy repeat the last prompt token
    )  # fmt: skip
    return save(PaliGemmaForConditionalGeneration, config, processor, out_dir)


# google/gemma-3-*-it, simplified:
# "<bos><start_of_turn>user\n<start_of_image>text<end_of_turn>\n<start_of_turn>model\n"
GEMMA3_TEMPLATE = content_template(
    "{{ bos_token }}",
    "'<start_of_turn>' + ('model' if message['role'] == 'assistant' else message['role']) + '\\n'",
    "<start_of_image>",
    "<end_of_turn>\n",
    "<start_of_turn>model\n",
)


def build_gemma3(out_dir, image_size=32, patch_size=8, tokens_per_image=4, bos_on_tokenize=False):
    """`bos_on_tokenize`: a tokenizer that adds `<bos>` itself, as the published Gemma 3 one does."""
    tok = tiny_tokenizer(
        ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>", "<start_of_image>", "<end_of_image>",
         "<image_soft_token>"],
        bos_on_tokenize=bos_on_tokenize, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>",
        extra_special_tokens={"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>",
                              "image_token": "<image_soft_token>"},
    )  # fmt: skip
    image_processor = Gemma3ImageProcessorPil(size={"height": image_size, "width": image_size})
    processor = Gemma3Processor(image_processor=image_processor, tokenizer=tok, chat_template=GEMMA3_TEMPLATE,
                                image_seq_length=tokens_per_image)  # fmt: skip
    ids = tok.convert_tokens_to_ids
    config = Gemma3Config(
        vision_config=SiglipVisionConfig(**vision_kwargs(image_size=image_size, patch_size=patch_size)),
        text_config=Gemma3TextConfig(**text_kwargs(
            tok, num_key_value_heads=1, head_dim=16, query_pre_attn_scalar=16, sliding_window=512,
            layer_types=["sliding_attention", "full_attention"])),
        mm_tokens_per_image=tokens_per_image, boi_token_index=ids("<start_of_image>"),
        eoi_token_index=ids("<end_of_image>"), image_token_index=ids("<image_soft_token>"),
    )  # fmt: skip
    eos = [tok.eos_token_id, ids("<end_of_turn>")]  # as google/gemma-3-*-it's generation_config.json
    return save(Gemma3ForConditionalGeneration, config, processor, out_dir, eos=eos)


# --- Qwen2-VL, Qwen2.5-VL ---------------------------------------------------------------------------------------


class ImageOnlyQwen2VLProcessor(Qwen2VLProcessor):
    """Qwen2VLProcessor without its video processor (which needs torchvision)."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)


class ImageOnlyQwen2_5_VLProcessor(Qwen2_5_VLProcessor):
    """Qwen2_5_VLProcessor without its video processor (which needs torchvision)."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)


def _qwen_parts(processor_class, patch, merge):
    tok = tiny_tokenizer(
        [
            "<|endoftext|>",
            "<|im_start|>",
            "<|im_end|>",
            "[UNK]",
            "<|vision_start|>",
            "<|vision_end|>",
            "<|image_pad|>",
            "<|video_pad|>",
        ],
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="[UNK]",
        extra_special_tokens={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>"},
    )
    factor = patch * merge  # sizes are pixel counts: 16x16 .. 48x48
    image_processor = Qwen2VLImageProcessorPil(
        size={"shortest_edge": (2 * factor) ** 2, "longest_edge": (6 * factor) ** 2}, patch_size=patch,
        merge_size=merge, temporal_patch_size=2,
    )  # fmt: skip
    processor = processor_class(image_processor=image_processor, tokenizer=tok, chat_template=CHATML_TEMPLATE_QWEN)
    ids = tok.convert_tokens_to_ids
    text = text_kwargs(tok, rope_parameters={"rope_type": "default", "rope_theta": 1e4, "mrope_section": [2, 3, 3]})
    tokens = dict(
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
    )
    return processor, text, tokens


def build_qwen2_vl(out_dir, patch=4, merge=2, hidden=32):
    processor, text, tokens = _qwen_parts(ImageOnlyQwen2VLProcessor, patch, merge)
    vision = dict(depth=2, embed_dim=hidden, hidden_size=hidden, num_heads=2, mlp_ratio=2, patch_size=patch,
                  spatial_merge_size=merge, temporal_patch_size=2)  # fmt: skip
    config = Qwen2VLConfig(vision_config=vision, text_config=text, **tokens)
    return save(Qwen2VLForConditionalGeneration, config, processor, out_dir)


def build_qwen2_5_vl(out_dir, patch=4, merge=2, hidden=32):
    processor, text, tokens = _qwen_parts(ImageOnlyQwen2_5_VLProcessor, patch, merge)
    vision = dict(depth=2, hidden_size=hidden, intermediate_size=2 * hidden, num_heads=2, out_hidden_size=hidden,
                  patch_size=patch, spatial_merge_size=merge, temporal_patch_size=2, window_size=2 * patch * merge,
                  fullatt_block_indexes=[1])  # fmt: skip
    config = Qwen2_5_VLConfig(vision_config=vision, text_config=text, **tokens)
    return save(Qwen2_5_VLForConditionalGeneration, config, processor, out_dir)


# --- InternVL ---------------------------------------------------------------------------------------------------


class ImageOnlyInternVLProcessor(InternVLProcessor):
    """InternVLProcessor without its video processor (which needs torchvision)."""

    def __init__(self, image_processor=None, tokenizer=None, image_seq_length=256, chat_template=None, **kwargs):
        super().__init__(image_processor, tokenizer, None, image_seq_length=image_seq_length,
                         chat_template=chat_template, **kwargs)  # fmt: skip


def build_internvl(out_dir, image_size=32, patch_size=8):
    tok = tiny_tokenizer(
        ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "[UNK]", "<img>", "</img>", "<IMG_CONTEXT>", "<video>"],
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="[UNK]",
        extra_special_tokens={
            "start_image_token": "<img>",
            "end_image_token": "</img>",
            "context_image_token": "<IMG_CONTEXT>",
            "video_token": "<video>",
        },
    )
    template = content_template("", "'<|im_start|>' + message['role'] + '\\n'", "<IMG_CONTEXT>\n", "<|im_end|>\n",
                                "<|im_start|>assistant\n")  # fmt: skip
    image_seq_length = (image_size // patch_size) ** 2 // 4  # downsample_ratio 0.5 on both axes
    image_processor = GotOcr2ImageProcessorPil(size={"height": image_size, "width": image_size}, crop_to_patches=True,
                                               min_patches=1, max_patches=4)  # fmt: skip
    processor = ImageOnlyInternVLProcessor(image_processor=image_processor, tokenizer=tok,
                                           image_seq_length=image_seq_length, chat_template=template)  # fmt: skip
    config = InternVLConfig(
        vision_config=InternVLVisionConfig(**vision_kwargs(image_size=[image_size] * 2, patch_size=[patch_size] * 2)),
        text_config=Qwen2Config(**text_kwargs(tok, tie_word_embeddings=False)),
        image_token_id=tok.convert_tokens_to_ids("<IMG_CONTEXT>"), image_seq_length=image_seq_length,
        downsample_ratio=0.5, vision_feature_layer=-1, vision_feature_select_strategy="default",
        tie_word_embeddings=False,
    )  # fmt: skip
    return save(InternVLForConditionalGeneration, config, processor, out_dir)


# --- Mistral 3 ----------------------------------------------------------------------------------------------------


class StandInPixtralProcessor(ProcessorMixin):
    """PixtralProcessor's image path (transformers 5.24.0) without its torchvision-only module: rows of `[IMG]`
    x width + `[IMG_BREAK]`, the last one `[IMG_END]`."""

    def __init__(
        self,
        image_processor=None,
        tokenizer=None,
        patch_size=16,
        spatial_merge_size=1,
        chat_template=None,
        image_token="[IMG]",
        image_break_token="[IMG_BREAK]",
        image_end_token="[IMG_END]",
        **kwargs,
    ):
        super().__init__(image_processor, tokenizer, chat_template=chat_template)
        self.patch_size, self.spatial_merge_size = patch_size, spatial_merge_size
        self.image_token, self.image_break_token, self.image_end_token = (
            image_token,
            image_break_token,
            image_end_token,
        )
        self.image_token_id = tokenizer.convert_tokens_to_ids(image_token)
        self.image_break_token_id = tokenizer.convert_tokens_to_ids(image_break_token)
        self.image_end_token_id = tokenizer.convert_tokens_to_ids(image_end_token)

    @property
    def image_token_ids(self):
        return [self.image_token_id, self.image_break_token_id, self.image_end_token_id]

    def _process_images(self, images, **images_kwargs):
        images_kwargs["patch_size"] = self.patch_size * self.spatial_merge_size
        return super()._process_images(images, **images_kwargs)

    def replace_image_token(self, image_inputs, image_idx, **kwargs):
        patch = self.patch_size * self.spatial_merge_size
        height, width = image_inputs["image_sizes"][image_idx]
        rows = [[self.image_token] * (int(width) // patch) + [self.image_break_token]] * (int(height) // patch)
        tokens = [t for row in rows for t in row]
        tokens[-1] = self.image_end_token
        return "".join(tokens)

    @property
    def model_input_names(self):
        return self.tokenizer.model_input_names + self.image_processor.model_input_names + ["image_sizes"]


def build_mistral3(out_dir, patch=4, merge=2, image_size=32):
    tok = tiny_tokenizer(["<unk>", "<s>", "</s>", "<pad>", "[INST]", "[/INST]", "[IMG]", "[IMG_BREAK]", "[IMG_END]"],
                         bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>")  # fmt: skip
    # mistralai/Mistral-Small-3.1-24B-Instruct-2503, simplified: "<s>[INST]text[IMG][/INST]"
    template = content_template("{{ bos_token }}", "'[INST]'", "[IMG]", "[/INST]", "")
    image_processor = PixtralImageProcessorPil(size={"longest_edge": image_size},
                                               patch_size={"height": patch, "width": patch})  # fmt: skip
    processor = StandInPixtralProcessor(image_processor=image_processor, tokenizer=tok, patch_size=patch,
                                        spatial_merge_size=merge, chat_template=template)  # fmt: skip
    config = Mistral3Config(
        vision_config=PixtralVisionConfig(**vision_kwargs(image_size=image_size, patch_size=patch)),
        text_config=MistralConfig(**text_kwargs(tok, head_dim=16, sliding_window=None, tie_word_embeddings=False)),
        image_token_id=tok.convert_tokens_to_ids("[IMG]"), spatial_merge_size=merge, vision_feature_layer=-1,
        tie_word_embeddings=False,
    )  # fmt: skip
    return save(Mistral3ForConditionalGeneration, config, processor, out_dir)


# --- Aya Vision ---------------------------------------------------------------------------------------------------


def build_aya_vision(out_dir, img_size=32, vision_patch=8, downsample=2):
    tok = tiny_tokenizer(
        ["<PAD>", "<UNK>", "<BOS_TOKEN>", "<|END_OF_TURN_TOKEN|>", "<|START_OF_TURN_TOKEN|>", "<|USER_TOKEN|>",
         "<|CHATBOT_TOKEN|>", "<image>", "<|START_OF_IMG|>", "<|END_OF_IMG|>", "<|IMG_PATCH|>", "<|IMG_LINE_BREAK|>"],
        bos_token="<BOS_TOKEN>", eos_token="<|END_OF_TURN_TOKEN|>", pad_token="<PAD>", unk_token="<UNK>",
    )  # fmt: skip
    template = content_template(
        "{{ bos_token }}",
        "'<|START_OF_TURN_TOKEN|>' + ('<|CHATBOT_TOKEN|>' if message['role'] == 'assistant' else '<|USER_TOKEN|>')",
        "<image>",
        "<|END_OF_TURN_TOKEN|>",
        "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>",
    )
    image_processor = GotOcr2ImageProcessorPil(size={"height": img_size, "width": img_size}, crop_to_patches=True,
                                               min_patches=1, max_patches=4)  # fmt: skip
    processor = AyaVisionProcessor(
        image_processor=image_processor,
        tokenizer=tok,
        patch_size=vision_patch,
        downsample_factor=downsample,
        img_size=img_size,
        chat_template=template,
    )
    config = AyaVisionConfig(
        vision_config=SiglipVisionConfig(**vision_kwargs(image_size=img_size, patch_size=vision_patch)),
        text_config=Cohere2Config(**text_kwargs(tok, layer_types=["sliding_attention", "full_attention"],
                                                sliding_window=512)),
        image_token_id=tok.convert_tokens_to_ids("<|IMG_PATCH|>"), downsample_factor=downsample,
        vision_feature_select_strategy="full", vision_feature_layer=-1, tie_word_embeddings=False,
    )  # fmt: skip
    return save(AyaVisionForConditionalGeneration, config, processor, out_dir)


# --- Florence-2 (encoder-decoder) -------------------------------------------------------------------------------


def build_florence2(out_dir, image_size=64, hidden=32):
    """DaViT (stride 32: a 64 px image gives 2*2 + 1 = 5 image tokens) + BART. No chat template (the checkpoints
    ship none); the processor writes `<image>` + bos + text + eos around every prompt."""
    tok = tiny_tokenizer(
        ["<s>", "<pad>", "</s>", "<unk>", "<image>"],
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        extra_special_tokens={"image_token": "<image>"},
    )
    image_processor = CLIPImageProcessorPil(size={"height": image_size, "width": image_size}, do_center_crop=False,
                                            image_seq_length=(image_size // 32) ** 2 + 1)  # fmt: skip
    processor = Florence2Processor(image_processor=image_processor, tokenizer=tok)
    config = Florence2Config(
        vision_config=Florence2VisionConfig(depths=[1, 1, 1, 1], embed_dim=[8, 16, 16, 32], num_heads=[1, 2, 2, 2],
                                            num_groups=[1, 2, 2, 2], window_size=2, projection_dim=hidden,
                                            max_position_embeddings=16, drop_path_rate=0.0),
        text_config=BartConfig(vocab_size=len(tok), d_model=hidden, encoder_layers=1, decoder_layers=1,
                               encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=2 * hidden,
                               decoder_ffn_dim=2 * hidden, max_position_embeddings=512, bos_token_id=tok.bos_token_id,
                               eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                               decoder_start_token_id=tok.eos_token_id, forced_eos_token_id=None,
                               tie_word_embeddings=False),
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        tie_word_embeddings=False,  # tied random embeddings make greedy repeat decoder_start (= eos)
    )  # fmt: skip
    return save(Florence2ForConditionalGeneration, config, processor, out_dir, decoder_start_token_id=tok.eos_token_id)


# --- Llama 4 (its generation cannot run on transformers 5.24: only the config is needed, to test the refusal) ----


def llama4_config(image_size=32, patch_size=8, hidden=32, vision_hidden=16) -> Llama4Config:
    """A tiny Llama 4: vision intermediate_size = 4 x hidden (pixel shuffle 0.5 quadruples the channels before
    fc1), one RoPE chunked layer and one NoPE MoE layer with 2 experts."""
    return Llama4Config(
        vision_config=Llama4VisionConfig(
            hidden_size=vision_hidden, intermediate_size=4 * vision_hidden, num_hidden_layers=2,
            num_attention_heads=2, image_size=image_size, patch_size=patch_size, pixel_shuffle_ratio=0.5,
            projector_input_dim=hidden, projector_output_dim=hidden, vision_output_dim=hidden,
        ),
        text_config=Llama4TextConfig(
            vocab_size=64, hidden_size=hidden, intermediate_size=2 * hidden, intermediate_size_mlp=2 * hidden,
            num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2, head_dim=16, num_local_experts=2,
            num_experts_per_tok=1, interleave_moe_layer_step=2, no_rope_layers=[1, 0], attention_chunk_size=8192,
            max_position_embeddings=1024, bos_token_id=1, eos_token_id=2, pad_token_id=0,
        ),
        boi_token_index=60, eoi_token_index=61, image_token_index=62,
    )  # fmt: skip


BUILDERS = {
    "llava": build_llava,
    "llava_next": build_llava_next,
    "llava_onevision": build_llava_onevision,
    "idefics3": build_idefics3,
    "smolvlm": build_smolvlm,
    "paligemma": build_paligemma,
    "gemma3": build_gemma3,
    "qwen2_vl": build_qwen2_vl,
    "qwen2_5_vl": build_qwen2_5_vl,
    "internvl": build_internvl,
    "mistral3": build_mistral3,
    "aya_vision": build_aya_vision,
    "florence2": build_florence2,
}

# What this module registers with AutoProcessor: the stock processors of these families need torchvision.
for _config, _processor in [
    (LlavaOnevisionConfig, ImageOnlyLlavaOnevisionProcessor),
    (Qwen2VLConfig, ImageOnlyQwen2VLProcessor),
    (Qwen2_5_VLConfig, ImageOnlyQwen2_5_VLProcessor),
    (InternVLConfig, ImageOnlyInternVLProcessor),
    (Mistral3Config, StandInPixtralProcessor),
]:
    AutoProcessor.register(_config, _processor, exist_ok=True)
