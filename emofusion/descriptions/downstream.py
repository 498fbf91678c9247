"""`--train CONFIG`: the same model trained on each description set, through the project's training code.

Every run takes the config as given, with only the descriptions, the output folder and the
modality changed, so the seed, the model, the optimiser and the split are the same for every set.
Examples a set does not describe are kept with an empty description (`on_missing_description
keep`) rather than dropped, so that every set is trained and tested on the same examples: a set
that covers less is judged on the examples it left out too.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from pathlib import Path

from transformers.utils import logging


logger = logging.get_logger(__name__)

# Per-run figures of the Trainer that say how fast, not how well; left out of the comparison.
_SPEED_KEYS = ("runtime", "samples_per_second", "steps_per_second")


def run_arguments(options, source: str, run_dir: Path, modality: str, task: str | None) -> list[str]:
    """train.py's command line for one set and modality: the config, then what differs between runs."""
    argv = [
        options.train,
        "--descriptions", source,
        "--output_dir", str(run_dir),
        "--modality", modality,
        "--do_train", "true",
        "--do_predict", "true",
        "--on_missing_description", "keep",
    ]  # fmt: skip
    if options.dataset is not None:
        argv += ["--dataset", options.dataset]
    if options.data_dir is not None:
        argv += ["--data_dir", options.data_dir]
    if options.dataset_cache_dir is not None:
        argv += ["--dataset_cache_dir", options.dataset_cache_dir]
    return argv


def parse_run(options, source: str, run_dir: Path, modality: str, task: str | None) -> tuple:
    """train.py's parsed arguments of one run; a config that does not parse, or is of another dataset, is refused."""
    from emofusion.training import parse_args

    model_args, data_args, training_args = parse_args(
        run_arguments(options, source, run_dir, modality, task), prog=f"emofusion descriptions --train {options.train}"
    )
    if task is not None and data_args.dataset != task:
        raise ValueError(
            f"--train {options.train}: field 'dataset' is {data_args.dataset!r}, but the sets describe {task!r}."
        )
    return model_args, data_args, training_args


def figures_of_test_split(metrics: dict) -> dict:
    """The test split's metrics without their `test_` prefix and without the speed figures."""
    return {
        key[len("test_") :]: value
        for key, value in metrics.items()
        if key.startswith("test_") and isinstance(value, (int, float)) and not key.endswith(_SPEED_KEYS)
    }


def train_on_sets(
    options, sources: list[str], names: list[str], task: str | None, out: Path, save: Callable[[dict], None]
) -> dict:
    """Train and test every modality of `options.modality_list` on every set; `save(downstream)` after each run."""
    from emofusion.training import run_training

    runs = []
    downstream = {"config": options.train, "modalities": options.modality_list, "runs": runs}
    for name, source in zip(names, sources):
        for modality in options.modality_list:
            run_dir = out / "runs" / name / modality
            model_args, data_args, training_args = parse_run(options, source, run_dir, modality, task)
            logger.info("Training the %s model on %s (%s) in %s", modality, name, source, run_dir)
            # The Trainer prints its metric tables: they go to stderr, stdout keeps the report's summary.
            with contextlib.redirect_stdout(sys.stderr):
                metrics = run_training(model_args, data_args, training_args)
            runs.append(
                {
                    "set": name,
                    "modality": modality,
                    "output_dir": str(run_dir),
                    "seed": training_args.seed,
                    "train_samples": metrics.get("train_samples"),
                    "test_samples": metrics.get("test_samples"),
                    "test": figures_of_test_split(metrics),
                }
            )
            downstream["same_examples"] = (
                len({(r["train_samples"], r["test_samples"]) for r in runs}) == 1
                and len({r["seed"] for r in runs}) == 1
            )
            save(downstream)
    return downstream
