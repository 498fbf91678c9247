"""Stage 1 of the method: a VLLM describes how the marked subject seems to feel.

The paper (arXiv 2404.07078) draws the subject's box in red on the full image and asks LLaVA-1.5
which of the dataset's emotions fit the person in the red box. This module holds that prompt and
`TransformersDescriber`, which runs any transformers image-text-to-text model with a chat
template the same way for a whole dataset (caption.py) and for one new photo (the pipeline):
mark the subject with `mark_subject` (the function the processor uses), fill the prompt, apply
the chat template (or the family's documented prompt format), and generate greedily in batches. What
differs between VLLM families (image nesting, padding side, where the answer starts, eos ids, a
doubled BOS) is in `vllm_families.py`.

    >>> describer = TransformersDescriber.from_pretrained("llava-hf/llava-1.5-7b-hf", max_new_tokens=256)
    >>> [d.text for d in describer.describe([image], [[40, 30, 200, 310]], class_names=EMOTIC_CATEGORIES)]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from PIL import Image
from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor
from transformers.utils import logging

from .marking import mark_subject, validate_marking
from .vllm_families import (
    answer_start,
    chat_template_of,
    check_is_processor,
    check_runnable_with_transformers,
    eos_ids_of,
    family_of,
    images_argument,
    render_prompts,
)


logger = logging.get_logger(__name__)

CLASS_NAMES_PLACEHOLDER = "<class_names>"

# The prompt of the paper's method figure, verbatim; `<class_names>` becomes the comma-separated labels.
DEFAULT_PROMPT_TEMPLATE = (
    "Given the following list of emotions: <class_names> explain in detail which emotions are more suitable "
    "for describing how the person in the red box feels based on the image context"
)
# The paper gives no prompt for images without a box (CAER-S): the same question about "the person in the image".
NO_BOX_PROMPT_TEMPLATE = (
    "Given the following list of emotions: <class_names> explain in detail which emotions are more suitable "
    "for describing how the person in the image feels based on the image context"
)

# Greedy decoding, as recorded with every description set; the paper does not state its settings.
DEFAULT_GENERATION = {"do_sample": False, "num_beams": 1, "max_new_tokens": 384}


def fill_prompt(template: str, class_names: Sequence[str]) -> str:
    """Replace `<class_names>` in `template` with the label names, comma separated.

    >>> fill_prompt("Emotions: <class_names> explain", ["Anger", "Fear"])
    'Emotions: Anger, Fear explain'
    """
    if isinstance(class_names, str):
        raise TypeError(f"class_names must be a list of label names, got the string {class_names!r}.")
    return template.replace(CLASS_NAMES_PLACEHOLDER, ", ".join(str(name) for name in class_names))


def prompt_for(template: str | None, class_names: Sequence[str] | None, boxed: bool) -> str:
    """The filled prompt for one subject.

    `boxed` says whether a box is drawn on the image shown to the model (a box is given and the
    marking mode is "box"). The default template speaks of "the red box"; where none is drawn it
    is swapped for `NO_BOX_PROMPT_TEMPLATE`. Any other template is used as given.

    >>> prompt_for(None, ["Anger", "Fear"], boxed=False)[-56:]
    'the person in the image feels based on the image context'
    """
    template = DEFAULT_PROMPT_TEMPLATE if template is None else template
    if template == DEFAULT_PROMPT_TEMPLATE and not boxed:
        template = NO_BOX_PROMPT_TEMPLATE
    if CLASS_NAMES_PLACEHOLDER in template:
        if class_names is None:
            raise ValueError(f"The prompt template holds {CLASS_NAMES_PLACEHOLDER} but no class_names were given.")
        return fill_prompt(template, class_names)
    return template


@dataclass
class Description:
    """One generated description.

    Attributes:
        text: the new text, special tokens removed, stripped.
        num_tokens: tokens generated, the end-of-sequence token and padding excluded.
        finished: False when generation stopped at `max_new_tokens` before an end-of-sequence token
            (the text is truncated).
        prompt: the filled prompt the model was given (before the chat template).
    """

    text: str
    num_tokens: int
    finished: bool
    prompt: str


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """`dtype` as a torch dtype; by default bfloat16 on a GPU that has it, float16 on other GPUs, float32 on CPU."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "auto"):
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    names = {"bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}
    names.update({"float32": torch.float32, "fp32": torch.float32})
    if dtype not in names:
        raise ValueError(f"Unknown dtype {dtype!r}: expected one of {sorted(names)} or 'auto'.")
    return names[dtype]


def default_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


class Describer:
    """What every describing backend shares: subject marking, prompt filling and the chat template.

    `describe` marks the subjects and fills the prompts; subclasses implement
    `generate(marked_images, prompts) -> list[Description]`. `model_type` (the model config's) picks the
    family conventions of `vllm_families.py`.
    """

    def __init__(
        self,
        processor,
        marking: str = "box",
        model_id: str | None = None,
        revision: str | None = None,
        model_type: str | None = None,
        **generation_kwargs,
    ):
        self.family = family_of(model_type)
        if self.family.prompt_format is None and chat_template_of(processor) is None:
            raise ValueError(
                f"The processor of {model_id or 'the model'} has no chat template: give a processor saved with one "
                "(e.g. llava-hf/llava-1.5-7b-hf) or set processor.chat_template."
            )
        self.processor = processor
        self.model_type = model_type
        self.marking = validate_marking(marking)
        self.model_id = model_id
        self.revision = revision
        self.generation_kwargs = {**DEFAULT_GENERATION, **generation_kwargs}

    @property
    def generation_settings(self) -> dict:
        """The generation settings to record with the descriptions."""
        return dict(self.generation_kwargs)

    def mark(self, image: Image.Image, bbox: Sequence[float] | None) -> Image.Image:
        """The image the model is shown for a subject: `mark_subject(image, bbox, self.marking)`."""
        return mark_subject(image, bbox, mode=self.marking)

    def is_boxed(self, bbox: Sequence[float] | None) -> bool:
        """Whether a red box is drawn for this subject (decides the default prompt's wording)."""
        return bbox is not None and self.marking == "box"

    def prompts(
        self,
        bboxes: Sequence[Sequence[float] | None],
        prompt: str | Sequence[str] | None = None,
        class_names: Sequence[str] | None = None,
    ) -> list[str]:
        """Filled prompts, one a subject (`prompt_for`); `prompt` is a template or filled text, or a list of them."""
        prompts = [prompt] * len(bboxes) if prompt is None or isinstance(prompt, str) else list(prompt)
        if len(prompts) != len(bboxes):
            raise ValueError(f"Got {len(prompts)} prompts for {len(bboxes)} images.")
        return [prompt_for(p, class_names, self.is_boxed(b)) for p, b in zip(prompts, bboxes)]

    def chat_texts(self, prompts: Sequence[str]) -> list[str]:
        """Each prompt with one image, in the model's chat format (or its family's documented prompt format),
        ending where the answer starts; no BOS the tokenizer would add a second time."""
        return render_prompts(self.processor, self.family, prompts)

    def prepare(
        self,
        images: Sequence[Image.Image],
        bboxes: Sequence[Sequence[float] | None] | None = None,
        prompt: str | Sequence[str] | None = None,
        class_names: Sequence[str] | None = None,
    ) -> tuple[list[Image.Image], list[str]]:
        """The marked images and filled prompts for a batch of subjects."""
        images = list(images)
        bboxes = [None] * len(images) if bboxes is None else list(bboxes)
        if len(bboxes) != len(images):
            raise ValueError(f"Got {len(bboxes)} boxes for {len(images)} images.")
        prompts = self.prompts(bboxes, prompt, class_names)
        return [self.mark(image, bbox) for image, bbox in zip(images, bboxes)], prompts

    def describe(
        self,
        images: Sequence[Image.Image],
        bboxes: Sequence[Sequence[float] | None] | None = None,
        prompt: str | Sequence[str] | None = None,
        class_names: Sequence[str] | None = None,
    ) -> list[Description]:
        """Describe the subject of each image.

        Args:
            images: PIL images.
            bboxes: one `[x1, y1, x2, y2]` pixel box or None per image; None marks nothing.
            prompt: a template (`DEFAULT_PROMPT_TEMPLATE` when None) or filled text, or one a subject.
            class_names: fills `<class_names>` in the template (e.g. `EMOTIC_CATEGORIES`).
        """
        marked, prompts = self.prepare(images, bboxes, prompt, class_names)
        if not marked:
            return []
        return self.generate(marked, prompts)

    def generate(self, marked_images: list[Image.Image], prompts: list[str]) -> list[Description]:
        """One `Description` per marked image and filled prompt: what each backend implements."""
        raise NotImplementedError


def eos_id_set(eos: int | Sequence[int] | None) -> set[int]:
    """The end-of-sequence ids as a set, from one id or a list of them (as generation configs hold them)."""
    return set(eos if isinstance(eos, (list, tuple)) else [eos])


class TransformersDescriber(Describer):
    """Describe marked subjects with a transformers image-text-to-text model and its chat template.

    Args:
        model: an `AutoModelForImageTextToText` model (LLaVA-1.5 by default in caption.py).
        processor: its `AutoProcessor`; it must have a chat template.
        marking: how the subject is shown, one of `MARKING_MODES` (`"box"` draws it in red).
        model_id, revision: what to record with the descriptions.
        **generation_kwargs: passed to `model.generate`; greedy (`DEFAULT_GENERATION`) unless overridden.

    Batches are padded on the family's side (left for decoder-only models, so that every row's new
    tokens start at the same position; right for an encoder-decoder such as Florence-2); with greedy
    decoding a batch gives the same text as one image at a time (up to the kernels' numerics).
    A family this transformers cannot run (Llama 4 on 5.24) is refused.

    >>> describer = TransformersDescriber(model, processor, max_new_tokens=64)
    >>> describer.describe([image], [[10, 20, 110, 220]], class_names=["Anger", "Fear"])[0].text
    """

    def __init__(
        self,
        model,
        processor,
        marking: str = "box",
        model_id: str | None = None,
        revision: str | None = None,
        **generation_kwargs,
    ):
        model_id = model_id if model_id is not None else getattr(model, "name_or_path", None)
        model_type = getattr(model.config, "model_type", None)
        check_runnable_with_transformers(model_type, model_id)
        super().__init__(
            processor, marking=marking, model_id=model_id, revision=revision, model_type=model_type,
            **generation_kwargs,
        )  # fmt: skip
        self.model = model.eval()
        tokenizer = processor.tokenizer
        if tokenizer.pad_token is None:
            # Llama-style tokenizers may have no pad token; any id works under the attention mask.
            logger.info(f"{self.model_id} has no pad token: padding with {tokenizer.eos_token!r}.")
            tokenizer.pad_token = tokenizer.eos_token
        eos = self.generation_kwargs.get("eos_token_id")
        self._eos_ids = eos_id_set(eos) if eos is not None else set(eos_ids_of(model.generation_config, tokenizer))
        self._is_encoder_decoder = bool(getattr(model.config, "is_encoder_decoder", False))

    @classmethod
    def from_pretrained(
        cls,
        model_id_or_path: str,
        revision: str | None = None,
        dtype: str | torch.dtype | None = None,
        device: str | torch.device | None = None,
        marking: str = "box",
        **generation_kwargs,
    ) -> TransformersDescriber:
        """Load a model and its processor from the Hub or a folder.

        `dtype` defaults to bfloat16 on GPUs that support it (float16 otherwise) and float32 on CPU;
        `device` to the first GPU, else CPU; `device="auto"` spreads a large model over all GPUs.

        >>> describer = TransformersDescriber.from_pretrained("llava-hf/llava-1.5-13b-hf", max_new_tokens=384)
        """
        device_map = None
        if device == "auto":
            device_map, device = "auto", default_device()
        device = torch.device(device) if device is not None else default_device()
        torch_dtype = resolve_dtype(dtype, device)
        # Refused before any weights load: a family this transformers cannot run.
        model_type = getattr(AutoConfig.from_pretrained(model_id_or_path, revision=revision), "model_type", None)
        check_runnable_with_transformers(model_type, model_id_or_path)
        processor = AutoProcessor.from_pretrained(model_id_or_path, revision=revision)
        check_is_processor(processor, model_id_or_path)
        model = AutoModelForImageTextToText.from_pretrained(
            model_id_or_path, revision=revision, dtype=torch_dtype, device_map=device_map
        )
        if device_map is None:
            model = model.to(device)
        if revision is None:
            # Loading from the Hub records the commit it resolved to; a local folder has none.
            revision = getattr(model.config, "_commit_hash", None)
        return cls(
            model, processor, marking=marking, model_id=model_id_or_path, revision=revision, **generation_kwargs
        )

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.dtype

    def build_inputs(self, marked_images: Sequence[Image.Image], prompts: Sequence[str]):
        """Chat-formatted model inputs (a `BatchFeature` on the model's device) for marked images, padded on
        the family's side."""
        inputs = self.processor(
            images=images_argument(self.family, marked_images),
            text=self.chat_texts(prompts),
            padding=True,
            padding_side=self.family.padding_side,
            return_tensors="pt",
        )
        return inputs.to(self.device, dtype=self.dtype)

    @torch.inference_mode()
    def generate(self, marked_images: list[Image.Image], prompts: list[str]) -> list[Description]:
        """Generate for all the marked images in one batch."""
        inputs = self.build_inputs(marked_images, prompts)
        kwargs = {"pad_token_id": self.processor.tokenizer.pad_token_id, **self.generation_kwargs}
        output = self.model.generate(**inputs, **kwargs)
        start = answer_start(self.family, inputs["input_ids"].shape[1], self._is_encoder_decoder)
        new_tokens = output[:, start:].tolist()
        return [self._decode(tokens, prompt) for tokens, prompt in zip(new_tokens, prompts)]

    def _decode(self, tokens: list[int], prompt: str) -> Description:
        end = next((i for i, token in enumerate(tokens) if token in self._eos_ids), None)
        kept = tokens if end is None else tokens[:end]
        text = self.processor.tokenizer.decode(kept, skip_special_tokens=True).strip()
        return Description(text=text, num_tokens=len(kept), finished=end is not None, prompt=prompt)
