"""Reading a video for the pipeline: decoded as a stream with PyAV, sampled at a chosen rate.

Frames are decoded one at a time and only the sampled ones are kept, at the model's working
size (`marking.load_image_for_model`), so memory does not grow with the video's length. PyAV is
imported when a video is opened: this file is saved next to checkpoints with the pipeline and
imports only the standard library, PIL, transformers and its own package at the top.

>>> reader = VideoReader("clip.mp4", fps=2.0, min_side=1024)  # doctest: +SKIP
>>> with reader:  # doctest: +SKIP
...     for frame in reader:
...         frame.index, frame.time, frame.picture.image.size
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

from transformers.utils import logging

from .marking import ModelPicture, load_image_for_model


logger = logging.get_logger(__name__)

VIDEO_EXTRA = 'pip install "emofusion[video]"'
# Sampling rate when neither fps nor every_n_frames is given: a few looks a second are enough for emotions.
DEFAULT_SAMPLE_FPS = 2.0


def import_av():
    """PyAV, or an ImportError naming the extra that installs it."""
    try:
        import av
    except ImportError as error:
        raise ImportError(f"Reading and writing videos needs PyAV: {VIDEO_EXTRA} (or pip install av).") from error
    return av


def is_url(source) -> bool:
    return isinstance(source, str) and source.startswith(("http://", "https://"))


@dataclass
class SampledFrame:
    """One sampled frame: its `index` among all decoded frames, its `time` in seconds, the working `picture`."""

    index: int
    time: float
    picture: ModelPicture


def check_sampling(fps: float | None, every_n_frames: int | None) -> tuple[float | None, int | None]:
    """The sampling rate as given, checked: at most one of `fps` (> 0) and `every_n_frames` (>= 1)."""
    if fps is not None and every_n_frames is not None:
        raise ValueError("Give fps or every_n_frames to sample a video, not both.")
    if fps is not None and (isinstance(fps, bool) or not isinstance(fps, (int, float)) or not fps > 0):
        raise ValueError(f"fps must be a positive number of sampled frames per second, got {fps!r}.")
    if every_n_frames is not None and (
        isinstance(every_n_frames, bool) or not isinstance(every_n_frames, int) or every_n_frames < 1
    ):
        raise ValueError(f"every_n_frames must be a whole number >= 1, got {every_n_frames!r}.")
    if fps is None and every_n_frames is None:
        fps = DEFAULT_SAMPLE_FPS
    return (None if fps is None else float(fps)), every_n_frames


class VideoReader:
    """The sampled frames of a video file or URL, decoded as a stream.

    Opening checks the file (found, a video with a video stream) and raises a one-line error
    naming it. Iterating yields `SampledFrame`s; afterwards `num_frames` holds the number of frames
    decoded and `problem` says why decoding stopped early (a damaged frame), or is None.
    """

    def __init__(
        self,
        source: str | os.PathLike,
        fps: float | None = None,
        every_n_frames: int | None = None,
        min_side: int | None = None,
        timeout: float | None = None,
    ):
        self.source = os.fspath(source) if isinstance(source, os.PathLike) else source
        if not isinstance(self.source, str):
            raise ValueError(f"video must be a path or URL of a video file, got {type(source).__name__}.")
        self.sample_fps, self.every_n_frames = check_sampling(fps, every_n_frames)
        self.min_side = min_side
        self.num_frames = 0
        self.problem: str | None = None
        if not is_url(self.source) and not os.path.isfile(self.source):
            raise FileNotFoundError(f"{self.source}: no such video file.")
        if not is_url(self.source) and os.path.getsize(self.source) == 0:
            raise ValueError(f"{self.source}: the video file is empty (0 bytes).")
        av = import_av()
        try:
            self._container = av.open(self.source, timeout=timeout) if timeout else av.open(self.source)
        except av.error.FFmpegError as error:
            raise ValueError(f"{self.source}: cannot read it as a video ({_reason(error)}).") from None
        if not self._container.streams.video:
            self._container.close()
            raise ValueError(f"{self.source}: the file has no video stream.")
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        rate = self._stream.average_rate or self._stream.guessed_rate or self._stream.base_rate
        self.fps = float(rate) if rate else 0.0
        self.width, self.height = self._stream.codec_context.width, self._stream.codec_context.height
        # What the container says (0 when it does not know): for the progress bar only.
        self.expected_frames = int(self._stream.frames or 0)

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._container.close()

    def _time(self, frame, index: int) -> float:
        if frame.time is not None:
            return float(frame.time)
        return index / self.fps if self.fps else float(index)

    def __iter__(self) -> Iterator[SampledFrame]:
        av = import_av()
        next_time = None
        start_time = None
        frames = self._container.decode(self._stream)
        while True:
            try:
                frame = next(frames)
            except StopIteration:
                break
            except av.error.FFmpegError as error:
                # A damaged stream: keep what was read (the timeline so far), say where it stopped.
                self.problem = f"decoding stopped after {self.num_frames} frames ({_reason(error)})"
                logger.warning(f"{self.source}: {self.problem}.")
                break
            index = self.num_frames
            self.num_frames += 1
            time = self._time(frame, index)
            if start_time is None:
                start_time = time
            time -= start_time  # seconds from the first frame, whatever the container's start offset
            if self.every_n_frames is not None:
                keep = index % self.every_n_frames == 0
            else:
                # Keep the first frame at or after each sampling time (half a source frame early is on time).
                slack = 0.5 / self.fps if self.fps else 0.0
                keep = next_time is None or time >= next_time - slack
                if keep:
                    next_time = (time if next_time is None else next_time) + 1.0 / self.sample_fps
                    if next_time < time - slack:  # a long gap in the stream: restart the grid here
                        next_time = time + 1.0 / self.sample_fps
            if keep:
                image = frame.to_image()  # RGB PIL image of the decoded frame
                yield SampledFrame(index, round(time, 4), load_image_for_model(image, min_side=self.min_side))
        if self.num_frames == 0 and self.problem is None:
            raise ValueError(f"{self.source}: the video has no frames.")
        if self.num_frames == 0:
            raise ValueError(f"{self.source}: cannot decode any frame ({self.problem}).")


def _reason(error) -> str:
    """FFmpeg's own words for an error, without the errno and the repeated file name."""
    text = getattr(error, "strerror", None) or str(error)
    return str(text).strip().rstrip(".")
