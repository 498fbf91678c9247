"""Command-line arguments of stage 2, in the transformers example-script shape.

`ModelArguments` and `DataArguments` are parsed together with transformers' `TrainingArguments`
by `HfArgumentParser`, from the command line or from a `.json` / `.yaml` file (flags after it override it):

    python train.py --dataset emotic --data_dir /data/EMOTIC --descriptions outputs/emotic-llava \\
        --vision_model_name_or_path openai/clip-vit-large-patch14 --qformer_name_or_path bert-base-uncased \\
        --output_dir outputs/emofusion-emotic --do_train --do_eval --do_predict
    python train.py configs/emotic.yaml
    python train.py configs/emotic.yaml --learning_rate 5e-5 --output_dir outputs/lr5e-5
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field

from transformers import TrainingArguments

# The light copy of the label tables: `train.py --help` imports no model code.
from dataset_scripts.labels import TASKS

from ..config_file import CONFIG_FILE_HELP, parse_with_config_file
from ..script_parser import ScriptArgumentParser


MODALITIES = ("fusion", "vision", "text")
CALIBRATION_MODES = ("auto", "always", "never")
CACHE_DTYPES = ("float32", "float16", "bfloat16")
# The Trainer's options `--help` shows (`--help-all` shows all of them): the ones a run usually sets.
COMMON_TRAINER_OPTIONS = (
    "output_dir", "do_train", "do_eval", "do_predict", "num_train_epochs", "max_steps", "learning_rate",
    "weight_decay", "warmup_steps", "lr_scheduler_type", "per_device_train_batch_size", "per_device_eval_batch_size",
    "gradient_accumulation_steps", "activation_checkpointing", "bf16", "fp16", "seed", "eval_strategy", "eval_steps",
    "save_strategy", "save_steps", "save_total_limit", "load_best_model_at_end", "metric_for_best_model",
    "logging_steps", "log_level", "report_to", "run_name", "resume_from_checkpoint", "dataloader_num_workers",
    "push_to_hub", "hub_model_id", "hub_private_repo", "hub_strategy",
)  # fmt: skip


@dataclass
class ModelArguments:
    """Which model to train or evaluate, and how."""

    model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "An emofusion checkpoint (folder or Hub id) to fine-tune or evaluate, or a folder with only "
            "an emofusion config.json (a new model of that shape, randomly initialised)."
        },
    )
    vision_model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "Build a new model from pretrained parts: the vision encoder (e.g. a CLIP ViT-L/14)."},
    )
    qformer_name_or_path: str | None = field(
        default=None,
        metadata={"help": "With --vision_model_name_or_path: the Q-Former initialisation (BERT or InstructBLIP)."},
    )
    tokenizer_name_or_path: str | None = field(
        default=None,
        metadata={"help": "Tokenizer of the descriptions (default: the Q-Former's, or the checkpoint's)."},
    )
    processor_name_or_path: str | None = field(
        default=None, metadata={"help": "Processor to use with --model_name_or_path (default: the same folder)."}
    )
    model_revision: str = field(default="main", metadata={"help": "Hub revision (branch, tag or commit)."})
    cache_dir: str | None = field(default=None, metadata={"help": "Where downloaded models are stored."})
    token: str | None = field(default=None, metadata={"help": "Hub token for private models."})
    modality: str | None = field(
        default=None,
        metadata={
            "help": "The paper's ablations: fusion (image + description), vision (image only), text (description "
            "only). Default: the checkpoint's, or fusion.",
            "choices": MODALITIES,
        },
    )
    freeze_vision: bool = field(
        default=False,
        metadata={"help": "Keep the vision encoder's weights fixed (a checkpoint trained frozen stays frozen)."},
    )
    cache_vision_features: bool = field(
        default=False,
        metadata={
            "help": "With a frozen vision encoder: compute its features once, store them on disk, reuse them every "
            "epoch and evaluation. Invalidated when the encoder, image processing, marking or data change."
        },
    )
    vision_cache_dir: str | None = field(
        default=None, metadata={"help": "Where the feature cache lives (default: $HF_HOME/emofusion/vision-features)."}
    )
    vision_cache_dtype: str = field(
        default="float32",
        metadata={"help": "Storage type of cached features; float16 halves the disk use.", "choices": CACHE_DTYPES},
    )
    num_query_tokens: int | None = field(default=None, metadata={"help": "Learnable queries (new models; 32)."})
    pooling: str | None = field(default=None, metadata={"help": "Query pooling (new models): mean or first."})
    num_frames: int | None = field(
        default=None, metadata={"help": "Most frames per clip the model takes (BoLD; default: the data's)."}
    )
    vad_head: bool | None = field(
        default=None,
        metadata={"help": "true|false: a valence/arousal/dominance head (default: yes for EMOTIC and BoLD)."},
    )
    vad_loss_weight: float | None = field(default=None, metadata={"help": "Weight of the VAD L1 loss (1.0)."})
    max_text_length: int | None = field(default=None, metadata={"help": "Description tokens kept (256)."})
    marking: str | None = field(
        default=None,
        metadata={
            "help": "Subject marking: box, crop or none. Default: the description set's, so that the classifier "
            "sees the picture the VLLM saw."
        },
    )
    ignore_mismatched_sizes: bool = field(
        default=False, metadata={"help": "Fine-tune a checkpoint on a dataset with other labels (new head)."}
    )
    calibrate_thresholds: str = field(
        default="auto",
        metadata={
            "help": "Per-class decision thresholds on validation: auto (after training, or when the model has "
            "none), always, never.",
            "choices": CALIBRATION_MODES,
        },
    )

    def __post_init__(self):
        if self.model_name_or_path is None and self.vision_model_name_or_path is None:
            raise ValueError(
                "Give a model: --model_name_or_path (an emofusion checkpoint or config folder) or "
                "--vision_model_name_or_path with --qformer_name_or_path (pretrained parts)."
            )
        if self.model_name_or_path is not None and self.vision_model_name_or_path is not None:
            raise ValueError("Give either --model_name_or_path or --vision_model_name_or_path, not both.")
        for name, allowed in (
            ("modality", MODALITIES),
            ("calibrate_thresholds", CALIBRATION_MODES),
            ("vision_cache_dtype", CACHE_DTYPES),
        ):
            value = getattr(self, name)
            if value is not None and value not in allowed:
                raise ValueError(f"--{name} {value!r}: expected one of {allowed}.")


@dataclass
class DataArguments:
    """Which data to train and evaluate on."""

    dataset: str = field(metadata={"help": "emotic, caer_s or bold.", "choices": tuple(TASKS)})
    data_dir: str | None = field(
        default=None,
        metadata={
            "help": "The dataset's folder as its owners ship it (see the README's Datasets), or a DatasetDict "
            "saved with save_to_disk."
        },
    )
    descriptions: str | None = field(
        default=None,
        metadata={"help": "Description set written by caption.py: a folder, a Parquet shard or a Hub dataset id."},
    )
    descriptions_revision: str | None = field(default=None, metadata={"help": "Hub revision of the description set."})
    on_missing_description: str = field(
        default="warn",
        metadata={
            "help": "Examples without a description: warn (drop and report), error, keep (empty text).",
            "choices": ("warn", "error", "keep"),
        },
    )
    dataset_options: str | None = field(
        default=None,
        metadata={
            "help": "Builder options as a JSON object, e.g. '{\"num_frames\": 8}' (BoLD) or "
            "'{\"validation_fraction\": 0.1}' (CAER-S)."
        },
    )
    dataset_cache_dir: str | None = field(default=None, metadata={"help": "Where the Arrow cache of the data goes."})
    train_split: str = field(default="train", metadata={"help": "Split to train on."})
    validation_split: str = field(default="validation", metadata={"help": "Split for evaluation and thresholds."})
    test_split: str = field(default="test", metadata={"help": "Split of --do_predict."})
    validation_split_percentage: float = field(
        default=10.0,
        metadata={
            "help": "When the data has no validation split (CAER-S without validation_fraction): the percentage of "
            "train held out for it, chosen with --seed."
        },
    )
    label_column: str = field(
        default="labels", metadata={"help": "Target column (e.g. soft_labels to train BoLD on soft scores)."}
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Truncate train (debugging)."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Truncate validation (debugging)."})
    max_predict_samples: int | None = field(default=None, metadata={"help": "Truncate test (debugging)."})

    def __post_init__(self):
        if self.dataset not in TASKS:
            raise ValueError(f"--dataset {self.dataset!r}: expected one of {sorted(TASKS)}.")
        if not 0 < self.validation_split_percentage < 100:
            raise ValueError(
                f"--validation_split_percentage {self.validation_split_percentage}: expected 0 < p < 100."
            )
        if isinstance(self.dataset_options, str):
            try:
                options = json.loads(self.dataset_options)
            except json.JSONDecodeError as err:
                raise ValueError(f"--dataset_options is not a JSON object: {err}.") from None
            if not isinstance(options, dict):
                raise ValueError(f"--dataset_options must be a JSON object, got {self.dataset_options!r}.")

    @property
    def builder_options(self) -> dict:
        """`dataset_options` as a dict (a YAML/JSON config file may give it as a mapping directly)."""
        if self.dataset_options is None:
            return {}
        if isinstance(self.dataset_options, dict):
            return dict(self.dataset_options)
        return json.loads(self.dataset_options)


def build_parser(prog: str | None = None) -> ScriptArgumentParser:
    """The parser of train.py: the project's options first, then the Trainer's (`--help-all` lists every one)."""
    return ScriptArgumentParser(
        (ModelArguments, DataArguments, TrainingArguments),
        headings={
            ModelArguments: "Model options",
            DataArguments: "Data options",
            TrainingArguments: "Trainer options (transformers.TrainingArguments)",
        },
        brief_help={TrainingArguments: COMMON_TRAINER_OPTIONS},
        prog=prog,
        description="Stage 2: train and evaluate the fusion model (image + description -> emotions).",
        epilog=CONFIG_FILE_HELP,
    )


def parse_args(
    argv: list[str] | None = None, prog: str | None = None
) -> tuple[ModelArguments, DataArguments, TrainingArguments]:
    """Parse the three argument groups from `argv` (default: the command line), which may start with a
    `.json` / `.yaml` file holding them; flags after the file override its values. `prog` names the
    program in `--help` and errors (default: the script's file name).

    >>> model_args, data_args, training_args = parse_args(
    ...     ["--model_name_or_path", "ckpt", "--dataset", "emotic", "--output_dir", "/tmp/out"])
    >>> data_args.dataset, training_args.output_dir
    ('emotic', '/tmp/out')
    """
    return parse_with_config_file(build_parser(prog), sys.argv[1:] if argv is None else argv)
