"""Stage 2 end to end: data -> model -> Trainer -> thresholds -> metrics, per-class files, card, Hub.

`run_training(model_args, data_args, training_args)` is the in-process entry (the offline demo
and the tests call it); `main(argv)` parses the arguments and calls it (`train.py`, `emofusion
train`). The ending follows the transformers example scripts: train -> save_model -> metrics ->
save_state -> evaluate -> predict -> model card -> push_to_hub.
"""

from __future__ import annotations

import logging as std_logging
import os
import sys

import datasets
import transformers
from transformers import EvalPrediction, TrainingArguments, set_seed
from transformers.trainer_utils import get_last_checkpoint
from transformers.utils import logging

from emofusion.synthetic import read_synthetic_marker

from .arguments import DataArguments, ModelArguments, parse_args
from .data import EmotionCollator, ExampleTransform, LoadedData, check_columns, has_labels, load_data, prepare_splits
from .evaluation import calibrate_on, make_compute_metrics, write_split_report
from .model_card import ModelCardInfo
from .model_loading import check_provenance, load_model_and_processor, record_provenance
from .trainer import EmoFusionTrainer


logger = logging.get_logger(__name__)

# Model outputs not needed for metrics: leaving them out keeps evaluation memory to the logits.
IGNORE_KEYS = ["pooled_output", "query_states", "vision_hidden_states"]


def setup_logging(training_args: TrainingArguments) -> None:
    """The example scripts' logging block: INFO on the main process, warnings elsewhere."""
    std_logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%m/%d/%Y %H:%M:%S",
        handlers=[std_logging.StreamHandler(sys.stdout)],
    )
    if training_args.should_log:
        transformers.utils.logging.set_verbosity_info()
    level = training_args.get_process_log_level()
    for name in ("emofusion", "modeling_emofusion", "dataset_scripts"):
        std_logging.getLogger(name).setLevel(level)
    datasets.utils.logging.set_verbosity(level)
    transformers.utils.logging.set_verbosity(level)
    transformers.utils.logging.enable_default_handler()
    transformers.utils.logging.enable_explicit_format()
    logger.warning(
        "Process rank: %s, device: %s, n_gpu: %s, distributed: %s, mixed precision: %s",
        training_args.process_index,
        training_args.device,
        training_args.n_gpu,
        training_args.parallel_mode.value == "distributed",
        "bf16" if training_args.bf16 else "fp16" if training_args.fp16 else "no",
    )


def resolve_checkpoint(training_args: TrainingArguments) -> str | bool | None:
    """`--resume_from_checkpoint PATH|true`, else the last checkpoint in output_dir (an interrupted run)."""
    value = training_args.resume_from_checkpoint
    if value is not None:
        return True if str(value).lower() in ("true", "1", "yes") else value
    if os.path.isdir(training_args.output_dir):
        last = get_last_checkpoint(training_args.output_dir)
        if last is not None:
            logger.info(
                "Checkpoint detected, resuming training at %s. To start afresh, use another --output_dir.", last
            )
            return last
    return None


def _max_frames(splits: dict) -> int | None:
    """Longest clip over the splits (BoLD), read from the Arrow column without decoding frames."""
    import pyarrow.compute as pc

    longest = None
    for split in splits.values():
        if split is None or "frames" not in split.column_names or len(split) == 0:
            continue
        column = "frame_indices" if "frame_indices" in split.column_names else "frames"
        lengths = pc.list_value_length(split.with_format("arrow")[column])
        value = pc.max(lengths).as_py()
        longest = value if longest is None else max(longest, value)
    return longest


def _vision_caches(model, processor, splits: dict, model_args, training_args, task) -> dict:
    from .feature_cache import build_feature_cache

    if model.config.modality == "text":
        logger.warning("--cache_vision_features is ignored: a text-only model has no vision encoder.")
        return {}
    if not model.config.freeze_vision:
        raise ValueError(
            "--cache_vision_features needs a frozen vision encoder (--freeze_vision): the features of an encoder "
            "being trained change every step."
        )
    autocast = None
    if training_args.bf16 or training_args.fp16:
        import torch

        autocast = torch.bfloat16 if training_args.bf16 else torch.float16
    caches = {}
    for role, split in splits.items():
        if split is not None:
            caches[role] = build_feature_cache(
                model,
                processor,
                split,
                task,
                model_args.vision_cache_dir,
                dtype=model_args.vision_cache_dtype,
                batch_size=training_args.per_device_eval_batch_size,
                device=training_args.device,
                num_workers=training_args.dataloader_num_workers,
                autocast_dtype=autocast,
                split_name=role,
            )
    return caches


def _should_calibrate(mode: str, trained: bool, config) -> bool:
    if config.problem_type == "single_label_classification" or mode == "never":
        return False
    return mode == "always" or trained or config.decision_thresholds is None


def run_training(
    model_args: ModelArguments,
    data_args: DataArguments,
    training_args: TrainingArguments,
    *,
    dataset: datasets.DatasetDict | None = None,
    description_metadata: dict | None = None,
    callbacks: list | None = None,
) -> dict:
    """Train and/or evaluate as the arguments say; return every metric (`train_*`, `eval_*`, `test_*`).

    `dataset` (optional) is a `DatasetDict` in the contract schema, already joined with its
    descriptions, used instead of building one from `data_args.data_dir`; `description_metadata`
    is then its description set's `description_set.json` content. `callbacks` go to the Trainer.

    >>> metrics = run_training(*parse_args(["--model_name_or_path", "ckpt", "--dataset", "emotic",  # doctest: +SKIP
    ...     "--data_dir", "/data/EMOTIC", "--descriptions", "outputs/emotic-llava", "--output_dir", "out",
    ...     "--do_predict"]))
    >>> metrics["test_mAP"]  # doctest: +SKIP
    """
    set_seed(training_args.seed)
    task = data_args.dataset
    do_train, do_eval, do_predict = training_args.do_train, training_args.do_eval, training_args.do_predict
    if not (do_train or do_eval or do_predict):
        raise ValueError("Nothing to do: pass --do_train, --do_eval and/or --do_predict.")

    # 1. Data, with the description set joined by id.
    if dataset is None:
        loaded = load_data(data_args, training_args.seed, do_train, do_eval, do_predict)
    else:
        splits = prepare_splits(dataset, data_args, training_args.seed, do_train, do_eval, do_predict)
        loaded = LoadedData(
            splits["train"], splits["validation"], splits["test"], description_metadata, data_args.descriptions
        )
    splits = {"train": loaded.train, "validation": loaded.validation, "test": loaded.test}

    # 2. Model and processor; the config records the descriptions' provenance.
    model, processor = load_model_and_processor(
        model_args, data_args, loaded.description_metadata, num_frames=_max_frames(splits)
    )
    config = model.config
    if do_train:
        record_provenance(config, loaded.description_metadata, loaded.description_source)
    else:
        check_provenance(config, loaded.description_metadata)
    needs_text = config.modality in ("fusion", "text")
    for role, split in splits.items():
        if split is not None:
            check_columns(split, role, task, needs_text)
    if do_train and not has_labels(loaded.train, data_args.label_column):
        raise ValueError(
            f"{task}: the train split {data_args.train_split!r} has no {data_args.label_column!r} targets "
            "(--label_column names the target column)."
        )
    with_vad = config.num_vad > 0 and all(
        "vad" in split.column_names for split in splits.values() if split is not None
    )

    # The collator builds inputs from raw columns, and the VAD targets are a second label.
    if training_args.remove_unused_columns:
        logger.info("Setting remove_unused_columns=False: the transform reads the raw columns.")
        training_args.remove_unused_columns = False
    if training_args.label_names is None:
        training_args.label_names = ["labels", "vad_labels"] if with_vad else ["labels"]

    # 3. Vision features computed once when the encoder is frozen.
    caches = {}
    if model_args.cache_vision_features:
        caches = _vision_caches(model, processor, splits, model_args, training_args, task)

    def prepared(role: str):
        split = splits[role]
        if split is None:
            return None
        labelled = has_labels(split, data_args.label_column)
        transform = ExampleTransform(
            processor,
            task,
            modality=config.modality,
            label_column=data_args.label_column if labelled else None,
            with_vad=with_vad and labelled,
            feature_cache=caches.get(role),
        )
        return split.with_transform(transform)

    card = ModelCardInfo(
        dataset=task,
        model_name=os.path.basename(os.path.normpath(training_args.output_dir)),
        repo_id=training_args.hub_model_id or os.path.basename(os.path.normpath(training_args.output_dir)),
        description_metadata=loaded.description_metadata,
        description_source=loaded.description_source,
        base_models=[
            m
            for m in (
                model_args.model_name_or_path,
                model_args.vision_model_name_or_path,
                model_args.qformer_name_or_path,
            )
            if m and not os.path.isdir(m)
        ],
        split_sizes={role: len(split) for role, split in splits.items() if split is not None},
        training_args=training_args.to_dict(),
        data_args={k: v for k, v in vars(data_args).items() if v is not None},
        synthetic_data=read_synthetic_marker(data_args.data_dir),
    )
    trainer = EmoFusionTrainer(
        model=model,
        args=training_args,
        train_dataset=prepared("train"),
        eval_dataset=prepared("validation"),
        data_collator=EmotionCollator(pad_token_id=processor.tokenizer.pad_token_id or 0),
        compute_metrics=make_compute_metrics(task, config),
        processing_class=processor,
        callbacks=callbacks,
        card_info=card,
    )
    results: dict = {}

    # 4. Train; save model + processor.
    if do_train:
        train_result = trainer.train(
            resume_from_checkpoint=resolve_checkpoint(training_args), ignore_keys_for_eval=IGNORE_KEYS
        )
        trainer.save_model()
        metrics = {**train_result.metrics, "train_samples": len(loaded.train)}
        trainer.log_metrics("train", metrics)
        trainer.save_metrics("train", metrics)
        trainer.save_state()
        results.update(metrics)

    # 5. Decision thresholds calibrated on validation, stored in the config.
    validation_output, saved = None, False
    if loaded.validation is not None and (do_eval or do_train):
        if _should_calibrate(model_args.calibrate_thresholds, do_train, config):
            if not has_labels(loaded.validation, data_args.label_column):
                raise ValueError("The validation split has no targets: thresholds cannot be calibrated.")
            validation_output = trainer.predict(
                trainer.eval_dataset, ignore_keys=IGNORE_KEYS, metric_key_prefix="eval"
            )
            config.decision_thresholds = calibrate_on(validation_output)
            logger.info("Decision thresholds calibrated on validation (best F1 per class, ties to the lowest).")
            if trainer.args.should_save:
                trainer.save_model()
                saved = True

    # 6. Figures of each split (with the calibrated thresholds), per-class JSON + PNG, predictions.
    for role, prefix, wanted in (("validation", "eval", do_eval), ("test", "test", do_predict)):
        split = splits[role]
        if not wanted or split is None:
            continue
        if role == "validation" and validation_output is not None:
            # Same logits as for calibration: only the threshold-dependent figures change.
            output = validation_output
            fresh = trainer.compute_metrics(EvalPrediction(output.predictions, output.label_ids))
            output.metrics.update({f"{prefix}_{key}": value for key, value in fresh.items()})
        else:
            dataset_to_run = trainer.eval_dataset if role == "validation" else prepared("test")
            output = trainer.predict(dataset_to_run, ignore_keys=IGNORE_KEYS, metric_key_prefix=prefix)
        metrics = {**output.metrics, f"{prefix}_samples": len(split)}
        trainer.log_metrics(prefix, metrics)
        if trainer.args.should_save:
            trainer.save_metrics(prefix, metrics)
            paths = write_split_report(training_args.output_dir, prefix, task, output, config, list(split["id"]))
            if "figure" in paths:
                card.figures[prefix] = paths["figure"]
        results.update(metrics)

    # 7. Model card (where a model was saved), Hub.
    card.metrics = results
    if trainer.args.should_save and (do_train or saved or training_args.push_to_hub):
        trainer.create_model_card()
    if training_args.push_to_hub:
        trainer.push_to_hub(commit_message=f"emofusion: {config.modality} model on {task}")
    return results


def main(argv: list[str] | None = None) -> int:
    """`python train.py ...` / `emofusion train ...`: parse the arguments and run."""
    model_args, data_args, training_args = parse_args(argv)
    setup_logging(training_args)
    logger.info("Training/evaluation parameters %s", training_args)
    run_training(model_args, data_args, training_args)
    return 0


__all__ = ["IGNORE_KEYS", "main", "run_training"]
