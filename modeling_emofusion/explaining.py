"""Explanations of an EmoFusion prediction: where in the picture, and which words of the description.

For one subject and one label (its logit):

- **Image heatmap: gradient-weighted cross-attention.** The queries read the picture only through the
  Q-Former's cross-attention to the vision tokens. Each cross-attention map `A` (heads, queries, tokens)
  is weighted by the gradient of the label's logit with respect to it, `relu(A * dlogit/dA)` (Chefer et
  al., 2021, "Generic attention-model explainability"): a query counts as much as its attention,
  through the gradient, raises the logit. The result is averaged over heads, summed over queries and
  over the cross-attention layers, which gives one relevance per vision token. The encoder's class and
  register tokens (the tokens before the patch grid) are left out, the patch grid is upsampled
  bilinearly to the picture the model saw (the whole picture, or the subject's box in `"crop"`
  marking), and then to the picture's own pixels. A clip gets one map per frame.
- **Word attributions: integrated gradients** (captum's `LayerIntegratedGradients`) on the Q-Former's word
  embeddings, from a baseline where every description token is `[PAD]` (the special tokens kept), with
  the vision tokens held fixed. Word pieces are summed into the words of the description.

Only the eager attention path returns attention weights: the model is switched to it for the
explanation and switched back afterwards. This file is saved next to checkpoints, so it imports only
torch, transformers, numpy and the standard library at module level (captum inside the function
that needs it).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass
class PictureView:
    """How one picture (or clip frame) the model saw sits in the photo: sizes and the crop box, if any.

    `working_size` is the (width, height) of the picture the processor marked, `original_size` that of
    the photo, `crop_box` the box (in working pixels) the model saw alone in `"crop"` marking, else None.
    """

    working_size: tuple[int, int]
    original_size: tuple[int, int]
    crop_box: Sequence[float] | None = None


@contextlib.contextmanager
def eager_attention(model: nn.Module):
    """Run `model` with the eager attention path (the only one that returns attention weights), then restore it."""
    previous = getattr(model.config, "_attn_implementation", None)
    switch = previous not in (None, "eager")
    if switch:
        model.set_attn_implementation("eager")
    try:
        yield model
    finally:
        if switch:
            model.set_attn_implementation(previous)


def _patch_size(model) -> int | None:
    vision_config = getattr(model.config, "vision_config", None)
    size = getattr(vision_config, "patch_size", None)
    if isinstance(size, (list, tuple)):
        size = size[0]
    return int(size) if size else None


def patch_grid(num_tokens: int, pixel_size: tuple[int, int], patch_size: int | None) -> tuple[int, int, int]:
    """(prefix tokens, grid rows, grid columns) of a vision encoder's `num_tokens` output tokens.

    The grid is the pixel input's (height, width) over the patch size; the tokens before it are the class
    (and register) tokens. Without a patch size a square grid is assumed.
    """
    height, width = pixel_size
    if patch_size:
        rows, cols = height // patch_size, width // patch_size
        if 0 <= num_tokens - rows * cols <= num_tokens:
            return num_tokens - rows * cols, rows, cols
    for prefix in range(0, min(num_tokens, 17)):
        side = math.isqrt(num_tokens - prefix)
        if side * side == num_tokens - prefix:
            return prefix, side, side
    raise ValueError(f"Cannot lay {num_tokens} vision tokens out as a patch grid (input {height}x{width}).")


def grid_to_pixels(grid: np.ndarray, view: PictureView) -> np.ndarray:
    """A patch-grid map (rows, cols) as a (height, width) map over the photo's own pixels."""
    grid_t = torch.as_tensor(grid, dtype=torch.float32)[None, None]
    width, height = view.working_size
    if view.crop_box is not None:
        x1, y1, x2, y2 = view.crop_box
        x1, y1 = max(int(math.floor(x1)), 0), max(int(math.floor(y1)), 0)
        x2, y2 = min(int(math.ceil(x2)), width), min(int(math.ceil(y2)), height)
        inside = nn.functional.interpolate(grid_t, size=(y2 - y1, x2 - x1), mode="bilinear", align_corners=False)
        working = torch.zeros(1, 1, height, width)
        working[..., y1:y2, x1:x2] = inside
    else:
        working = nn.functional.interpolate(grid_t, size=(height, width), mode="bilinear", align_corners=False)
    if tuple(view.original_size) != (width, height):
        original_w, original_h = view.original_size
        working = nn.functional.interpolate(working, size=(original_h, original_w), mode="bilinear")
    return working[0, 0].clamp(min=0).numpy()


def _forward_kwargs(inputs: dict) -> dict:
    keys = ("pixel_values", "input_ids", "attention_mask", "frame_mask", "vision_hidden_states")
    return {k: inputs[k] for k in keys if inputs.get(k) is not None}


def vision_token_relevance(model, inputs: dict, label_ids: Sequence[int]) -> torch.Tensor | None:
    """Gradient-weighted cross-attention relevance of every memory token: (labels, memory length), or None.

    None for a text-only model (its memory is one learned token, not the picture).
    """
    if model.config.modality == "text":
        return None
    with eager_attention(model), torch.enable_grad():
        outputs = model(**_forward_kwargs(inputs), output_attentions=True, return_dict=True)
        attentions = [a for a in outputs.cross_attentions if a is not None]
        if not attentions:
            raise RuntimeError("The model returned no cross-attention weights under the eager attention path.")
        relevance = []
        for label in label_ids:
            grads = torch.autograd.grad(outputs.logits[0, label], attentions, retain_graph=True, allow_unused=True)
            total = torch.zeros(attentions[0].shape[-1])
            for attention, grad in zip(attentions, grads):
                if grad is None:
                    continue
                # (heads, queries, tokens): each query's positive gradient-weighted attention.
                weighted = (attention[0] * grad[0]).clamp(min=0).mean(dim=0)
                total += weighted.sum(dim=0).detach().float().cpu()
            relevance.append(total)
    return torch.stack(relevance)


def heatmaps_from_relevance(
    relevance: torch.Tensor, inputs: dict, views: Sequence[PictureView], patch_size: int | None
) -> list[np.ndarray]:
    """One memory's token relevance (memory length,) -> one heatmap per real picture/frame, over its pixels.

    Each map is scaled to a maximum of 1 (all zeros when nothing raised the logit).
    """
    pixel_values = inputs["pixel_values"]
    frames = pixel_values.shape[1] if pixel_values.dim() == 5 else 1
    per_frame = relevance.reshape(frames, -1)
    if pixel_values.dim() == 5 and inputs.get("frame_mask") is not None:
        per_frame = per_frame[inputs["frame_mask"][0].bool().cpu()]
    prefix, rows, cols = patch_grid(per_frame.shape[1], tuple(pixel_values.shape[-2:]), patch_size)
    maps = []
    for frame_relevance, view in zip(per_frame, views):
        grid = frame_relevance[prefix:].reshape(rows, cols).numpy()
        heatmap = grid_to_pixels(grid, view)
        peak = float(heatmap.max()) if heatmap.size else 0.0
        maps.append((heatmap / peak if peak > 0 else heatmap).astype(np.float32))
    return maps


def token_attributions(model, inputs: dict, label_ids: Sequence[int], n_steps: int = 32) -> torch.Tensor | None:
    """Integrated-gradients attribution of each description token to each label's logit: (labels, text length).

    None for a vision-only model. Needs captum (`pip install emofusion[explain]`).
    """
    if model.config.modality == "vision":
        return None
    try:
        from captum.attr import LayerIntegratedGradients
    except ImportError as error:
        raise ImportError(
            "Word attributions need captum: pip install 'emofusion[explain]' (or pip install captum)."
        ) from error
    input_ids = inputs["input_ids"]
    attention_mask = inputs.get("attention_mask")
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    vision_states, frame_mask = None, inputs.get("frame_mask")
    if model.config.modality == "fusion":
        vision_states = inputs.get("vision_hidden_states")
        if vision_states is None:
            with torch.no_grad():
                vision_states = model.get_vision_features(inputs["pixel_values"], frame_mask)

    def forward(ids, mask, states, frames):
        return model(input_ids=ids, attention_mask=mask, vision_hidden_states=states, frame_mask=frames).logits

    special = torch.zeros_like(input_ids, dtype=torch.bool)
    # [CLS] and [SEP] (first and last real token) stay; everything between becomes padding.
    lengths = attention_mask.sum(dim=1)
    special[:, 0] = True
    special[torch.arange(input_ids.shape[0], device=input_ids.device), (lengths - 1).clamp(min=0)] = True
    pad_id = model.config.qformer_config.pad_token_id or 0
    baseline = torch.where(special, input_ids, torch.full_like(input_ids, pad_id))
    lig = LayerIntegratedGradients(forward, model.get_input_embeddings())
    scores = []
    with torch.enable_grad():
        for label in label_ids:
            attributions = lig.attribute(
                input_ids,
                baselines=baseline,
                additional_forward_args=(attention_mask, vision_states, frame_mask),
                target=int(label),
                n_steps=n_steps,
            )
            scores.append(attributions.sum(dim=-1)[0].detach().float().cpu())
    return torch.stack(scores)


def merge_word_pieces(tokenizer, text: str, input_ids: Sequence[int], scores: Sequence[float]):
    """Token scores -> (words, word scores): pieces of one word summed, special tokens and padding left out.

    Words are spans of `text` (from the fast tokenizer's offsets); a slow tokenizer's `##` pieces are joined.
    """
    input_ids = [int(i) for i in input_ids]
    special_ids = set(getattr(tokenizer, "all_special_ids", []))
    encoding = None
    if getattr(tokenizer, "is_fast", False):
        encoding = tokenizer(text, return_offsets_mapping=True, truncation=True, max_length=len(input_ids))
        if encoding["input_ids"] != input_ids[: len(encoding["input_ids"])]:
            encoding = None
    words: list[str] = []
    word_scores: list[float] = []
    if encoding is not None:
        last = None
        spans: list[list[int]] = []
        for position, word_id in enumerate(encoding.word_ids()):
            if word_id is None:
                continue
            start, end = encoding["offset_mapping"][position]
            if word_id == last:
                spans[-1][1] = end
                word_scores[-1] += float(scores[position])
            else:
                spans.append([start, end])
                word_scores.append(float(scores[position]))
            last = word_id
        words = [text[start:end] for start, end in spans]
        return words, word_scores
    for token_id, token, score in zip(input_ids, tokenizer.convert_ids_to_tokens(input_ids), scores):
        if token_id in special_ids:
            continue
        if token.startswith("##") and words:
            words[-1] += token[2:]
            word_scores[-1] += float(score)
        else:
            words.append(token)
            word_scores.append(float(score))
    return words, word_scores


def explain_subject(
    model,
    inputs: dict,
    label_ids: Sequence[int],
    views: Sequence[PictureView] | None = None,
    tokenizer=None,
    description: str | None = None,
    n_steps: int = 32,
) -> list[dict]:
    """Explain one subject's model input (a batch of one) for each label in `label_ids`.

    Returns one dict per label: `label_id`, `heatmaps` (a list with one (height, width) float32 array per
    picture or real clip frame, over `views`' original pixels, max 1; None for a text-only model), and
    `words` / `word_attributions` (the description's words and their integrated-gradients scores, which
    sum to about the logit's change from the all-padding baseline; None for a vision-only model).
    """
    label_ids = [int(i) for i in label_ids]
    if not label_ids:
        return []
    if model.config.modality != "text" and inputs.get("vision_hidden_states") is None:
        # The vision encoder runs once, without gradients: both methods differentiate only the Q-Former.
        with torch.no_grad():
            states = model.get_vision_features(inputs["pixel_values"], inputs.get("frame_mask"))
        inputs = {**inputs, "vision_hidden_states": states}
    relevance = vision_token_relevance(model, inputs, label_ids)
    tokens = token_attributions(model, inputs, label_ids, n_steps=n_steps)
    patch_size = _patch_size(model)
    explanations = []
    for index, label in enumerate(label_ids):
        entry: dict = {"label_id": label, "heatmaps": None, "words": None, "word_attributions": None}
        if relevance is not None:
            if views is None:
                size = tuple(inputs["pixel_values"].shape[-1:-3:-1])
                frames = inputs["pixel_values"].shape[1] if inputs["pixel_values"].dim() == 5 else 1
                views = [PictureView(size, size)] * frames
            entry["heatmaps"] = heatmaps_from_relevance(relevance[index], inputs, views, patch_size)
        if tokens is not None:
            length = int(inputs["attention_mask"][0].sum()) if inputs.get("attention_mask") is not None else None
            ids = inputs["input_ids"][0][:length].tolist()
            scores = tokens[index][:length].tolist()
            if tokenizer is not None and description is not None:
                words, word_scores = merge_word_pieces(tokenizer, description, ids, scores)
            else:
                words, word_scores = [str(i) for i in ids], scores
            entry["words"], entry["word_attributions"] = words, word_scores
        explanations.append(entry)
    return explanations


# -- the pipeline's side -----------------------------------------------------------------------------


def picture_views(picture, subject: dict, marking: str) -> list[PictureView]:
    """The `PictureView`s of one pipeline subject: its picture (a `ModelPicture`), or its clip's frames."""
    crop = marking == "crop"
    if picture is not None:
        box = subject.get("model_bbox")
        return [PictureView(picture.image.size, picture.original_size, box if crop else None)]
    return [
        PictureView(frame.size, tuple(size), box if crop else None)
        for frame, size, box in zip(subject["frames"], subject["frame_sizes"], subject["frame_boxes"])
    ]


def labels_to_explain(config, logits: torch.Tensor, requested=None) -> list[int]:
    """Label ids to explain for one subject: `requested` (names or ids), else the predicted labels.

    Predicted as the pipeline predicts (thresholds for multi-label models, arg-max otherwise); a multi-label
    subject with no label above its threshold gets its best-scored label explained.
    """
    if requested is not None:
        requested = [requested] if isinstance(requested, (str, int)) else list(requested)
        label2id = {name: int(i) for i, name in config.id2label.items()}
        ids = []
        for label in requested:
            if isinstance(label, int) and 0 <= label < config.num_labels:
                ids.append(label)
            elif label in label2id:
                ids.append(label2id[label])
            else:
                raise ValueError(
                    f"explain_labels: {label!r} is not one of this model's labels ({sorted(label2id)[:8]}...)."
                )
        return ids
    logits = logits.float()
    if config.problem_type == "single_label_classification":
        return [int(torch.argmax(logits))]
    thresholds = config.decision_thresholds or [0.5] * config.num_labels
    probs = torch.sigmoid(logits)
    ids = [i for i in range(config.num_labels) if float(probs[i]) >= thresholds[i]]
    ids.sort(key=lambda i: float(probs[i]), reverse=True)
    return ids or [int(torch.argmax(probs))]


def explain_pipeline_batch(model, processor, model_inputs: dict, logits: torch.Tensor, subject, requested=None):
    """The pipeline's `_forward` explanation step: per batch row (one subject each), `explain_subject`'s list.

    `subject` is one subject dict (batch of one, as the pipeline passes it) or a list of them (batched);
    the result has the same shape. A subject's `explain_views` (`picture_views`) places its maps.
    """
    subjects = [subject] if isinstance(subject, dict) else list(subject)
    results = []
    for row, item in enumerate(subjects):
        if item.get("placeholder"):
            results.append([])
            continue
        inputs = {k: v[row : row + 1] for k, v in model_inputs.items() if isinstance(v, torch.Tensor)}
        if inputs.get("attention_mask") is not None:
            # Batched rows are padded to the longest description: explain this one at its own length.
            length = int(inputs["attention_mask"][0].sum())
            inputs["input_ids"], inputs["attention_mask"] = (
                inputs["input_ids"][:, :length],
                inputs["attention_mask"][:, :length],
            )
        ids = labels_to_explain(model.config, logits[row], requested)
        tokenizer = getattr(processor, "tokenizer", None)
        explained = explain_subject(model, inputs, ids, item.get("explain_views"), tokenizer, item.get("description"))
        is_clip = "pixel_values" in inputs and inputs["pixel_values"].dim() == 5
        for entry in explained:
            entry["clip"] = is_clip
        results.append(explained)
    return results[0] if isinstance(subject, dict) else results


def explanation_entries(config, explanations: list[dict], scores: Sequence[float]) -> list[dict]:
    """`explain_subject`'s output as the pipeline reports it: label names, scores, one heatmap (list per clip)."""
    entries = []
    for entry in explanations:
        heatmaps = entry["heatmaps"]
        entries.append(
            {
                "label": config.id2label[entry["label_id"]],
                "score": float(scores[entry["label_id"]]),
                "heatmap": None if heatmaps is None else (heatmaps if entry.get("clip") else heatmaps[0]),
                "words": entry["words"],
                "word_attributions": entry["word_attributions"],
            }
        )
    return entries
