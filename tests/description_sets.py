"""Two description sets of the demo's synthetic data for the `emofusion descriptions` tests: the demo's own,
and a degraded copy in which half the subjects' cue word is swapped for one of another word family."""

from __future__ import annotations

import json
import re
from pathlib import Path

from dataset_scripts import load_description_set
from dataset_scripts.writers import write_description_set
from emofusion.synthetic import DESCRIPTION_METADATA, TEXT_GROUPS, TEXT_WORDS


FAMILIES = list(TEXT_WORDS)
CUE = re.compile(r"\b(" + "|".join(w for words in TEXT_WORDS.values() for w in words) + r")\b")


def cue_lexicon() -> dict[str, list[str]]:
    """--label_words for the synthetic task: each text label -> the cue words of its family."""
    return {label: list(TEXT_WORDS[family]) for family, labels in TEXT_GROUPS.items() for label in labels}


def write_lexicon(path: Path) -> Path:
    path.write_text(json.dumps(cue_lexicon(), indent=2), encoding="utf-8")
    return path


def _swap(match: re.Match) -> str:
    word = match.group(1)
    family = next(f for f, words in TEXT_WORDS.items() if word in words)
    other = FAMILIES[(FAMILIES.index(family) + 1) % len(FAMILIES)]
    return TEXT_WORDS[other][TEXT_WORDS[family].index(word)]


def write_degraded_copy(source: Path, out: Path) -> Path:
    """Every other subject (in id order) gets the cue word of the next family: a false cue, the true one gone."""
    rows, metadata = load_description_set(str(source))
    ordered = sorted(zip(rows["id"], rows["description"], rows["split"]))
    degraded = [
        {"id": i, "description": CUE.sub(_swap, text) if index % 2 else text, "split": split}
        for index, (i, text, split) in enumerate(ordered)
    ]
    meta = {**DESCRIPTION_METADATA, "generation": {"writer": "tests.description_sets.write_degraded_copy"}}
    return write_description_set(out, degraded, meta)
