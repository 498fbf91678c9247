"""The synthetic task behind `emofusion demo --dataset bold`: clips whose labels need the frames' order AND the text.

Each clip (an H.264 mp4) shows two figures walking, one in each half of the frame,
and both are annotated person-clips, as in BoLD. Every annotated person carries a *clip* cue and a
*textual* cue, drawn independently:

- the clip cue is how the figure's shirt changes colour halfway through the clip: green then
  yellow, yellow then green, blue then magenta or magenta then blue. It decides 13 of EMOTIC's 26
  categories (`CLIP_GROUPS`, the same four groups as the image demo's patch colours). Any one frame
  shows one colour, which two of the four changes share: only a model that sees the clip's frames
  in order recovers the whole clip half. The other figure carries a cue of its own, so the picture
  only helps a model that looks inside the subject's (red) box. Each figure walks left or right at
  random (its boxes, from the joints, follow it), which says nothing about the labels;
- the textual cue is a word in the person's description, as in `emofusion.synthetic`: it decides
  the other 13 categories.

The data is written in the owners' layout (`dataset_scripts.writers`): headerless 37-column
annotation CSVs (`test_meta.csv` with the 4 public columns only), `videos/<video>` mp4s and
`joints/<video without .mp4>.npy` OpenPose COCO-18 joints, from which the BoLD builder takes each
person's box. Scores are soft (the active categories in [0.6, 1], the others in [0, 0.3]), so the
builder's binarisation at 0.5 gives back the rule's labels.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

from dataset_scripts.labels import EMOTIC_CATEGORIES

from .synthetic import (
    PATCH_COLOURS,
    SYNTHETIC_MARKER,
    TEXT_GROUPS,
    TEXT_VALENCE,
    VISUAL_CATEGORIES,
    VISUAL_GROUPS,
    _background,
)


# Shirt colour in the first half of the clip, then in the second -> the categories it stands for:
# the image demo's four groups.
CLIP_GROUPS: dict[tuple[str, str], tuple[str, ...]] = {
    ("green", "yellow"): VISUAL_GROUPS["green"],
    ("yellow", "green"): VISUAL_GROUPS["blue"],
    ("blue", "magenta"): VISUAL_GROUPS["yellow"],
    ("magenta", "blue"): VISUAL_GROUPS["magenta"],
}
CLIP_CATEGORIES: tuple[str, ...] = VISUAL_CATEGORIES
CLIP_AROUSAL = {("green", "yellow"): 7.0, ("yellow", "green"): 3.0, ("blue", "magenta"): 8.0, ("magenta", "blue"): 5.0}

FRAME_SIZE = (96, 72)  # even sides, as H.264 needs
FPS = 25
CLIP_LENGTH = 20  # frames in each mp4
FIRST_FRAME_RANGE = (0, 900)  # absolute frame_idx of a clip's first frame, as BoLD's clips are cut from longer videos
WALK = 0.6  # how far a figure walks over the clip, as a fraction of the room its half of the frame leaves it

# OpenPose COCO-18 joints as fractions of the figure's box (x, y): Nose, Neck, RShoulder, RElbow,
# RWrist, LShoulder, LElbow, LWrist, RHip, RKnee, RAnkle, LHip, LKnee, LAnkle, REye, LEye, REar, LEar.
# They span the box but for a small inset, which the builder's box margin (10%) gives back.
_JOINTS = np.array([
    (0.50, 0.12), (0.50, 0.30), (0.20, 0.32), (0.12, 0.50), (0.10, 0.66), (0.80, 0.32), (0.88, 0.50),
    (0.90, 0.66), (0.36, 0.62), (0.34, 0.80), (0.30, 0.96), (0.64, 0.62), (0.66, 0.80), (0.70, 0.96),
    (0.45, 0.09), (0.55, 0.09), (0.40, 0.11), (0.60, 0.11),
])  # fmt: skip
_SPLIT_FOLDERS = {"train": "003", "val": "005", "test": "007"}
_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@dataclass
class SyntheticWalker:
    """One annotated person of a clip: its id, cues, labels, and its box in each of the clip's frames."""

    person_id: int
    clip_group: tuple[str, str]  # shirt colour in the first half of the clip, then in the second
    text_group: str
    direction: str  # "left" or "right": where the figure walks (no label depends on it)
    boxes: list[list[float]]  # one [x1, y1, x2, y2] per frame of the clip
    categories: list[str] = field(default_factory=list)
    vad: list[float] = field(default_factory=list)


@dataclass
class SyntheticClip:
    """One synthetic BoLD clip: where it goes, its absolute frame range, its annotated range and people."""

    video: str  # BoLD's clip path, e.g. 003/IzvOYVMltkI.mp4/0114.mp4
    first_frame: int
    min_frame: int
    max_frame: int
    walkers: list[SyntheticWalker]


def walker_for(
    clip_group: tuple[str, str], text_group: str, person_id: int, boxes: list[list[float]], direction: str
) -> SyntheticWalker:
    """A person with the labels and VAD its two cues imply (in EMOTIC's canonical order)."""
    active = set(CLIP_GROUPS[clip_group]) | set(TEXT_GROUPS[text_group])
    valence, arousal = TEXT_VALENCE[text_group], CLIP_AROUSAL[clip_group]
    return SyntheticWalker(
        person_id=person_id,
        clip_group=clip_group,
        text_group=text_group,
        direction=direction,
        boxes=boxes,
        categories=[name for name in EMOTIC_CATEGORIES if name in active],
        vad=[valence, arousal, round((valence + arousal) / 2, 1)],
    )


def _walk(rng: np.random.Generator, lane: tuple[float, float], direction: str, height: int, length: int):
    """Boxes of a figure walking within one lane (a band of x, `lane`) of the frame, in `direction`."""
    start, end = lane
    tall = height * rng.uniform(0.8, 0.92)
    w = tall / rng.uniform(2.1, 2.4)
    distance = WALK * (end - start - w)
    y1 = rng.uniform(0, height - tall)
    left = start + rng.uniform(0, end - start - w - distance)
    xs = np.linspace(left, left + distance, length)
    if direction == "left":
        xs = xs[::-1]
    return [
        [round(float(x), 1), round(float(y1), 1), round(float(x + w), 1), round(float(y1 + tall), 1)] for x in xs
    ]


def _draw_walker(draw: ImageDraw.ImageDraw, box, shirt, trousers, step: int) -> None:
    # A head, a shirt (most of the torso, so that its colour shows at the model's small size) and
    # two legs that swing in turn.
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    draw.ellipse((x1 + 0.3 * w, y1 + 0.02 * h, x2 - 0.3 * w, y1 + 0.26 * h), fill=(205, 170, 140))
    draw.rectangle((x1 + 0.1 * w, y1 + 0.26 * h, x2 - 0.1 * w, y1 + 0.66 * h), fill=shirt)
    spread = 0.12 * w if step % 2 else 0.0
    for foot in (x1 + 0.3 * w - spread, x2 - 0.3 * w + spread):
        draw.line((x1 + 0.5 * w, y1 + 0.66 * h, foot, y2 - 0.02 * h), fill=trousers, width=max(2, round(0.14 * w)))


def render_clip(rng: np.random.Generator, walkers: list[SyntheticWalker], size=FRAME_SIZE) -> list[Image.Image]:
    """The clip's frames: a still background and each walker at its box of the frame, in the shirt of that half."""
    width, height = size
    background = Image.fromarray(_background(rng, width, height))
    trousers = [tuple(int(v) for v in rng.uniform(60, 110, size=3)) for _ in walkers]
    length = len(walkers[0].boxes)
    frames = []
    for t in range(length):
        frame = background.copy()
        draw = ImageDraw.Draw(frame)
        for walker, legs in zip(walkers, trousers):
            shirt = PATCH_COLOURS[walker.clip_group[0 if t < length // 2 else 1]]
            _draw_walker(draw, walker.boxes[t], shirt, legs, t // 2)
        frames.append(frame)
    return frames


def joints_rows(clip: SyntheticClip, rng: np.random.Generator) -> np.ndarray:
    """The clip's `(N, 56)` joints array: one row per (frame, person), absolute frame_idx, confidences 0.6-0.95."""
    from dataset_scripts.writers import bold_joints_row

    rows = []
    for t in range(len(clip.walkers[0].boxes)):
        for walker in clip.walkers:
            x1, y1, x2, y2 = walker.boxes[t]
            points = np.zeros((18, 3))
            points[:, 0] = x1 + _JOINTS[:, 0] * (x2 - x1)
            points[:, 1] = y1 + _JOINTS[:, 1] * (y2 - y1)
            points[:, 2] = rng.uniform(0.6, 0.95, size=18)
            rows.append(bold_joints_row(clip.first_frame + t, walker.person_id, points))
    return np.stack(rows)


def soft_scores(walker: SyntheticWalker, rng: np.random.Generator) -> dict[str, float]:
    """Annotators' soft scores: in [0.6, 1] for the walker's categories, [0, 0.3] for the others."""
    active = set(walker.categories)
    return {
        name: round(float(rng.uniform(0.6, 1.0) if name in active else rng.uniform(0.0, 0.3)), 3)
        for name in EMOTIC_CATEGORIES
    }


def _video_name(split: str, index: int) -> str:
    # <folder>/<11-character YouTube-like id>.mp4/<4-digit clip number>.mp4, as BoLD names its clips.
    digest = hashlib.sha256(f"{split}-{index}".encode()).digest()
    youtube_id = "".join(_ID_ALPHABET[b % 64] for b in digest[:11])
    return f"{_SPLIT_FOLDERS[split]}/{youtube_id}.mp4/{index + 1:04d}.mp4"


def synthetic_bold_clips(split: str, num_clips: int, rng: np.random.Generator, size=FRAME_SIZE):
    """`num_clips` clips of two annotated walkers each, and their frames: [(SyntheticClip, frames)]."""
    width, height = size
    # Two lanes side by side (the figures are tall, so that their shirts show at the model's small size).
    lanes = [(0.0, width / 2), (width / 2, float(width))]
    clips = []
    for index in range(num_clips):
        walkers = []
        for person_id, lane in enumerate(lanes):
            clip_group = list(CLIP_GROUPS)[int(rng.integers(len(CLIP_GROUPS)))]
            direction = str(rng.choice(["left", "right"]))
            boxes = _walk(rng, lane, direction, height, CLIP_LENGTH)
            text_group = str(rng.choice(list(TEXT_GROUPS)))
            walkers.append(walker_for(clip_group, text_group, person_id, boxes, direction))
        first = int(rng.integers(*FIRST_FRAME_RANGE))
        clip = SyntheticClip(_video_name(split, index), first, first + 1, first + CLIP_LENGTH - 2, walkers)
        clips.append((clip, render_clip(rng, walkers, size)))
    return clips


def write_synthetic_bold(root, num_clips: dict[str, int], seed: int = 0, size=FRAME_SIZE) -> dict[str, list]:
    """Write a synthetic BoLD under `<root>/BOLD_public` in the owners' layout; return its clips by split.

    `num_clips` maps BoLD's splits (`train`, `val`, `test`) to clip counts; each clip holds two
    annotated persons. `test_meta.csv` has only the public columns (BoLD's test labels are not
    public); the returned `SyntheticClip`s know every person's labels. `<root>/emofusion_synthetic.json`
    records that the data is synthetic and how it was made.

    >>> clips = write_synthetic_bold("/tmp/synthetic-bold", {"train": 4, "val": 2, "test": 2})
    >>> len(clips["train"][0].walkers)
    2
    """
    from dataset_scripts.writers import BoldAnnotation, write_bold_annotations, write_bold_joints, write_bold_video

    rng = np.random.default_rng(seed)
    written = {}
    for split, count in num_clips.items():
        rows, clips = [], []
        for clip, frames in synthetic_bold_clips(split, count, rng, size):
            write_bold_video(root, clip.video, frames, fps=FPS)
            write_bold_joints(root, clip.video, joints_rows(clip, rng))
            for walker in clip.walkers:
                rows.append(
                    BoldAnnotation(
                        clip.video, walker.person_id, clip.min_frame, clip.max_frame, soft_scores(walker, rng),
                        vad=walker.vad, gender=int(rng.integers(1, 3)), age=int(rng.integers(1, 4)),
                        ethnicity=int(rng.integers(1, 6)), confidence=round(float(rng.uniform(0.7, 1.0)), 3),
                    )
                )  # fmt: skip
            clips.append(clip)
        write_bold_annotations(root, split, rows)
        written[split] = clips
    marker = {
        "synthetic": True,
        "name": "emofusion synthetic walking clips",
        "writer": "emofusion.synthetic_bold.write_synthetic_bold",
        "layout": "bold",
        "seed": seed,
        "num_clips": dict(num_clips),
        "frame_size": list(size),
        # What the model card says set the labels, and what the model must not be used on.
        "cues": "shirts that change colour during the clip and words",
        "media": "videos",
        "description": (
            "Drawn clips of two walking figures whose labels a program sets: half by how the subject's shirt changes "
            "colour halfway through the clip, half by a word in the subject's description. In BoLD's file layout, "
            "but not BoLD."
        ),
    }
    with open(os.path.join(os.fspath(root), SYNTHETIC_MARKER), "w", encoding="utf-8") as handle:
        json.dump(marker, handle, indent=2)
        handle.write("\n")
    return written
