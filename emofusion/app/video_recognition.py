"""What the app's video tab does, without gradio: check the options, run the pipeline's video path, write outputs.

A video gives a timeline (`pipe(video=..., fps=...)`, see modeling_emofusion/video_timeline.py):
people found by the detector and tracked, or one box held fixed; the page shows the annotated
H.264 video (boxes, track ids, current top emotions), the timeline plot, one table row a track and
the timeline's JSON.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .recognition import AppInputError, Recogniser, _number


TRACK_COLUMNS = ["track", "from (s)", "to (s)", "windows", "top emotions (mean score)"]


@dataclass
class VideoRecognition:
    """Everything the page shows for one video."""

    timeline: dict
    annotated_path: str
    plot_path: str
    table: list[list]
    json_path: str
    warnings: list[str] = field(default_factory=list)


def read_box(text: str | None) -> list[float] | None:
    """'x1, y1, x2, y2' (commas or spaces) -> a box, empty -> None; anything else is an `AppInputError`."""
    text = (text or "").strip()
    if not text:
        return None
    parts = text.replace(",", " ").split()
    expected = "four numbers x1, y1, x2, y2 in the video's pixels, or empty to find people with the detector"
    if len(parts) != 4:
        raise AppInputError(f"Box {text!r}: expected {expected}.")
    try:
        box = [_number(part) for part in parts]
    except AppInputError as error:
        raise AppInputError(f"Box {text!r}: {error}; expected {expected}.") from None
    if not (box[0] < box[2] and box[1] < box[3]):
        raise AppInputError(f"Box {box}: needs x1 < x2 and y1 < y2 (left, top, right, bottom).")
    return box


def read_fps(value) -> float:
    try:
        fps = _number(value)
    except AppInputError:
        fps = -1.0
    if fps is None or fps <= 0:
        raise AppInputError(f"Frames a second to read: {value!r}; expected a number above 0 (e.g. 2).")
    return fps


def track_table(timeline: dict, top_k: int = 3) -> list[list]:
    """One row a track: id, time span, number of windows, its top labels by mean score over its windows."""
    rows = []
    for track in timeline["tracks"]:
        windows = track["windows"]
        means = {}
        for window in windows:
            for label, score in window["scores"].items():
                means[label] = means.get(label, 0.0) + score / len(windows)
        top = sorted(means.items(), key=lambda item: -item[1])[:top_k]
        summary = ", ".join(f"{label} {score:.2f}" for label, score in top)
        rows.append([track["id"], round(track["start"], 2), round(track["end"], 2), len(windows), summary])
    return rows


def recognise_video(
    recogniser: Recogniser,
    video: str | None,
    fps=2.0,
    box: str | None = None,
    description: str | None = None,
    describer: str | None = None,
) -> VideoRecognition:
    """Run the pipeline's video path on `video` and write the annotated mp4, the plot and the JSON."""
    from emofusion.video_outputs import plot_timeline, write_annotated_video

    if not video:
        raise AppInputError("Upload a video first.")
    fps = read_fps(fps)
    bbox = read_box(box)
    description = (description or "").strip() or None
    describer = (describer or "").strip() or None
    options = {"describer": describer} if describer else {}
    if bbox is None:
        options["detector"] = recogniser.detector
    name = Path(video).name
    with recogniser.lock:
        pipe = recogniser.pipeline()
        config = pipe.model.config
        if config.modality != "vision" and description is None and not describer and not config.description_model:
            raise AppInputError(
                "No description, and this model records no VLLM to write one. Type a description of the person in "
                "context (it is used for every moment of the video), or name a describer (an image-text-to-text "
                "model such as llava-hf/llava-1.5-7b-hf)."
            )
        try:
            timeline = pipe(video=video, fps=fps, bbox=bbox, description=description, **options)
        except (ValueError, OSError, ImportError) as error:
            # Named as the user knows the file: the upload's own name, not gradio's temporary path.
            message = str(error).replace(os.fspath(video), name)
            raise AppInputError(message if name in message else f"{name}: {message}") from error
    warnings = [timeline["message"]] if timeline.get("message") else []
    out = Path(tempfile.mkdtemp(dir=recogniser.output_dir))
    annotated = write_annotated_video(timeline, video, out / "annotated.mp4")
    plot = plot_timeline(timeline, out / "timeline.png")
    json_path = out / "timeline.json"
    json_path.write_text(json.dumps(timeline, indent=2, ensure_ascii=False), encoding="utf-8")
    return VideoRecognition(
        timeline, os.fspath(annotated), os.fspath(plot), track_table(timeline), os.fspath(json_path), warnings
    )
