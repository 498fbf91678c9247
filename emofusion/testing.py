"""Tiny, offline building blocks: random-weight models from configs and a word-level tokenizer.

They make the test suite and `emofusion demo` run with no download and no GPU. Nothing here is
a claim about accuracy: the backbones are random and small.

>>> from emofusion.testing import tiny_classifier
>>> model, processor = tiny_classifier(task="caer_s")
>>> model.config.problem_type, model.config.num_labels
('single_label_classification', 7)
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from modeling_emofusion.labels import CAER_S_CLASSES, EMOTIC_CATEGORIES, id2label_for, task_info


SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")

# A small general vocabulary so that typical descriptions tokenise to words, not [UNK]s.
BASIC_WORDS = """
a an the and or but of in on at to for with without from by as is are was were be been being it its this that
these those there here he she they his her their them person people man woman child boy girl who which what
image picture scene context red box appears appear seems seem looks look feel feels feeling felt emotion emotions
mix more most less very quite somewhat slightly likely possibly probably maybe based given following list
explain detail suitable describing how inside around near next other others while during because so not no
happy sad angry tired calm excited surprised afraid scared bored relaxed worried nervous smiling crying laughing
sitting standing walking running playing working talking holding looking face body hands eyes mouth smile
group crowd friends family party street room table outdoors indoors sport game water food music
""".split()


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+|[^\sa-z0-9]", text.lower())


def build_word_tokenizer(words: Iterable[str] = (), model_max_length: int = 512):
    """A BERT-shaped word-level tokenizer ([CLS] text [SEP], lowercase, punctuation split), offline.

    The vocabulary is the special tokens, a small English basis, the emotion label names and `words`
    (any text: it is split into words).
    """
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab_words: list[str] = []
    for chunk in (BASIC_WORDS, *(_words(n) for n in EMOTIC_CATEGORIES + CAER_S_CLASSES), *(_words(w) for w in words)):
        vocab_words.extend(chunk)
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS)}
    for word in vocab_words:
        vocab.setdefault(word, len(vocab))
    tokenizer = Tokenizer(WordLevel(vocab=vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=model_max_length,
    )


def tiny_image_processor(image_size: int = 32):
    """A CLIP image processor that resizes the whole picture to a square (no centre crop: the context matters)."""
    try:  # the PIL implementation, without the fallback warning where torchvision is absent
        from transformers import CLIPImageProcessorPil as CLIPImageProcessor
    except ImportError:
        from transformers import CLIPImageProcessor

    return CLIPImageProcessor(size={"height": image_size, "width": image_size}, do_center_crop=False, crop_size=None)


def tiny_processor(words: Iterable[str] = (), image_size: int = 32, marking: str = "box", max_text_length: int = 64):
    """An [`EmoFusionProcessor`] with a tiny image processor and a word-level tokenizer."""
    from modeling_emofusion import EmoFusionProcessor

    return EmoFusionProcessor(
        tiny_image_processor(image_size), build_word_tokenizer(words), marking=marking, max_text_length=max_text_length
    )


def tiny_emofusion_config(task: str = "emotic", vocab_size: int = 1000, image_size: int = 32, **overrides):
    """An [`EmoFusionConfig`] of a few hundred thousand parameters for `task`'s labels.

    `overrides` are config fields (e.g. `modality="vision"`, `num_frames=4`, `num_vad=3`).
    """
    from modeling_emofusion import EmoFusionConfig

    info = task_info(task)
    kwargs = {
        "vision_config": {
            "model_type": "clip_vision_model",
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "image_size": image_size,
            "patch_size": 8,
            "projection_dim": 32,
        },
        "qformer_config": {
            "vocab_size": vocab_size,
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "intermediate_size": 64,
            "max_position_embeddings": 128,
            "encoder_hidden_size": 32,
            "cross_attention_frequency": 1,
            "hidden_dropout_prob": 0.0,
            "attention_probs_dropout_prob": 0.0,
        },
        "num_query_tokens": 4,
        "max_text_length": 64,
        "id2label": id2label_for(task),
        "problem_type": info["problem_type"],
        "num_vad": 3 if info["has_vad"] else 0,
    }
    kwargs.update(overrides)
    return EmoFusionConfig(**kwargs)


def tiny_classifier(task: str = "emotic", words: Iterable[str] = (), image_size: int = 32, seed: int = 0, **overrides):
    """A random tiny [`EmoFusionForEmotionClassification`] and its matching processor."""
    import torch

    from modeling_emofusion import EmoFusionForEmotionClassification

    processor = tiny_processor(words, image_size=image_size, marking=overrides.get("marking", "box"))
    config = tiny_emofusion_config(task, vocab_size=len(processor.tokenizer), image_size=image_size, **overrides)
    torch.manual_seed(seed)
    model = EmoFusionForEmotionClassification(config)
    return model.eval(), processor


def tiny_llava(save_dir=None, **kwargs):
    """A tiny random LLaVA-1.5 (model, processor), offline; saved to `save_dir` if given (see `testing_llava`).

    It stands in for the describing VLLM: `AutoProcessor` / `AutoModelForImageTextToText.from_pretrained(save_dir)`
    and `TransformersDescriber.from_pretrained(save_dir)` load it.
    """
    from .testing_llava import tiny_llava as build

    return build(save_dir, **kwargs)
