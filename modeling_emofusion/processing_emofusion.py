"""EmoFusion processor: marks the subject, prepares pixels (images or clips) and the description.

It pairs any transformers image processor with a tokenizer for the Q-Former (BERT's, or a
word-level one built offline), and applies the same subject marking as caption.py and the
pipeline (`marking.mark_subject`), so the classifier sees what the VLLM saw.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from transformers import BatchFeature, ProcessorMixin
from transformers.processing_utils import ProcessingKwargs, Unpack

from .marking import mark_subject, validate_marking


def _is_frame(value) -> bool:
    """One picture: a PIL image or an (H, W[, C]) array."""
    return isinstance(value, Image.Image) or (isinstance(value, (np.ndarray, torch.Tensor)) and value.ndim in (2, 3))


def is_box(value) -> bool:
    """One box: a non-empty list, tuple or 1-D array of numbers (not bools); anything else is a list of
    boxes or None. The length is checked where the box is used."""
    if isinstance(value, (np.ndarray, torch.Tensor)):
        return value.ndim == 1
    return (
        isinstance(value, Sequence)
        and len(value) > 0
        and all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in value)
    )


def to_pil(image, where: str = "image") -> Image.Image:
    """A PIL RGB image from PIL or an (H, W[, C]) uint8/float array; an empty image is a ValueError."""
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    if isinstance(image, np.ndarray):
        if image.ndim not in (2, 3):
            raise ValueError(f"{where}: expected an (height, width[, channels]) array, got shape {image.shape}.")
        if image.shape[0] == 0 or image.shape[1] == 0:
            raise ValueError(f"{where}: the image is empty (array of shape {image.shape}).")
        if image.dtype != np.uint8:
            scale = 255.0 if image.max() <= 1.0 else 1.0
            image = np.clip(image * scale, 0, 255).astype(np.uint8)
        image = Image.fromarray(image)
    if not isinstance(image, Image.Image):
        raise TypeError(f"{where}: expected a PIL image or a numpy array, got {type(image).__name__}.")
    if image.width == 0 or image.height == 0:
        raise ValueError(f"{where}: the image is empty ({image.width}x{image.height}).")
    return image.convert("RGB") if image.mode != "RGB" else image


class EmoFusionProcessorKwargs(ProcessingKwargs, total=False):
    """The keyword arguments [`EmoFusionProcessor`] takes, on transformers' processor conventions: `text_kwargs` go
    to the tokenizer, `images_kwargs` to the image processor (for clips too: their frames are pictures), and
    `common_kwargs` (e.g. `return_tensors`) to both. A flat keyword (`padding=...`, `do_rescale=...`) goes to the
    part that takes it; one given both flat and in its part's dictionary is an error."""


class EmoFusionProcessor(ProcessorMixin):
    r"""
    Image processor + tokenizer + subject marking for [`EmoFusionForEmotionClassification`].

    Args:
        image_processor: any transformers image processor (e.g. `CLIPImageProcessor`).
        tokenizer: the Q-Former's tokenizer.
        marking (`str`, defaults to `"box"`): `"box"` draws the subject box in red on the full
            image (the paper), `"crop"` crops to it, `"none"` leaves the image as it is.
        max_text_length (`int`, defaults to 256): descriptions are truncated to this many tokens (the default
            `max_length` of `text_kwargs`; a `max_length` given at call time wins).

    Defaults (lowest priority, as in every transformers processor): descriptions are padded to the longest in the
    batch and truncated, and tensors are PyTorch's (`return_tensors="pt"`); see [`EmoFusionProcessorKwargs`].

    Example:

    ```python
    >>> from PIL import Image
    >>> from emofusion.testing import tiny_processor
    >>> processor = tiny_processor()
    >>> batch = processor(images=[Image.new("RGB", (64, 48))] * 2, bbox=[[4, 4, 40, 40], None],
    ...                   text=["she seems happy", "he looks tired and sad"])
    >>> batch["pixel_values"].shape, batch["input_ids"].shape[0]
    (torch.Size([2, 3, 32, 32]), 2)
    ```
    """

    valid_processor_kwargs = EmoFusionProcessorKwargs
    images_kwargs = {"return_tensors": "pt"}

    def __init__(
        self, image_processor=None, tokenizer=None, marking: str = "box", max_text_length: int = 256, **kwargs
    ):
        self.marking = validate_marking(marking)
        self.max_text_length = int(max_text_length)
        super().__init__(image_processor, tokenizer, **kwargs)

    @property
    def text_kwargs(self) -> dict:
        """The tokenizer's defaults: pad to the longest description, truncate to `max_text_length`."""
        return {"padding": True, "truncation": True, "max_length": self.max_text_length, "return_tensors": "pt"}

    @classmethod
    def from_pretrained_parts(
        cls,
        vision_model_name_or_path: str,
        tokenizer_name_or_path: str,
        marking: str = "box",
        max_text_length: int = 256,
        revision: str | None = None,
        tokenizer_revision: str | None = None,
    ) -> EmoFusionProcessor:
        """The processor matching `EmoFusionForEmotionClassification.from_pretrained_parts`.

        The image processor is the vision checkpoint's, set to resize the WHOLE picture to the
        encoder's input size instead of centre-cropping it: a crop could cut the subject's box
        and the context out of the picture. The tokenizer is the Q-Former checkpoint's
        (InstructBLIP keeps it in its `qformer_tokenizer` subfolder).
        """
        from transformers import AutoImageProcessor, AutoTokenizer

        from .pretrained_parts import tokenizer_source

        image_processor = AutoImageProcessor.from_pretrained(vision_model_name_or_path, revision=revision)
        if getattr(image_processor, "do_center_crop", False):
            crop = image_processor.crop_size
            image_processor.size = {"height": crop["height"], "width": crop["width"]}
            image_processor.do_center_crop = False
        source, subfolder = tokenizer_source(tokenizer_name_or_path, tokenizer_revision)
        kwargs = {"subfolder": subfolder} if subfolder else {}
        tokenizer = AutoTokenizer.from_pretrained(source, revision=tokenizer_revision, **kwargs)
        return cls(image_processor, tokenizer, marking=marking, max_text_length=max_text_length)

    def save_pretrained(self, save_directory, *args, **kwargs):
        """`ProcessorMixin.save_pretrained`, without its side effect on this processor: saving code for
        `trust_remote_code` writes an `auto_map` into the saved config and also leaves it on the processor, which
        then no longer equals itself reloaded."""
        had_auto_map = "auto_map" in self.__dict__
        try:
            return super().save_pretrained(save_directory, *args, **kwargs)
        finally:
            if not had_auto_map:
                self.__dict__.pop("auto_map", None)

    @property
    def model_input_names(self) -> list[str]:
        return ["pixel_values", "input_ids", "attention_mask", "frame_mask"]

    def mark(self, image, bbox=None) -> Image.Image:
        """The subject-marked picture this processor gives the model (and caption.py gives the VLLM)."""
        return mark_subject(to_pil(image), bbox, mode=self.marking)

    def __call__(
        self,
        images=None,
        text: str | list[str] | None = None,
        videos=None,
        bbox=None,
        **kwargs: Unpack[EmoFusionProcessorKwargs],
    ) -> BatchFeature:
        """
        Prepare one sample or a batch.

        - `images`: one picture (PIL or array) or a list of them; or `videos`: one clip (a list of
          frames, or a (T, H, W, C) array) or a list of clips. Clips of different lengths are
          padded; `frame_mask` says which frames are real.
        - `bbox`: the subject box `[x1, y1, x2, y2]` in pixels: one for a single sample, or a list
          with one box (or None) per sample; for clips, a box per clip or a list of per-frame boxes.
          Boxes are clipped to the picture; a degenerate box or a wrong shape is a ValueError.
        - `text`: the description(s), truncated to `max_text_length` tokens; None for a vision-only model.
          Text alone (no pictures) is tokenised alone, for a text-only model.
        - `kwargs`: see [`EmoFusionProcessorKwargs`], e.g. `return_tensors="np"`, `padding="max_length"`,
          `images_kwargs={"do_rescale": False}`.
        """
        if images is not None and videos is not None:
            raise ValueError("Pass either `images` (pictures) or `videos` (clips as lists of frames), not both.")
        if images is None and videos is None and text is None:
            raise ValueError("Pass `images` or `videos` (and/or the description `text`): got nothing to process.")
        merged = self._merge_kwargs(tokenizer_init_kwargs=self.tokenizer.init_kwargs, **kwargs)
        images_kwargs, text_kwargs = merged["images_kwargs"], merged["text_kwargs"]
        return_tensors = text_kwargs.pop("return_tensors", None) or images_kwargs.get("return_tensors")
        # The image processor's output is assembled here (clips are stacked and padded): it hands back tensors.
        images_kwargs["return_tensors"] = "pt"

        data: dict[str, torch.Tensor] = {}
        num_samples = None
        if images is not None:
            samples = [images] if _is_frame(images) else list(images)
            boxes = self._per_sample_boxes(bbox, len(samples))
            marked = [
                self.mark(to_pil(img, f"images[{i}]"), self._checked(boxes[i], i)) for i, img in enumerate(samples)
            ]
            data["pixel_values"] = self._pixels(marked, images_kwargs)
            num_samples = len(samples)
        elif videos is not None:
            clips = [videos] if self._is_clip(videos) else list(videos)
            boxes = self._per_sample_boxes(bbox, len(clips))
            data.update(self._clip_pixels(clips, boxes, images_kwargs))
            num_samples = len(clips)
        if text is not None:
            texts = [text] if isinstance(text, str) else list(text)
            if num_samples is not None and len(texts) != num_samples:
                raise ValueError(f"Got {len(texts)} descriptions for {num_samples} samples: pass one per sample.")
            for i, t in enumerate(texts):
                if not isinstance(t, str):
                    raise TypeError(f"text[{i}]: expected a string (the description), got {type(t).__name__}.")
            encoded = self.tokenizer(texts, **text_kwargs)
            data["input_ids"] = encoded["input_ids"]
            data["attention_mask"] = encoded["attention_mask"]
        return BatchFeature(data=data, tensor_type=return_tensors)

    # -- helpers -------------------------------------------------------------------------------

    @staticmethod
    def _is_clip(videos) -> bool:
        if isinstance(videos, (np.ndarray, torch.Tensor)):
            return videos.ndim == 4
        return isinstance(videos, Sequence) and len(videos) > 0 and _is_frame(videos[0])

    @staticmethod
    def _checked(box, index: int):
        if box is None:
            return None
        if not is_box(box) or len(box) != 4:
            raise ValueError(f"bbox of sample {index}: expected [x1, y1, x2, y2] (four numbers) or None, got {box!r}.")
        return [float(v) for v in box]

    @staticmethod
    def _per_sample_boxes(bbox, num_samples: int) -> list:
        if bbox is None:
            return [None] * num_samples
        if isinstance(bbox, (np.ndarray, torch.Tensor)) and bbox.ndim >= 2:
            bbox = bbox.tolist()
        if is_box(bbox):
            if num_samples != 1:
                raise ValueError(
                    f"Got one bbox for {num_samples} samples: pass a list with one box (or None) per sample."
                )
            return [list(bbox)]
        bbox = list(bbox)
        if len(bbox) != num_samples:
            raise ValueError(f"Got {len(bbox)} bboxes for {num_samples} samples: pass one box (or None) per sample.")
        return bbox

    def _pixels(self, pictures: list[Image.Image], images_kwargs: dict) -> torch.Tensor:
        return self.image_processor(images=pictures, **images_kwargs)["pixel_values"]

    def _clip_pixels(self, clips: list, boxes: list, images_kwargs: dict) -> dict[str, torch.Tensor]:
        per_clip = []
        for c, (clip, box) in enumerate(zip(clips, boxes)):
            frames = [to_pil(frame, f"videos[{c}][{t}]") for t, frame in enumerate(clip)]
            if not frames:
                raise ValueError(f"videos[{c}] has no frames.")
            if box is None or is_box(box):
                frame_boxes = [box] * len(frames)
            else:
                frame_boxes = list(box)
                if len(frame_boxes) != len(frames):
                    raise ValueError(f"bbox of clip {c}: {len(frame_boxes)} per-frame boxes for {len(frames)} frames.")
            marked = [self.mark(f, self._checked(b, c)) for f, b in zip(frames, frame_boxes)]
            per_clip.append(self._pixels(marked, images_kwargs))  # (T, C, H, W)
        max_frames = max(p.shape[0] for p in per_clip)
        pixel_values = per_clip[0].new_zeros(len(per_clip), max_frames, *per_clip[0].shape[1:])
        frame_mask = torch.zeros(len(per_clip), max_frames, dtype=torch.long)
        for c, pixels in enumerate(per_clip):
            pixel_values[c, : pixels.shape[0]] = pixels
            frame_mask[c, : pixels.shape[0]] = 1
        return {"pixel_values": pixel_values, "frame_mask": frame_mask}
