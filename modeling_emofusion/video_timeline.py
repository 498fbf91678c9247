"""Every person's emotions through a video: the pipeline's `video=` path.

    >>> pipe(video="clip.mp4", fps=2.0)  # doctest: +SKIP
    {'video': 'clip.mp4', 'fps': 25.0, 'num_frames': 250, 'tracks': [{'id': 0, 'start': 0.0, 'end': 9.5,
     'windows': [{'time': 0.5, 'frame': 12, 'box': [...], 'labels': [...], 'scores': {...}, 'vad': {...}}, ...]}],
     'message': None}

Frames are decoded as a stream and sampled (`video_reading`); people are found by the pipeline's
object detector every `detect_every` sampled frames and joined into tracks by ByteTrack
(`video_tracking`), or, with `bbox`, the given box(es) are held fixed for the whole video (no
detection: for a subject that stays in place, or a video the detector cannot read). Each
track's windows go through the pipeline in batches as soon as they are complete, so only a few
windows' frames are in memory at any time. Descriptions are the one given for every window, or
generated per window from its middle frame with the model's recorded VLLM and prompt.

This file is saved next to checkpoints with the pipeline: it imports only the standard library
and its own package at the top.
"""

from __future__ import annotations

import os
from typing import Any

from transformers.utils import logging

from .video_reading import VideoReader
from .video_tracking import PeopleTracker, WindowCutter, interpolate_boxes


logger = logging.get_logger(__name__)

# Windows classified together in one batch of the pipeline (their frames are held until then).
WINDOW_BATCH = 8


def video_timeline(
    pipe,
    video: str | os.PathLike,
    fps: float | None = None,
    every_n_frames: int | None = None,
    bbox=None,
    description: str | None = None,
    detect_every: int = 1,
    detector=None,
    person_label: str = "person",
    detection_threshold: float = 0.5,
    describer=None,
    timeout: float | None = None,
    batch_size: int | None = None,
) -> dict[str, Any]:
    """The timeline of `video` (see the module docstring); `pipe` is an `EmotionInContextPipeline`."""
    from .pipeline_emofusion import _as_box_list

    name = os.fspath(video) if isinstance(video, os.PathLike) else video
    if isinstance(detect_every, bool) or not isinstance(detect_every, int) or detect_every < 1:
        raise ValueError(
            f"detect_every must be a whole number >= 1 (detection every k sampled frames), got {detect_every!r}."
        )
    if description is not None and not isinstance(description, str):
        raise ValueError(f"{name}: description must be one string (used for every window) or None (generated).")
    fixed = _as_box_list(bbox, str(name))
    config = pipe.model.config
    clip = config.num_frames > 1
    cutter = WindowCutter(config.num_frames if clip else 1)
    batch = batch_size or WINDOW_BATCH
    queue = []

    def classify(windows) -> None:
        queue.extend(windows)
        if len(queue) >= batch:
            flush()

    def flush() -> None:
        if not queue:
            return
        inputs = [w.model_input(clip, description) for w in queue]
        options = {"describer": describer} if describer is not None else {}
        results = pipe(inputs, batch_size=batch, **options)
        for window, result in zip(queue, results):
            (subject,) = result  # one subject per window input
            cutter.tracks[window.track_id].windows.append(window.entry(subject))
        queue.clear()

    reader = VideoReader(name, fps=fps, every_n_frames=every_n_frames, min_side=pipe.working_side, timeout=timeout)
    with reader:
        if fixed is not None:
            logger.info(f"{name}: {len(fixed)} given box(es), held fixed through the video (no detection).")
        sample_fps = reader.sample_fps or (reader.fps / reader.every_n_frames if reader.fps else 1.0)
        tracker = None if fixed is not None else PeopleTracker(sample_fps / detect_every, detection_threshold)
        last_detection = None  # (sample number, frame, tracked boxes)
        pending = []  # sampled frames since the last detection frame: (sample number, frame)
        progress = logging.tqdm(
            total=reader.expected_frames or None, unit="frame", desc=f"Reading {os.path.basename(str(name))}"
        )
        sample = -1
        for sample, frame in enumerate(_with_progress(reader, progress)):
            if fixed is not None:
                boxes = {i: [round(v, 2) for v in _clipped(box, frame, name)] for i, box in enumerate(fixed)}
                classify(cutter.add(sample, frame, boxes))
                continue
            if sample % detect_every:
                pending.append((sample, frame))
                continue
            found, scores = pipe._detect_people(frame.picture, detector, person_label, detection_threshold)
            boxes = tracker.update(found, scores)
            for between, held in pending:
                # Between two detection frames: each track's box moves linearly from one to the other.
                fraction = (between - last_detection[0]) / (sample - last_detection[0])
                classify(cutter.add(between, held, interpolate_boxes(last_detection[2], boxes, fraction)))
            pending = []
            classify(cutter.add(sample, frame, boxes))
            last_detection = (sample, frame, boxes)
        for between, held in pending:  # after the last detection frame, boxes are held
            classify(cutter.add(between, held, dict(last_detection[2])))
        progress.close()
    classify(cutter.finish())
    flush()

    tracks = [track.as_dict() for _, track in sorted(cutter.tracks.items()) if track.windows]
    messages = []
    if not tracks:
        messages.append(f"no person found in {name} ({sample + 1} sampled frames of {reader.num_frames})")
    if reader.problem:
        messages.append(f"{name}: {reader.problem}; the timeline covers the frames before it")
    for message in messages:
        logger.warning(message)
    return {
        "video": str(name),
        "fps": reader.fps,
        "num_frames": reader.num_frames,
        "width": reader.width,
        "height": reader.height,
        "sampled_frames": sample + 1,
        "sample_fps": reader.sample_fps,
        "every_n_frames": reader.every_n_frames,
        "detect_every": None if fixed is not None else detect_every,
        "boxes": "fixed" if fixed is not None else "tracked",
        "window_frames": config.num_frames if clip else 1,
        "tracks": tracks,
        "message": "; ".join(messages) or None,
    }


def _with_progress(frames, progress):
    """The sampled frames, advancing the progress bar by the decoded frames they stand for."""
    seen = 0
    for frame in frames:
        progress.update(frames.num_frames - seen)
        seen = frames.num_frames
        yield frame
    progress.update(frames.num_frames - seen)


def _clipped(box, frame, name) -> list[float]:
    from .marking import clip_box

    try:
        return clip_box(box, frame.picture.original_size)
    except ValueError as error:
        raise ValueError(f"{name}: {error}") from None
