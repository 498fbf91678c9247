"""Draw the pipeline's results on the picture: each subject's box and its top emotions."""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont


# Box colours per subject; no pure red, which marks the subject for the models.
PALETTE = ((0, 200, 255), (255, 200, 0), (0, 230, 120), (255, 90, 200), (160, 120, 255), (255, 140, 40))


def top_emotions(subject: dict, top_k: int = 3) -> list[tuple[str, float]]:
    """What to write for a subject: its thresholded labels, best first (at most `top_k`), else its top scores."""
    scores = {entry["label"]: entry["score"] for entry in subject["scores"]}
    chosen = sorted(subject.get("labels") or [], key=lambda name: scores.get(name, 0.0), reverse=True)
    if not chosen:
        chosen = [entry["label"] for entry in subject["scores"]]
    return [(name, scores[name]) for name in chosen[:top_k]]


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one fixed-size default font
        return ImageFont.load_default()


def draw_predictions(
    image: Image.Image, subjects: Sequence[dict], top_k: int = 3, min_size: int | None = None
) -> Image.Image:
    """A copy of `image` with every subject's box and top emotions drawn on it.

    `subjects` is the pipeline's output for this image (a list of dicts with "bbox", "labels",
    "scores"). A subject without a box (the whole picture) gets its caption in the top-left corner.
    A subject may carry a "name" (written before its emotions; default its number from 1) and a
    "colour" (RGB; default one per position). `min_size` enlarges a small picture (by a whole
    factor, pixels kept sharp) until its long side reaches it, so that the captions stay readable.

    >>> from PIL import Image
    >>> subject = {"bbox": [4, 4, 40, 40], "labels": ["Happiness"], "scores": [{"label": "Happiness", "score": 0.9}]}
    >>> draw_predictions(Image.new("RGB", (64, 48)), [subject]).size
    (64, 48)
    """
    canvas = image.convert("RGB") if image.mode != "RGB" else image.copy()
    factor = 1
    if min_size is not None and max(canvas.size) < min_size:
        factor = -(-min_size // max(canvas.size))  # ceiling division
        canvas = canvas.resize((canvas.width * factor, canvas.height * factor), Image.NEAREST)
    draw = ImageDraw.Draw(canvas)
    long_side = max(canvas.size)
    font = _font(max(10, long_side // 40))
    line_width = max(2, long_side // 250)
    for index, subject in enumerate(subjects):
        colour = tuple(subject.get("colour") or PALETTE[index % len(PALETTE)])
        emotions = ", ".join(f"{name} {score:.2f}" for name, score in top_emotions(subject, top_k))
        caption = f"{subject.get('name', index + 1)}: {emotions}"
        box = subject.get("bbox")
        if box is not None:
            x1, y1, x2, y2 = (float(v) * factor for v in box)
            draw.rectangle((x1, y1, x2, y2), outline=colour, width=line_width)
            anchor_x, anchor_y = x1, y1
        else:
            anchor_x, anchor_y = 0.0, 0.0
        left, top, right, bottom = draw.textbbox((0, 0), caption, font=font)
        text_w, text_h = right - left, bottom - top
        # Above the box when there is room, else just inside it; always inside the picture.
        y = anchor_y - text_h - 4 if anchor_y - text_h - 4 >= 0 else anchor_y
        x = min(max(anchor_x, 0.0), max(canvas.width - text_w - 4, 0.0))
        draw.rectangle((x, y, x + text_w + 4, y + text_h + 4), fill=colour)
        draw.text((x + 2 - left, y + 2 - top), caption, fill=(0, 0, 0), font=font)
    return canvas
