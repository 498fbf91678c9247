"""The description set's metadata (`description_set.json`) and dataset card (`README.md`).

The card's YAML header lists one Parquet pattern a split, so `datasets.load_dataset(OUT)` and the
Hub's viewer read the set; its body records how the descriptions were made.
"""

from __future__ import annotations

import glob
import json
import os

from dataset_scripts.descriptions import DESCRIPTION_SET_FORMAT as FORMAT
from dataset_scripts.descriptions import DESCRIPTION_SET_VERSION as VERSION
from dataset_scripts.descriptions import METADATA_FILE, read_metadata_file

from .store import DATA_DIR, atomic_write_text


def read_metadata(output_dir: str) -> dict | None:
    """`description_set.json` of `output_dir`, every field checked (None when there is none)."""
    path = os.path.join(output_dir, METADATA_FILE)
    if not os.path.isfile(path):
        return None
    return read_metadata_file(path)


def build_metadata(settings: dict, revision: str | None, splits: dict[str, dict[str, int]]) -> dict:
    """`description_set.json`'s content: how the set was made and its counts per split."""
    metadata = {
        "format": FORMAT,
        "version": VERSION,
        "model": settings["model"],
        "revision": revision,
        "backend": settings["backend"],
        "prompt_template": settings["prompt_template"],
        "marking": settings["marking"],
        "generation": settings["generation"],
        "dataset": settings["dataset"],
        "splits": splits,
    }
    if settings.get("frame") is not None:
        metadata["frame"] = settings["frame"]  # clips: which sampled frame was described
    return metadata


def write_metadata(output_dir: str, settings: dict, revision: str | None, split: str, counts: dict[str, int]) -> dict:
    """Add `split`'s counts to `description_set.json` and rewrite the dataset card. Returns the metadata."""
    previous = read_metadata(output_dir) or {}
    splits = {**previous.get("splits", {}), split: counts}
    metadata = build_metadata(settings, revision, dict(sorted(splits.items())))
    atomic_write_text(os.path.join(output_dir, METADATA_FILE), json.dumps(metadata, indent=2) + "\n")
    data_files = {
        name: sorted(
            os.path.relpath(path, output_dir).replace(os.sep, "/") for path in data_files_of(output_dir, name)
        )
        for name in metadata["splits"]
    }
    atomic_write_text(os.path.join(output_dir, "README.md"), render_card(metadata, data_files))
    return metadata


def data_files_of(output_dir: str, split: str) -> list[str]:
    return glob.glob(os.path.join(output_dir, DATA_DIR, f"{split}-*.parquet"))


def render_card(metadata: dict, data_files: dict[str, list[str]]) -> str:
    """The dataset card (Markdown with a YAML header) of a description set.

    The header names each split's files exactly rather than by a pattern: `datasets` caches a local
    folder by its `configs` entry, and the file names change with their content (store.merge_split).
    """
    configs = "\n".join(
        f"  - split: {split}\n    path:\n" + "\n".join(f"    - {path}" for path in files)
        for split, files in data_files.items()
    )
    rows = "\n".join(
        f"| {split} | {c['ok']} | {c['flagged']} | {c['error']} | {c['ok'] + c['flagged'] + c['error']} |"
        for split, c in metadata["splits"].items()
    )
    revision = metadata["revision"] or "not recorded (a local folder or unpinned)"
    frame = f"\n- Frame of each clip described: {metadata['frame']}" if "frame" in metadata else ""
    return f"""---
configs:
- config_name: default
  data_files:
{configs}
tags:
- emofusion
- emotion-recognition
- vllm-descriptions
---

# Context descriptions of {metadata["dataset"]} subjects by {metadata["model"]}

Stage 1 of *VLLMs Provide Better Context for Emotion Understanding Through Common Sense
Reasoning* ([arXiv 2404.07078](https://arxiv.org/abs/2404.07078)), made with emofusion's
`caption.py`: each subject was marked on its image and a vision-and-language model was asked
which emotions fit the person.

## How the descriptions were made
- Model: `{metadata["model"]}`, revision: {revision}
- Backend: {metadata["backend"]}
- Subject marking: `{metadata["marking"]}` (box: drawn in red on the full image){frame}
- Generation settings: `{json.dumps(metadata["generation"], sort_keys=True)}`
- Prompt template (`<class_names>` is the dataset's label list; where no box is drawn the default
  template says "the person in the image"; each row's `prompt` column holds the exact prompt):

```text
{metadata["prompt_template"]}
```

## Contents
One row per subject: `id` (the dataset builder's id, to join on), `description`, `status`
(`ok`; `flagged`: empty or cut at the token budget; `error`: not described, see `reason`),
`reason`, `split`, `prompt`, `num_tokens` (generated tokens).

| split | ok | flagged | error | rows |
|---|---|---|---|---|
{rows}

```python
from dataset_scripts import load_description_set, join_descriptions, load_emotion_dataset

rows, metadata = load_description_set("path/or/repo_id")
dataset = join_descriptions(load_emotion_dataset("{metadata["dataset"]}", "DATA_DIR"), rows)
```

The images are not included. The descriptions are derived from {metadata["dataset"]}, whose
licence and terms of use apply to them as well.
"""
