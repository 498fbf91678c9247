"""Faithfulness of the explanations (modeling_emofusion/explaining.py) on the demo's synthetic task.

    python benchmarks/bench_explain.py --model emofusion-demo/models/fusion --demo_dir emofusion-demo

The ground truth comes from emofusion/synthetic.py: each subject's visual cue is the coloured patch drawn
on its torso (`_draw_person`: x from x1 + 0.22 w to x2 - 0.22 w, y from y1 + 0.4 h to y1 + 0.8 h of its
box), its textual cue the one word of `TEXT_WORDS` in its description. Over the test split, per subject:

- heatmap mass: explaining the subject's best-scored *picture* label, the share of the heatmap's mass
  inside the cue patch, over the patch's share of the picture's area (1 = a uniform map);
- cue word: explaining its best-scored *text* label, whether the cue word is the top-attributed word, over
  all subjects and over the subjects whose label depends on the word (its score falls by more than
  `DEPENDS_DROP` when the word is swapped for `NEUTRAL_WORD`: a model may learn one word family as the
  default, read from the absence of the others, and then no single word drives that label);
- deletion: blanking (to the picture's mean colour) the 20% of pixels the heatmap ranks highest lowers
  the explained picture label's score more than blanking 20% random pixels (mean of 3 draws), the
  subject's box drawn on after blanking, as the processor always does.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch


# A subject's label "depends on" its cue word when swapping the word for an emotion-free one of the
# vocabulary lowers the label's score by more than this.
NEUTRAL_WORD = "standing"
DEPENDS_DROP = 0.25


def cue_patch(bbox) -> tuple[float, float, float, float]:
    """The subject's coloured patch, as `emofusion.synthetic._draw_person` draws it."""
    x1, y1, x2, y2 = bbox
    w, h = x2 - x1, y2 - y1
    return x1 + 0.22 * w, y1 + 0.4 * h, x2 - 0.22 * w, y1 + 0.8 * h


def patch_mask(size: tuple[int, int], rect) -> np.ndarray:
    width, height = size
    ys, xs = np.mgrid[0:height, 0:width]
    x1, y1, x2, y2 = rect
    # A pixel is inside when its centre is.
    return (xs + 0.5 >= x1) & (xs + 0.5 <= x2) & (ys + 0.5 >= y1) & (ys + 0.5 <= y2)


def blank(image, mask: np.ndarray):
    from PIL import Image

    pixels = np.asarray(image.convert("RGB")).copy()
    pixels[mask] = pixels.reshape(-1, 3).mean(axis=0).astype(np.uint8)
    return Image.fromarray(pixels)


def label_score(model, processor, image, bbox, description, label: int) -> float:
    inputs = processor(images=image, bbox=bbox, text=description, return_tensors="pt")
    with torch.no_grad():
        return float(torch.sigmoid(model(**inputs).logits[0, label]))


def evaluate(model, processor, examples, descriptions: dict, limit: int | None = None, seed: int = 0) -> dict:
    """The three faithfulness figures over `examples` (rows of the demo's test split)."""
    from emofusion.synthetic import TEXT_CATEGORIES, TEXT_WORDS, VISUAL_CATEGORIES
    from modeling_emofusion.explaining import PictureView, explain_subject

    names = model.config.id2label
    label2id = {name: int(i) for i, name in names.items()}
    cue_words = {word for words in TEXT_WORDS.values() for word in words}
    rng = np.random.default_rng(seed)
    dependent_hits = []
    ratios, word_hits, deletion_wins, drops_top, drops_random = [], [], [], [], []
    count = 0
    for example in examples:
        if limit is not None and count >= limit:
            break
        count += 1
        image, bbox, text = example["image"].convert("RGB"), example["bbox"], descriptions[example["id"]]
        true = [names[j] for j, on in enumerate(example["labels"]) if on >= 0.5]
        inputs = dict(processor(images=image, bbox=bbox, text=text, return_tensors="pt"))
        with torch.no_grad():
            logits = model(**inputs).logits[0]
        visual = max((label2id[n] for n in true if n in VISUAL_CATEGORIES), key=lambda i: float(logits[i]))
        textual = max((label2id[n] for n in true if n in TEXT_CATEGORIES), key=lambda i: float(logits[i]))
        view = PictureView(image.size, image.size, bbox if processor.marking == "crop" else None)
        explained = explain_subject(model, inputs, [visual, textual], [view], processor.tokenizer, text)
        heatmap = explained[0]["heatmaps"][0]
        if heatmap is not None and model.config.modality != "text":
            inside = patch_mask(image.size, cue_patch(bbox))
            total = float(heatmap.sum())
            share = float(heatmap[inside].sum()) / total if total > 0 else 0.0
            ratios.append(share / inside.mean())
            # Deletion: the top 20% of pixels by heatmap against 20% random pixels.
            k = int(round(0.2 * heatmap.size))
            order = np.argsort(-heatmap.ravel(), kind="stable")[:k]
            top = np.zeros(heatmap.size, dtype=bool)
            top[order] = True
            before = label_score(model, processor, image, bbox, text, visual)
            after_top = label_score(model, processor, blank(image, top.reshape(heatmap.shape)), bbox, text, visual)
            after_random = []
            for _ in range(3):
                random = np.zeros(heatmap.size, dtype=bool)
                random[rng.choice(heatmap.size, size=k, replace=False)] = True
                after_random.append(
                    label_score(model, processor, blank(image, random.reshape(heatmap.shape)), bbox, text, visual)
                )
            drops_top.append(before - after_top)
            drops_random.append(before - float(np.mean(after_random)))
            deletion_wins.append(drops_top[-1] > drops_random[-1])
        words = explained[1]["words"]
        if words is not None:
            scores = explained[1]["word_attributions"]
            top_word = words[int(np.argmax(scores))].lower()
            hit = top_word in cue_words
            word_hits.append(hit)
            # Does the label depend on the cue word? Its score with the word swapped for an emotion-free one.
            cue = next(w for w in text.split() if w in cue_words)
            swapped = " ".join(NEUTRAL_WORD if w == cue else w for w in text.split())
            before = float(torch.sigmoid(logits[textual]))
            if before - label_score(model, processor, image, bbox, swapped, textual) > DEPENDS_DROP:
                dependent_hits.append(hit)
    figures = {"subjects": count}
    if ratios:
        figures.update(
            mass_ratio_mean=float(np.mean(ratios)),
            mass_ratio_median=float(np.median(ratios)),
            deletion_win_rate=float(np.mean(deletion_wins)),
            deletion_drop_top20=float(np.mean(drops_top)),
            deletion_drop_random20=float(np.mean(drops_random)),
        )
    if word_hits:
        figures["cue_word_top_rate_all"] = float(np.mean(word_hits))
        figures["subjects_depending_on_word"] = len(dependent_hits)
        figures["cue_word_top_rate_dependent"] = float(np.mean(dependent_hits)) if dependent_hits else None
    return figures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a trained demo model (emofusion-demo/models/fusion)")
    parser.add_argument("--demo_dir", required=True, help="the demo's output folder (data/, descriptions/)")
    parser.add_argument("--limit", type=int, default=None, help="explain only the first N test subjects")
    parser.add_argument("--output", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)

    from dataset_scripts import load_description_set, load_emotion_dataset
    from modeling_emofusion import EmoFusionForEmotionClassification, EmoFusionProcessor

    torch.set_num_threads(1)
    demo = Path(args.demo_dir)
    model = EmoFusionForEmotionClassification.from_pretrained(args.model).eval()
    processor = EmoFusionProcessor.from_pretrained(args.model)
    test = load_emotion_dataset("emotic", demo / "data", cache_dir=str(demo / "cache"))["test"]
    rows, _ = load_description_set(str(demo / "descriptions"))
    start = time.perf_counter()
    figures = evaluate(model, processor, test, dict(zip(rows["id"], rows["description"])), limit=args.limit)
    figures["seconds"] = round(time.perf_counter() - start, 1)
    text = json.dumps(figures, indent=2)
    sys.stdout.write(text + "\n")
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
