"""Throughput of the emotion-in-context pipeline: batched vs one call per photo, side by side.

A randomly initialised model of a realistic shape (ViT-S/16 at 224 px, a 4-layer Q-Former with 32
queries, descriptions of about 150 words) runs on the same photos, boxes and descriptions in every
mode; the figures are photos per second and the ratio to one call per photo. Random weights do not
change the cost. Nothing is downloaded.

    python benchmarks/bench_pipeline.py                       # defaults: 32 photos, batch sizes 1 8 16
    python benchmarks/bench_pipeline.py --num_photos 16 --size tiny --batch_sizes 1 4
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time


sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402


SIZES = {
    # The paper's model: CLIP ViT-L/14 at 336 px and a BERT-base-sized Q-Former (BERT's vocabulary), 32 queries.
    "paper": {"vision": (1024, 24, 16, 336, 14), "qformer": (768, 12, 12), "queries": 32, "vocab_size": 30522},
    # ViT-S/16 at 224 px and a 4-layer Q-Former: a mid-sized, realistic shape for CPU figures.
    "small": {"vision": (384, 6, 6, 224, 16), "qformer": (384, 4, 6), "queries": 32},
    "tiny": {"vision": (32, 2, 4, 32, 8), "qformer": (32, 2, 4), "queries": 4},
}


def build(size: str, device: str | torch.device = "cpu"):
    """A random model of `size` (initialised straight on `device`) and its processor, 256 description tokens."""
    from emofusion.testing import tiny_processor
    from modeling_emofusion import EmoFusionConfig, EmoFusionForEmotionClassification

    spec = SIZES[size]
    width, layers, heads, image_size, patch = spec["vision"]
    q_width, q_layers, q_heads = spec["qformer"]
    processor = tiny_processor(image_size=image_size, max_text_length=256)
    config = EmoFusionConfig(
        vision_config={
            "model_type": "clip_vision_model",
            "hidden_size": width,
            "intermediate_size": 4 * width,
            "num_hidden_layers": layers,
            "num_attention_heads": heads,
            "image_size": image_size,
            "patch_size": patch,
        },
        qformer_config={
            "vocab_size": spec.get("vocab_size", len(processor.tokenizer)),
            "hidden_size": q_width,
            "num_hidden_layers": q_layers,
            "num_attention_heads": q_heads,
            "intermediate_size": 4 * q_width,
            "encoder_hidden_size": width,
        },
        num_query_tokens=spec["queries"],
        max_text_length=256,
        num_vad=3,
    )
    torch.manual_seed(0)
    with torch.device(device):
        model = EmoFusionForEmotionClassification(config)
    return model.eval(), processor


def inputs_for(num_photos: int, seed: int = 0, words_per_description: tuple[int, int] = (120, 180)) -> list[dict]:
    rng = np.random.default_rng(seed)
    words = "the person in the red box appears happy calm tired excited while others look on near a table".split()
    items = []
    for _ in range(num_photos):
        width, height = int(rng.integers(480, 800)), int(rng.integers(360, 600))
        image = Image.fromarray(rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8))
        x1, y1 = float(rng.uniform(0, width / 2)), float(rng.uniform(0, height / 2))
        box = [x1, y1, x1 + float(rng.uniform(60, width / 2)), y1 + float(rng.uniform(80, height / 2))]
        description = " ".join(rng.choice(words, size=int(rng.integers(*words_per_description))))
        items.append({"image": image, "bbox": box, "description": description})
    return items


def interleaved(modes: dict, repeats: int) -> dict[str, float]:
    """Best time of each mode over `repeats` rounds; each round runs every mode once, in turn, so that
    other load on a shared machine hits every mode alike."""
    best = {name: float("inf") for name in modes}
    for _ in range(repeats):
        for name, fn in modes.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num_photos", type=int, default=32)
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 8, 16])
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--repeats", type=int, default=3, help="best of N interleaved rounds per mode")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from modeling_emofusion import EmotionInContextPipeline

    model, processor = build(args.size)
    pipe = EmotionInContextPipeline(model=model, processor=processor, device=-1)
    items = inputs_for(args.num_photos)
    pipe(items[:2], batch_size=2)  # warm-up

    modes = {"one call per photo": lambda: [pipe(item) for item in items]}
    for batch_size in args.batch_sizes:
        modes[f"list, batch_size={batch_size}"] = lambda b=batch_size: pipe(items, batch_size=b)
    rows = list(interleaved(modes, args.repeats).items())

    base = rows[0][1]
    threads = torch.get_num_threads()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, {threads} threads")
    params = sum(p.numel() for p in model.parameters()) / 1e6
    print(f"model: {args.size} ({params:.1f} M parameters), {args.num_photos} photos, best of {args.repeats}")
    print("| mode | photos/s | speed-up vs one call per photo |\n|---|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {args.num_photos / seconds:.1f} | {base / seconds:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
