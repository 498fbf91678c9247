"""EmoFusion configuration.

A composite config in the shape of transformers' InstructBlipConfig: a vision sub-config (any
transformers vision model, CLIP ViT-L/14 by default), an InstructBLIP Q-Former sub-config, and
the fields of the method of arXiv 2404.07078 (queries, pooling, modality ablations, heads), plus
the provenance of the descriptions the model was trained on, so that inference can produce a
description the same way.
"""

from __future__ import annotations

from typing import Any

from transformers import AutoConfig, InstructBlipQFormerConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

from .labels import EMOTIC_CATEGORIES
from .marking import MARKING_MODES


MODALITIES = ("fusion", "vision", "text")
POOLING_MODES = ("mean", "first")
# transformers' three, as its image classifiers read them (regression: MSE, e.g. for BoLD's soft scores).
PROBLEM_TYPES = ("multi_label_classification", "single_label_classification", "regression")

# CLIP ViT-L/14 at 224 px: the paper's E_V is a ViT-L; CLIP pre-training is the natural default.
CLIP_VIT_L14 = {
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "image_size": 224,
    "patch_size": 14,
    "projection_dim": 768,
}


class EmoFusionConfig(PreTrainedConfig):
    r"""
    Configuration of [`EmoFusionModel`] and [`EmoFusionForEmotionClassification`].

    Args:
        vision_config (`dict` or `PreTrainedConfig`, *optional*):
            Config of the vision encoder E_V: any transformers vision model whose output has a
            `last_hidden_state` of shape (batch, tokens, width). Defaults to CLIP ViT-L/14.
        qformer_config (`dict` or `InstructBlipQFormerConfig`, *optional*):
            Config of the instruction-aware Q-Former. When not given, its `encoder_hidden_size` is
            set to the vision width; when given, it is kept, and a linear projection maps the
            vision tokens to it if the widths differ (e.g. an InstructBLIP Q-Former on CLIP).
        num_query_tokens (`int`, defaults to 32): number of learnable queries Q.
        pooling (`str`, defaults to `"mean"`): how output queries become one vector, `"mean"` or
            `"first"`.
        modality (`str`, defaults to `"fusion"`): the paper's ablations. `"fusion"`: queries and
            description tokens attend to each other and the queries cross-attend to the image;
            `"vision"`: no description tokens; `"text"`: the queries cross-attend to one learned
            null token instead of the image, so no pixel information reaches the head.
        freeze_vision (`bool`, defaults to `False`): keep the vision encoder's weights fixed.
        num_frames (`int`, defaults to 1): most frames a clip may have. Above 1 the model accepts
            pixel_values of shape (batch, frames, channels, height, width) and adds a learned
            frame-position embedding to each frame's tokens.
        num_vad (`int`, defaults to 0): 3 adds a valence/arousal/dominance regression head.
        vad_loss_weight (`float`, defaults to 1.0): weight of the VAD L1 loss in the total loss.
        vad_range (`list[float]`, defaults to `[1.0, 10.0]`): the scale of the VAD targets (EMOTIC's
            1..10). The head predicts in [-1, 1] around its middle and the loss is taken there, so
            that it weighs like the classification loss; `outputs.vad` is on the original scale.
        decision_thresholds (`list[float]`, *optional*): per-class score thresholds (calibrated on
            validation) that turn multi-label scores into labels; 0.5 for every class when unset.
        max_text_length (`int`, defaults to 256): description tokens kept (Q-Former positions).
        problem_type (`str`, defaults to `"multi_label_classification"`): the loss, as transformers' image
            classifiers choose it: `"multi_label_classification"` (BCE-with-logits on multi-hot labels),
            `"single_label_classification"` (cross-entropy on class indices) or `"regression"` (MSE on float
            targets, e.g. BoLD's soft scores).
        marking (`str`, defaults to `"box"`): how the subject was marked, see `marking.py`.
        description_model, description_revision (`str`, *optional*): the VLLM that wrote the
            training descriptions, so that the pipeline can describe a new photo the same way.
        prompt_template (`str`, *optional*): the prompt template given to that VLLM.
        description_generation (`dict`, *optional*): its generation settings.
        description_dataset (`str`, *optional*): the description set used for training.
        description_provenance (`str`, *optional*): set when the training descriptions came without a
            description set's metadata (`"user-provided, provenance unknown"`): the pipeline then needs a
            description for every subject, since there is no VLLM and prompt to run again.

    Example:

    ```python
    >>> from modeling_emofusion import EmoFusionConfig, EmoFusionForEmotionClassification
    >>> config = EmoFusionConfig(
    ...     vision_config={"model_type": "clip_vision_model", "hidden_size": 64, "intermediate_size": 128,
    ...                    "num_hidden_layers": 2, "num_attention_heads": 4, "image_size": 32, "patch_size": 8},
    ...     qformer_config={"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
    ...                     "intermediate_size": 128, "vocab_size": 100},
    ...     num_query_tokens=8,
    ... )
    >>> config.qformer_config.encoder_hidden_size, config.num_labels
    (64, 26)
    >>> model = EmoFusionForEmotionClassification(config)
    ```
    """

    model_type = "emofusion"
    sub_configs_defaults = {
        "vision_config": SubConfigSpec(
            config_class=AutoConfig, model_type="clip_vision_model", init_kwargs=CLIP_VIT_L14
        ),
        "qformer_config": InstructBlipQFormerConfig,
    }

    vision_config: dict | PreTrainedConfig | None = None
    qformer_config: dict | PreTrainedConfig | None = None
    num_query_tokens: int = 32
    pooling: str = "mean"
    modality: str = "fusion"
    freeze_vision: bool = False
    num_frames: int = 1
    num_vad: int = 0
    vad_loss_weight: float = 1.0
    vad_range: list[float] = (1.0, 10.0)
    decision_thresholds: list[float] | None = None
    max_text_length: int = 256
    marking: str = "box"
    description_model: str | None = None
    description_revision: str | None = None
    prompt_template: str | None = None
    description_generation: dict[str, Any] | None = None
    description_dataset: str | None = None
    description_provenance: str | None = None
    initializer_range: float = 0.02
    problem_type: str | None = "multi_label_classification"

    def __post_init__(self, **kwargs):
        qformer_given = self.qformer_config is not None
        if self.id2label is None and kwargs.get("num_labels") is None:
            self.id2label = dict(enumerate(EMOTIC_CATEGORIES))
        super().__post_init__(**kwargs)
        if self.id2label is not None:
            # JSON writers may reorder keys ("10" before "2"): keep label order = index order.
            self.id2label = dict(sorted(self.id2label.items()))
        if self.id2label is not None and self.label2id is None:
            self.label2id = {name: index for index, name in self.id2label.items()}
        if not qformer_given:
            # InstructBLIP wires the vision width into the Q-Former's cross-attention the same way.
            self.qformer_config.encoder_hidden_size = self.vision_config.hidden_size
        self.validate()

    def get_text_config(self, decoder=None, encoder=None) -> PreTrainedConfig:
        """The Q-Former's config: it reads the description, and its `vocab_size` is the one that
        `resize_token_embeddings` changes. EmoFusion has no text decoder, so `decoder=True` alone finds this config."""
        if decoder and not encoder:
            return self
        return self.qformer_config

    def validate(self):
        """Raise a ValueError naming the field when a value cannot work."""
        choices = {"modality": MODALITIES, "pooling": POOLING_MODES, "marking": MARKING_MODES}
        for field, allowed in choices.items():
            if getattr(self, field) not in allowed:
                raise ValueError(f"EmoFusionConfig.{field}={getattr(self, field)!r}: expected one of {allowed}.")
        if self.problem_type not in PROBLEM_TYPES:
            raise ValueError(f"EmoFusionConfig.problem_type={self.problem_type!r}: expected one of {PROBLEM_TYPES}.")
        for field in ("num_query_tokens", "num_frames", "max_text_length"):
            if not isinstance(getattr(self, field), int) or getattr(self, field) < 1:
                raise ValueError(f"EmoFusionConfig.{field}={getattr(self, field)!r}: expected a positive integer.")
        if self.num_vad < 0:
            raise ValueError(f"EmoFusionConfig.num_vad={self.num_vad!r}: expected 0 (no VAD head) or more.")
        if len(self.vad_range) != 2 or not self.vad_range[0] < self.vad_range[1]:
            raise ValueError(f"EmoFusionConfig.vad_range={self.vad_range!r}: expected [low, high] with low < high.")
        self.vad_range = [float(v) for v in self.vad_range]
        if self.max_text_length > self.qformer_config.max_position_embeddings:
            raise ValueError(
                f"EmoFusionConfig.max_text_length={self.max_text_length} exceeds the Q-Former's "
                f"max_position_embeddings={self.qformer_config.max_position_embeddings}."
            )
        if self.decision_thresholds is not None:
            thresholds = list(self.decision_thresholds)
            if len(thresholds) != self.num_labels:
                raise ValueError(
                    f"EmoFusionConfig.decision_thresholds has {len(thresholds)} values: expected one per label "
                    f"({self.num_labels})."
                )
            if not all(isinstance(t, (int, float)) and 0.0 <= t <= 1.0 for t in thresholds):
                raise ValueError("EmoFusionConfig.decision_thresholds: expected scores in [0, 1].")
            self.decision_thresholds = [float(t) for t in thresholds]
