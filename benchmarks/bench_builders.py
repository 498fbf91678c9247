"""Build rate and peak memory of the EMOTIC builder (.mat form) at two dataset sizes.

Writes a synthetic EMOTIC in the owners' format (dataset_scripts.writers: a nested MATLAB struct
Annotations.mat, two persons per 64x48 JPEG image, splits 70/10/20), then builds it into a fresh
Arrow cache in a child process per size, so that each peak is that build's alone. Reported per
size: examples/s, the child's peak RSS, how much the peak grew during the build, and the peak of
Python allocations during the build (tracemalloc, measured in a separate child because tracing
slows Python down). Flat memory means the growth does not scale with the number of persons.

    python benchmarks/bench_builders.py --sizes 1000 10000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]


def write_synthetic_emotic(root: Path, num_persons: int, seed: int = 0) -> None:
    from PIL import Image

    from dataset_scripts.writers import EmoticImage, EmoticPerson, write_emotic_mat
    from modeling_emofusion.labels import EMOTIC_CATEGORIES

    rng = random.Random(seed)
    splits = {"train": [], "val": [], "test": []}
    for index in range(num_persons // 2):
        draw = rng.random()
        split = "train" if draw < 0.7 else "val" if draw < 0.8 else "test"
        persons = []
        for _ in range(2):
            x1, y1 = rng.randint(0, 40), rng.randint(0, 30)
            persons.append(
                EmoticPerson(
                    [x1, y1, x1 + rng.randint(4, 30), y1 + rng.randint(4, 20)],
                    rng.sample(EMOTIC_CATEGORIES, rng.randint(1, 4)),
                    [rng.randint(1, 10) for _ in range(3)],
                    rng.choice(["Male", "Female"]),
                    rng.choice(["Kid", "Teenager", "Adult"]),
                )
            )
        color = (index % 256, (index // 256) % 256, 128)
        splits[split].append(
            EmoticImage(
                f"COCO_train2014_{index:012d}.jpg",
                "mscoco/images",
                (64, 48),
                persons,
                image=Image.new("RGB", (64, 48), color),
            )
        )
    write_emotic_mat(root, splits)


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def child(data_dir: str, cache_dir: str, trace: bool) -> None:
    """Build once and print a JSON line with the measures."""
    import tracemalloc

    from datasets.utils.logging import disable_progress_bar, set_verbosity_error

    from dataset_scripts import Emotic

    disable_progress_bar()
    set_verbosity_error()
    builder = Emotic(data_dir=data_dir, cache_dir=cache_dir)
    hwm_before = _status_kb("VmHWM")
    if trace:
        tracemalloc.start()
    start = time.perf_counter()
    builder.download_and_prepare()
    seconds = time.perf_counter() - start
    traced_peak = tracemalloc.get_traced_memory()[1] if trace else None
    examples = sum(split.num_examples for split in builder.info.splits.values())
    result = {
        "examples": examples,
        "seconds": seconds,
        "examples_per_s": examples / seconds,
        "peak_rss_mb": _status_kb("VmHWM") / 1024,
        "rss_growth_mb": (_status_kb("VmHWM") - hwm_before) / 1024,
        "tracemalloc_peak_mb": traced_peak / 2**20 if trace else None,
    }
    print(json.dumps(result))


def run_child(data_dir: Path, cache_dir: Path, trace: bool) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    command = [sys.executable, __file__, "--child", str(data_dir), str(cache_dir)] + (["--trace"] if trace else [])
    output = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000], help="persons per synthetic EMOTIC")
    parser.add_argument("--child", nargs=2, metavar=("DATA_DIR", "CACHE_DIR"), help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child, trace=args.trace)
        return
    sys.path.insert(0, str(REPO))
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for size in args.sizes:
            data_dir = Path(scratch) / f"emotic-{size}"
            started = time.perf_counter()
            write_synthetic_emotic(data_dir, size)
            written = time.perf_counter() - started
            timed = run_child(data_dir, Path(scratch) / f"cache-{size}", trace=False)
            traced = run_child(data_dir, Path(scratch) / f"cache-{size}-traced", trace=True)
            rows.append(
                {"persons": size, "write_s": written, **timed, "tracemalloc_peak_mb": traced["tracemalloc_peak_mb"]}
            )
    print("| persons | examples | build s | examples/s | peak RSS MB | RSS growth in build MB | tracemalloc peak MB |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['persons']} | {row['examples']} | {row['seconds']:.2f} | {row['examples_per_s']:.0f} | "
            f"{row['peak_rss_mb']:.0f} | {row['rss_growth_mb']:.1f} | {row['tracemalloc_peak_mb']:.1f} |"
        )
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
