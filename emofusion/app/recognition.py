"""What the app does with a photo and a table of people, without gradio: read the table, run the pipeline, draw.

The page (`page.py`) turns `AppInputError` into a message on the page (`gr.Error`) and the
warnings collected here into `gr.Warning`s; everything else is plain Python, so it can be tested
and reused without a browser.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path


# The columns of the page's people table: a box in the photo's pixels and an optional description.
PEOPLE_COLUMNS = ["x1", "y1", "x2", "y2", "description"]
RESULT_COLUMNS = ["person", "labels", "valence", "arousal", "dominance", "description", "description source"]


class AppInputError(ValueError):
    """A problem with what the user gave (photo, boxes, descriptions) or with a model: shown on the page."""


@dataclass
class Person:
    bbox: list[float] | None
    description: str | None


@dataclass
class Recognition:
    """Everything the page shows for one photo."""

    subjects: list[dict]
    annotated: object  # PIL image
    figure: object  # matplotlib Figure
    table: list[list]
    json_path: str
    warnings: list[str] = field(default_factory=list)


def _number(value) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise AppInputError(f"{value!r} is not a number") from None
    return None if math.isnan(number) else number


def read_people(rows, photo_size: tuple[int, int]) -> tuple[list[Person], list[str]]:
    """The people table's rows -> people and warnings; empty rows are skipped, bad ones are `AppInputError`s.

    Each row is `[x1, y1, x2, y2, description]` in the photo's pixels (numbers or numeric strings;
    the description may be missing or empty). A box must have x1 < x2 and y1 < y2 and overlap the
    picture; a box reaching outside it is clipped by the pipeline, with a warning.
    """
    width, height = photo_size
    people, warnings = [], []
    for number, row in enumerate(rows or [], start=1):
        row = list(row) + [None] * (len(PEOPLE_COLUMNS) - len(row))
        text = row[4]
        text = None if text is None or (isinstance(text, float) and math.isnan(text)) else str(text).strip() or None
        try:
            box = [_number(v) for v in row[:4]]
        except AppInputError as error:
            raise AppInputError(f"People table, row {number}: {error}; a box is x1, y1, x2, y2 in pixels.") from None
        if all(v is None for v in box):
            if text is not None:
                raise AppInputError(
                    f"People table, row {number}: a description but no box. Give the box (x1, y1, x2, y2 in pixels: "
                    "click two corners on the photo), or clear the row."
                )
            continue
        if any(v is None for v in box):
            raise AppInputError(f"People table, row {number}: the box needs all four numbers x1, y1, x2, y2.")
        x1, y1, x2, y2 = box
        if not (x1 < x2 and y1 < y2):
            raise AppInputError(
                f"People table, row {number}: the box {box} needs x1 < x2 and y1 < y2 (left, top, right, bottom)."
            )
        if x2 <= 0 or y2 <= 0 or x1 >= width or y1 >= height:
            raise AppInputError(
                f"People table, row {number}: the box {box} lies outside the picture, which is {width}x{height} "
                "pixels."
            )
        if x1 < 0 or y1 < 0 or x2 > width or y2 > height:
            where = f"Person {len(people) + 1}: the box reaches outside the {width}x{height} picture"
            warnings.append(f"{where}; clipped.")
        people.append(Person(box, text))
    return people, warnings


def result_table(subjects: list[dict]) -> list[list]:
    """One row a person: number, labels, valence, arousal, dominance, the description used and where it came from."""
    rows = []
    for index, subject in enumerate(subjects, start=1):
        vad = subject.get("vad") or {}
        rows.append(
            [
                index,
                ", ".join(subject["labels"]) or "(none over its threshold)",
                *(round(vad[name], 3) if name in vad else None for name in ("valence", "arousal", "dominance")),
                subject.get("description") or "",
                subject.get("description_source") or "",
            ]
        )
    return rows


def is_synthetic_model(model: str) -> bool:
    """Whether a local checkpoint says (in its model card's tags) that it was trained on synthetic data."""
    card = Path(model) / "README.md"
    if not card.is_file():
        return False
    text = card.read_text(encoding="utf-8", errors="replace")
    header = text.split("---", 2)[1] if text.startswith("---") and text.count("---") >= 2 else ""
    return "synthetic-data" in header


class Recogniser:
    """The app's model: a lazily loaded "emotion-in-context" pipeline and what the page asks of it.

    The model is loaded on first use (and again on the next request if that failed), so that a
    model that cannot load is a message on the page rather than a server that does not start.
    One lock around each call (`lock`): requests come one at a time from gradio's queue, and the
    pipeline keeps its loaded describers and detectors between calls. Results are written under
    `output_dir`, one folder a request.
    """

    def __init__(self, model: str, revision: str | None = None, device=None, detector: str | None = None):
        self.model = model
        self.revision = revision
        self.device = device
        self.detector = detector
        self._pipe = None
        self.lock = threading.Lock()
        self.output_dir = Path(tempfile.mkdtemp(prefix="emofusion-app-"))

    def pipeline(self):
        if self._pipe is None:
            from modeling_emofusion import load_pipeline

            try:
                self._pipe = load_pipeline(self.model, revision=self.revision, device=self.device)
            except Exception as error:  # any failure to load is the user's to see, in the page
                raise AppInputError(f"The model {self.model!r} cannot be loaded: {error}") from error
        return self._pipe

    def load_error(self) -> str | None:
        """None when the model loads, else the message saying why not (shown on the page at start)."""
        try:
            self.pipeline()
        except AppInputError as error:
            return str(error)
        return None

    @property
    def config(self):
        return self.pipeline().model.config

    def photo_size(self, photo: str) -> tuple[int, int]:
        """The upright photo's (width, height): the frame of the boxes. An unreadable file is an `AppInputError`."""
        from PIL import Image

        try:
            with Image.open(photo) as picture:  # the header only: the pipeline decodes it at working size
                width, height = picture.size
                turned = picture.getexif().get(0x0112, 1) in (5, 6, 7, 8)  # EXIF orientations with a quarter turn
        except Exception as error:
            raise AppInputError(f"{Path(photo).name}: not a picture that can be read ({error}).") from error
        return (height, width) if turned else (width, height)

    def recognise_video(self, video: str | None, fps=2.0, box=None, description=None, describer=None):
        """The video tab's run: see `video_recognition.recognise_video`."""
        from .video_recognition import recognise_video

        return recognise_video(self, video, fps=fps, box=box, description=description, describer=describer)

    def find_people(self, photo: str | None, threshold: float = 0.5) -> list[list]:
        """The detector's people as rows of the people table (descriptions empty, to be typed)."""
        if not photo:
            raise AppInputError("Upload a photo (or pick an example) first.")
        self.photo_size(photo)
        with self.lock:
            try:
                found = self.pipeline().find_people(photo, detector=self.detector, threshold=threshold)
            except (ValueError, OSError) as error:
                raise AppInputError(str(error)) from error
        return [[*(round(v) for v in person["bbox"]), ""] for person in found]

    def recognise(self, photo: str | None, rows, describer: str | None = None) -> Recognition:
        """Run the pipeline on the photo for the table's people (or, with none, every person the detector finds)."""
        from emofusion.app.charts import score_figure
        from emofusion.app.drawing import draw_people
        from modeling_emofusion.marking import load_image_for_model

        if not photo:
            raise AppInputError("Upload a photo (or pick an example) first.")
        size = self.photo_size(photo)
        people, warnings = read_people(rows, size)
        describer = (describer or "").strip() or None
        options = {"describer": describer} if describer else {}
        with self.lock:
            pipe = self.pipeline()
            config = pipe.model.config
            needs_text = config.modality != "vision"
            if needs_text and not describer and not config.description_model:
                missing = [str(i) for i, person in enumerate(people, start=1) if person.description is None]
                if missing or not people:
                    who = f"person {', '.join(missing)}" if people else "the people the detector would find"
                    raise AppInputError(
                        f"No description for {who}, and this model records no VLLM to write one. Type a description "
                        "for each person in the table ('Find people' fills in their boxes), or name a describer "
                        "(an image-text-to-text model such as llava-hf/llava-1.5-7b-hf)."
                    )
            try:
                if people:
                    subjects = pipe(
                        photo,
                        bbox=[person.bbox for person in people],
                        description=[person.description for person in people],
                        **options,
                    )
                else:
                    subjects = pipe(photo, detect=True, detector=self.detector, **options)
                    if not subjects:
                        warnings.append("The detector found nobody: add the people's boxes (click two corners).")
            except (ValueError, OSError) as error:
                raise AppInputError(str(error)) from error
        picture = load_image_for_model(photo, min_side=1024)
        shown = [{**s, "bbox": picture.to_working(s["bbox"])} for s in subjects]
        annotated = draw_people(picture.image, shown)
        figure = score_figure(
            subjects,
            config.id2label,
            config.decision_thresholds,
            multi_label=config.problem_type != "single_label_classification",
        )
        out = Path(tempfile.mkdtemp(dir=self.output_dir)) / "predictions.json"
        out.write_text(json.dumps(subjects, indent=2, ensure_ascii=False), encoding="utf-8")
        return Recognition(subjects, annotated, figure, result_table(subjects), os.fspath(out), warnings)
