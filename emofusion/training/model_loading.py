"""Build the model and processor of a run: from an emofusion checkpoint, a config folder, or
pretrained parts (vision encoder + Q-Former initialisation), with the run's labels, ablation and
the description set's provenance written into the config.
"""

from __future__ import annotations

import os

from transformers.utils import logging

from modeling_emofusion import EmoFusionConfig, EmoFusionForEmotionClassification, EmoFusionProcessor
from modeling_emofusion.labels import id2label_for, task_info

from .arguments import DataArguments, ModelArguments
from .model_card import UNKNOWN_PROVENANCE


logger = logging.get_logger(__name__)

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")
# ModelArguments fields that map one-to-one onto EmoFusionConfig fields.
CONFIG_FIELDS = (
    "modality",
    "num_query_tokens",
    "pooling",
    "num_frames",
    "vad_loss_weight",
    "max_text_length",
)
# description_set.json key -> EmoFusionConfig field
PROVENANCE = {
    "model": "description_model",
    "revision": "description_revision",
    "prompt_template": "prompt_template",
    "generation": "description_generation",
}


def resolve_marking(model_args: ModelArguments, description_metadata: dict | None) -> str | None:
    """The marking mode of the run: the description set's, unless the user asks for the same or none."""
    described = (description_metadata or {}).get("marking")
    if model_args.marking and described and model_args.marking != described:
        raise ValueError(
            f"--marking {model_args.marking!r} differs from the description set's marking {described!r}: the "
            "classifier must see the picture the VLLM described. Drop --marking or use descriptions made "
            f"with marking {model_args.marking!r}."
        )
    return model_args.marking or described


def _explicit_overrides(model_args: ModelArguments, num_frames: int | None) -> dict:
    overrides = {name: getattr(model_args, name) for name in CONFIG_FIELDS if getattr(model_args, name) is not None}
    if model_args.freeze_vision:
        overrides["freeze_vision"] = True
    if "num_frames" not in overrides and num_frames is not None:
        overrides["num_frames"] = num_frames
    return overrides


def _is_config_only(path: str) -> bool:
    return os.path.isdir(path) and not any(os.path.isfile(os.path.join(path, f)) for f in WEIGHT_FILES)


def _task_fields(task: str, want_vad: bool) -> dict:
    info = task_info(task)
    return {"id2label": id2label_for(task), "problem_type": info["problem_type"], "num_vad": 3 if want_vad else 0}


def _hub_kwargs(model_args: ModelArguments) -> dict:
    return {"revision": model_args.model_revision, "cache_dir": model_args.cache_dir, "token": model_args.token}


def _from_checkpoint(model_args: ModelArguments, task: str, want_vad: bool, overrides: dict):
    path = model_args.model_name_or_path
    config = EmoFusionConfig.from_pretrained(path, **_hub_kwargs(model_args))
    labels = [config.id2label[i] for i in range(config.num_labels)]
    wanted = _task_fields(task, want_vad)
    same_labels = labels == list(wanted["id2label"].values()) and config.problem_type == wanted["problem_type"]
    if not same_labels:
        if not model_args.ignore_mismatched_sizes:
            raise ValueError(
                f"{path} predicts {config.num_labels} labels ({', '.join(labels[:4])}, ...) as "
                f"{config.problem_type}, but {task} has {len(wanted['id2label'])} ({config.problem_type!r} vs "
                f"{wanted['problem_type']!r}). Pass --ignore_mismatched_sizes to fine-tune it with a new head."
            )
        logger.warning("%s has other labels than %s: its classification head is replaced.", path, task)
        config.id2label, config.label2id = wanted["id2label"], None
        config.label2id = {name: i for i, name in config.id2label.items()}
        config.problem_type = wanted["problem_type"]
        config.decision_thresholds = None
    if want_vad and config.num_vad == 0:
        logger.warning("%s has no VAD head: a new one is added.", path)
        config.num_vad = 3
    for name, value in overrides.items():
        setattr(config, name, value)
    config.validate()
    if _is_config_only(path):
        logger.info("%s holds a config but no weights: building a new, randomly initialised model.", path)
        model = EmoFusionForEmotionClassification(config)
    else:
        model = EmoFusionForEmotionClassification.from_pretrained(
            path, config=config, ignore_mismatched_sizes=model_args.ignore_mismatched_sizes, **_hub_kwargs(model_args)
        )
    processor = EmoFusionProcessor.from_pretrained(
        model_args.processor_name_or_path or path, **_hub_kwargs(model_args)
    )
    if model_args.tokenizer_name_or_path:
        from transformers import AutoTokenizer

        processor.tokenizer = AutoTokenizer.from_pretrained(
            model_args.tokenizer_name_or_path, **_hub_kwargs(model_args)
        )
    return model, processor


def _from_parts(model_args: ModelArguments, task: str, want_vad: bool, overrides: dict):
    tokenizer_source = model_args.tokenizer_name_or_path or model_args.qformer_name_or_path
    if tokenizer_source is None:
        raise ValueError(
            "Without --qformer_name_or_path, give --tokenizer_name_or_path for the descriptions "
            "(e.g. bert-base-uncased)."
        )
    revision = model_args.model_revision
    config_kwargs = {**_task_fields(task, want_vad), **overrides}
    model = EmoFusionForEmotionClassification.from_pretrained_parts(
        model_args.vision_model_name_or_path,
        model_args.qformer_name_or_path,
        revision=revision,
        qformer_revision=revision,
        **config_kwargs,
    )
    # The processor resizes the whole picture (no centre crop), so the context and the box stay in view.
    processor = EmoFusionProcessor.from_pretrained_parts(
        model_args.vision_model_name_or_path,
        tokenizer_source,
        max_text_length=model.config.max_text_length,
        revision=revision,
        tokenizer_revision=revision,
    )
    return model, processor


def record_provenance(config, description_metadata: dict | None, description_source: str | None) -> None:
    """Write where the training descriptions came from into the config (VLLM, revision, prompt, generation).

    Descriptions without a `description_set.json` (a table from elsewhere: metadata `{}`) are
    recorded as `description_provenance = UNKNOWN_PROVENANCE`, with no description model: what a
    fine-tuned checkpoint recorded about its earlier descriptions no longer holds, so the pipeline
    asks for a description rather than generating one the wrong way.
    """
    if description_source is None and not description_metadata:
        return  # no descriptions joined: the config keeps what it has
    known = bool(description_metadata)
    for key, field in PROVENANCE.items():
        setattr(config, field, description_metadata.get(key) if known else None)
    if not known:
        config.description_provenance = UNKNOWN_PROVENANCE
    elif config.description_provenance is not None:  # an earlier run's, no longer true
        config.description_provenance = None
    if description_source is not None:
        config.description_dataset = str(description_source)


def check_provenance(config, description_metadata: dict | None) -> None:
    """Warn when a checkpoint is evaluated on descriptions made differently from its training ones."""
    if description_metadata is None:
        return
    if not description_metadata:
        if getattr(config, "description_model", None):
            logger.warning(
                "The model was trained on descriptions by %r, but these carry no description_set.json (user-provided, "
                "provenance unknown): its figures may not carry over.",
                config.description_model,
            )
        return
    for key, field in PROVENANCE.items():
        trained, given = getattr(config, field, None), description_metadata.get(key)
        if trained is not None and given is not None and trained != given:
            logger.warning(
                "The model was trained on descriptions with %s=%r, but these have %r: its figures may not carry over.",
                key,
                trained,
                given,
            )


def load_model_and_processor(
    model_args: ModelArguments,
    data_args: DataArguments,
    description_metadata: dict | None = None,
    num_frames: int | None = None,
):
    """The model and processor of a run, with the task's labels, the ablation and the marking set.

    `num_frames` (BoLD) is the longest clip of the data, used when the model is new and no
    `--num_frames` is given.
    """
    task = data_args.dataset
    has_vad = task_info(task)["has_vad"]
    if model_args.vad_head and not has_vad:
        raise ValueError(f"--vad_head: {task} has no valence/arousal/dominance labels.")
    want_vad = has_vad if model_args.vad_head is None else bool(model_args.vad_head)
    overrides = _explicit_overrides(model_args, num_frames)
    marking = resolve_marking(model_args, description_metadata)
    if model_args.model_name_or_path is not None:
        if model_args.num_frames is None:
            overrides.pop("num_frames", None)  # a checkpoint keeps the frame count it was trained with
        model, processor = _from_checkpoint(model_args, task, want_vad, overrides)
    else:
        model, processor = _from_parts(model_args, task, want_vad, overrides)
    config = model.config
    if marking is not None and marking != config.marking:
        if model_args.model_name_or_path is not None and not model_args.marking:
            logger.warning(
                "%s was trained with marking %r; the description set's marking %r is used instead, so that "
                "pictures match their descriptions.",
                model_args.model_name_or_path,
                config.marking,
                marking,
            )
        config.marking = marking
    processor.marking = config.marking
    processor.max_text_length = config.max_text_length
    if config.freeze_vision and model.emofusion.vision_model is not None:
        model.emofusion.vision_model.requires_grad_(False)
    vocab = config.qformer_config.vocab_size
    if len(processor.tokenizer) > vocab:
        raise ValueError(
            f"The tokenizer has {len(processor.tokenizer)} tokens but the Q-Former's vocabulary has {vocab}: "
            "use the Q-Former's own tokenizer."
        )
    config.validate()
    return model, processor
