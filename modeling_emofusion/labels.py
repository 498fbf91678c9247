"""Label orders of the three datasets, in one place.

EMOTIC's 26 categories in their canonical order are used for EMOTIC and BoLD alike (BoLD's CSV
columns are remapped); CAER-S has its own seven classes. `config.id2label` of a trained model
carries whichever order its task used.
"""

from __future__ import annotations


EMOTIC_CATEGORIES: tuple[str, ...] = (
    "Affection",
    "Anger",
    "Annoyance",
    "Anticipation",
    "Aversion",
    "Confidence",
    "Disapproval",
    "Disconnection",
    "Disquietment",
    "Doubt/Confusion",
    "Embarrassment",
    "Engagement",
    "Esteem",
    "Excitement",
    "Fatigue",
    "Fear",
    "Happiness",
    "Pain",
    "Peace",
    "Pleasure",
    "Sadness",
    "Sensitivity",
    "Suffering",
    "Surprise",
    "Sympathy",
    "Yearning",
)

# The order of the 26 category columns in BoLD's annotation CSVs (columns 4..29).
BOLD_CSV_CATEGORIES: tuple[str, ...] = (
    "Peace",
    "Affection",
    "Esteem",
    "Anticipation",
    "Engagement",
    "Confidence",
    "Happiness",
    "Pleasure",
    "Excitement",
    "Surprise",
    "Sympathy",
    "Doubt/Confusion",
    "Disconnection",
    "Fatigue",
    "Embarrassment",
    "Yearning",
    "Disapproval",
    "Aversion",
    "Annoyance",
    "Anger",
    "Sensitivity",
    "Sadness",
    "Disquietment",
    "Fear",
    "Pain",
    "Suffering",
)

# BOLD_TO_EMOTIC[i] is the EMOTIC index of BoLD CSV category i.
BOLD_TO_EMOTIC: tuple[int, ...] = tuple(EMOTIC_CATEGORIES.index(name) for name in BOLD_CSV_CATEGORIES)

CAER_S_CLASSES: tuple[str, ...] = ("Anger", "Disgust", "Fear", "Happy", "Neutral", "Sad", "Surprise")

# Folder names found on disk -> class name. The anger folder is "Angry" in train, "Anger" in test.
CAER_S_FOLDER_ALIASES: dict[str, str] = {"Angry": "Anger"}

VAD_NAMES: tuple[str, ...] = ("valence", "arousal", "dominance")

# Each task: its label names and the transformers problem_type of its head.
TASKS: dict[str, dict] = {
    "emotic": {"labels": EMOTIC_CATEGORIES, "problem_type": "multi_label_classification", "has_vad": True},
    "bold": {"labels": EMOTIC_CATEGORIES, "problem_type": "multi_label_classification", "has_vad": True},
    "caer_s": {"labels": CAER_S_CLASSES, "problem_type": "single_label_classification", "has_vad": False},
}


def task_info(name: str) -> dict:
    """The label names, problem type and VAD flag of a dataset name (`emotic`, `caer_s`, `bold`)."""
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"Unknown dataset {name!r}: expected one of {sorted(TASKS)}.") from None


def id2label_for(name: str) -> dict[int, str]:
    """`config.id2label` for a dataset name, in that task's one label order."""
    return dict(enumerate(task_info(name)["labels"]))
