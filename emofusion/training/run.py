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
from transformers.utils import logging

from ..hub_errors import check_push_access
from ..synthetic import read_synthetic_marker
from .arguments import DataArguments, ModelArguments, parse_args
from .checkpoints import IncompleteCheckpointError, checkpoint_problems, newest_complete_checkpoint
from .data import (
    EmotionCollator,
    ExampleTransform,
    LoadedData,
    check_columns,
    has_labels,
    load_data,
    prepare_splits,
    warn_if_descriptions_empty,
)
from .evaluation import calibrate_on, make_compute_metrics, write_split_report
from .model_card import ModelCardInfo
from .model_loading import check_provenance, load_model_and_processor, record_provenance
from .trainer import EmoFusionTrainer


logger = logging.get_logger(__name__)

# Model outputs not needed for metrics: leaving them out keeps evaluation memory to the logits.
IGNORE_KEYS = ["pooled_output", "query_states", "vision_hidden_states"]
HUB_CHECK_TIMEOUT = 10  # seconds for --push_to_hub's check that the Hub answers


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


def resolve_checkpoint(training_args: TrainingArguments, trainer=None) -> str | None:
    """The checkpoint to resume from: `--resume_from_checkpoint PATH` (it must be complete), else the
    newest complete `checkpoint-N` in output_dir (`--resume_from_checkpoint true` requires one).

    Incomplete checkpoints newer than it (a run killed while saving) are set aside, not deleted.
    """
    value = training_args.resume_from_checkpoint
    with_optimizer = not training_args.save_only_model
    engine_layout = bool(
        getattr(trainer, "is_deepspeed_enabled", False) or getattr(trainer, "is_fsdp_enabled", False)
    ) or bool(training_args.deepspeed or training_args.fsdp)
    required = value is not None and str(value).lower() in ("true", "1", "yes")
    if value is not None and not required:
        if not os.path.isdir(value):
            raise IncompleteCheckpointError(f"--resume_from_checkpoint {value}: no such folder.")
        problems = checkpoint_problems(value, with_optimizer=with_optimizer, engine_layout=engine_layout)
        if problems:
            raise IncompleteCheckpointError(
                f"--resume_from_checkpoint {value} is not a complete checkpoint: {'; '.join(problems)}. Give "
                "another checkpoint-N folder, or leave the option out to resume from the newest complete "
                "checkpoint in --output_dir."
            )
        return value
    last = None
    # The saving process sets incomplete checkpoints aside first; the others then find the same one.
    # Every process enters (the context is a barrier), whatever it sees on disk.
    with training_args.main_process_first(local=training_args.save_on_each_node, desc="checkpoint check"):
        if os.path.isdir(training_args.output_dir):
            last = newest_complete_checkpoint(
                training_args.output_dir,
                with_optimizer=with_optimizer,
                engine_layout=engine_layout,
                may_rename=training_args.should_save,
            )
    if last is not None:
        logger.info("Checkpoint detected, resuming training at %s. To start afresh, use another --output_dir.", last)
    elif required:
        raise IncompleteCheckpointError(
            f"--resume_from_checkpoint true: no complete checkpoint-N folder in {training_args.output_dir}."
        )
    return last


def check_hub_access(training_args: TrainingArguments) -> None:
    """With --push_to_hub, fail at the start, in one line naming the repo, when the Hub cannot be reached
    or the token is refused, rather than at the Trainer's repo creation after the data and model are loaded
    (or at the final upload, after training)."""
    if not training_args.push_to_hub or training_args.process_index != 0:
        return
    # The repo the Trainer creates: --hub_model_id, else the output folder's name under the user's namespace.
    repo_id = training_args.hub_model_id or os.path.basename(os.path.abspath(training_args.output_dir))
    check_push_access(repo_id, training_args.output_dir, token=training_args.hub_token, timeout=HUB_CHECK_TIMEOUT)


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
    check_hub_access(training_args)
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
    split_names = {"train": data_args.train_split, "test": data_args.test_split}  # validation may be an alias
    for role, split in splits.items():
        if split is not None:
            check_columns(split, role, task, needs_text)
            if needs_text:
                name = f"{role} split {split_names[role]!r}" if role in split_names else "validation split"
                warn_if_descriptions_empty(split, name, loaded.description_source)
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
            resume_from_checkpoint=resolve_checkpoint(training_args, trainer), ignore_keys_for_eval=IGNORE_KEYS
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
    return run_parsed(*parse_args(argv))


def run_parsed(model_args: ModelArguments, data_args: DataArguments, training_args: TrainingArguments) -> int:
    """The run of `main`, from arguments already parsed."""
    setup_logging(training_args)
    logger.info("Training/evaluation parameters %s", training_args)
    run_training(model_args, data_args, training_args)
    return 0


__all__ = ["IGNORE_KEYS", "main", "run_parsed", "run_training"]
