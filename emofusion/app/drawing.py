"""The annotated picture of the app: each person's box, number and top labels, readable even when boxes touch.

`emofusion.annotate.draw_predictions` puts every caption just above its box; where people stand
close together those captions cover each other. Here each caption is placed at the first of a
few spots around its box that overlaps no caption placed before it, and moved down until it is
free when none is.
"""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

from emofusion.annotate import PALETTE, top_emotions


MIN_LONG_SIDE = 480  # smaller pictures are enlarged (whole factors) so that captions stay readable
MAX_LONG_SIDE = 1024  # larger ones are shown downscaled: the page does not need the photo's full size


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one fixed-size default font
        return ImageFont.load_default()


def _overlaps(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def display_picture(image: Image.Image) -> tuple[Image.Image, float]:
    """`image` at the size the page shows it, and the factor from the photo's pixels to it."""
    image = image.convert("RGB") if image.mode != "RGB" else image.copy()
    long_side = max(image.size)
    if long_side < MIN_LONG_SIDE:
        factor = -(-MIN_LONG_SIDE // long_side)  # ceiling division: a whole factor keeps pixels sharp
        return image.resize((image.width * factor, image.height * factor), Image.NEAREST), float(factor)
    if long_side > MAX_LONG_SIDE:
        factor = MAX_LONG_SIDE / long_side
        size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
        return image.resize(size, Image.LANCZOS), factor
    return image, 1.0


def caption_of(index: int, subject: dict, top_k: int = 3) -> str:
    """ "2: Happiness 0.81, Pleasure 0.64": the person's number and best labels (thresholded first)."""
    emotions = ", ".join(f"{name} {score:.2f}" for name, score in top_emotions(subject, top_k))
    return f"{index + 1}: {emotions}"


def place_caption(size, box, text_size, taken: Sequence[tuple], margin: int = 2) -> tuple[float, float]:
    """Top-left corner for a caption of `text_size` near `box` (None: the whole picture) that overlaps nothing
    in `taken` where that is possible, always inside a picture of `size`."""
    width, height = size
    w, h = text_size
    x1, y1, x2, y2 = box if box is not None else (0.0, 0.0, float(width), float(height))

    def inside(x, y):
        return min(max(x, 0.0), max(width - w, 0.0)), min(max(y, 0.0), max(height - h, 0.0))

    spots = [(x1, y1 - h - margin), (x1, y1 + margin), (x1, y2 + margin), (x1, y2 - h - margin), (x2 - w, y1 - h)]
    for spot in spots:
        x, y = inside(*spot)
        if not any(_overlaps((x, y, x + w, y + h), other) for other in taken):
            return x, y
    # Every spot is covered: go down from the first one, a caption's height at a time, then wrap to the top.
    x, y = inside(*spots[0])
    for _ in range(2 * max(1, int(height // max(h, 1))) + 2):
        if not any(_overlaps((x, y, x + w, y + h), other) for other in taken):
            return x, y
        y += h + margin
        if y + h > height:
            y = 0.0
            x = min(x + w / 3, max(width - w, 0.0))
    return inside(*spots[0])


def draw_people(image: Image.Image, subjects: Sequence[dict], top_k: int = 3) -> Image.Image:
    """The picture as the page shows it with every subject's box, number and top labels.

    `subjects` is the pipeline's output (boxes in the photo's pixels, None for the whole picture).

    >>> subject = {"bbox": [4, 4, 40, 40], "labels": ["Peace"], "scores": [{"label": "Peace", "score": 0.9}]}
    >>> draw_people(Image.new("RGB", (64, 48)), [subject, subject]).size
    (512, 384)
    """
    canvas, factor = display_picture(image)
    draw = ImageDraw.Draw(canvas)
    long_side = max(canvas.size)
    font = _font(max(12, long_side // 42))
    line = max(2, long_side // 250)
    boxes = []
    for index, subject in enumerate(subjects):
        box = subject.get("bbox")
        box = None if box is None else [float(v) * factor for v in box]
        boxes.append(box)
        if box is not None:
            draw.rectangle(box, outline=PALETTE[index % len(PALETTE)], width=line)
    taken: list[tuple] = []
    for index, (subject, box) in enumerate(zip(subjects, boxes)):
        colour = PALETTE[index % len(PALETTE)]
        # Fewer labels when the caption would not fit across the picture.
        for k in range(top_k, 0, -1):
            text = caption_of(index, subject, k)
            left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
            if right - left + 6 <= canvas.width:
                break
        _draw_caption(draw, canvas.size, box, text, font, colour, taken)
    return canvas


def _draw_caption(draw, size, box, text: str, font, colour, taken: list[tuple]) -> None:
    """`text` on a `colour` label near `box`, placed clear of the labels in `taken` (to which it is added)."""
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    w, h = right - left + 6, bottom - top + 6
    x, y = place_caption(size, box, (w, h), taken)
    taken.append((x, y, x + w, y + h))
    draw.rectangle((x, y, x + w, y + h), fill=colour, outline=(0, 0, 0))
    draw.text((x + 3 - left, y + 3 - top), text, fill=(0, 0, 0), font=font)


def draw_boxes(image: Image.Image, boxes: Sequence[Sequence[float]]) -> Image.Image:
    """The picture with the people's boxes and numbers only: the page's preview of the people table."""
    canvas, factor = display_picture(image)
    draw = ImageDraw.Draw(canvas)
    long_side = max(canvas.size)
    font = _font(max(12, long_side // 42))
    taken: list[tuple] = []
    for index, box in enumerate(boxes):
        colour = PALETTE[index % len(PALETTE)]
        box = [float(v) * factor for v in box]
        draw.rectangle(box, outline=colour, width=max(2, long_side // 250))
        _draw_caption(draw, canvas.size, box, str(index + 1), font, colour, taken)
    return canvas
