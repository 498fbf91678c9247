"""People through time: detections joined into tracks, and each track cut into the model's windows.

The tracker is ByteTrack from Roboflow's `trackers` library (maintained; supervision's own
ByteTrack is deprecated and gone from supervision 0.31). The detector runs every
`detect_every` sampled frames; on the sampled frames in between, a track's box is interpolated
linearly between its two detections (held after the last one). Each track's sampled frames are
cut into windows of `config.num_frames` consecutive frames (clip models) or single frames (image
models); a gap in a track (it was not found) ends its current window.

`trackers` is imported when a tracker is built: this file is saved next to checkpoints with the
pipeline and imports only the standard library, numpy and its own package at the top.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .video_reading import VIDEO_EXTRA, SampledFrame


def _import_tracking():
    try:
        import supervision
        from trackers import ByteTrackTracker
    except ImportError as error:
        raise ImportError(
            f"Following people through a video needs Roboflow's trackers library: {VIDEO_EXTRA} "
            "(or pip install trackers)."
        ) from error
    return ByteTrackTracker, supervision


class PeopleTracker:
    """ByteTrack over one video's detections, called once per detection frame.

    `frame_rate` is the rate of detection frames (sampled fps / detect_every): ByteTrack's motion
    model and its lost-track buffer (one second) count in those steps.
    """

    def __init__(self, frame_rate: float, threshold: float):
        ByteTrackTracker, self._sv = _import_tracking()
        self._tracker = ByteTrackTracker(
            frame_rate=max(float(frame_rate), 1e-3),
            # The detections are already above the pipeline's threshold: every one may start or continue a track.
            track_activation_threshold=threshold,
            high_conf_det_threshold=threshold,
            # A person found in one detection frame is a track from the next one on.
            minimum_consecutive_frames=1,
        )

    def update(self, boxes: Sequence[Sequence[float]], scores: Sequence[float]) -> dict[int, list[float]]:
        """The tracked boxes of this detection frame, `{track id: [x1, y1, x2, y2]}` (the detector's boxes)."""
        if len(boxes):
            detections = self._sv.Detections(
                xyxy=np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
                confidence=np.asarray(scores, dtype=np.float32),
                class_id=np.zeros(len(boxes), dtype=int),
            )
        else:
            detections = self._sv.Detections.empty()
        tracked = self._tracker.update(detections)
        # tracker_id -1: a detection not (yet) part of a track (the first sighting of a new person).
        return {
            int(track_id): [round(float(v), 2) for v in box]
            for box, track_id in zip(tracked.xyxy, tracked.tracker_id)
            if track_id >= 0
        }


def interpolate_boxes(
    before: dict[int, list[float]], after: dict[int, list[float]], fraction: float
) -> dict[int, list[float]]:
    """Boxes a `fraction` of the way from one detection frame to the next, for the tracks found in both."""
    return {
        track_id: [round(a + (b - a) * fraction, 2) for a, b in zip(before[track_id], after[track_id])]
        for track_id in before
        if track_id in after
    }


@dataclass
class Window:
    """A track's window: its sampled frames and boxes (in the video's pixels)."""

    track_id: int
    frames: list[SampledFrame]
    boxes: list[list[float]]

    def model_input(self, clip: bool, description: str | None) -> dict:
        """The pipeline input of this window: a clip of its frames, or its one frame."""
        if clip:
            return {
                "frames": [f.picture.image for f in self.frames],
                "bbox": [f.picture.to_working(b) for f, b in zip(self.frames, self.boxes)],
                "description": description,
            }
        (frame,), (box,) = self.frames, self.boxes
        return {"image": frame.picture.image, "bbox": frame.picture.to_working(box), "description": description}

    def entry(self, result: dict) -> dict:
        """The timeline entry of this window from the pipeline's `result` for it."""
        middle = len(self.frames) // 2
        scores = {s["label"]: round(float(s["score"]), 6) for s in result["scores"]}
        entry = {
            "time": self.frames[middle].time,
            "frame": self.frames[middle].index,
            "start": self.frames[0].time,
            "end": self.frames[-1].time,
            "first_frame": self.frames[0].index,
            "last_frame": self.frames[-1].index,
            "box": self.boxes[middle],
            "labels": [{"label": name, "score": scores[name]} for name in result["labels"]],
            "scores": scores,
        }
        if "vad" in result:
            entry["vad"] = {k: round(float(v), 6) for k, v in result["vad"].items()}
        entry["description"] = result.get("description")
        entry["description_source"] = result.get("description_source")
        return entry


@dataclass
class Track:
    id: int
    boxes: list[dict] = field(default_factory=list)  # one {"frame", "time", "box"} per sampled frame
    windows: list[dict] = field(default_factory=list)
    # The window being filled: consecutive sampled frames of this track.
    open_frames: list[SampledFrame] = field(default_factory=list)
    open_boxes: list[list[float]] = field(default_factory=list)
    last_sample: int = -2

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "start": self.boxes[0]["time"],
            "end": self.boxes[-1]["time"],
            "windows": sorted(self.windows, key=lambda w: w["frame"]),
            "boxes": self.boxes,
        }


class WindowCutter:
    """Collects each track's boxes per sampled frame and cuts full windows of `window_size` frames."""

    def __init__(self, window_size: int):
        self.window_size = window_size
        self.tracks: dict[int, Track] = {}

    def add(self, sample: int, frame: SampledFrame, boxes: dict[int, list[float]]) -> list[Window]:
        """The boxes of sampled frame number `sample`; returns the windows this frame completes or ends."""
        done = []
        for track_id, track in self.tracks.items():
            if track_id not in boxes and track.open_frames:
                done.append(self._close(track))  # the track was not found here: its window ends
        for track_id, box in boxes.items():
            track = self.tracks.setdefault(track_id, Track(track_id))
            if track.open_frames and track.last_sample != sample - 1:
                done.append(self._close(track))
            track.boxes.append({"frame": frame.index, "time": frame.time, "box": box})
            track.open_frames.append(frame)
            track.open_boxes.append(box)
            track.last_sample = sample
            if len(track.open_frames) == self.window_size:
                done.append(self._close(track))
        return done

    def finish(self) -> list[Window]:
        """The windows still open at the end of the video (shorter than `window_size` for clips)."""
        return [self._close(track) for track in self.tracks.values() if track.open_frames]

    @staticmethod
    def _close(track: Track) -> Window:
        window = Window(track.id, track.open_frames, track.open_boxes)
        track.open_frames, track.open_boxes = [], []
        return window
