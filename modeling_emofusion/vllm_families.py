"""What differs between VLLM families when they describe a subject, in one place.

Every describing backend (transformers' `generate`, vLLM's requests) asks the same thing of every
family: one marked image and one filled prompt in, the new text out, and a batch giving what one
subject at a time gives. The families reach that in different ways, looked up here by the model's
`config.model_type`:

- how the prompt is written: the processor's chat template, or the documented prompt format of a
  family whose checkpoints ship none (PaliGemma, Florence-2);
- no special token twice: a chat template that writes BOS, rendered to text and then tokenised by a
  tokenizer that adds BOS itself (Gemma, Llama 3, Mistral tokenizers), would start every prompt with
  two; the rendered BOS is dropped where the tokenizer adds one (`drop_doubled_bos`), so both backends
  tokenise the same ids;
- how images are passed: Gemma 3's processor reads a flat `images=[a, b, c]` as three images of one
  prompt, so it is given one list a prompt;
- where the answer starts: a decoder-only model's `generate` returns prompt + answer, an
  encoder-decoder's (Florence-2) only the decoder's tokens, after `decoder_start_token_id`;
- the padding side that keeps a batch equal to one subject at a time: left for decoder-only models
  (every row's answer starts at the same position), right for an encoder-decoder whose encoder has
  learned absolute positions (left padding would shift them);
- the end of the answer: the generation config's eos ids (Gemma 3 stops on `<end_of_turn>` too);
- families this transformers cannot run (Llama 4 on 5.24), refused with the reason.

This file is saved beside checkpoints (the pipeline's remote code), so it imports only torch,
transformers, PIL, numpy and the standard library.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import transformers


IMAGE_PLACEHOLDER = "{image}"
PROMPT_PLACEHOLDER = "{prompt}"


@dataclass(frozen=True)
class VLLMFamily:
    """How one family of image-text-to-text models is prompted, batched and decoded.

    Attributes:
        name: the family as users know it.
        model_types: the `config.model_type` values it covers.
        prompt_format: for a family whose checkpoints ship no chat template, its documented prompt format
            for the transformers backend: `{image}` is the processor's image token, `{prompt}` the filled prompt.
        vllm_prompt_format: the same for vLLM's requests, where vLLM's own processing differs.
        nested_images: the processor wants one list of images a prompt (`[[a], [b]]`), not a flat list.
        encoder_decoder: `generate` returns the decoder's tokens only, starting with `decoder_start_token_id`.
        torchvision_processor: its stock processor needs torchvision (as of transformers 5.24).
    """

    name: str
    model_types: tuple[str, ...]
    prompt_format: str | None = None
    vllm_prompt_format: str | None = None
    nested_images: bool = False
    encoder_decoder: bool = False
    torchvision_processor: bool = False

    @property
    def padding_side(self) -> str:
        """Left for decoder-only models (new tokens of every row start at the same position); right for an
        encoder-decoder, whose encoder's learned absolute positions left padding would shift."""
        return "right" if self.encoder_decoder else "left"


FAMILIES = (
    VLLMFamily("LLaVA-1.5", ("llava",)),
    VLLMFamily("LLaVA-NeXT", ("llava_next",)),
    VLLMFamily("LLaVA-OneVision", ("llava_onevision",), torchvision_processor=True),
    VLLMFamily("Idefics3", ("idefics3",)),
    VLLMFamily("SmolVLM", ("smolvlm",), torchvision_processor=True),
    # google/paligemma2-*-mix ship no chat template: the processor writes the image tokens, <bos> and the final
    # "\n" around the text and asks for `<image>` at its start; vLLM's PaliGemma processing inserts the image
    # tokens itself and takes the bare text.
    VLLMFamily("PaliGemma", ("paligemma",), prompt_format="{image}{prompt}", vllm_prompt_format="{prompt}"),
    VLLMFamily("Gemma 3", ("gemma3",), nested_images=True),
    VLLMFamily("Qwen2-VL", ("qwen2_vl",), torchvision_processor=True),
    VLLMFamily("Qwen2.5-VL", ("qwen2_5_vl",), torchvision_processor=True),
    VLLMFamily("InternVL", ("internvl",), torchvision_processor=True),
    VLLMFamily("Mistral 3", ("mistral3",), torchvision_processor=True),
    VLLMFamily("Aya Vision", ("aya_vision",)),
    # Florence-2 checkpoints ship no chat template: the processor writes `<image>`, bos and eos around the text.
    VLLMFamily(
        "Florence-2", ("florence2",), prompt_format="{prompt}", vllm_prompt_format="{prompt}", encoder_decoder=True
    ),
    VLLMFamily("Llama 4", ("llama4",), torchvision_processor=True),
)

# Any other image-text-to-text model: its chat template, a flat image list, decoder-only.
DEFAULT_FAMILY = VLLMFamily("image-text-to-text", ())

_BY_MODEL_TYPE = {model_type: family for family in FAMILIES for model_type in family.model_types}

# model_type -> (transformers versions as (major, minor) where its generation is known to fail, what fails).
UNRUNNABLE_WITH_TRANSFORMERS = {
    "llama4": (
        {(5, 24)},
        "Llama4ForConditionalGeneration.forward raises AttributeError ('MoeCausalLMOutputWithPast' object has no "
        "attribute 'image_outputs') on every call, so generate cannot run",
    ),
}


def family_of(model_type: str | None) -> VLLMFamily:
    """The family of a `config.model_type` (`DEFAULT_FAMILY` for one not listed).

    >>> family_of("gemma3").nested_images, family_of("florence2").padding_side, family_of("llava").padding_side
    (True, 'right', 'left')
    """
    return _BY_MODEL_TYPE.get(model_type, DEFAULT_FAMILY)


def transformers_version() -> tuple[int, int]:
    major, minor = transformers.__version__.split(".")[:2]
    return int(major), int("".join(c for c in minor if c.isdigit()) or 0)


def check_runnable_with_transformers(model_type: str | None, model_id: str | None = None) -> None:
    """Refuse, naming the transformers version, a family whose generation this transformers cannot run."""
    if model_type not in UNRUNNABLE_WITH_TRANSFORMERS:
        return
    versions, reason = UNRUNNABLE_WITH_TRANSFORMERS[model_type]
    if transformers_version() in versions:
        name = family_of(model_type).name
        raise ValueError(
            f"{model_id or 'The model'} is a {name} model (model_type {model_type!r}), which the transformers "
            f"backend cannot run with transformers {transformers.__version__}: {reason}. Use another transformers "
            "version, or --backend vllm (vLLM has its own implementation)."
        )


def tokenizer_adds_bos(tokenizer) -> bool:
    """Whether tokenising a text puts the tokenizer's BOS in front of it (`add_special_tokens=True`)."""
    bos = tokenizer.bos_token_id
    if bos is None:
        return False
    with_specials = tokenizer("a")["input_ids"]
    without = tokenizer("a", add_special_tokens=False)["input_ids"]
    return len(with_specials) > len(without) and with_specials[0] == bos


def drop_doubled_bos(texts: Sequence[str], tokenizer) -> list[str]:
    """`texts` without a leading BOS written by the chat template where the tokenizer adds its own on tokenising.

    Both backends tokenise the text with special tokens added (the transformers processor, and vLLM on a text
    prompt), so the result starts with exactly one BOS either way.
    """
    bos = tokenizer.bos_token
    if bos is None or not any(text.startswith(bos) for text in texts) or not tokenizer_adds_bos(tokenizer):
        return list(texts)
    return [text[len(bos) :] if text.startswith(bos) else text for text in texts]


def chat_template_of(processor) -> str | None:
    """The processor's chat template (its tokenizer's where the processor lost it on loading)."""
    template = getattr(processor, "chat_template", None)
    if template is None:
        template = getattr(getattr(processor, "tokenizer", None), "chat_template", None)
    return template


def render_prompts(processor, family: VLLMFamily, prompts: Sequence[str], for_vllm: bool = False) -> list[str]:
    """Each filled prompt with one image, as the family's model reads it, ending where its answer starts.

    A family with a documented prompt format uses it (the checkpoints ship no chat template); any other uses
    the processor's chat template. A BOS the template writes is dropped where the tokenizer adds one.
    """
    prompt_format = family.vllm_prompt_format if for_vllm and family.vllm_prompt_format else family.prompt_format
    tokenizer = getattr(processor, "tokenizer", processor)
    if prompt_format is not None:
        image = getattr(processor, "image_token", None) or ""
        texts = [prompt_format.replace(IMAGE_PLACEHOLDER, image).replace(PROMPT_PLACEHOLDER, p) for p in prompts]
    else:
        template = chat_template_of(processor)
        if template is None:
            raise ValueError(
                "The processor has no chat template and its family "
                f"({family.name}) no documented prompt format: give a processor saved with one "
                "(e.g. llava-hf/llava-1.5-7b-hf) or set processor.chat_template."
            )
        conversations = [
            [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}] for prompt in prompts
        ]
        texts = processor.apply_chat_template(
            conversations, add_generation_prompt=True, tokenize=False, chat_template=template
        )
    return drop_doubled_bos(texts, tokenizer)


def images_argument(family: VLLMFamily, images: Sequence) -> list:
    """The `images=` a family's processor reads as one image a prompt."""
    return [[image] for image in images] if family.nested_images else list(images)


def answer_start(family: VLLMFamily, input_length: int, is_encoder_decoder: bool = False) -> int:
    """Where the answer starts in a row `generate` returned: after the prompt for a decoder-only model, after
    `decoder_start_token_id` for an encoder-decoder (which returns decoder tokens only)."""
    return 1 if family.encoder_decoder or is_encoder_decoder else input_length


def eos_ids_of(generation_config, tokenizer) -> list[int]:
    """The end-of-answer ids: the generation config's (one id or a list), else the tokenizer's eos."""
    eos = getattr(generation_config, "eos_token_id", None) if generation_config is not None else None
    if eos is None:
        eos = tokenizer.eos_token_id
    if eos is None:
        return []
    return list(eos) if isinstance(eos, (list, tuple)) else [eos]


def check_is_processor(processor, model_id: str | None = None) -> None:
    """`AutoProcessor.from_pretrained` silently returns the bare tokenizer when the processor class the folder
    names cannot be built (e.g. it needs torchvision, or it is registered only in another process)."""
    if getattr(processor, "image_processor", None) is None:
        needing = ", ".join(family.name for family in FAMILIES if family.torchvision_processor)
        raise ValueError(
            f"AutoProcessor loaded only a tokenizer ({type(processor).__name__}) for {model_id or 'the model'}, "
            "not an image-text processor: the processor class named in its processor_config.json could not be "
            f"built here. The processors of {needing} need torchvision (`pip install torchvision`)."
        )
