"""Stage 1 throughput: batched vs one-at-a-time description generation, side by side, on the tiny LLaVA.

Runs `TransformersDescriber` (the code caption.py runs) over the same subjects at several batch
sizes, every description forced to the same length (min_new_tokens = max_new_tokens) so that
tokens/s compare like with like, and reports samples/s, generated tokens/s and the speed-up over
batch size 1. On a CPU with a tiny random model this measures the per-step overhead that batching
removes; GPU figures for a LLaVA-1.5-7B-sized model come from gpu_caption.py.

    python benchmarks/bench_caption.py --num_samples 64 --max_new_tokens 32 --batch_sizes 1,4,8,16,32
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time


sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from emofusion.testing_llava import tiny_llava  # noqa: E402
from modeling_emofusion.describing import TransformersDescriber  # noqa: E402
from modeling_emofusion.labels import EMOTIC_CATEGORIES  # noqa: E402


def subjects(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    images = [Image.fromarray(rng.integers(0, 256, (240 + 8 * (i % 5), 320, 3), dtype=np.uint8)) for i in range(n)]
    bboxes = [[20.0 + i % 7, 30.0, 200.0, 220.0] if i % 4 else None for i in range(n)]
    return images, bboxes


def measure(describer: TransformersDescriber, images, bboxes, batch_size: int) -> tuple[float, int]:
    tokens, start = 0, time.perf_counter()
    for i in range(0, len(images), batch_size):
        batch = describer.describe(
            images[i : i + batch_size], bboxes[i : i + batch_size], class_names=EMOTIC_CATEGORIES
        )
        tokens += sum(d.num_tokens for d in batch)
    return time.perf_counter() - start, tokens


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num_samples", type=int, default=32)
    parser.add_argument("--max_new_tokens", type=int, default=32)
    parser.add_argument("--batch_sizes", default="1,4,8,16")
    parser.add_argument("--hidden_size", type=int, default=32, help="tiny LLaVA width (32 = the test model)")
    parser.add_argument("--repeats", type=int, default=3, help="median of this many timings per batch size")
    # A 50k-parameter model's matmuls are too small to split over threads: more threads only add synchronisation
    # (and on a shared machine, waiting for a busy core).
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    model, processor = tiny_llava(hidden_size=args.hidden_size)
    n = args.max_new_tokens
    describer = TransformersDescriber(model, processor, max_new_tokens=n, min_new_tokens=n)
    images, bboxes = subjects(args.num_samples)
    measure(describer, images[:4], bboxes[:4], 4)  # warm-up

    rows = []
    for batch_size in [int(b) for b in args.batch_sizes.split(",")]:
        timings = [measure(describer, images, bboxes, batch_size) for _ in range(args.repeats)]
        seconds = statistics.median(t for t, _ in timings)
        tokens = timings[0][1]
        rows.append(
            {
                "batch_size": batch_size,
                "seconds": round(seconds, 3),
                "samples_per_s": round(args.num_samples / seconds, 2),
                "tokens_per_s": round(tokens / seconds, 1),
            }
        )
    for row in rows:
        row["speedup_vs_batch_1"] = round(rows[0]["seconds"] / row["seconds"], 2)

    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"
    print(f"machine: {machine}; threads: {torch.get_num_threads()}")
    size = f"hidden {args.hidden_size}, {model.num_parameters():,} parameters"
    print(f"tiny LLaVA ({size}), {args.num_samples} subjects, {n} new tokens each")
    print("| batch size | samples/s | tokens/s | speed-up vs 1 |")
    print("|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['batch_size']} | {row['samples_per_s']} | {row['tokens_per_s']} | {row['speedup_vs_batch_1']}x |"
        )
    print(json.dumps({"machine": machine, "args": vars(args), "results": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
