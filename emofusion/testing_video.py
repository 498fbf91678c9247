"""Synthetic videos with known people in them, offline: two figures whose paths cross, and a finder for them.

The figures are drawn additively, one in the red channel and one in the green, so where they
overlap both stay visible (yellow) and their true boxes stay recoverable from the pixels. The
tests and benchmarks use them to check tracking against the known paths.

>>> from emofusion.testing_video import write_figures_video
>>> paths = write_figures_video("two.mp4", width=160, height=96, fps=10, num_frames=20)  # doctest: +SKIP
>>> sorted(paths[0])  # doctest: +SKIP
['green', 'red']
"""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image


FIGURES = {"red": 0, "green": 1}  # figure name -> the colour channel it is drawn in
BACKGROUND = 40


def figure_boxes(frame: int, width: int, height: int, period: int) -> dict[str, list[float]]:
    """Where the two figures are at `frame`: they walk across each other every `period` frames (and back)."""
    phase = (frame / max(period - 1, 1)) % 2.0
    u = phase if phase <= 1.0 else 2.0 - phase  # 0 -> 1 -> 0: left to right and back
    fig_w, fig_h = round(0.14 * width), round(0.55 * height)
    left, right = 0.04 * width, 0.96 * width - fig_w
    red_x = left + u * (right - left)
    green_x = right - u * (right - left)
    red_y, green_y = 0.3 * height, 0.2 * height
    return {
        "red": [round(red_x), round(red_y), round(red_x) + fig_w, round(red_y) + fig_h],
        "green": [round(green_x), round(green_y), round(green_x) + fig_w, round(green_y) + fig_h],
    }


@functools.lru_cache(maxsize=16)
def _background(width: int, height: int, seed: int) -> np.ndarray:
    # A little texture for the codec; a few backgrounds reused so that long videos are quick to write.
    rng = np.random.default_rng(seed)
    return np.full((height, width, 3), BACKGROUND, dtype=np.int16) + rng.integers(-8, 9, (height, width, 3), np.int16)


def draw_figures(boxes: dict[str, list[float]], width: int, height: int, seed: int = 0) -> np.ndarray:
    """An RGB frame (uint8) with a person-like figure (head over a body) filling each box."""
    frame = _background(width, height, seed % 8).copy()
    for name, (x1, y1, x2, y2) in boxes.items():
        channel = FIGURES[name]
        head_r = (x2 - x1) / 2
        # Only the box's pixels are touched: the head is a disc on top, the body the rest.
        yy, xx = np.mgrid[y1:y2, x1:x2]
        head = (xx - (x1 + x2) / 2) ** 2 + (yy - (y1 + head_r)) ** 2 <= head_r**2
        body = yy >= y1 + 2 * head_r
        frame[y1:y2, x1:x2, channel] += 180 * (head | body).astype(np.int16)
    return np.clip(frame, 0, 255).astype(np.uint8)


def write_figures_video(
    path,
    width: int = 160,
    height: int = 96,
    fps: int = 10,
    num_frames: int = 30,
    period: int | None = None,
    figures: bool = True,
    codec: str = "libx264",
) -> list[dict[str, list[float]]]:
    """Write an H.264 video of the two figures (or, with `figures=False`, of the empty scene); returns their
    true boxes per frame. They cross once in `period` frames (default: the whole video)."""
    import av

    period = period or num_frames
    paths = []
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            stream.options = {"preset": "ultrafast"}
        for t in range(num_frames):
            boxes = figure_boxes(t, width, height, period) if figures else {}
            paths.append(boxes)
            image = draw_figures(boxes, width, height, seed=t)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return paths


class FigureFinder:
    """Finds the figures in a frame from its pixels (the bright part of each colour channel), and returns
    them as an object-detection pipeline does: `[{"score", "label": "person", "box": {...}}]`, in a shuffled
    order and without saying which figure is which: the tracker has to tell them apart."""

    def __init__(self, seed: int = 0):
        self._rng = np.random.default_rng(seed)
        self.calls = 0

    def __call__(self, image: Image.Image, threshold: float = 0.5) -> list[dict]:
        self.calls += 1
        pixels = np.asarray(image.convert("RGB"))
        found = []
        for channel in FIGURES.values():
            # Well above what the other figure leaves in this channel after YUV 4:2:0 (up to ~130 here).
            mask = pixels[..., channel] > BACKGROUND + 110
            if mask.sum() < 20:
                continue
            ys, xs = np.nonzero(mask)
            box = {"xmin": int(xs.min()), "ymin": int(ys.min()), "xmax": int(xs.max()) + 1, "ymax": int(ys.max()) + 1}
            found.append({"score": 0.9, "label": "person", "box": box})
        self._rng.shuffle(found)
        return [d for d in found if d["score"] >= threshold]


def iou(a, b) -> float:
    """Intersection over union of two [x1, y1, x2, y2] boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
