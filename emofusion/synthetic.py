"""The synthetic task behind `emofusion demo`: scenes whose labels need the picture AND the text.

Every subject carries one *visual* cue and one *textual* cue, drawn independently:

- the visual cue is the colour of a patch on the subject's body, inside its box. It decides 13 of
  EMOTIC's 26 categories (`VISUAL_GROUPS`). Other people in the scene carry patches of the same
  colours, so the picture only helps a model that looks inside the subject's (red) box;
- the textual cue is a word in the subject's description ("smiling", "crying", ...). It decides
  the other 13 categories (`TEXT_GROUPS`). The descriptions also speak of the scene and of other
  people, with emotion-free words, as a VLLM's would.

So a vision-only model can recover at most the visual half of the labels, a text-only model the
textual half, and only a model that fuses both can recover all of them: the expected mAP of the
single modalities is about (1 + 1/4) / 2, that of fusion close to 1. It checks the machinery (data
layout, builder, training, evaluation, saving, the pipeline), not accuracy on real photos.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

from dataset_scripts.json_files import read_json_file
from dataset_scripts.labels import EMOTIC_CATEGORIES


# Patch colour -> the categories it stands for. Red is left out: it marks the subject's box.
VISUAL_GROUPS: dict[str, tuple[str, ...]] = {
    "green": ("Engagement", "Anticipation", "Confidence", "Esteem"),
    "blue": ("Fatigue", "Disconnection", "Peace"),
    "yellow": ("Surprise", "Embarrassment", "Sensitivity"),
    "magenta": ("Sympathy", "Yearning", "Aversion"),
}
PATCH_COLOURS: dict[str, tuple[int, int, int]] = {
    "green": (40, 200, 60),
    "blue": (40, 80, 230),
    "yellow": (240, 220, 40),
    "magenta": (220, 50, 220),
}

# Word family in the description -> the categories it stands for.
TEXT_GROUPS: dict[str, tuple[str, ...]] = {
    "joy": ("Happiness", "Pleasure", "Excitement", "Affection"),
    "grief": ("Sadness", "Suffering", "Pain"),
    "worry": ("Fear", "Disquietment", "Doubt/Confusion"),
    "hostility": ("Anger", "Annoyance", "Disapproval"),
}
TEXT_WORDS: dict[str, tuple[str, ...]] = {
    "joy": ("smiling", "laughing", "cheerful", "delighted"),
    "grief": ("crying", "tearful", "grieving", "sobbing"),
    "worry": ("frowning", "nervous", "trembling", "tense"),
    "hostility": ("shouting", "scowling", "furious", "glaring"),
}
# Valence follows the text, arousal the picture, dominance both (1..10 scale, as EMOTIC's).
TEXT_VALENCE = {"joy": 8.0, "grief": 2.5, "worry": 3.5, "hostility": 3.0}
VISUAL_AROUSAL = {"green": 7.0, "blue": 3.0, "yellow": 8.0, "magenta": 5.0}

SCENE_WORDS = ("street", "kitchen", "park", "office", "beach", "market", "station", "garden", "room", "stadium")
OBJECT_WORDS = ("table", "car", "tree", "bicycle", "window", "bench", "dog", "umbrella", "lamp", "door")
NEUTRAL_WORDS = ("standing", "sitting", "walking", "holding", "wearing", "looking", "talking", "waiting")

_OPENINGS = (
    "based on the image context the person in the red box appears {cue} .",
    "the person inside the red box looks {cue} in this scene .",
    "considering the context the person in the red box seems {cue} .",
)
_FILLERS = (
    "the scene shows a {scene} with a {obj} nearby .",
    "another person in the background is {neutral} next to a {obj} .",
    "the picture was taken in a {scene} .",
    "someone else is {neutral} near the {obj} .",
    "there is a {obj} and a {obj2} in the {scene} .",
)


def _check_groups() -> None:
    # Import-time check: the two halves cover EMOTIC's 26 categories exactly once.
    names = [name for group in (*VISUAL_GROUPS.values(), *TEXT_GROUPS.values()) for name in group]
    if sorted(names) != sorted(EMOTIC_CATEGORIES):
        raise RuntimeError("VISUAL_GROUPS and TEXT_GROUPS must cover the 26 EMOTIC categories exactly once.")


_check_groups()
VISUAL_CATEGORIES: tuple[str, ...] = tuple(n for n in EMOTIC_CATEGORIES if any(n in g for g in VISUAL_GROUPS.values()))
TEXT_CATEGORIES: tuple[str, ...] = tuple(n for n in EMOTIC_CATEGORIES if any(n in g for g in TEXT_GROUPS.values()))


def vocabulary() -> list[str]:
    """Every word a synthetic description can contain (for an offline word-level tokenizer)."""
    words: set[str] = set()
    for template in (*_OPENINGS, *_FILLERS):
        words.update(w for w in template.split() if not w.startswith("{"))
    for group in TEXT_WORDS.values():
        words.update(group)
    words.update(SCENE_WORDS + OBJECT_WORDS + NEUTRAL_WORDS)
    return sorted(words)


@dataclass
class SyntheticPerson:
    """One annotated person: box in pixels, the two cues, and the labels they imply."""

    bbox: list[float]
    colour: str
    text_group: str
    categories: list[str] = field(default_factory=list)
    vad: list[float] = field(default_factory=list)
    gender: str = "Female"
    age: str = "Adult"


def person_for(colour: str, text_group: str, bbox: Sequence[float], rng: np.random.Generator) -> SyntheticPerson:
    """A person with the labels and VAD its cues imply (in EMOTIC's canonical order)."""
    active = set(VISUAL_GROUPS[colour]) | set(TEXT_GROUPS[text_group])
    categories = [name for name in EMOTIC_CATEGORIES if name in active]
    valence, arousal = TEXT_VALENCE[text_group], VISUAL_AROUSAL[colour]
    vad = [valence, arousal, round((valence + arousal) / 2, 1)]
    return SyntheticPerson(
        bbox=[float(v) for v in bbox],
        colour=colour,
        text_group=text_group,
        categories=categories,
        vad=vad,
        gender=str(rng.choice(["Male", "Female"])),
        age=str(rng.choice(["Kid", "Teenager", "Adult"])),
    )


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    # A muted two-colour gradient plus noise: no palette colour, nothing that carries a label.
    top, bottom = rng.uniform(70, 170, size=3), rng.uniform(70, 170, size=3)
    ramp = np.linspace(0.0, 1.0, height)[:, None, None]
    pixels = top * (1 - ramp) + bottom * ramp + rng.normal(0, 8, size=(height, width, 3))
    return np.clip(pixels, 0, 255).astype(np.uint8)


def _draw_person(draw: ImageDraw.ImageDraw, box: Sequence[float], colour: tuple[int, int, int], rng) -> None:
    # A body (grey-brown rectangle), a head, and the coloured patch on the torso.
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    body = tuple(int(v) for v in rng.uniform(90, 140, size=3))
    draw.rectangle((x1 + 0.15 * w, y1 + 0.3 * h, x2 - 0.15 * w, y2 - 0.02 * h), fill=body)
    draw.ellipse((x1 + 0.3 * w, y1 + 0.03 * h, x2 - 0.3 * w, y1 + 0.3 * h), fill=(205, 170, 140))
    draw.rectangle((x1 + 0.22 * w, y1 + 0.4 * h, x2 - 0.22 * w, y1 + 0.8 * h), fill=colour)


def _free_box(rng, width: int, height: int, taken: list[list[float]], min_frac: float, max_frac: float):
    # Rejection-sample a box that does not overlap the ones already placed (people side by side).
    for _ in range(50):
        w = rng.uniform(min_frac, max_frac) * width
        h = min(height * 0.95, w * rng.uniform(1.4, 2.0))
        x1, y1 = rng.uniform(0, width - w), rng.uniform(0, height - h)
        box = [x1, y1, x1 + w, y1 + h]
        if all(box[2] <= o[0] or box[0] >= o[2] or box[3] <= o[1] or box[1] >= o[3] for o in taken):
            return [round(v, 1) for v in box]
    return None


def render_scene(
    rng: np.random.Generator, size: tuple[int, int] = (96, 72), num_people: int = 2, num_subjects: int = 1
) -> tuple[Image.Image, list[SyntheticPerson]]:
    """Draw one scene with `num_people` people, of whom the first `num_subjects` are annotated.

    Every person gets a palette colour, so the colour alone says nothing unless it is read inside
    the subject's box. Returns the picture and the annotated persons.
    """
    width, height = size
    image = Image.fromarray(_background(rng, width, height))
    draw = ImageDraw.Draw(image)
    taken: list[list[float]] = []
    persons: list[SyntheticPerson] = []
    colours = list(PATCH_COLOURS)
    for index in range(num_people):
        box = _free_box(rng, width, height, taken, 0.22, 0.32)
        if box is None:
            break
        taken.append(box)
        colour = str(rng.choice(colours))
        _draw_person(draw, box, PATCH_COLOURS[colour], rng)
        if index < num_subjects:
            persons.append(person_for(colour, str(rng.choice(list(TEXT_GROUPS))), box, rng))
    return image, persons


def describe(text_group: str, key: str, num_fillers: int = 3) -> str:
    """A VLLM-like description that names the textual cue and, around it, emotion-free scene talk.

    `key` (e.g. the sample id) seeds the wording, so a sample always gets the same description.
    """
    seed = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "little")
    rng = np.random.default_rng(seed)
    cue = str(rng.choice(TEXT_WORDS[text_group]))
    sentences = [str(rng.choice(_OPENINGS)).format(cue=cue)]
    for _ in range(num_fillers):
        objects = rng.choice(OBJECT_WORDS, size=2, replace=False)
        sentences.append(
            str(rng.choice(_FILLERS)).format(
                scene=rng.choice(SCENE_WORDS), obj=objects[0], obj2=objects[1], neutral=rng.choice(NEUTRAL_WORDS)
            )
        )
    # The cue sentence is not always first, so position alone does not give it away.
    order = rng.permutation(len(sentences))
    return " ".join(sentences[i] for i in order)


def text_group_of(categories: Sequence[str]) -> str:
    """The word family a label set implies (inverse of TEXT_GROUPS); ValueError if none or several."""
    found = [name for name, group in TEXT_GROUPS.items() if set(group) <= set(categories)]
    if len(found) != 1:
        raise ValueError(f"labels {list(categories)} do not name exactly one text group of the synthetic task.")
    return found[0]


# The synthetic descriptions come from `describe` above, not from a VLLM: the description set
# says so, and records no model (so a trained model's config names none either).
DESCRIPTION_METADATA = {
    "model": None,
    "revision": None,
    "backend": "synthetic",
    "prompt_template": "",
    "marking": "box",
    "generation": {"writer": "emofusion.synthetic.describe"},
    "dataset": "emotic",
}
_SOURCES = (("mscoco", 0.6), ("framesdb", 0.25), ("emodb_small", 0.15))
_SPLIT_OFFSET = {"train": 0, "val": 1_000_000, "test": 2_000_000}


def _file_name(source: str, split: str, index: int) -> str:
    """A file name in the style of each EMOTIC source (datasets.md), unique per split and index."""
    digest = hashlib.sha256(f"{split}-{index}".encode()).hexdigest()  # lowercase alphanumerics
    if source == "mscoco":
        return f"COCO_{'train' if split == 'train' else 'val'}2014_{_SPLIT_OFFSET[split] + index + 1:012d}.jpg"
    if source == "framesdb":
        return f"frame_{digest[:16]}.jpg"
    return f"{digest[:18]}.jpg"


def synthetic_emotic_images(split: str, num_images: int, rng: np.random.Generator, size=(96, 72)) -> list:
    """`num_images` EMOTIC image records (`dataset_scripts.writers.EmoticImage`) with their pictures."""
    from dataset_scripts.writers import EmoticImage, EmoticPerson

    names, weights = zip(*_SOURCES)
    records = []
    for index in range(num_images):
        source = str(rng.choice(names, p=weights))
        num_subjects = int(rng.integers(1, 3))
        image, persons = render_scene(rng, size=size, num_people=num_subjects + 1, num_subjects=num_subjects)
        records.append(
            EmoticImage(
                filename=_file_name(source, split, index),
                folder=f"{source}/images",
                image_size=image.size,
                persons=[
                    EmoticPerson(bbox=p.bbox, categories=p.categories, vad=p.vad, gender=p.gender, age=p.age)
                    for p in persons
                ],
                source_database=source,
                image=image,
            )
        )
    return records


# Written next to the synthetic data, so that whatever trains on it (a model card) knows it is not EMOTIC.
SYNTHETIC_MARKER = "emofusion_synthetic.json"


def read_synthetic_marker(data_dir) -> dict | None:
    """The content of `<data_dir>/emofusion_synthetic.json` when `data_dir` holds synthetic data, else None."""
    if not data_dir:
        return None
    path = os.path.join(os.fspath(data_dir), SYNTHETIC_MARKER)
    if not os.path.isfile(path):
        return None
    marker = read_json_file(path, ValueError, writer="write_synthetic_emotic")
    if not isinstance(marker, dict) or not marker.get("synthetic"):
        raise ValueError(f'{path}: expected a JSON object with "synthetic": true, got {marker!r}.')
    return marker


def write_synthetic_emotic(root, num_images: dict[str, int], seed: int = 0, size=(96, 72)):
    """Write a synthetic EMOTIC copy: `<root>/Annotations/Annotations.mat` + `<root>/emotic/<source>/images/*.jpg`.

    `num_images` maps EMOTIC's splits (`train`, `val`, `test`) to image counts; each image holds one
    or two annotated subjects (and one more person who is not annotated). `<root>/emofusion_synthetic.json`
    records that the data is synthetic and how it was made. Returns the .mat path.

    >>> write_synthetic_emotic("/tmp/synthetic-emotic", {"train": 8, "val": 4, "test": 4}).name
    'Annotations.mat'
    """
    from dataset_scripts.writers import write_emotic_mat

    rng = np.random.default_rng(seed)
    splits = {split: synthetic_emotic_images(split, count, rng, size) for split, count in num_images.items()}
    mat_path = write_emotic_mat(root, splits)
    marker = {
        "synthetic": True,
        "name": "emofusion synthetic scenes",
        "writer": "emofusion.synthetic.write_synthetic_emotic",
        "layout": "emotic",
        "seed": seed,
        "num_images": dict(num_images),
        "image_size": list(size),
        "description": (
            "Drawn scenes whose labels a program sets: half by the colour of a patch inside the subject's box, "
            "half by a word in the subject's description. In EMOTIC's file layout, but not EMOTIC."
        ),
    }
    with open(os.path.join(os.fspath(root), SYNTHETIC_MARKER), "w", encoding="utf-8") as handle:
        json.dump(marker, handle, indent=2)
        handle.write("\n")
    return mat_path
