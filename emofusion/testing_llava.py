"""A tiny random LLaVA, built offline, for tests, benchmarks and the offline demo.

It has the real LLaVA-1.5 architecture and processing path (CLIP vision tower, projector, Llama
language model, `LlavaProcessor` with a chat template that expands `<image>` into image tokens),
with a few thousand random weights and a word-level tokenizer whose vocabulary covers the
default prompt and every label name. Nothing is downloaded. Saved to a folder it loads back with
`AutoProcessor.from_pretrained(folder)` and `AutoModelForImageTextToText.from_pretrained(folder)`,
so it stands in for `llava-hf/llava-1.5-13b-hf` anywhere a model id or path is accepted.

    >>> from emofusion.testing_llava import tiny_llava
    >>> model, processor = tiny_llava("tiny-llava")  # also saved to ./tiny-llava
"""

from __future__ import annotations

import os
import re

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    CLIPImageProcessorPil,
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedTokenizerFast,
)

from modeling_emofusion.describing import DEFAULT_PROMPT_TEMPLATE, NO_BOX_PROMPT_TEMPLATE
from modeling_emofusion.labels import CAER_S_CLASSES, EMOTIC_CATEGORIES


# llava-hf/llava-1.5-*-hf's template, simplified to what a single-turn image + text prompt needs:
# "USER: <image>\n<text> ASSISTANT:".
LLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] != 'system' %}{{ message['role'].upper() + ': ' }}{% endif %}"
    "{% if message['content'] is string %}{{ message['content'] + ' ' }}{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] + ' ' }}{% endfor %}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "[UNK]", "<image>")

# Words a random model may produce besides the prompt's, so that decoded text looks like text.
FILLER_WORDS = (
    "the person seems to feel a mix of and is with others because scene shows smiling looking "
    "at people crowd room outside sitting standing holding talking happy calm tense it"
).split()


def tiny_vocabulary(extra_words: list[str] | None = None) -> list[str]:
    """Special tokens, then every word of the chat template, the prompts, the label names and fillers."""
    text = " ".join(
        [DEFAULT_PROMPT_TEMPLATE, NO_BOX_PROMPT_TEMPLATE, "USER : ASSISTANT : , . /"]
        + list(EMOTIC_CATEGORIES)
        + list(CAER_S_CLASSES)
        + FILLER_WORDS
        + list(extra_words or [])
    )
    words = []
    for word in re.findall(r"\w+|[^\w\s]+", text):
        if word not in words and word not in SPECIAL_TOKENS:
            words.append(word)
    return list(SPECIAL_TOKENS) + words


def tiny_llava_processor(image_size: int = 32, patch_size: int = 8, extra_words: list[str] | None = None):
    """A `LlavaProcessor` with an offline word-level tokenizer and a `CLIPImageProcessor` of `image_size`."""
    vocab = {word: index for index, word in enumerate(tiny_vocabulary(extra_words))}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="[UNK]",
        extra_special_tokens={"image_token": "<image>"},
        padding_side="left",
    )
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )
    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # CLIP's class token, dropped by the "default" strategy
        chat_template=LLAVA_CHAT_TEMPLATE,
    )


def tiny_llava_config(processor, image_size: int = 32, patch_size: int = 8, hidden_size: int = 32) -> LlavaConfig:
    """A `LlavaConfig` with a 2-layer CLIP vision tower and a 2-layer Llama matching `processor`'s tokenizer."""
    tokenizer = processor.tokenizer
    vision_config = CLIPVisionConfig(
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=image_size,
        patch_size=patch_size,
        projection_dim=hidden_size,
    )
    text_config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlavaConfig(
        vision_config=vision_config,
        text_config=text_config,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        image_seq_length=(image_size // patch_size) ** 2,
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
        projector_hidden_act="gelu",
    )


def tiny_llava(
    save_dir: str | os.PathLike | None = None,
    seed: int = 0,
    image_size: int = 32,
    patch_size: int = 8,
    hidden_size: int = 32,
    extra_words: list[str] | None = None,
) -> tuple[LlavaForConditionalGeneration, LlavaProcessor]:
    """Build a tiny random LLaVA-1.5 (model, processor), offline; save both to `save_dir` if given.

    Weights are drawn from `seed`, so two calls with the same arguments give the same model.
    Images are resized and cropped to `image_size` pixels, giving `(image_size // patch_size) ** 2`
    image tokens.

    >>> model, processor = tiny_llava()
    >>> processor.apply_chat_template(
    ...     [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Who ?"}]}],
    ...     add_generation_prompt=True, tokenize=False)
    'USER: <image>\\nWho ? ASSISTANT:'
    """
    processor = tiny_llava_processor(image_size, patch_size, extra_words)
    config = tiny_llava_config(processor, image_size, patch_size, hidden_size)
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    model.generation_config.pad_token_id = processor.tokenizer.pad_token_id
    model.generation_config.eos_token_id = processor.tokenizer.eos_token_id
    if save_dir is not None:
        model.save_pretrained(save_dir)
        processor.save_pretrained(save_dir)
    return model, processor
