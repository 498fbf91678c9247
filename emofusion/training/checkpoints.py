"""Which checkpoint a training run resumes from, when a kill -9 may have stopped any write.

The Trainer writes `checkpoint-N/` in place, one file after another: the model (weights, config,
processor, `training_args.json`), then the optimizer, scheduler, scaler and RNG states, and
`trainer_state.json` last. A run killed in between leaves a folder that `get_last_checkpoint`
still picks; resuming from it then fails ("Can't find a valid checkpoint", a missing
`trainer_state.json`) on every later run, or, without the optimizer or RNG state, resumes
silently into a different run.

A checkpoint counts here only when complete: `trainer_state.json` parses, the weights are whole
safetensors files, the optimizer / scheduler / RNG files the Trainer writes for this configuration
are whole archives, and every JSON file parses. An incomplete one is set aside (renamed
`_incomplete-checkpoint-N-<UTC time>`, never deleted) with a warning, and the run resumes from
the newest complete one. The new name starts with `_` so that neither the Trainer's checkpoint
rotation (`checkpoint-*`) nor its Hub upload (which skips `_*`) ever touches it.
"""

from __future__ import annotations

import json
import os
import re
import time
import zipfile

from transformers.utils import logging

from ..errors import EmofusionError


logger = logging.get_logger(__name__)

CHECKPOINT_NAME = re.compile(r"^checkpoint-(\d+)$")
SET_ASIDE_PREFIX = "_incomplete-"
TRAINER_STATE = "trainer_state.json"
SAFE_WEIGHTS, SAFE_WEIGHTS_INDEX = "model.safetensors", "model.safetensors.index.json"
TORCH_WEIGHTS = "pytorch_model.bin"


class IncompleteCheckpointError(EmofusionError):
    """`--resume_from_checkpoint` names a checkpoint that is not complete (the message says what is missing)."""


def _safetensors_problem(path: str) -> str | None:
    """Why a safetensors file is not whole, or None. The header check catches truncation: the
    header must cover the file exactly."""
    from safetensors import safe_open

    try:
        with safe_open(path, framework="pt") as handle:
            handle.keys()
    except Exception as error:  # noqa: BLE001 - SafetensorError, OSError: all mean "not loadable"
        return f"{os.path.basename(path)} is not a whole safetensors file ({error})"
    return None


def _archive_problem(path: str) -> str | None:
    """Why a `torch.save` file (a zip archive whose directory is written last) is not whole, or None."""
    try:
        with zipfile.ZipFile(path) as archive:
            size = os.path.getsize(path)
            if any(info.header_offset + info.compress_size > size for info in archive.infolist()):
                return f"{os.path.basename(path)} is truncated"
    except (zipfile.BadZipFile, OSError) as error:
        return f"{os.path.basename(path)} is not a whole torch archive ({error})"
    return None


def _json_problem(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            json.load(handle)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        return f"{os.path.basename(path)} does not parse ({error})"
    return None


def _weights_problems(folder: str, names: set[str]) -> list[str]:
    if SAFE_WEIGHTS_INDEX in names:
        problem = _json_problem(os.path.join(folder, SAFE_WEIGHTS_INDEX))
        if problem:
            return [problem]
        with open(os.path.join(folder, SAFE_WEIGHTS_INDEX), encoding="utf-8") as handle:
            shards = sorted(set(json.load(handle).get("weight_map", {}).values()))
        problems = []
        for shard in shards:
            problem = _safetensors_problem(os.path.join(folder, shard)) if shard in names else f"{shard} is missing"
            if problem:
                problems.append(problem)
        return problems
    if SAFE_WEIGHTS in names:
        problem = _safetensors_problem(os.path.join(folder, SAFE_WEIGHTS))
        return [problem] if problem else []
    if TORCH_WEIGHTS in names:
        problem = _archive_problem(os.path.join(folder, TORCH_WEIGHTS))
        return [problem] if problem else []
    return [f"the model weights ({SAFE_WEIGHTS}) are missing"]


def checkpoint_problems(folder: str, *, with_optimizer: bool = True, engine_layout: bool = False) -> list[str]:
    """What keeps `folder` from being a complete checkpoint (empty list: complete).

    Args:
        with_optimizer: the run saves optimizer, scheduler and RNG states (not `--save_only_model`).
        engine_layout: DeepSpeed or FSDP write the model and optimizer in their own layouts; then only
            `trainer_state.json`, which the Trainer writes after them, and the JSON files are checked.
    """
    if not os.path.isdir(folder):
        return [f"{folder} is not a folder"]
    names = set(os.listdir(folder))
    problems = []
    if TRAINER_STATE not in names:
        problems.append(f"{TRAINER_STATE} is missing")
    for name in sorted(n for n in names if n.endswith(".json")):
        problem = _json_problem(os.path.join(folder, name))
        if problem:
            problems.append(problem)
    if engine_layout:
        return problems
    problems += _weights_problems(folder, names)
    if with_optimizer:
        optimizer = "optimizer.pt" if "optimizer.pt" in names or "optimizer.bin" not in names else "optimizer.bin"
        for name in (optimizer, "scheduler.pt"):
            problem = _archive_problem(os.path.join(folder, name)) if name in names else f"{name} is missing"
            if problem:
                problems.append(problem)
        rng_files = sorted(n for n in names if re.match(r"^rng_state(_\d+)?\.pth$", n))
        if not rng_files:
            problems.append("the RNG state (rng_state.pth) is missing")
        for name in rng_files + (["scaler.pt"] if "scaler.pt" in names else []):
            problem = _archive_problem(os.path.join(folder, name))
            if problem:
                problems.append(problem)
    return problems


def set_aside(folder: str) -> str:
    """Rename an incomplete checkpoint out of the Trainer's way; returns its new path."""
    parent, name = os.path.split(os.path.normpath(folder))
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = os.path.join(parent, f"{SET_ASIDE_PREFIX}{name}-{stamp}")
    suffix = 1
    while os.path.exists(target):
        suffix += 1
        target = os.path.join(parent, f"{SET_ASIDE_PREFIX}{name}-{stamp}-{suffix}")
    os.rename(folder, target)
    return target


def checkpoints_newest_first(output_dir: str) -> list[str]:
    """The `checkpoint-N` folders of `output_dir`, highest step first."""
    found = []
    for name in os.listdir(output_dir):
        match = CHECKPOINT_NAME.match(name)
        if match and os.path.isdir(os.path.join(output_dir, name)):
            found.append((int(match.group(1)), os.path.join(output_dir, name)))
    return [path for _, path in sorted(found, reverse=True)]


def newest_complete_checkpoint(
    output_dir: str, *, with_optimizer: bool = True, engine_layout: bool = False, may_rename: bool = True
) -> str | None:
    """The newest complete checkpoint in `output_dir` (None if there is none).

    Newer incomplete ones are set aside with a warning (`may_rename=False`, as on processes that do
    not save: only skipped). Older checkpoints are left to the Trainer's rotation.
    """
    for folder in checkpoints_newest_first(output_dir):
        problems = checkpoint_problems(folder, with_optimizer=with_optimizer, engine_layout=engine_layout)
        if not problems:
            return folder
        if may_rename:
            moved = set_aside(folder)
            logger.warning(
                "Checkpoint %s is incomplete (%s), as a run stopped while writing it leaves it: set aside as %s.",
                folder,
                "; ".join(problems),
                moved,
            )
        else:
            logger.warning("Checkpoint %s is incomplete (%s): skipped.", folder, "; ".join(problems))
    return None


__all__ = [
    "IncompleteCheckpointError",
    "checkpoint_problems",
    "checkpoints_newest_first",
    "newest_complete_checkpoint",
    "set_aside",
]
