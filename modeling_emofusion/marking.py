"""Subject marking: how the person of interest is shown to the VLLM and to the fusion model.

The paper draws the subject's bounding box in red on the FULL image (no crop), so that the
description speaks of "the person in the red box" and the classifier sees the same picture.
This module is the one place that does it: caption.py, the processor and the pipeline all call
`mark_subject`, so training and inference see identical pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from PIL import Image, ImageDraw


MARKING_MODES = ("box", "crop", "none")
RED = (255, 0, 0)


def validate_marking(mode: str) -> str:
    """Return `mode` if it is a known marking mode, else raise a ValueError that lists them."""
    if mode not in MARKING_MODES:
        raise ValueError(f"Unknown marking mode {mode!r}: expected one of {MARKING_MODES}.")
    return mode


def clip_box(bbox: Sequence[float], image_size: tuple[int, int]) -> tuple[float, float, float, float]:
    """Clip an `[x1, y1, x2, y2]` pixel box to an image of `image_size = (width, height)`.

    A box partly outside the image is clipped to it. A box that is not four finite numbers, has
    x2 <= x1 or y2 <= y1, or lies wholly outside the image is a ValueError.

    >>> clip_box([-5, 10, 50, 300], (40, 200))
    (0.0, 10.0, 40.0, 200.0)
    """
    try:
        values = [float(v) for v in bbox]
    except (TypeError, ValueError):
        raise ValueError(f"bbox must be four numbers [x1, y1, x2, y2] in pixels, got {bbox!r}.") from None
    if len(values) != 4:
        raise ValueError(f"bbox must be four numbers [x1, y1, x2, y2] in pixels, got {len(values)}: {bbox!r}.")
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"bbox must hold finite numbers, got {bbox!r}.")
    x1, y1, x2, y2 = values
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f"bbox {bbox!r} has zero or negative area: expected x1 < x2 and y1 < y2.")
    width, height = float(image_size[0]), float(image_size[1])
    cx1, cy1 = min(max(x1, 0.0), width), min(max(y1, 0.0), height)
    cx2, cy2 = min(max(x2, 0.0), width), min(max(y2, 0.0), height)
    if cx2 <= cx1 or cy2 <= cy1:
        raise ValueError(f"bbox {bbox!r} lies wholly outside the {image_size[0]}x{image_size[1]} image.")
    return cx1, cy1, cx2, cy2


def box_line_width(image_size: tuple[int, int]) -> int:
    """Outline width used for the red box: visible at any resolution, about 0.6% of the long side."""
    return max(2, round(0.006 * max(image_size)))


def mark_subject(
    image: Image.Image,
    bbox: Sequence[float] | None,
    mode: str = "box",
    color: tuple[int, int, int] = RED,
    line_width: int | None = None,
) -> Image.Image:
    """Return a new RGB image with the subject marked.

    - `mode="box"`: the box outline drawn on the full image (the paper's choice);
    - `mode="crop"`: the image cropped to the box;
    - `mode="none"`, or no `bbox` (e.g. CAER-S without a face-box file): the image unchanged.

    The box is clipped to the image first (see `clip_box`). The input image is never modified.

    >>> from PIL import Image
    >>> marked = mark_subject(Image.new("RGB", (64, 48)), [8, 8, 40, 40])
    >>> marked.getpixel((8, 20))
    (255, 0, 0)
    """
    validate_marking(mode)
    image = image.convert("RGB") if image.mode != "RGB" else image.copy()
    if mode == "none" or bbox is None:
        return image
    x1, y1, x2, y2 = clip_box(bbox, image.size)
    if mode == "crop":
        # Round outwards so a box covering part of a pixel keeps it.
        return image.crop((math.floor(x1), math.floor(y1), math.ceil(x2), math.ceil(y2)))
    width = line_width if line_width is not None else box_line_width(image.size)
    # PIL's rectangle includes its end coordinates; keep the outline inside the image.
    right, bottom = min(math.ceil(x2), image.width) - 1, min(math.ceil(y2), image.height) - 1
    ImageDraw.Draw(image).rectangle((round(x1), round(y1), right, bottom), outline=color, width=width)
    return image
