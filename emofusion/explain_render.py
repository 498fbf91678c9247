"""Render the pipeline's explanations (`explain=True`): heatmap overlays and descriptions with shaded words.

For each subject and each explained label, one row: the annotated picture (its box and emotions), the
same picture with the label's heatmap laid over it, and under both the description with each word
shaded by its attribution (green raised the label's score, red lowered it). `save_explanations` writes
that as a PNG and the shaded descriptions as an HTML page next to it.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .annotate import _font, draw_predictions


def heat_colours(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] as RGB (uint8) on a black-red-yellow-white ("hot") scale."""
    v = np.clip(values, 0.0, 1.0)[..., None]
    rgb = np.concatenate([np.clip(3 * v, 0, 1), np.clip(3 * v - 1, 0, 1), np.clip(3 * v - 2, 0, 1)], axis=-1)
    return (rgb * 255).astype(np.uint8)


def heatmap_overlay(image: Image.Image, heatmap, alpha: float = 0.6) -> Image.Image:
    """`image` with `heatmap` (any (height, width) map, resized to the picture) blended over it.

    >>> heatmap_overlay(Image.new("RGB", (64, 48)), np.ones((6, 8))).size
    (64, 48)
    """
    heat = np.asarray(heatmap, dtype=np.float32)
    peak = float(heat.max()) if heat.size else 0.0
    heat = heat / peak if peak > 0 else heat
    layer = Image.fromarray(heat).resize(image.size, Image.BILINEAR)
    coloured = Image.fromarray(heat_colours(np.asarray(layer)))
    # Weak regions stay the picture, strong ones take the colour.
    weight = Image.fromarray((np.clip(np.asarray(layer), 0, 1) * alpha * 255).astype(np.uint8))
    return Image.composite(coloured, image.convert("RGB"), weight)


def _word_colour(score: float, scale: float) -> tuple[int, int, int]:
    strength = min(abs(score) / scale, 1.0) if scale > 0 else 0.0
    if score >= 0:
        return (int(255 - 175 * strength), 255, int(255 - 175 * strength))
    return (255, int(255 - 175 * strength), int(255 - 175 * strength))


def shaded_words(words: Sequence[str], scores: Sequence[float], width: int, font_size: int = 14) -> Image.Image:
    """The words laid out in lines of at most `width` pixels, each on a background shaded by its score."""
    font = _font(font_size)
    scale = max((abs(s) for s in scores), default=0.0)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    line_height = font_size + 8
    placed, x, y = [], 4, 4
    for word, score in zip(words, scores):
        left, _, right, _ = probe.textbbox((0, 0), word, font=font)
        w = right - left + 6
        if x + w > width - 4 and x > 4:
            x, y = 4, y + line_height
        placed.append((x, y, w, word, score, left))
        x += w + 4
    canvas = Image.new("RGB", (width, y + line_height + 4), "white")
    draw = ImageDraw.Draw(canvas)
    for x, y, w, word, score, left in placed:
        draw.rectangle((x, y, x + w, y + line_height - 4), fill=_word_colour(score, scale))
        draw.text((x + 3 - left, y + 2), word, fill=(0, 0, 0), font=font)
    return canvas


def words_html(words: Sequence[str], scores: Sequence[float]) -> str:
    """The words as HTML spans shaded by score (title attribute: the score)."""
    scale = max((abs(s) for s in scores), default=0.0)
    spans = []
    for word, score in zip(words, scores):
        r, g, b = _word_colour(score, scale)
        spans.append(
            f'<span style="background: rgb({r},{g},{b}); padding: 1px 3px; margin: 1px;" '
            f'title="{score:+.4f}">{html.escape(word)}</span>'
        )
    return " ".join(spans)


def render_explanations(image: Image.Image, subjects: Sequence[dict], min_size: int = 384) -> Image.Image:
    """One picture with a row per (subject, explained label): annotated picture | heatmap overlay, words below.

    `subjects` is the pipeline's output for `image` with `explain=True`, boxes in `image`'s pixels. A subject
    with no heatmap (text-only model) shows the annotated picture alone; one with no words (vision-only)
    shows no description. Clip heatmaps (lists) are not drawn here: use `heatmap_overlay` per frame.
    """
    annotated_all = []
    rows = []
    for index, subject in enumerate(subjects):
        annotated = draw_predictions(image, [subject], min_size=min_size)
        annotated_all.append(annotated)
        for entry in subject.get("explanations") or []:
            heatmap = entry.get("heatmap")
            panels = [annotated]
            if heatmap is not None and not isinstance(heatmap, list):
                panels.append(heatmap_overlay(annotated, heatmap))
            width = sum(p.width for p in panels) + 4 * (len(panels) - 1)
            title = f"subject {index + 1}: {entry['label']} ({entry['score']:.2f})"
            header = Image.new("RGB", (width, 24), "white")
            ImageDraw.Draw(header).text((4, 4), title, fill=(0, 0, 0), font=_font(14))
            parts = [header]
            strip = Image.new("RGB", (width, max(p.height for p in panels)), "white")
            x = 0
            for panel in panels:
                strip.paste(panel, (x, 0))
                x += panel.width + 4
            parts.append(strip)
            if entry.get("words"):
                parts.append(shaded_words(entry["words"], entry["word_attributions"], width))
            rows.append(parts)
    if not rows:
        return annotated_all[0] if annotated_all else image.convert("RGB")
    width = max(part.width for parts in rows for part in parts)
    height = sum(part.height for parts in rows for part in parts) + 12 * (len(rows) - 1)
    canvas = Image.new("RGB", (width, height), "white")
    y = 0
    for parts in rows:
        for part in parts:
            canvas.paste(part, (0, y))
            y += part.height
        y += 12
    return canvas


def explanations_html(subjects: Sequence[dict], picture_name: str | None = None) -> str:
    """An HTML page with, per subject and explained label, the description's words shaded by attribution."""
    body = []
    for index, subject in enumerate(subjects):
        for entry in subject.get("explanations") or []:
            body.append(f"<h3>subject {index + 1}: {html.escape(entry['label'])} ({entry['score']:.2f})</h3>")
            if entry.get("words"):
                body.append(f"<p>{words_html(entry['words'], entry['word_attributions'])}</p>")
            else:
                body.append("<p>(no description: a vision-only model)</p>")
    picture = f'<p><img src="{html.escape(picture_name)}" alt="heatmaps"></p>' if picture_name else ""
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>emofusion explanations</title></head>\n'
        '<body style="font-family: sans-serif">\n'
        "<p>Green words raised the label's score, red ones lowered it (integrated gradients).</p>\n"
        + picture
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def save_explanations(path, image: Image.Image, subjects: Sequence[dict], min_size: int = 384) -> tuple[Path, Path]:
    """Write `render_explanations` to `path` (a PNG) and `explanations_html` next to it (same name, .html)."""
    path = Path(path)
    render_explanations(image, subjects, min_size=min_size).save(path)
    page = path.with_suffix(".html")
    page.write_text(explanations_html(subjects, path.name), encoding="utf-8")
    return path, page


def without_arrays(subjects: Sequence[dict]) -> list[dict]:
    """The pipeline's output with the heatmap arrays left out (for JSON): words and scores stay."""
    cleaned = []
    for subject in subjects:
        subject = dict(subject)
        if "explanations" in subject:
            subject["explanations"] = [
                {k: v for k, v in entry.items() if k != "heatmap"} for entry in subject["explanations"]
            ]
        cleaned.append(subject)
    return cleaned
