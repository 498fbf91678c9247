"""The "emotion-in-context" pipeline: a photo, clip or video, a subject box and a description in, emotions out.

It follows transformers' pipelines (a `ChunkPipeline`, like zero-shot object detection): one input
may hold several subjects (several boxes, or every person an object detector finds), each subject
becomes one model input, and the results are grouped back per input. The subject is marked
exactly as in training (the processor calls `marking.mark_subject`), on the picture read at the
model's working size (`marking.load_image_for_model`: large JPEGs decode at reduced scale, and any
picture is downscaled before the box is drawn); boxes in and out are in the photo's own pixels.
When a subject has no
description, one is generated with the VLLM, prompt and generation settings recorded in the
model's config, on the same marked picture caption.py would have shown it.

This file is saved next to checkpoints, so it imports only torch, transformers, PIL, numpy, the
standard library and its own package, relatively.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from transformers import AutoModelForImageClassification, Pipeline
from transformers.dynamic_module_utils import custom_object_save
from transformers.pipelines import PIPELINE_REGISTRY
from transformers.pipelines.base import ChunkPipeline
from transformers.utils import logging

from .explaining import explain_pipeline_batch, explanation_entries, picture_views
from .hub_access import hub_access
from .labels import VAD_NAMES
from .marking import ModelPicture, clip_box, image_processor_side, load_image_for_model, working_side
from .processing_emofusion import is_box, to_pil
from .video_timeline import video_timeline


logger = logging.get_logger(__name__)

TASK = "emotion-in-context"
# A small COCO detector that needs neither timm nor torchvision; any object-detection model works.
DEFAULT_DETECTOR = "hustvl/yolos-tiny"
INPUT_KEYS = ("image", "frames", "bbox", "description")
# Options of the video path (`pipe(video=...)`), see video_timeline.py.
VIDEO_OPTIONS = (
    "fps", "every_n_frames", "bbox", "description", "detect_every", "detector", "person_label",
    "detection_threshold", "describer", "timeout", "batch_size",
)  # fmt: skip
# Subject entries in the working picture's pixels, used inside preprocess only.
_WORKING_KEYS = ("model_bbox", "frames", "frame_boxes")


def _source_name(image) -> str:
    """How an input is named in error messages: its path/URL, else its type."""
    if isinstance(image, str):
        return image if len(image) < 200 else image[:200] + "..."
    return f"image ({type(image).__name__})"


def load_picture(image, timeout: float | None = None, min_side: int | None = None) -> ModelPicture:
    """A path, URL, base64 string, PIL image or (H, W[, C]) array, read as a `ModelPicture`.

    With `min_side`, the picture is decoded and downscaled to that working size (its shorter
    side), see `marking.load_image_for_model`; without, it is read at full size.
    """
    if isinstance(image, (str, os.PathLike)):
        return load_image_for_model(image, min_side=min_side, timeout=timeout)
    return load_image_for_model(to_pil(image, _source_name(image)), min_side=min_side)


def _as_box_list(bbox, where: str) -> list[list[float]] | None:
    """None, one box, or a list of boxes -> None or a list of 4-number lists; anything else is a ValueError."""
    if bbox is None:
        return None
    if isinstance(bbox, (np.ndarray, torch.Tensor)):
        bbox = bbox.tolist()
    expected = "[x1, y1, x2, y2] in pixels (four numbers), or a list of such boxes"
    if isinstance(bbox, str):
        raise ValueError(f"{where}: bbox must be {expected}, got the string {bbox!r}.")
    boxes = [bbox] if is_box(bbox) else bbox
    if not isinstance(boxes, Sequence) or len(boxes) == 0:
        raise ValueError(f"{where}: bbox must be {expected}, got {bbox!r}.")
    for box in boxes:
        if not is_box(box) or len(box) != 4:
            raise ValueError(f"{where}: bbox must be {expected}, got {box!r}.")
    return [[float(v) for v in box] for box in boxes]


def pipeline_spec() -> dict[str, dict[str, Any]]:
    """The `config.custom_pipelines` entry that lets `pipeline(TASK, model=dir, trust_remote_code=True)` load us."""
    module = EmotionInContextPipeline.__module__.split(".")[-1]
    return {
        TASK: {
            "impl": f"{module}.{EmotionInContextPipeline.__name__}",
            "pt": ["AutoModelForImageClassification"],
            "type": "multimodal",
        }
    }


def save_pipeline_files(save_directory: str | os.PathLike, config=None) -> list[str]:
    """Make a saved checkpoint loadable with `pipeline("emotion-in-context", model=dir, trust_remote_code=True)`.

    Copies this file (and the files it imports relatively) into `save_directory` and records the
    task under `custom_pipelines` in its config.json; when `config` is given, it is updated too, so
    that later saves (e.g. `push_to_hub`) keep the entry.

    >>> model.save_pretrained("out"); processor.save_pretrained("out")  # doctest: +SKIP
    >>> save_pipeline_files("out", model.config)  # doctest: +SKIP
    """
    save_directory = os.fspath(save_directory)
    os.makedirs(save_directory, exist_ok=True)
    if config is not None:
        config.custom_pipelines = pipeline_spec()
    config_file = os.path.join(save_directory, "config.json")
    if os.path.isfile(config_file):
        with open(config_file, encoding="utf-8") as f:
            saved = json.load(f)
        saved["custom_pipelines"] = pipeline_spec()
        with open(config_file, "w", encoding="utf-8") as f:
            json.dump(saved, f, indent=2)  # keep the order (id2label reads in index order)
            f.write("\n")
    return custom_object_save(EmotionInContextPipeline, save_directory) or []


class EmotionInContextPipeline(ChunkPipeline):
    r"""
    Recognise the emotions of the subject(s) of a photo or clip, in context.

    Inputs (one, or a list for batching):

    - `image`: a path, URL, PIL image or (H, W, C) array; or, for a clip, `frames`: a list of those
      (pass a dict `{"frames": [...], ...}` or `frames=[...]`);
    - `bbox`: the subject's box `[x1, y1, x2, y2]` in pixels, or a list of boxes for several
      subjects (for a clip: one box, or one box per frame). A box partly outside the picture is
      clipped; without a box the whole picture is the subject, or, with `detect=True`, every person
      an object detector finds is;
    - `description`: the context description of the subject (one string, or one per box). Missing
      descriptions are generated with the VLLM recorded in the model's config
      (`config.description_model`, `prompt_template`, `description_generation`).

    Pictures are read at a working size (shorter side `self.working_side`: 1024 px, or twice the
    model's input side), a large JPEG decoded at reduced scale, and downscaled before the subject is
    marked, detected or described, so memory follows the model's input size, not the photo's; boxes
    given and reported are in the input picture's own pixels. A picture over PIL's
    decompression-bomb limit is a `PIL.Image.DecompressionBombError` saying how to allow it.

    Output, per input, a list with one entry per subject:
    `{"bbox", "labels" (above the thresholds), "scores" (every label, best first), "vad" (when the
    model predicts it), "description", "description_source" ("given" | "generated" | None),
    "detection_score" (with detect=True)}`. Multi-label models use `config.decision_thresholds`
    (0.5 where unset); single-label models give the arg-max class.

    Example:

    ```python
    >>> from modeling_emofusion import load_pipeline  # emofusion installed: its own code runs
    >>> pipe = load_pipeline("path/to/checkpoint")  # doctest: +SKIP
    >>> from transformers import pipeline  # emofusion not installed: the checkpoint's copy of this code runs
    >>> pipe = pipeline("emotion-in-context", model="path/to/checkpoint", trust_remote_code=True)  # doctest: +SKIP
    >>> pipe("photo.jpg", bbox=[40, 30, 200, 380], description="The person in the red box smiles")  # doctest: +SKIP
    [{'bbox': [40.0, 30.0, 200.0, 380.0], 'labels': ['Happiness', ...], 'scores': [...], ...}]
    >>> pipe([{"image": "a.jpg", "bbox": [...]}, {"image": "b.jpg"}], batch_size=8, detect=True)  # doctest: +SKIP
    ```

    A video (`pipe(video="clip.mp4", fps=2.0)`, a path or URL; see video_timeline.py) gives a
    timeline instead: every person found by the detector and followed by a tracker (or each given
    `bbox`, held fixed), classified per window of `config.num_frames` sampled frames (clip models)
    or per sampled frame (image models): `{"video", "fps", "num_frames", "tracks": [{"id", "start",
    "end", "windows": [{"time", "frame", "box", "labels", "scores", "vad", ...}]}], "message"}`.
    Video options: `fps` or `every_n_frames` (sampling; default 2 fps), `detect_every` (k: detect
    every k sampled frames, boxes interpolated in between), `bbox`, `description`, `batch_size` and
    the detection options below. It needs PyAV and trackers: `pip install "emofusion[video]"`.

    Pipeline options: `detect` (bool), `detector` (model id, path or object-detection pipeline, or
    any callable with that pipeline's interface; default `hustvl/yolos-tiny`), `person_label`
    ("person"), `detection_threshold` (0.5),
    `describer` (a VLLM's model id or folder, or anything with the `TransformersDescriber`
    interface, to override the recorded VLLM; the recorded prompt and generation settings are
    kept), `timeout` (seconds, for URLs).
    """

    _load_processor = True
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False
    _load_video_processor = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.processor is None:
            raise ValueError(
                "The emotion-in-context pipeline needs the checkpoint's EmoFusionProcessor: save it next to the "
                "model (processor.save_pretrained(dir)) or pass processor=... to pipeline()."
            )
        self._describers: dict[Any, Any] = {}
        self._detectors: dict[Any, Any] = {}

    @property
    def working_side(self) -> int:
        """The shorter side pictures are read and marked at (`marking.working_side` of the model's input)."""
        return working_side(image_processor_side(getattr(self.processor, "image_processor", None)))

    # -- call signature ----------------------------------------------------------------------------

    def __call__(self, inputs=None, **kwargs):
        """
        `pipe(image, bbox=None, description=None)`, `pipe(frames=[...], bbox=..., description=...)`,
        `pipe({"image": ..., "bbox": ..., "description": ...})` or a list of such dicts/images.
        """
        if "video" in kwargs:
            return self._video(inputs, **kwargs)
        per_input = {key: kwargs.pop(key) for key in ("image", "frames", "bbox", "description") if key in kwargs}
        if per_input:
            batch = isinstance(inputs, (list, tuple))
            if batch or (inputs is not None and ("image" in per_input or "frames" in per_input)):
                raise ValueError(
                    "For a batch, give each input's bbox/description inside its dict: "
                    "pipe([{'image': ..., 'bbox': ..., 'description': ...}, ...])."
                )
            if inputs is not None:
                per_input["image"] = inputs
            inputs = per_input
        if inputs is None:
            raise ValueError("No input: pass an image (path, URL, PIL image or array), or frames=[...] for a clip.")
        if isinstance(inputs, tuple):
            inputs = list(inputs)
        return super().__call__(inputs, **kwargs)

    def _video(self, inputs, video, **options):
        """`pipe(video=path_or_url, fps=..., every_n_frames=..., bbox=..., description=...)`: a timeline dict."""
        if inputs is not None:
            raise ValueError("Pass the video as video=... alone, not together with an image or frames.")
        unknown = sorted(set(options) - set(VIDEO_OPTIONS) - {"detect"})
        if unknown:
            raise TypeError(f"Unknown option(s) for a video: {unknown}; expected some of {sorted(VIDEO_OPTIONS)}.")
        # People are always detected and tracked in a video unless boxes are given.
        options.pop("detect", None)
        return video_timeline(self, video, **options)

    def _sanitize_parameters(
        self,
        detect: bool | None = None,
        detector=None,
        person_label: str | None = None,
        detection_threshold: float | None = None,
        describer=None,
        timeout: float | None = None,
        explain: bool | None = None,
        explain_labels=None,
        **kwargs,
    ):
        if kwargs:
            raise TypeError(f"Unknown option(s) for the {TASK} pipeline: {sorted(kwargs)}.")
        preprocess: dict[str, Any] = {}
        for name, value in (
            ("detect", detect),
            ("detector", detector),
            ("person_label", person_label),
            ("detection_threshold", detection_threshold),
            ("describer", describer),
            ("timeout", timeout),
        ):
            if value is not None:
                preprocess[name] = value
        forward: dict[str, Any] = {}
        if explain:
            # Explanations (explaining.py) only when asked: the plain path runs exactly as without them.
            preprocess["explain"] = True
            forward = {"explain": True, "explain_labels": explain_labels}
        return preprocess, forward, {}

    # -- preprocess: one input -> one model input per subject ---------------------------------------

    def preprocess(
        self,
        inputs,
        detect: bool = False,
        detector=None,
        person_label: str = "person",
        detection_threshold: float = 0.5,
        describer=None,
        timeout: float | None = None,
        explain: bool = False,
    ):
        item = self._normalize(inputs)
        config = self.model.config
        picture = None
        if "frames" in item:
            if not isinstance(item["frames"], (list, tuple)) or not item["frames"]:
                raise ValueError("frames: a clip needs a non-empty list of frames (paths, PIL images or arrays).")
            frames = [load_picture(frame, timeout, self.working_side) for frame in item["frames"]]
            where = _source_name(item["frames"][0]) + " (clip)"
            subjects = self._clip_subject(frames, item.get("bbox"), item.get("description"), where)
        else:
            picture = load_picture(item["image"], timeout, self.working_side)
            where = _source_name(item["image"])
            subjects = self._image_subjects(
                picture, item.get("bbox"), item.get("description"), where,
                detect, detector, person_label, detection_threshold,
            )  # fmt: skip

        needs_text = config.modality != "vision"
        if needs_text:
            self._fill_descriptions(subjects, picture, describer, where)

        if not subjects:
            # Nothing to classify (no person found): one input still needs one model input to flow
            # through the batching machinery; it is dropped in postprocess.
            subjects = [{"bbox": None, "model_bbox": None, "placeholder": True}]
            subjects[0]["description"] = "" if needs_text else None
            logger.info(f"{where}: no person found; returning no subject.")

        for index, subject in enumerate(subjects):
            text = subject["description"] if needs_text else None
            if picture is not None:
                model_inputs = self.processor(
                    images=picture.image, bbox=subject["model_bbox"], text=text, return_tensors="pt"
                )
            else:
                model_inputs = self.processor(
                    videos=[subject["frames"]], bbox=[subject["frame_boxes"]], text=text, return_tensors="pt"
                )
                model_inputs = self._pad_frames(model_inputs)
            model_inputs = dict(model_inputs)
            model_inputs["subject"] = {k: v for k, v in subject.items() if k not in _WORKING_KEYS}
            if explain:
                model_inputs["subject"]["explain_views"] = picture_views(picture, subject, self.processor.marking)
            model_inputs["is_last"] = index == len(subjects) - 1
            yield model_inputs

    def _normalize(self, inputs) -> dict:
        if isinstance(inputs, dict):
            unknown = sorted(set(inputs) - set(INPUT_KEYS))
            if unknown:
                raise ValueError(f"Unknown input key(s) {unknown}: expected some of {INPUT_KEYS}.")
            if ("image" in inputs) == ("frames" in inputs):
                raise ValueError("Each input needs exactly one of 'image' (a photo) or 'frames' (a clip).")
            return dict(inputs)
        return {"image": inputs}

    def _image_subjects(self, picture, bbox, description, where, detect, detector, person_label, threshold):
        boxes = _as_box_list(bbox, where)
        detection_scores = None
        if boxes is None and detect:
            boxes, detection_scores = self._detect_people(picture, detector, person_label, threshold)
        if boxes is None:
            boxes = [None]
        descriptions = self._per_subject_descriptions(description, len(boxes), where)
        subjects = []
        for i, box in enumerate(boxes):
            if box is not None:
                try:
                    box = [round(v, 2) for v in clip_box(box, picture.original_size)]
                except ValueError as error:
                    raise ValueError(f"{where}: {error}") from None
            subject = {"bbox": box, "model_bbox": picture.to_working(box), "placeholder": False}
            subject["description"] = descriptions[i]
            subject["description_source"] = "given" if descriptions[i] is not None else None
            if detection_scores is not None:
                subject["detection_score"] = detection_scores[i]
            subjects.append(subject)
        return subjects

    def _clip_subject(self, frames, bbox, description, where):
        num_frames = self.model.config.num_frames
        if num_frames < 2:
            raise ValueError(
                f"{where}: this model takes single images (config.num_frames=1); pass one frame as 'image'."
            )
        if bbox is None:
            frame_boxes = [None] * len(frames)
        elif is_box(bbox) or isinstance(bbox, str):
            frame_boxes = _as_box_list(bbox, where) * len(frames)
        else:
            frame_boxes = _as_box_list(bbox, where)
            if len(frame_boxes) != len(frames):
                raise ValueError(
                    f"{where}: {len(frame_boxes)} boxes for {len(frames)} frames: "
                    "a clip takes one box, or one box per frame."
                )
        if len(frames) > num_frames:
            # Evenly spread frames over the clip, as the builders sample them for training.
            keep = np.linspace(0, len(frames) - 1, num_frames).round().astype(int).tolist()
            logger.info(f"{where}: {len(frames)} frames, keeping {num_frames} evenly spaced ones (config.num_frames).")
            frames, frame_boxes = [frames[i] for i in keep], [frame_boxes[i] for i in keep]
        clipped = []
        for t, (frame, box) in enumerate(zip(frames, frame_boxes)):
            try:
                clipped.append(None if box is None else [round(v, 2) for v in clip_box(box, frame.original_size)])
            except ValueError as error:
                raise ValueError(f"{where}, frame {t}: {error}") from None
        if description is not None and not isinstance(description, str):
            raise ValueError(f"{where}: a clip has one subject: description must be one string.")
        union = None
        if any(b is not None for b in clipped):
            present = [b for b in clipped if b is not None]
            union = [min(b[0] for b in present), min(b[1] for b in present), max(b[2] for b in present)]
            union.append(max(b[3] for b in present))
        return [
            {
                "bbox": union,
                "frames": [frame.image for frame in frames],
                "frame_boxes": [frame.to_working(box) for frame, box in zip(frames, clipped)],
                "frame_sizes": [frame.original_size for frame in frames],
                "description": description,
                "description_source": "given" if description is not None else None,
                "placeholder": False,
            }
        ]

    @staticmethod
    def _per_subject_descriptions(description, num_subjects: int, where: str) -> list:
        if description is None:
            return [None] * num_subjects
        if isinstance(description, str):
            descriptions = [description] * num_subjects if num_subjects == 1 else None
        elif isinstance(description, Sequence) and all(d is None or isinstance(d, str) for d in description):
            descriptions = list(description)
        else:
            raise ValueError(f"{where}: description must be a string, or a list with one string per box.")
        if descriptions is None or len(descriptions) != num_subjects:
            raise ValueError(
                f"{where}: {num_subjects} subjects but "
                f"{1 if isinstance(description, str) else len(description)} description(s): pass one per box."
            )
        return descriptions

    # -- person detection ---------------------------------------------------------------------------

    def _detect_people(self, picture, detector, person_label: str, threshold: float):
        detector = self._get_detector(detector)
        model = getattr(detector, "model", None)
        classes = set(model.config.id2label.values()) if model is not None else {person_label}
        if person_label not in classes:
            raise ValueError(
                f"The person detector has no class {person_label!r} (its classes include {sorted(classes)[:10]}): "
                "pass person_label=... with its name for people, or another detector."
            )
        found = detector(picture.image, threshold=threshold)
        people = [d for d in found if d["label"] == person_label]
        if found and not people:
            labels = sorted({d["label"] for d in found})
            logger.info(f"The detector found {labels} but no {person_label!r} above {threshold}.")
        people.sort(key=lambda d: d["score"], reverse=True)
        # Found on the working picture; reported in the photo's pixels.
        boxes = [
            picture.to_original([d["box"]["xmin"], d["box"]["ymin"], d["box"]["xmax"], d["box"]["ymax"]])
            for d in people
        ]
        # Detectors may return degenerate boxes (zero width); they cannot be marked.
        kept = [(b, d["score"]) for b, d in zip(boxes, people) if b[2] > b[0] and b[3] > b[1]]
        return [b for b, _ in kept], [round(float(s), 4) for _, s in kept]

    def find_people(
        self, image, detector=None, person_label: str = "person", threshold: float = 0.5, timeout: float | None = None
    ) -> list[dict]:
        """The people the detector finds in `image`, best first: `[{"bbox": [x1, y1, x2, y2], "score"}]` in the
        photo's pixels, found on the working picture as `detect=True` finds them (e.g. to let a user describe
        each person before classifying)."""
        picture = load_picture(image, timeout, self.working_side)
        boxes, scores = self._detect_people(picture, detector, person_label, threshold)
        return [{"bbox": [round(v, 2) for v in box], "score": score} for box, score in zip(boxes, scores)]

    def _get_detector(self, detector):
        if isinstance(detector, Pipeline) or (callable(detector) and not isinstance(detector, (str, os.PathLike))):
            # An object-detection pipeline, or any callable with its interface and output.
            return detector
        key = detector or DEFAULT_DETECTOR
        if key not in self._detectors:
            from transformers import pipeline

            logger.info(f"Loading the person detector {key!r}.")
            with hub_access(key, what="person detector"):
                self._detectors[key] = pipeline("object-detection", model=key, device=self.device)
        return self._detectors[key]

    # -- descriptions -------------------------------------------------------------------------------

    def _fill_descriptions(self, subjects, picture, describer, where: str) -> None:
        missing = [s for s in subjects if s["description"] is None]
        if not missing:
            return
        describer = self._get_describer(describer, where)
        views, boxes = [], []
        for subject in missing:
            if picture is not None:
                views.append(picture.image)
                boxes.append(subject["model_bbox"])
            else:
                # A clip is described from its middle sampled frame, with that frame's box (caption.py's default).
                middle = len(subject["frames"]) // 2
                views.append(subject["frames"][middle])
                boxes.append(subject["frame_boxes"][middle])
        config = self.model.config
        # The recorded template (the paper's when none), filled with this model's label names;
        # the describer marks each subject itself, with the model's marking mode.
        described = describer.describe(
            views, boxes, prompt=config.prompt_template or None, class_names=list(config.id2label.values())
        )
        for subject, description in zip(missing, described):
            subject["description"] = description.text if hasattr(description, "text") else str(description)
            subject["description_source"] = "generated"

    def _get_describer(self, describer, where: str):
        if describer is not None and not isinstance(describer, (str, os.PathLike)):
            return describer
        config = self.model.config
        if describer is not None:
            return self.load_describer(os.fspath(describer), where=where)
        if not config.description_model:
            # e.g. trained on descriptions from elsewhere (config.description_provenance): no VLLM to run again.
            provenance = config.description_provenance
            raise ValueError(
                f"{where}: no description given, and this model's config records no description model "
                f"({f'its training descriptions: {provenance}' if provenance else 'config.description_model is None'})"
                ", so none can be generated. Pass description='...' (emofusion predict: --description TEXT), a text "
                "describing the person in context, or describer='MODEL_ID' (emofusion predict: --describer MODEL_ID; "
                "an image-text-to-text model such as llava-hf/llava-1.5-7b-hf) to generate one."
            )
        return self.load_describer(config.description_model, config.description_revision, where=where)

    def load_describer(self, model_id_or_path: str, revision: str | None = None, where: str | None = None):
        """The VLLM `model_id_or_path` as a `TransformersDescriber` (loaded once, then reused).

        It shows the subject with the model's marking and generates with the settings recorded in
        the model's config; the prompt is the recorded one too (see `_fill_descriptions`), so
        another VLLM than the recorded one asks exactly what the training descriptions answered.
        """
        key = (model_id_or_path, revision)
        if key not in self._describers:
            from .describing import TransformersDescriber

            config = self.model.config
            recorded = model_id_or_path == config.description_model
            logger.info(
                f"Loading the description model {model_id_or_path!r}"
                + (" recorded in the config." if recorded else ".")
            )
            # The recorded generation settings, unless a program rather than a VLLM wrote the training
            # descriptions (the demo's synthetic writer records {"writer": ...}): those are no `generate` arguments.
            generation = dict(config.description_generation or {})
            if "writer" in generation:
                generation = {}
            try:
                with hub_access(model_id_or_path, what="description model"):
                    self._describers[key] = TransformersDescriber.from_pretrained(
                        model_id_or_path,
                        revision=revision,
                        device=self.device,
                        marking=config.marking,
                        **generation,
                    )
            except OSError as error:
                which = "recorded in the config " if recorded else ""
                raise ValueError(
                    f"{where or model_id_or_path}: the description model {which}({model_id_or_path!r}, revision "
                    f"{revision!r}) cannot be loaded: {error}. Pass description='...', or describer='MODEL_ID'."
                ) from error
        return self._describers[key]

    # -- forward and postprocess --------------------------------------------------------------------

    def _pad_frames(self, model_inputs):
        # Clips in one batch must have the same length: pad every clip to config.num_frames
        # (padded frames are masked out and never encoded).
        target = self.model.config.num_frames
        pixels, mask = model_inputs["pixel_values"], model_inputs["frame_mask"]
        if pixels.shape[1] < target:
            extra = target - pixels.shape[1]
            pixels = torch.cat([pixels, pixels.new_zeros(pixels.shape[0], extra, *pixels.shape[2:])], dim=1)
            mask = torch.cat([mask, mask.new_zeros(mask.shape[0], extra)], dim=1)
        model_inputs["pixel_values"], model_inputs["frame_mask"] = pixels, mask
        return model_inputs

    def _forward(self, model_inputs, explain: bool = False, explain_labels=None):
        subject = model_inputs.pop("subject")
        is_last = model_inputs.pop("is_last")
        outputs = self.model(**model_inputs)
        # "logits" first: the batching machinery reads the batch size from the first entry.
        result = {"logits": outputs.logits, "vad": outputs.vad, "subject": subject, "is_last": is_last}
        if explain:
            result["explanations"] = explain_pipeline_batch(
                self.model, self.processor, model_inputs, outputs.logits, subject, explain_labels
            )
        return result

    def postprocess(self, model_outputs):
        config = self.model.config
        id2label = config.id2label
        multi_label = config.problem_type != "single_label_classification"
        thresholds = config.decision_thresholds or [0.5] * config.num_labels
        results = []
        for output in model_outputs:
            subject = output["subject"]
            if subject.get("placeholder"):
                continue
            logits = output["logits"][0].float()
            probs = torch.sigmoid(logits) if multi_label else torch.softmax(logits, dim=-1)
            scores = probs.tolist()
            if multi_label:
                labels = [id2label[i] for i, s in enumerate(scores) if s >= thresholds[i]]
            else:
                labels = [id2label[int(torch.argmax(probs))]]
            ranked = sorted(range(len(scores)), key=lambda i: scores[i], reverse=True)
            result = {
                "bbox": subject["bbox"],
                "labels": labels,
                "scores": [{"label": id2label[i], "score": scores[i]} for i in ranked],
            }
            if output.get("vad") is not None:
                vad = output["vad"][0].float().tolist()
                names = VAD_NAMES if len(vad) == len(VAD_NAMES) else [f"vad_{i}" for i in range(len(vad))]
                result["vad"] = dict(zip(names, vad))
            result["description"] = subject.get("description")
            result["description_source"] = subject.get("description_source")
            if "detection_score" in subject:
                result["detection_score"] = subject["detection_score"]
            if "explanations" in output:
                result["explanations"] = explanation_entries(config, output["explanations"], scores)
            results.append(result)
        return results

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs):
        """Save model, processor and this pipeline's code, loadable with `pipeline(..., trust_remote_code=True)`."""
        save_pipeline_files(save_directory, self.model.config)
        self.model.save_pretrained(save_directory, **kwargs)
        self.processor.save_pretrained(save_directory, **kwargs)


def load_pipeline(model, **kwargs) -> EmotionInContextPipeline:
    """The "emotion-in-context" pipeline of a checkpoint (folder or Hub id), run by the installed code.

    A saved checkpoint names its own copy of this file under `custom_pipelines` in its config,
    which `pipeline(TASK, model=...)` runs only with `trust_remote_code=True`; and a checkpoint
    saved by an older emofusion would run that older code. Passing the installed class as
    `pipeline_class` (transformers' documented way to choose the class) uses the installed
    pipeline, model and processor classes instead, with no remote code:

    >>> pipe = load_pipeline("path/to/checkpoint", device=0)  # doctest: +SKIP
    >>> # the same as
    >>> pipe = pipeline("emotion-in-context", model="path/to/checkpoint", pipeline_class=EmotionInContextPipeline,
    ...                 device=0)  # doctest: +SKIP

    `kwargs` go to `transformers.pipeline` (`revision`, `device`, `dtype`, `token`, ...). Where
    emofusion is not installed, `pipeline(TASK, model=..., trust_remote_code=True)` loads the
    checkpoint's own copy.
    """
    from transformers import pipeline

    if kwargs.get("trust_remote_code"):
        raise ValueError(
            "load_pipeline runs the installed emofusion code; for the checkpoint's saved copy use "
            "transformers.pipeline('emotion-in-context', model=..., trust_remote_code=True)."
        )
    kwargs.pop("trust_remote_code", None)
    return pipeline(TASK, model=model, pipeline_class=EmotionInContextPipeline, **kwargs)


def register_pipeline() -> None:
    """Register the task with transformers' pipeline registry; calling it again changes nothing."""
    registered = PIPELINE_REGISTRY.supported_tasks.get(TASK)
    if registered is not None and registered.get("impl") is EmotionInContextPipeline:
        return
    PIPELINE_REGISTRY.register_pipeline(
        TASK,
        pipeline_class=EmotionInContextPipeline,
        pt_model=AutoModelForImageClassification,
        type="multimodal",
    )
