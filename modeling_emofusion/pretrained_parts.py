"""Building an EmoFusion model from pretrained parts.

- The vision encoder from any transformers vision checkpoint (a vision model, or a dual-encoder
  such as CLIP/SigLIP whose vision tower is taken).
- The Q-Former either from a BERT checkpoint, the BLIP-2 recipe (self-attention, embeddings and
  both feed-forward branches from BERT; cross-attention newly initialised), or from an
  InstructBLIP checkpoint's Q-Former and query tokens, read straight from its safetensors files
  so that the 4-13B language model is never loaded.

Every fetch runs inside `hub_access`: without network it fails in seconds, naming the checkpoint.
"""

from __future__ import annotations

import json
import os
import re

import torch
from transformers import AutoConfig, InstructBlipQFormerConfig, PreTrainedConfig
from transformers.models.auto.modeling_auto import MODEL_MAPPING
from transformers.utils import cached_file, logging

from .hub_access import hub_access


logger = logging.get_logger(__name__)

# BERT parameter name -> Q-Former parameter names (the BLIP-2 initialisation).
_BERT_TO_QFORMER = (
    (r"^embeddings\.LayerNorm\.", ["embeddings.layernorm."]),
    (r"^embeddings\.word_embeddings\.", ["embeddings.word_embeddings."]),
    (r"^encoder\.layer\.(\d+)\.attention\.self\.", [r"encoder.layer.\1.attention.attention."]),
    (r"^encoder\.layer\.(\d+)\.attention\.output\.", [r"encoder.layer.\1.attention.output."]),
    (
        r"^encoder\.layer\.(\d+)\.intermediate\.",
        [r"encoder.layer.\1.intermediate.", r"encoder.layer.\1.intermediate_query."],
    ),
    (r"^encoder\.layer\.(\d+)\.output\.", [r"encoder.layer.\1.output.", r"encoder.layer.\1.output_query."]),
)


def vision_config_of(config: PreTrainedConfig) -> PreTrainedConfig:
    """The vision tower's config of a checkpoint config (CLIP/SigLIP-style dual encoders have one)."""
    return getattr(config, "vision_config", None) or config


def load_vision_model(name_or_path: str, revision: str | None = None, **kwargs):
    """Load the vision tower of `name_or_path` as a bare vision model (e.g. `CLIPVisionModel`)."""
    with hub_access(name_or_path, what="vision model"):
        config = vision_config_of(AutoConfig.from_pretrained(name_or_path, revision=revision, **kwargs))
        model_class = MODEL_MAPPING[type(config)]
        return model_class.from_pretrained(name_or_path, revision=revision, **kwargs)


def qformer_config_from_bert(bert_config: PreTrainedConfig, encoder_hidden_size: int, **overrides):
    """An `InstructBlipQFormerConfig` with a BERT checkpoint's shape."""
    fields = (
        "vocab_size",
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "intermediate_size",
        "hidden_act",
        "hidden_dropout_prob",
        "attention_probs_dropout_prob",
        "max_position_embeddings",
        "layer_norm_eps",
        "pad_token_id",
    )
    values = {field: getattr(bert_config, field) for field in fields if getattr(bert_config, field, None) is not None}
    values.update(encoder_hidden_size=encoder_hidden_size, **overrides)
    return InstructBlipQFormerConfig(**values)


def bert_to_qformer_state_dict(bert_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map a `BertModel` state dict onto Q-Former parameter names (BLIP-2 initialisation).

    BERT adds token-type embedding 0 to every token; the Q-Former has no token types, so that row
    is folded into the position embeddings: text embeddings stay exactly BERT's.
    """
    bert_state = {key.removeprefix("bert."): value for key, value in bert_state.items()}
    mapped: dict[str, torch.Tensor] = {}
    for key, value in bert_state.items():
        for pattern, targets in _BERT_TO_QFORMER:
            if re.match(pattern, key):
                for target in targets:
                    mapped[re.sub(pattern, target, key)] = value.clone()
                break
    positions = bert_state["embeddings.position_embeddings.weight"]
    token_type = bert_state.get("embeddings.token_type_embeddings.weight")
    mapped["embeddings.position_embeddings.weight"] = positions + (token_type[0] if token_type is not None else 0)
    return mapped


def _safetensors_files(name_or_path: str, revision: str | None) -> list[str]:
    """Local paths of a checkpoint's safetensors weights (single file or sharded index)."""
    index = cached_file(
        name_or_path, "model.safetensors.index.json", revision=revision, _raise_exceptions_for_missing_entries=False
    )
    if index is None:
        single = cached_file(
            name_or_path, "model.safetensors", revision=revision, _raise_exceptions_for_missing_entries=False
        )
        if single is None:
            raise OSError(
                f"{name_or_path} has no model.safetensors or model.safetensors.index.json (only safetensors are read)."
            )
        return [single]
    with open(index, encoding="utf-8") as handle:
        shards = sorted(set(json.load(handle)["weight_map"].values()))
    return [cached_file(name_or_path, shard, revision=revision) for shard in shards]


def load_prefixed_weights(
    name_or_path: str, prefixes: tuple[str, ...], revision: str | None = None
) -> dict[str, torch.Tensor]:
    """Tensors whose names start with one of `prefixes`, read lazily from safetensors files."""
    from safetensors import safe_open

    found: dict[str, torch.Tensor] = {}
    for path in _safetensors_files(name_or_path, revision):
        with safe_open(path, framework="pt") as handle:
            for key in handle.keys():
                if key.startswith(prefixes):
                    found[key] = handle.get_tensor(key)
    return found


def instructblip_qformer_parts(
    name_or_path: str, revision: str | None = None
) -> tuple[dict, dict[str, torch.Tensor], torch.Tensor]:
    """(Q-Former config dict, Q-Former state dict, query tokens) of an InstructBLIP checkpoint."""
    with hub_access(name_or_path, what="Q-Former checkpoint"):
        config = AutoConfig.from_pretrained(name_or_path, revision=revision)
        weights = load_prefixed_weights(name_or_path, ("qformer.", "query_tokens"), revision)
    if "query_tokens" not in weights:
        raise OSError(f"{name_or_path}: no `query_tokens` tensor found in its safetensors files.")
    qformer_state = {k.removeprefix("qformer."): v for k, v in weights.items() if k.startswith("qformer.")}
    return config.qformer_config.to_dict(), qformer_state, weights["query_tokens"]


def is_instructblip(name_or_path: str, revision: str | None = None) -> bool:
    with hub_access(name_or_path, what="Q-Former checkpoint"):
        config_file = cached_file(name_or_path, "config.json", revision=revision)
    with open(config_file, encoding="utf-8") as handle:
        return json.load(handle).get("model_type") in ("instructblip", "instructblipvideo")


def tokenizer_source(qformer_name_or_path: str, revision: str | None = None) -> tuple[str, str | None]:
    """Where the Q-Former's tokenizer lives: InstructBLIP keeps it in a `qformer_tokenizer` subfolder."""
    if is_instructblip(qformer_name_or_path, revision):
        return qformer_name_or_path, "qformer_tokenizer"
    if os.path.isdir(qformer_name_or_path) and os.path.isdir(os.path.join(qformer_name_or_path, "qformer_tokenizer")):
        return qformer_name_or_path, "qformer_tokenizer"
    return qformer_name_or_path, None
