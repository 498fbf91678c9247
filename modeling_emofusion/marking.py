"""Subject marking: how the person of interest is shown to the VLLM and to the fusion model.

The paper draws the subject's bounding box in red on the FULL image (no crop), so that the
description speaks of "the person in the red box" and the classifier sees the same picture.
This module is the one place that does it: caption.py, the processor and the pipeline all call
`mark_subject`, so training and inference see identical pixels.

Large pictures are read with `load_image_for_model`: a JPEG is decoded at a reduced scale
(PIL's draft mode) and any picture is downscaled to a working size BEFORE the box is drawn, so
memory follows the model's input size, not the photo's (a 12000x12000 photo is 432 MB decoded).
Boxes move between the photo's pixels and the working picture's with `ModelPicture.to_working`
and `to_original`.
"""

from __future__ import annotations

import base64
import io
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw


MARKING_MODES = ("box", "crop", "none")
RED = (255, 0, 0)
# The working picture's shorter side is at least this many pixels (and twice the model's input
# side): the red box keeps its width relative to the picture, a person detector and a VLLM
# still get more pixels than their processors keep, and a 224-px model sees the same input.
MIN_WORKING_SIDE = 1024
# EXIF orientation -> the transpose that makes the picture upright (as in ImageOps.exif_transpose);
# 5 to 8 swap width and height.
_EXIF_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_TRANSPOSED_ORIENTATIONS = (5, 6, 7, 8)


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


# -- reading pictures at the size the model needs -------------------------------------------------


@dataclass(frozen=True)
class ModelPicture:
    """A picture read for the model: `image` (RGB, upright, at most working size) and the photo's `original_size`.

    Boxes given and reported by users are in the photo's pixels; `to_working` maps them onto
    `image`, `to_original` maps boxes found on `image` (e.g. by a detector) back.
    """

    image: Image.Image
    original_size: tuple[int, int]

    @property
    def scale(self) -> tuple[float, float]:
        """(x, y) factors from the photo's pixels to the working picture's (1.0 when not downscaled)."""
        return self.image.width / self.original_size[0], self.image.height / self.original_size[1]

    def to_working(self, bbox: Sequence[float] | None) -> list[float] | None:
        if bbox is None:
            return None
        sx, sy = self.scale
        return [bbox[0] * sx, bbox[1] * sy, bbox[2] * sx, bbox[3] * sy]

    def to_original(self, bbox: Sequence[float] | None) -> list[float] | None:
        if bbox is None:
            return None
        sx, sy = self.scale
        return [bbox[0] / sx, bbox[1] / sy, bbox[2] / sx, bbox[3] / sy]


def working_side(*input_sides: int | None) -> int:
    """The shortest side a working picture keeps: `MIN_WORKING_SIDE`, or twice the largest model input side."""
    return max([MIN_WORKING_SIDE] + [2 * int(side) for side in input_sides if side])


def image_processor_side(image_processor) -> int | None:
    """The largest side an image processor resizes or crops to (from its `size`/`crop_size`), or None."""
    sides = []
    for name in ("size", "crop_size"):
        size = getattr(image_processor, name, None)
        if isinstance(size, int):
            sides.append(size)
        elif size is not None:
            fields = size if isinstance(size, dict) else getattr(size, "__dict__", {})
            # Pixel-count budgets (Qwen-VL's min/max_pixels) are not sides.
            sides += [v for k, v in fields.items() if isinstance(v, int) and k in ("height", "width", "shortest_edge")]
    return max(sides) if sides else None


def _bomb_message(where: str, error: Exception) -> str:
    pixels = re.search(r"\((\d+) pixels\)", str(error))
    limit = 2 * Image.MAX_IMAGE_PIXELS if Image.MAX_IMAGE_PIXELS else None
    size = f"{int(pixels.group(1)):,} pixels" if pixels else "too many pixels"
    return (
        f"{where}: the picture has {size}, over PIL's decompression-bomb limit"
        + (f" of {limit:,}" if limit else "")
        + " (a guard against pictures made to exhaust memory). If you trust it, raise the limit: "
        "PIL.Image.MAX_IMAGE_PIXELS = None in Python, or `emofusion predict --max-image-pixels 0`."
    )


def download_picture(url: str, timeout: float | None = None) -> bytes:
    """The bytes at `url`; a ConnectionError naming the URL when it cannot be fetched (no traceback needed)."""
    from huggingface_hub.utils import httpx  # transformers' own HTTP client, imported only for URLs

    try:
        response = httpx.get(url, timeout=timeout if timeout is not None else 30.0, follow_redirects=True)
        response.raise_for_status()
    except httpx.HTTPError as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        raise ConnectionError(
            f"{url}: cannot download the picture ({reason}); check the address and the network, "
            "or download it and pass the file."
        ) from None
    return response.content


def open_picture(source, timeout: float | None = None, where: str | None = None) -> Image.Image:
    """Open a path, URL (`http(s)://`) or base64 (`data:image/...`) picture lazily: nothing is decoded yet.

    Errors name the source: a missing file is a FileNotFoundError, a URL that cannot be fetched a
    ConnectionError, a picture over PIL's decompression-bomb limit a `DecompressionBombError`
    whose message says how to allow it, and what is not a picture an `UnidentifiedImageError`.
    """
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    if not isinstance(source, str):
        raise TypeError(f"expected a path, URL or base64 string, got {type(source).__name__}.")
    where = where or (source if len(source) < 200 else source[:200] + "...")
    if source.startswith(("http://", "https://")):
        fp = io.BytesIO(download_picture(source, timeout))
    elif source.startswith("data:image/") or (len(source) >= 4096 and not os.path.isfile(source)):
        try:
            fp = io.BytesIO(base64.b64decode(source.split(",", 1)[-1], validate=False))
        except ValueError as error:
            raise ValueError(f"{where}: not a valid base64 picture ({error}).") from None
        where = "the base64 picture"
    elif os.path.isfile(source):
        fp = source
    else:
        raise FileNotFoundError(f"Image file not found: {source!r} (expected a path, a URL or a PIL image).")
    try:
        picture = Image.open(fp)
    except Image.DecompressionBombError as error:
        raise Image.DecompressionBombError(_bomb_message(where, error)) from None
    except Image.UnidentifiedImageError:
        raise Image.UnidentifiedImageError(f"{where}: not a picture PIL can read.") from None
    if picture.width == 0 or picture.height == 0:
        raise ValueError(f"{where}: the image is empty ({picture.width}x{picture.height}).")
    return picture


def _downscaled(image: Image.Image, min_side: int | None) -> Image.Image:
    """`image` reduced so that its shorter side is `min_side` (never enlarged)."""
    if min_side is None or min(image.size) <= min_side:
        return image
    factor = min_side / min(image.size)
    size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
    # reducing_gap: a fast box reduction first, then the exact resample (PIL's thumbnail does the same).
    return image.resize(size, Image.Resampling.BICUBIC, reducing_gap=3.0)


def load_image_for_model(
    source, min_side: int | None = MIN_WORKING_SIDE, timeout: float | None = None, where: str | None = None
) -> ModelPicture:
    """Read a picture at the working size the model needs, without decoding the full photo where avoidable.

    `source`: a path, URL, base64 string or PIL image. The result's `image` is RGB, upright (EXIF
    orientation applied) and downscaled so that its shorter side is `min_side` (None: full size);
    a JPEG is decoded at the smallest scale (1/2, 1/4, 1/8) that still covers it, so a 12000x12000
    photo costs a 1500x1500 decode. `original_size` is the upright photo's (width, height): the
    coordinate frame of user boxes and of the boxes reported back.

    >>> from PIL import Image
    >>> picture = load_image_for_model(Image.new("RGB", (4000, 3000)), min_side=600)
    >>> picture.image.size, picture.original_size, picture.to_original([80, 60, 160, 120])
    ((800, 600), (4000, 3000), [400.0, 300.0, 800.0, 600.0])
    """
    if isinstance(source, Image.Image):
        if source.width == 0 or source.height == 0:
            raise ValueError(f"{where or 'image'}: the image is empty ({source.width}x{source.height}).")
        image = _downscaled(source, min_side)
        return ModelPicture(image.convert("RGB") if image.mode != "RGB" else image, source.size)
    picture = open_picture(source, timeout=timeout, where=where)
    orientation = picture.getexif().get(0x0112, 1)
    width, height = picture.size
    original_size = (height, width) if orientation in _TRANSPOSED_ORIENTATIONS else (width, height)
    if min_side is not None and min(width, height) > min_side:
        factor = min_side / min(width, height)
        # A JPEG decodes straight at 1/2, 1/4 or 1/8 scale; other formats ignore the request.
        picture.draft(picture.mode, (math.ceil(width * factor), math.ceil(height * factor)))
    image = _downscaled(picture.convert("RGB") if picture.mode != "RGB" else picture, min_side)
    # Turned upright after the downscale, on the small picture (what ImageOps.exif_transpose does).
    if orientation in _EXIF_TRANSPOSE:
        image = image.transpose(_EXIF_TRANSPOSE[orientation])
    return ModelPicture(image, original_size)
