"""EmoFusion: the fusion transformer of "VLLMs Provide Better Context for Emotion Understanding
Through Common Sense Reasoning" (Xenos et al., arXiv 2404.07078).

A vision encoder E_V turns the (subject-marked) image into tokens; learnable queries and the
VLLM's description run through transformers' instruction-aware Q-Former (`InstructBlipQFormerModel`:
one self-attention over [queries ; text], cross-attention from the queries to the vision tokens,
separate feed-forward layers), and the pooled output queries go through a linear head. The
Q-Former is used as transformers ships it, not re-implemented (`EmoFusionQFormer` only corrects which
of its recorded attention weights count as self-attention).

Attention weights (`output_attentions=True`) are computed by the eager attention path only: load with
`from_pretrained(..., attn_implementation="eager")` or call `model.set_attn_implementation("eager")`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import AutoModel, InstructBlipQFormerModel, PreTrainedModel
from transformers import initialization as init
from transformers.models.instructblip.modeling_instructblip import InstructBlipQFormerMultiHeadAttention
from transformers.utils import ModelOutput, logging
from transformers.utils.output_capturing import OutputRecorder

from .configuration_emofusion import EmoFusionConfig


def _find(module: nn.Module, path: str) -> nn.Module | nn.Parameter | None:
    """The sub-module or parameter at `path` (dotted), or None."""
    try:
        return module.get_submodule(path)
    except AttributeError:
        pass
    try:
        return module.get_parameter(path)
    except AttributeError:
        return None


logger = logging.get_logger(__name__)


class _OutputWithVisionOutputs(ModelOutput):
    """The outputs below keep the vision encoder's own output; `to_tuple` turns it into a tuple too, as
    InstructBLIP's outputs do."""

    def to_tuple(self) -> tuple[Any]:
        return tuple(self[k] if k != "vision_outputs" else self[k].to_tuple() for k in self.keys())


@dataclass
class EmoFusionModelOutput(_OutputWithVisionOutputs):
    """
    Output of [`EmoFusionModel`]. Like InstructBLIP's, the parts' own outputs are kept: the Q-Former's hidden states
    and attentions (self and cross separately) and the vision encoder's output, each returned only when asked for.

    Args:
        last_hidden_state (`torch.FloatTensor` of shape `(batch_size, num_query_tokens, hidden_size)`):
            The output query states of the Q-Former.
        pooler_output (`torch.FloatTensor` of shape `(batch_size, hidden_size)`):
            The query states pooled as `config.pooling` says.
        vision_hidden_states (`torch.FloatTensor` of shape `(batch_size, [frames,] tokens, vision_width)`):
            The vision encoder's tokens before projection (what the feature cache stores). `None` in
            text-only mode.
        text_hidden_states (`torch.FloatTensor` of shape `(batch_size, text_length, hidden_size)`):
            The Q-Former's output at the description tokens, `None` in vision-only mode.
        hidden_states (`tuple(torch.FloatTensor)`, returned when `output_hidden_states=True`):
            The Q-Former's embedding output and the output of each of its layers, each of shape
            `(batch_size, num_query_tokens + text_length, hidden_size)`.
        attentions (`tuple(torch.FloatTensor)`, returned when `output_attentions=True`):
            The Q-Former's self-attention weights, one `(batch_size, num_heads, num_query_tokens + text_length,
            num_query_tokens + text_length)` tensor per layer.
        cross_attentions (`tuple(torch.FloatTensor)`, returned when `output_attentions=True`):
            The queries' attention weights over the vision tokens, one `(batch_size, num_heads, num_query_tokens,
            memory_length)` tensor per cross-attention layer (every `qformer_config.cross_attention_frequency`-th).
            Only the eager attention path computes attention weights: load the model with
            `attn_implementation="eager"` or call `model.set_attn_implementation("eager")` to get them.
        vision_outputs (`BaseModelOutputWithPooling`, returned when `output_attentions` or `output_hidden_states`
            is set and the vision encoder ran): the vision encoder's own output, with its `hidden_states` and
            `attentions`. For clips it covers the real frames only, stacked on the batch dimension.
    """

    last_hidden_state: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    vision_hidden_states: torch.FloatTensor | None = None
    text_hidden_states: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    cross_attentions: tuple[torch.FloatTensor, ...] | None = None
    vision_outputs: ModelOutput | None = None


@dataclass
class EmoFusionClassifierOutput(_OutputWithVisionOutputs):
    """
    Output of [`EmoFusionForEmotionClassification`].

    Args:
        loss (`torch.FloatTensor` of shape `(1,)`, returned when `labels` or `vad_labels` are given):
            Classification loss (BCE-with-logits for multi-label, cross-entropy for single-label, mean squared
            error for regression) plus `config.vad_loss_weight` times the VAD L1 loss.
        logits (`torch.FloatTensor` of shape `(batch_size, num_labels)`): class scores before
            sigmoid/softmax (the predicted values for regression).
        vad (`torch.FloatTensor` of shape `(batch_size, num_vad)`): valence/arousal/dominance
            predictions when the model has a VAD head.
        pooled_output (`torch.FloatTensor` of shape `(batch_size, hidden_size)`): pooled queries.
        query_states (`torch.FloatTensor` of shape `(batch_size, num_query_tokens, hidden_size)`):
            output query states of the Q-Former.
        vision_hidden_states (`torch.FloatTensor`): see [`EmoFusionModelOutput`].
        hidden_states, attentions, cross_attentions, vision_outputs: see [`EmoFusionModelOutput`].
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    vad: torch.FloatTensor | None = None
    pooled_output: torch.FloatTensor | None = None
    query_states: torch.FloatTensor | None = None
    vision_hidden_states: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    cross_attentions: tuple[torch.FloatTensor, ...] | None = None
    vision_outputs: ModelOutput | None = None


# Parts of a vision encoder that only compute its `pooler_output` (or serve its pre-training). EmoFusion reads
# `last_hidden_state`, so
# these never reach the loss; they are frozen, so that distributed training (DDP with
# find_unused_parameters=False, FSDP) finds no parameter without a gradient. Paths are relative to the
# encoder (the first that exists is used); a top-level `pooler` (ViT and most encoders built on BERT's layout) is
# handled generically.
POOLING_ONLY_MODULES = {
    # Both layouts: transformers 5.x flattens some vision models (CLIP's) to the transformer's own modules.
    "clip_vision_model": ("post_layernorm", "vision_model.post_layernorm"),
    "chinese_clip_vision_model": ("post_layernorm", "vision_model.post_layernorm"),
    "siglip_vision_model": ("head", "vision_model.head"),
    "siglip2_vision_model": ("head", "vision_model.head"),
    # DINOv2's mask token only replaces masked patches in self-supervised pre-training (`bool_masked_pos`).
    "dinov2": ("embeddings.mask_token",),
}

# The attention back-ends the flags below name: a model supports one when each of its parts does.
ATTENTION_SUPPORT_FLAGS = (
    "_supports_sdpa",
    "_supports_flash_attn",
    "_supports_flex_attn",
    "_supports_attention_backend",
)


class EmoFusionQFormer(InstructBlipQFormerModel):
    """transformers' InstructBLIP Q-Former as it ships, but for which attention weights count as self-attention.

    Its recorder takes every `InstructBlipQFormerMultiHeadAttention` under a module named `attention`, and the
    cross-attention block holds one under that name too (`crossattention.attention`): the self-attentions came back
    interleaved with the cross-attentions, which are also returned on their own. Here `attentions` is the
    self-attention of each layer alone, and `cross_attentions` stays as it is.
    """

    _can_record_outputs = {
        **InstructBlipQFormerModel._can_record_outputs,
        "attentions": [
            OutputRecorder(InstructBlipQFormerMultiHeadAttention, index=1, layer_name="attention.attention")
        ],
    }


class EmoFusionPreTrainedModel(PreTrainedModel):
    config: EmoFusionConfig
    config_class = EmoFusionConfig
    base_model_prefix = "emofusion"
    main_input_name = "pixel_values"
    input_modalities = ("image", "text")
    supports_gradient_checkpointing = True
    # The class flags are the Q-Former's (InstructBlipQFormerModel); each instance narrows them to what its
    # vision encoder supports as well (`_adopt_parts_flags`), and `_no_split_modules` becomes the union of the
    # parts' own lists, kept to the classes the model really has.
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _can_compile_fullgraph = True
    _no_split_modules = []

    def _init_weights(self, module):
        super()._init_weights(module)
        std = self.config.initializer_range
        if isinstance(module, EmoFusionModel):
            init.normal_(module.query_tokens, mean=0.0, std=std)
            if module.null_vision_token is not None:
                init.normal_(module.null_vision_token, mean=0.0, std=std)

    @torch.no_grad()
    @init.guard_torch_init_functions()
    def initialize_weights(self):
        """
        `PreTrainedModel.initialize_weights`, dispatching each sub-model (the vision encoder, the Q-Former) to its
        own `_init_weights` on every path: `from_config`, `from_pretrained` with missing weights, the meta device.

        transformers treats every module of an out-of-tree model as custom code, and custom code's modules that hold
        no parameter of their own (CLIP's attention and MLP blocks) are then taken as already initialised: their
        family's init is skipped and the blanket `initializer_range` of the layers inside stays. Here each
        sub-model runs its own initialisation as it would on its own; EmoFusion's own `_init_weights` writes through
        `transformers.initialization` alone, so it never overwrites a loaded weight either.
        """

        def apply(module: nn.Module, fn, is_custom_code: bool):
            for child in module.children():
                if isinstance(child, PreTrainedModel):
                    # EmoFusion's own models write through `init.*`; anyone else's custom code keeps the guard.
                    custom = child.is_custom_code() and type(child).__module__ != __name__
                    apply(child, child._initialize_weights, custom)
                else:
                    apply(child, fn, is_custom_code)
            fn(module, is_custom_code)

        apply(self, self._initialize_weights, False)

    def _adopt_parts_flags(self, parts: list[PreTrainedModel]) -> None:
        """Attention-support flags and `_no_split_modules` from the parts this instance really has."""
        for flag in ATTENTION_SUPPORT_FLAGS:
            setattr(self, flag, getattr(type(self), flag) and all(getattr(part, flag, False) for part in parts))
        present = {type(module).__name__ for module in self.modules()}
        no_split = set(self._no_split_modules or [])
        for part in parts:
            no_split.update(part._no_split_modules or [])
        self._no_split_modules = {name for name in no_split if name in present}

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        """`PreTrainedModel.from_pretrained`, with the parts that never train frozen again (see
        `EmoFusionModel._set_trainable_parts`): loading replaces the parameters, and with them their
        `requires_grad`."""
        loaded = super().from_pretrained(*args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded  # output_loading_info=True
        for module in model.modules():
            if isinstance(module, EmoFusionModel):
                module._set_trainable_parts()
        return loaded

    def save_pretrained(self, save_directory, *args, **kwargs):
        """`PreTrainedModel.save_pretrained`, plus the "emotion-in-context" pipeline code and its
        `custom_pipelines` entry, so that every saved or pushed checkpoint (the Trainer's too) loads
        with `pipeline("emotion-in-context", model=dir, trust_remote_code=True)`."""
        super().save_pretrained(save_directory, *args, **kwargs)
        if kwargs.get("is_main_process", True):
            from .pipeline_emofusion import save_pipeline_files

            save_pipeline_files(save_directory, self.config)

    @classmethod
    def from_pretrained_parts(
        cls,
        vision_model_name_or_path: str,
        qformer_name_or_path: str | None = None,
        *,
        revision: str | None = None,
        qformer_revision: str | None = None,
        **config_kwargs,
    ):
        r"""
        Compose a new model from a pretrained vision encoder and a pretrained Q-Former initialisation.

        Args:
            vision_model_name_or_path: any transformers vision checkpoint, or a CLIP/SigLIP-style
                dual encoder whose vision tower is used (e.g. `"openai/clip-vit-large-patch14"`).
            qformer_name_or_path: a BERT checkpoint (BLIP-2 recipe: embeddings, self-attention and
                both feed-forward branches copied, cross-attention new; e.g. `"bert-base-uncased"`),
                an InstructBLIP checkpoint (its Q-Former and query tokens; a projection maps the
                vision width to the Q-Former's), or None for a randomly initialised Q-Former.
            config_kwargs: [`EmoFusionConfig`] fields (`id2label`, `problem_type`, `modality`, ...).

        Example:

        ```python
        >>> model = EmoFusionForEmotionClassification.from_pretrained_parts(
        ...     "openai/clip-vit-large-patch14", "bert-base-uncased", id2label=id2label_for("emotic"), num_vad=3
        ... )  # doctest: +SKIP
        ```
        """
        from .pretrained_parts import (
            bert_to_qformer_state_dict,
            instructblip_qformer_parts,
            is_instructblip,
            load_vision_model,
            qformer_config_from_bert,
        )

        vision_model = load_vision_model(vision_model_name_or_path, revision=revision)
        vision_width = vision_model.config.hidden_size
        qformer_state, query_tokens = None, None
        qformer_config = config_kwargs.pop("qformer_config", None)
        if qformer_name_or_path is not None and is_instructblip(qformer_name_or_path, qformer_revision):
            qformer_config, qformer_state, query_tokens = instructblip_qformer_parts(
                qformer_name_or_path, qformer_revision
            )
            config_kwargs.setdefault("num_query_tokens", query_tokens.shape[1])
        elif qformer_name_or_path is not None:
            bert = AutoModel.from_pretrained(qformer_name_or_path, revision=qformer_revision)
            qformer_config = qformer_config_from_bert(bert.config, vision_width)
            qformer_state = bert_to_qformer_state_dict(bert.state_dict())
        config = EmoFusionConfig(vision_config=vision_model.config, qformer_config=qformer_config, **config_kwargs)
        model = cls(config)

        base = getattr(model, cls.base_model_prefix, model)
        if base.vision_model is not None:
            base.vision_model.load_state_dict(vision_model.state_dict())
        if qformer_state is not None:
            missing, unexpected = base.qformer.load_state_dict(qformer_state, strict=False)
            if unexpected:
                raise ValueError(
                    f"{qformer_name_or_path}: weights that fit no Q-Former parameter: {unexpected[:5]}..."
                )
            logger.info(
                f"Q-Former initialised from {qformer_name_or_path}; newly initialised: {len(missing)} tensors."
            )
        if query_tokens is not None:
            if query_tokens.shape == base.query_tokens.shape:
                base.query_tokens.data.copy_(query_tokens)
            else:
                logger.warning(
                    f"num_query_tokens={config.num_query_tokens} differs from {qformer_name_or_path}'s: new queries."
                )
        return model.eval()  # like from_pretrained; call .train() to fine-tune


class EmoFusionModel(EmoFusionPreTrainedModel):
    """Vision encoder + learnable queries + instruction-aware Q-Former, without a head."""

    def __init__(self, config: EmoFusionConfig):
        super().__init__(config)
        qformer_config = config.qformer_config
        vision_width = config.vision_config.hidden_size
        memory_width = qformer_config.encoder_hidden_size

        # Text-only mode never looks at pixels, so it needs no encoder at all.
        self.vision_model = AutoModel.from_config(config.vision_config) if config.modality != "text" else None
        self.vision_projection = nn.Linear(vision_width, memory_width) if vision_width != memory_width else None
        self.frame_position_embeddings = (
            nn.Embedding(config.num_frames, memory_width) if config.num_frames > 1 else None
        )
        # Cross-attention needs some memory: in text-only mode it is one learned token that
        # carries no pixel information (zero-length memory crashes the Q-Former).
        self.null_vision_token = nn.Parameter(torch.zeros(1, 1, memory_width)) if config.modality == "text" else None
        self.query_tokens = nn.Parameter(torch.zeros(1, config.num_query_tokens, qformer_config.hidden_size))
        self.qformer = EmoFusionQFormer(qformer_config)

        self.post_init()
        self._adopt_parts_flags([part for part in (self.vision_model, self.qformer) if part is not None])
        self._set_trainable_parts()

    def _set_trainable_parts(self) -> None:
        """Freeze what `config.freeze_vision` says and what can never get a gradient. Run at construction and
        again after `from_pretrained`, whose loading puts fresh (trainable) parameters in place."""
        self._freeze_parts_off_the_loss_path()
        if self.config.freeze_vision and self.vision_model is not None:
            self.vision_model.requires_grad_(False)

    def _freeze_parts_off_the_loss_path(self) -> None:
        """Parameters that can never receive a gradient are frozen (see `POOLING_ONLY_MODULES`): the vision
        encoder's pooling-only parts, and in vision-only mode the Q-Former's text branch (its embeddings and the
        feed-forward layers only description tokens go through)."""
        unused = []
        if self.vision_model is not None:
            paths = POOLING_ONLY_MODULES.get(self.config.vision_config.model_type, ())
            unused += [part for part in (_find(self.vision_model, path) for path in paths) if part is not None][:1]
            pooler = getattr(self.vision_model, "pooler", None)
            if isinstance(pooler, nn.Module):
                unused.append(pooler)
        if self.config.modality == "vision":
            unused += [self.qformer.embeddings.word_embeddings, self.qformer.embeddings.position_embeddings]
            for layer in self.qformer.encoder.layer:
                unused += [layer.intermediate, layer.output]
        for part in unused:
            part.requires_grad_(False)

    def get_input_embeddings(self) -> nn.Module:
        return self.qformer.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module):
        self.qformer.set_input_embeddings(value)

    def get_vision_features(self, pixel_values: torch.Tensor, frame_mask: torch.Tensor | None = None) -> torch.Tensor:
        """
        The vision encoder's `last_hidden_state` for images `(batch, channels, height, width)` ->
        `(batch, tokens, width)`, or clips `(batch, frames, channels, height, width)` ->
        `(batch, frames, tokens, width)`; padded frames (`frame_mask == 0`) are not encoded and
        come back as zeros. This is what a feature cache stores for a frozen encoder.
        """
        return self._encode_vision(pixel_values, frame_mask)[0]

    def _encode_vision(self, pixel_values, frame_mask=None, **vision_kwargs):
        """`get_vision_features`, with the encoder's own output (hidden states, attentions) beside it."""
        if self.vision_model is None:
            raise ValueError("This model is text-only (config.modality='text'): it has no vision encoder.")
        grad = torch.is_grad_enabled() and not self.config.freeze_vision
        with torch.set_grad_enabled(grad):
            if pixel_values.dim() == 4:
                outputs = self.vision_model(pixel_values=pixel_values, **vision_kwargs)
                return outputs.last_hidden_state, outputs
            if pixel_values.dim() != 5:
                raise ValueError(
                    "pixel_values must be (batch, channels, height, width) or (batch, frames, channels, height, "
                    f"width), got shape {tuple(pixel_values.shape)}."
                )
            batch, frames = pixel_values.shape[:2]
            if frame_mask is None:
                frame_mask = torch.ones(batch, frames, dtype=torch.bool, device=pixel_values.device)
            if torch.compiler.is_compiling():
                # A compiled graph cannot select frames by value: every frame is encoded, padding zeroed after.
                outputs = self.vision_model(pixel_values=pixel_values.flatten(0, 1), **vision_kwargs)
                encoded = outputs.last_hidden_state.unflatten(0, (batch, frames))
                return encoded * frame_mask[:, :, None, None].to(encoded.dtype), outputs
            valid = frame_mask.bool()
            outputs = self.vision_model(pixel_values=pixel_values[valid], **vision_kwargs)
            encoded = outputs.last_hidden_state  # (valid, N, D)
            features = encoded.new_zeros(batch, frames, *encoded.shape[1:])
            features[valid] = encoded
            return features, outputs

    def _vision_memory(self, vision_hidden_states: torch.Tensor, frame_mask: torch.Tensor | None):
        """Project vision tokens to the Q-Former's memory width; clips become one long memory."""
        memory = vision_hidden_states
        if self.vision_projection is not None:
            memory = self.vision_projection(memory)
        if memory.dim() == 3:
            return memory, None
        batch, frames, tokens, width = memory.shape
        if frames > self.config.num_frames:
            raise ValueError(
                f"Got clips of {frames} frames: this model takes at most config.num_frames={self.config.num_frames}."
            )
        if self.frame_position_embeddings is not None:
            positions = torch.arange(frames, device=memory.device)
            memory = memory + self.frame_position_embeddings(positions)[None, :, None, :]
        if frame_mask is None:
            frame_mask = torch.ones(batch, frames, dtype=torch.long, device=memory.device)
        memory_mask = frame_mask.long().repeat_interleave(tokens, dim=1)  # (B, T*N)
        return memory.reshape(batch, frames * tokens, width), memory_mask

    def forward(
        self,
        pixel_values: torch.FloatTensor | None = None,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.LongTensor | None = None,
        frame_mask: torch.LongTensor | None = None,
        vision_hidden_states: torch.FloatTensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> EmoFusionModelOutput | tuple:
        r"""
        pixel_values (`torch.FloatTensor` of shape `(batch, channels, height, width)` or `(batch, frames,
            channels, height, width)`): the subject-marked image(s); not needed when `vision_hidden_states`
            is given or in text-only mode.
        input_ids, attention_mask (`torch.LongTensor` of shape `(batch, text_length)`): the tokenised
            description; ignored in vision-only mode.
        frame_mask (`torch.LongTensor` of shape `(batch, frames)`): 1 for real frames, 0 for padding.
        vision_hidden_states (`torch.FloatTensor`): precomputed `get_vision_features(pixel_values)`.
        output_attentions, output_hidden_states (`bool`): also return the Q-Former's and the vision encoder's
            attentions / hidden states (see [`EmoFusionModelOutput`]; attentions need the eager attention path).
        kwargs: passed on to the Q-Former and the vision encoder (e.g. attention back-end arguments).
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if output_attentions is None:
            output_attentions = self.config.output_attentions
        if output_hidden_states is None:
            output_hidden_states = self.config.output_hidden_states
        part_kwargs = {**kwargs, "output_attentions": output_attentions, "output_hidden_states": output_hidden_states}
        modality = self.config.modality
        use_text = modality in ("fusion", "text")
        use_vision = modality in ("fusion", "vision")
        if use_text and input_ids is None:
            raise ValueError(f"A {modality!r} model needs the description's input_ids (and attention_mask).")

        # 1. Vision tokens: the cross-attention memory of the queries.
        vision_outputs = None
        if use_vision:
            if vision_hidden_states is None:
                if pixel_values is None:
                    raise ValueError(f"A {modality!r} model needs pixel_values or vision_hidden_states.")
                vision_hidden_states, vision_outputs = self._encode_vision(pixel_values, frame_mask, **part_kwargs)
            memory, memory_mask = self._vision_memory(vision_hidden_states, frame_mask)
        else:
            batch = input_ids.shape[0]
            memory, memory_mask = self.null_vision_token.expand(batch, -1, -1), None
            vision_hidden_states = None
        batch = memory.shape[0]
        memory = memory.to(self.query_tokens.dtype)

        # 2. Queries (+ description tokens) through the Q-Former, queries cross-attending to the memory.
        query_embeds = self.query_tokens.expand(batch, -1, -1)
        num_queries = query_embeds.shape[1]
        if use_text:
            if attention_mask is None:
                attention_mask = torch.ones_like(input_ids)
            query_mask = torch.ones(batch, num_queries, dtype=attention_mask.dtype, device=attention_mask.device)
            qformer_mask = torch.cat([query_mask, attention_mask], dim=1)
        else:
            input_ids, qformer_mask = None, None
        qformer_outputs = self.qformer(
            input_ids=input_ids,
            attention_mask=qformer_mask,
            query_embeds=query_embeds,
            encoder_hidden_states=memory,
            encoder_attention_mask=memory_mask,
            return_dict=True,
            **part_kwargs,
        )
        sequence_output = qformer_outputs.last_hidden_state
        query_states = sequence_output[:, :num_queries, :]  # (B, Q, H)
        text_states = sequence_output[:, num_queries:, :] if use_text else None

        # 3. Pool the output queries.
        pooled = query_states.mean(dim=1) if self.config.pooling == "mean" else query_states[:, 0]

        output = EmoFusionModelOutput(
            last_hidden_state=query_states,
            pooler_output=pooled,
            vision_hidden_states=vision_hidden_states,
            text_hidden_states=text_states,
            hidden_states=qformer_outputs.hidden_states,
            attentions=qformer_outputs.attentions,
            cross_attentions=qformer_outputs.cross_attentions,
            vision_outputs=vision_outputs if (output_attentions or output_hidden_states) else None,
        )
        return output if return_dict else output.to_tuple()


class EmoFusionForEmotionClassification(EmoFusionPreTrainedModel):
    """[`EmoFusionModel`] with a linear emotion head (and an optional VAD regression head)."""

    def __init__(self, config: EmoFusionConfig):
        super().__init__(config)
        hidden = config.qformer_config.hidden_size
        self.emofusion = EmoFusionModel(config)
        self.dropout = nn.Dropout(config.qformer_config.hidden_dropout_prob)
        self.classifier = nn.Linear(hidden, config.num_labels)
        self.vad_head = nn.Linear(hidden, config.num_vad) if config.num_vad > 0 else None
        self.post_init()
        self._adopt_parts_flags([self.emofusion])

    def get_input_embeddings(self) -> nn.Module:
        return self.emofusion.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module):
        self.emofusion.set_input_embeddings(value)

    def get_vision_features(self, pixel_values: torch.Tensor, frame_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.emofusion.get_vision_features(pixel_values, frame_mask)

    def _vad_center_and_scale(self) -> tuple[float, float]:
        """The middle and half-width of `config.vad_range`: the VAD head works in [-1, 1] around the middle."""
        low, high = self.config.vad_range
        return (high + low) / 2, (high - low) / 2

    def compute_loss(self, logits, labels=None, vad=None, vad_labels=None) -> torch.Tensor | None:
        """Loss chosen by `config.problem_type` (as transformers' image classifiers choose it), plus the masked
        VAD L1 loss."""
        loss = None
        if labels is not None:
            if self.config.problem_type == "single_label_classification":
                loss = nn.functional.cross_entropy(logits, labels.long().view(-1))
            elif self.config.problem_type == "regression":
                labels = labels.to(logits.dtype)
                if self.config.num_labels == 1:
                    loss = nn.functional.mse_loss(logits.squeeze(-1), labels.reshape(logits.shape[0]))
                else:
                    loss = nn.functional.mse_loss(logits, labels)
            else:
                loss = nn.functional.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
        if vad is not None and vad_labels is not None:
            # Missing VAD values (NaN, e.g. some EMOTIC persons) are left out of the loss, which is
            # taken on the normalised scale so that it weighs like the classification loss.
            _, scale = self._vad_center_and_scale()
            vad_labels = vad_labels.to(vad.dtype)
            # Masked mean, not boolean indexing, so that the loss compiles into one graph; a batch with no
            # VAD value at all contributes 0.
            present = ~torch.isnan(vad_labels)
            errors = torch.where(present, (vad - torch.nan_to_num(vad_labels)).abs() / scale, 0.0)
            vad_loss = errors.sum() / present.sum().clamp(min=1)
            vad_loss = self.config.vad_loss_weight * vad_loss
            loss = vad_loss if loss is None else loss + vad_loss
        return loss

    def forward(
        self,
        pixel_values: torch.FloatTensor | None = None,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.LongTensor | None = None,
        frame_mask: torch.LongTensor | None = None,
        vision_hidden_states: torch.FloatTensor | None = None,
        labels: torch.Tensor | None = None,
        vad_labels: torch.FloatTensor | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> EmoFusionClassifierOutput | tuple:
        r"""
        labels (`torch.Tensor`): multi-label: float multi-hot `(batch, num_labels)`; single-label: class
            indices `(batch,)`; regression: float targets `(batch, num_labels)` (e.g. BoLD's soft scores).
        vad_labels (`torch.FloatTensor` of shape `(batch, num_vad)`): VAD targets, NaN where missing.

        Example:

        ```python
        >>> from emofusion.testing import tiny_classifier
        >>> model, processor = tiny_classifier()
        >>> from PIL import Image
        >>> inputs = processor(images=Image.new("RGB", (64, 48)), bbox=[4, 4, 40, 40],
        ...                    text="the person in the red box looks happy", return_tensors="pt")
        >>> model(**inputs).logits.shape
        torch.Size([1, 26])
        ```
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        # 1-2. Vision encoder, queries and description through the Q-Former.
        outputs = self.emofusion(
            pixel_values=pixel_values,
            input_ids=input_ids,
            attention_mask=attention_mask,
            frame_mask=frame_mask,
            vision_hidden_states=vision_hidden_states,
            return_dict=True,
            **kwargs,
        )
        # 3. Heads on the pooled queries; loss only when targets are given.
        pooled = self.dropout(outputs.pooler_output)
        logits = self.classifier(pooled)
        vad = None
        if self.vad_head is not None:
            # Reported on the original scale of config.vad_range.
            center, scale = self._vad_center_and_scale()
            vad = self.vad_head(pooled) * scale + center
        loss = self.compute_loss(logits, labels, vad, vad_labels)

        output = EmoFusionClassifierOutput(
            loss=loss,
            logits=logits,
            vad=vad,
            pooled_output=outputs.pooler_output,
            query_states=outputs.last_hidden_state,
            vision_hidden_states=outputs.vision_hidden_states,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            cross_attentions=outputs.cross_attentions,
            vision_outputs=outputs.vision_outputs,
        )
        return output if return_dict else output.to_tuple()
