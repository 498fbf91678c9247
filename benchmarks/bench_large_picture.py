"""Memory and time of predicting on a very large photo: the old full-size path vs the working-size path.

One 12000x12000 JPEG, one subject box, a description; each case runs in its own child process,
which first loads a model with a 224-px input (a tiny random EmoFusion: the model is not what is
measured), then resets its peak-RSS mark (/proc/self/clear_refs) and runs the case:

- `old`: what the pipeline did before: decode the whole photo (transformers' `load_image`), draw the
  box on it and resize it (the processor), run the model;
- `new`: the pipeline as it is: `pipe(path, bbox=..., description=...)` (draft-mode JPEG decode at
  1/8 scale, downscale to the working size, then mark and resize, run the model).

Peak RSS growth is the step's high-water mark over the RSS before it. It is set against the full
decode (12000 x 12000 x 3 bytes) and against the decoded model-input picture (the working picture
the new path marks, 1024 x 1024 x 3 bytes). A third row times the real command, `emofusion predict`,
as a subprocess (its whole peak RSS, imports included, next to the same command on a 640x480 photo).

    python benchmarks/bench_large_picture.py               # 12000x12000, 3 repeats per case
    python benchmarks/bench_large_picture.py --side 8000 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time


REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, REPO)
BOX_FRACTIONS = (0.3, 0.2, 0.6, 0.9)  # the subject's box, as fractions of the photo's sides
DESCRIPTION = "The person in the red box smiles and seems happy and relaxed"


def _status_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w", encoding="ascii") as clear:
        clear.write("5")  # resets VmHWM (the peak RSS) to the current RSS


def write_photo(path: str, side: int) -> None:
    """A smooth, photo-like JPEG (upscaled noise, quality 90): JPEG size and decode cost like a real photo's."""
    import numpy as np
    from PIL import Image

    small = np.random.default_rng(0).integers(0, 256, (side // 100, side // 100, 3), dtype=np.uint8)
    Image.fromarray(small).resize((side, side), Image.Resampling.BICUBIC).save(path, quality=90)


def write_model(folder: str) -> None:
    from emofusion.testing import tiny_classifier
    from modeling_emofusion import EmotionInContextPipeline

    model, processor = tiny_classifier(task="emotic", seed=0, image_size=224)
    EmotionInContextPipeline(model=model, processor=processor).save_pretrained(folder)


def child(case: str, photo: str, model_dir: str, repeats: int) -> dict:
    import warnings

    import torch
    from PIL import Image
    from transformers import pipeline
    from transformers.image_utils import load_image

    from modeling_emofusion import EmotionInContextPipeline

    warnings.simplefilter("ignore", Image.DecompressionBombWarning)
    torch.set_num_threads(1)
    pipe = pipeline("emotion-in-context", model=model_dir, pipeline_class=EmotionInContextPipeline, device=-1)
    with Image.open(photo) as header:
        width, height = header.size
    box = [f * s for f, s in zip(BOX_FRACTIONS, (width, height, width, height))]

    def old():
        picture = load_image(photo)  # full decode, EXIF transpose, RGB
        inputs = pipe.processor(images=picture, bbox=box, text=DESCRIPTION, return_tensors="pt")
        with torch.no_grad():
            return pipe.model(**inputs).logits

    def new():
        return pipe(photo, bbox=box, description=DESCRIPTION)

    run = {"old": old, "new": new}[case]
    run()  # warm-up: first-call costs (lazy imports, allocator) are not the picture's
    seconds, growth = [], []
    for _ in range(repeats):
        rss = _status_kib("VmRSS")
        _reset_peak()
        start = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - start)
        growth.append((_status_kib("VmHWM") - rss) / 1024)
    return {"case": case, "seconds": statistics.median(seconds), "growth_mib": max(growth), "size": [width, height]}


def command_peak(photo: str, model_dir: str) -> dict:
    """`emofusion predict` as a user runs it: wall time and the child's peak RSS (imports included)."""
    from PIL import Image

    with Image.open(photo) as header:
        width, height = header.size
    box = ",".join(str(round(f * s)) for f, s in zip(BOX_FRACTIONS, (width, height, width, height)))
    command = [sys.executable, "-m", "emofusion.cli", "predict", photo, "--model", model_dir]
    command += ["--bbox", box, "--description", DESCRIPTION]
    env = {**os.environ, "PYTHONPATH": REPO, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    script = (
        "import resource, subprocess, sys, time, json\n"
        "start = time.perf_counter()\n"
        f"done = subprocess.run({command!r}, capture_output=True)\n"
        "assert done.returncode == 0, done.stderr.decode()[-2000:]\n"
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
        "print(json.dumps({'seconds': time.perf_counter() - start, 'peak_mib': peak}))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=12000, help="the photo's width and height in pixels")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", choices=("old", "new"), help=argparse.SUPPRESS)
    parser.add_argument("--photo", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.photo, args.model, args.repeats)))
        return

    from modeling_emofusion.marking import load_image_for_model, working_side

    env = {**os.environ, "PYTHONPATH": REPO, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        photo, small, model_dir = (os.path.join(tmp, name) for name in ("photo.jpg", "small.jpg", "model"))
        write_photo(photo, args.side)
        write_photo(small, 640)
        write_model(model_dir)
        results = {}
        for case in ("old", "new"):
            command = [sys.executable, __file__, "--child", case, "--photo", photo, "--model", model_dir]
            done = subprocess.run(command + ["--repeats", str(args.repeats)], env=env, capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"case {case} failed:\n{done.stderr[-3000:]}")
            results[case] = json.loads(done.stdout.strip().splitlines()[-1])
        big_cli, small_cli = command_peak(photo, model_dir), command_peak(small, model_dir)
        side = working_side(224)
        working = load_image_for_model(photo, min_side=side).image.size

    full_mib = args.side * args.side * 3 / 2**20
    working_mib = working[0] * working[1] * 3 / 2**20
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"photo {args.side}x{args.side} JPEG ({full_mib:.0f} MiB decoded), working picture {working[0]}x{working[1]} "
        f"({working_mib:.1f} MiB), model input 224x224; median of {args.repeats}"
    )
    print("| path | seconds | peak RSS growth MiB | growth / full decode | growth / working picture |")
    print("|---|---|---|---|---|")
    for case in ("old", "new"):
        r = results[case]
        print(
            f"| {case} | {r['seconds']:.2f} | {r['growth_mib']:.1f} | {r['growth_mib'] / full_mib:.2f} | "
            f"{r['growth_mib'] / working_mib:.1f} |"
        )
    old, new = results["old"], results["new"]
    print(
        f"\nold/new: {old['seconds'] / new['seconds']:.1f}x the time, "
        f"{old['growth_mib'] / max(new['growth_mib'], 0.1):.0f}x the memory growth"
    )
    print(
        f"`emofusion predict` (whole command, imports included): {big_cli['seconds']:.1f} s and "
        f"{big_cli['peak_mib']:.0f} MiB peak RSS on the {args.side}x{args.side} photo; "
        f"{small_cli['seconds']:.1f} s and {small_cli['peak_mib']:.0f} MiB on a 640x640 one"
    )


if __name__ == "__main__":
    main()
