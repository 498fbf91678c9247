"""Data of stage 2: the dataset with its descriptions, the lazy per-example transform, the collator.

The builders (`dataset_scripts`) give one `datasets.DatasetDict` per dataset in the contract
schema (`id`, `image` or `frames`, `bbox` / `frame_bboxes`, `labels`, `vad`, ...); the description
set is joined by `id`. `ExampleTransform` runs the processor lazily (`Dataset.with_transform`) in
the data-loader workers: subject marking + image processing (or a lookup in the vision-feature
cache) and tokenisation without padding. `EmotionCollator` pads and stacks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import datasets
import torch
from transformers.utils import logging

from modeling_emofusion.labels import task_info

from .arguments import DataArguments


logger = logging.get_logger(__name__)

VALIDATION_ALIASES = ("validation", "val", "valid", "dev")


@dataclass
class LoadedData:
    """The splits to use and where the descriptions came from."""

    train: datasets.Dataset | None
    validation: datasets.Dataset | None
    test: datasets.Dataset | None
    description_metadata: dict | None
    description_source: str | None


def load_descriptions(data_args: DataArguments) -> tuple[datasets.Dataset | None, dict | None]:
    """The description rows and `description_set.json` metadata of `data_args.descriptions` (or None, None).

    The metadata is `{}` for a table of descriptions from elsewhere (CSV, JSON Lines, Parquet, ...).
    """
    if data_args.descriptions is None:
        return None, None
    from dataset_scripts import load_description_set

    rows, metadata = load_description_set(
        data_args.descriptions, revision=data_args.descriptions_revision, cache_dir=data_args.dataset_cache_dir
    )
    if not metadata:
        logger.warning(
            "Descriptions %s carry no description_set.json: user-provided, provenance unknown. The model's config "
            "records no description model, so at inference it needs a description for every person.",
            data_args.descriptions,
        )
    if metadata.get("dataset") and metadata["dataset"] != data_args.dataset:
        logger.warning(
            "Description set %s was written for %r, but the data is %r.",
            data_args.descriptions,
            metadata["dataset"],
            data_args.dataset,
        )
    return rows, metadata


def _pick_validation(dataset: datasets.DatasetDict, data_args: DataArguments, seed: int, need: bool):
    """The validation split by name (or a usual alias), else a seeded hold-out from train."""
    for name in (data_args.validation_split, *VALIDATION_ALIASES):
        if name in dataset:
            return dataset, name
    if not need or data_args.train_split not in dataset:
        return dataset, None
    fraction = data_args.validation_split_percentage / 100
    logger.warning(
        "No %r split in %s: holding out %.1f%% of %r as validation (seed %d).",
        data_args.validation_split,
        data_args.dataset,
        100 * fraction,
        data_args.train_split,
        seed,
    )
    stratify = (
        "labels" if isinstance(dataset[data_args.train_split].features.get("labels"), datasets.ClassLabel) else None
    )
    parts = dataset[data_args.train_split].train_test_split(test_size=fraction, seed=seed, stratify_by_column=stratify)
    dataset = datasets.DatasetDict(dict(dataset))
    dataset[data_args.train_split], dataset["validation"] = parts["train"], parts["test"]
    return dataset, "validation"


def _truncate(split: datasets.Dataset | None, limit: int | None) -> datasets.Dataset | None:
    if split is None or limit is None:
        return split
    return split.select(range(min(limit, len(split))))


def prepare_splits(
    dataset: datasets.DatasetDict,
    data_args: DataArguments,
    seed: int,
    do_train: bool,
    do_eval: bool,
    do_predict: bool,
    description_rows: datasets.Dataset | None = None,
) -> dict[str, datasets.Dataset | None]:
    """Pick train/validation/test from `dataset`, join descriptions (if given) and truncate as asked.

    Validation is needed to evaluate and to calibrate thresholds after training.
    """
    need_validation = do_eval or do_train
    dataset, validation_name = _pick_validation(dataset, data_args, seed, need_validation)
    if description_rows is not None:
        from dataset_scripts import join_descriptions

        dataset = join_descriptions(dataset, description_rows, on_missing=data_args.on_missing_description)
    splits = {
        "train": dataset.get(data_args.train_split) if do_train else None,
        "validation": dataset.get(validation_name) if validation_name else None,
        "test": dataset.get(data_args.test_split) if do_predict else None,
    }
    wanted = {"train": do_train, "validation": do_eval, "test": do_predict}
    for role, split in splits.items():
        if wanted[role] and split is None:
            raise ValueError(
                f"{data_args.dataset}: no {role} split (available: {sorted(dataset)}); set "
                f"--{role}_split to one of them."
            )
    splits["train"] = _truncate(splits["train"], data_args.max_train_samples)
    splits["validation"] = _truncate(splits["validation"], data_args.max_eval_samples)
    splits["test"] = _truncate(splits["test"], data_args.max_predict_samples)
    return splits


def load_data(data_args: DataArguments, seed: int, do_train: bool, do_eval: bool, do_predict: bool) -> LoadedData:
    """Build the dataset from `data_args.data_dir` with the builders and join the description set.

    A `data_dir` holding a prepared dataset (contract schema) is loaded as is: what `emofusion
    convert` writes (Parquet or Arrow) or a `DatasetDict` saved with `save_to_disk`. When such a
    dataset already has a `description` column (`emofusion convert --descriptions`), those are the
    descriptions, with the provenance convert recorded.
    """
    if data_args.data_dir is None:
        raise ValueError(
            "--data_dir is required: the folder that holds the dataset as its owners ship it, or what "
            "`emofusion convert` wrote."
        )
    from dataset_scripts import load_emotion_dataset, load_prepared_dataset
    from dataset_scripts.loading import read_conversion_summary

    rows, metadata = load_descriptions(data_args)
    source = data_args.descriptions
    dataset = load_prepared_dataset(data_args.data_dir, data_args.dataset, cache_dir=data_args.dataset_cache_dir)
    if dataset is None:
        dataset = load_emotion_dataset(
            data_args.dataset, data_args.data_dir, cache_dir=data_args.dataset_cache_dir, **data_args.builder_options
        )
    elif any("description" in split.column_names for split in dataset.values()):
        summary = read_conversion_summary(data_args.data_dir) or {}
        joined = (summary.get("arguments") or {}).get("descriptions")
        if rows is not None:
            raise ValueError(
                f"--data_dir {data_args.data_dir} already holds descriptions (a 'description' column"
                f"{f', joined from {joined}' if joined else ''}); leave out --descriptions {data_args.descriptions}, "
                "or prepare the data without descriptions."
            )
        source = joined or f"{data_args.data_dir} (its description column)"
        metadata = summary.get("description_set") or {}
    splits = prepare_splits(dataset, data_args, seed, do_train, do_eval, do_predict, description_rows=rows)
    return LoadedData(
        train=splits["train"],
        validation=splits["validation"],
        test=splits["test"],
        description_metadata=metadata,
        description_source=source,
    )


def check_columns(split: datasets.Dataset, name: str, task: str, needs_text: bool) -> None:
    """A clear error when a split lacks what training needs (pictures, box, labels, descriptions)."""
    columns = set(split.column_names)
    picture = "frames" if "frames" in columns else "image"
    missing = [c for c in ("id", picture) if c not in columns]
    if needs_text and "description" not in columns:
        missing.append("description (join a description set with --descriptions, or use --modality vision)")
    if missing:
        raise ValueError(f"Split {name!r} of {task} lacks column(s): {', '.join(missing)}; it has {sorted(columns)}.")


def warn_if_descriptions_empty(split: datasets.Dataset, name: str, source: str | None) -> None:
    """Warn when every description of a split is empty: the text branch then learns from nothing.

    This happens when the VLLM wrote nothing (its rows are `flagged`), or with
    `--on_missing_description keep` when no id of the split is in the description set.
    """
    if "description" not in split.column_names or len(split) == 0:
        return
    import pyarrow.compute as pc

    texts = split.with_format("arrow")["description"]
    blank = pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(texts)), 0)
    empty = int(pc.sum(pc.fill_null(blank, True)).as_py() or 0)
    if empty == len(split):
        logger.warning(
            "Every description of the %s (%d examples) is empty (descriptions from %s): the model gets no text, "
            "so a fusion model learns from the picture alone and a text model from nothing. Check the description "
            "set (its rows' status and reason), or train with --modality vision.",
            name,
            len(split),
            source or "the dataset's description column",
        )
    elif empty:
        logger.info("%d of the %d descriptions of the %s are empty.", empty, len(split), name)


def has_labels(split: datasets.Dataset | None, label_column: str) -> bool:
    """Whether a split carries targets (BoLD's test split has none)."""
    if split is None or label_column not in split.column_names:
        return False
    return len(split) > 0 and split[0][label_column] is not None


class ExampleTransform:
    """Turns raw examples into model inputs, lazily (`dataset.with_transform(transform)`).

    Output per example: `pixel_values` (C, H, W) or (T, C, H, W) with `frame_mask` (T,) — or
    `vision_hidden_states` (and `frame_mask`) from the feature cache —; `input_ids` (L,) of the
    description, unpadded; `labels`; `vad_labels` (3,) with NaN where unknown.

    Args:
        processor: an `EmoFusionProcessor` (marking, image processing, tokenizer).
        task: dataset name; picks the label type.
        modality: `fusion`, `vision` or `text`: which inputs to build.
        label_column: target column, or None for unlabelled data.
        with_vad: add `vad_labels` from the `vad` column.
        feature_cache: a `VisionFeatureCache` of this split, used instead of the pictures.
    """

    def __init__(
        self,
        processor,
        task: str,
        modality: str = "fusion",
        label_column: str | None = "labels",
        with_vad: bool = False,
        feature_cache=None,
    ):
        self.processor = processor
        self.single_label = task_info(task)["problem_type"] == "single_label_classification"
        self.use_vision = modality in ("fusion", "vision")
        self.use_text = modality in ("fusion", "text")
        self.label_column = label_column
        self.with_vad = with_vad
        self.feature_cache = feature_cache

    def pictures(self, batch: dict) -> list[dict[str, torch.Tensor]]:
        """Marked and processed pixels per example (what the feature cache encodes)."""
        size = len(batch["id"])
        if "frames" in batch:
            boxes = batch.get("frame_bboxes") or batch.get("bbox") or [None] * size
            out = []
            for frames, box in zip(batch["frames"], boxes):
                encoded = self.processor(videos=[frames], bbox=[box], return_tensors="pt")
                out.append({"pixel_values": encoded["pixel_values"][0], "frame_mask": encoded["frame_mask"][0]})
            return out
        boxes = batch.get("bbox") or [None] * size
        pixel_values = self.processor(images=batch["image"], bbox=list(boxes), return_tensors="pt")["pixel_values"]
        return [{"pixel_values": pixels} for pixels in pixel_values]

    def __call__(self, batch: dict) -> dict[str, list]:
        size = len(batch["id"])
        out: dict[str, list] = {}
        if self.use_vision:
            if self.feature_cache is not None:
                rows = [self.feature_cache[example_id] for example_id in batch["id"]]
            else:
                rows = self.pictures(batch)
            for key in rows[0]:
                out[key] = [row[key] for row in rows]
        if self.use_text:
            tokenizer = self.processor.tokenizer
            encoded = tokenizer(list(batch["description"]), truncation=True, max_length=self.processor.max_text_length)
            out["input_ids"] = [torch.tensor(ids, dtype=torch.long) for ids in encoded["input_ids"]]
        if self.label_column is not None:
            values = batch[self.label_column]
            dtype = torch.long if self.single_label else torch.float32
            out["labels"] = [torch.tensor(value, dtype=dtype) for value in values]
        if self.with_vad:
            out["vad_labels"] = [
                torch.tensor([math.nan] * 3 if vad is None else vad, dtype=torch.float32)
                for vad in batch.get("vad", [None] * size)
            ]
        return out


def _pad_stack(tensors: list[torch.Tensor], value: float = 0) -> torch.Tensor:
    """Stack tensors whose first dimension differs, padding it at the end with `value`."""
    longest = max(t.shape[0] for t in tensors)
    out = tensors[0].new_full((len(tensors), longest, *tensors[0].shape[1:]), value)
    for i, tensor in enumerate(tensors):
        out[i, : tensor.shape[0]] = tensor
    return out


@dataclass
class EmotionCollator:
    """Pads and stacks what `ExampleTransform` made into a model batch.

    Expects per example any of: `pixel_values` (C, H, W) or (T, C, H, W), `vision_hidden_states`
    (N, D) or (T, N, D), `frame_mask` (T,), `input_ids` (L,), `labels`, `vad_labels` (3,).
    Descriptions are right-padded with `pad_token_id` and get an `attention_mask`; clips of
    different lengths are padded with zero frames and `frame_mask` 0.

    >>> import torch
    >>> collate = EmotionCollator(pad_token_id=0)
    >>> batch = collate([{"input_ids": torch.tensor([2, 7, 3])}, {"input_ids": torch.tensor([2, 3])}])
    >>> batch["attention_mask"].tolist()
    [[1, 1, 1], [1, 1, 0]]
    """

    pad_token_id: int = 0

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        batch: dict[str, torch.Tensor] = {}
        first = features[0]
        clips = "frame_mask" in first
        for key in ("pixel_values", "vision_hidden_states"):
            if key in first:
                values = [f[key] for f in features]
                batch[key] = _pad_stack(values) if clips else torch.stack(values)
        if clips:
            batch["frame_mask"] = _pad_stack([f["frame_mask"] for f in features])
        if "input_ids" in first:
            ids = [f["input_ids"] for f in features]
            batch["input_ids"] = _pad_stack(ids, self.pad_token_id)
            batch["attention_mask"] = _pad_stack([torch.ones_like(t) for t in ids], 0)
        for key in ("labels", "vad_labels"):
            if key in first:
                batch[key] = torch.stack([f[key] for f in features])
        return batch
