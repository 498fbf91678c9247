"""Peak memory and time of the builders' image check on very large pictures, old way vs new.

The builders need only an image's size, but with `verify_images=True` (the default) they also
read each file through to find truncated or corrupt ones. Before, that was `Image.load()`: a
full-size pixel buffer (12000x12000 RGB: 432 MB). Now `dataset_scripts.common.probe_image`
decodes a JPEG in draft mode (1/8 scale, every compressed block still read) and verifies a large
PNG chunk by chunk. Each check runs in its own child process; reported: wall time and the
child's peak RSS during the check over its RSS before it (the peak mark is reset after the
imports through /proc/self/clear_refs, so the figure is the check's own memory; Linux only).

    python benchmarks/bench_image_check.py --jpeg_side 12000 --png_side 8000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[3])
from PIL import Image
from dataset_scripts.common import probe_image
Image.MAX_IMAGE_PIXELS = None
path, mode = sys.argv[1], sys.argv[2]

def status_kb(field):
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith(field + ":"))

# Reset the peak-RSS mark (Linux: "5" to clear_refs), so the peak below is the check's alone.
with open("/proc/self/clear_refs", "w") as handle:
    handle.write("5")
before = status_kb("VmRSS")
start = time.perf_counter()
if mode == "full_decode":  # the check before: a full-size decode
    with Image.open(path) as image:
        image.load()
        size, reason = image.size, None
else:
    size, reason = probe_image(path, decode=(mode == "probe_image"))
seconds = time.perf_counter() - start
after = status_kb("VmHWM")
print(json.dumps({"size": size, "reason": reason, "seconds": seconds, "rss_growth_mb": (after - before) / 1024}))
"""


def write_pictures(folder: Path, jpeg_side: int, png_side: int) -> dict[str, Path]:
    import numpy as np
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None
    paths = {}
    for kind, side in (("JPEG", jpeg_side), ("PNG", png_side)):
        # A smooth picture with some noise: realistic compressed sizes, quick to write.
        tile = (np.random.default_rng(0).random((512, 512, 3)) * 255).astype("uint8")
        picture = Image.fromarray(tile).resize((side, side), Image.BILINEAR)
        path = folder / f"large.{kind.lower()}"
        picture.save(path, quality=90) if kind == "JPEG" else picture.save(path, compress_level=1)
        paths[kind] = path
        del picture
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jpeg_side", type=int, default=12000)
    parser.add_argument("--png_side", type=int, default=8000)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        for kind, path in write_pictures(Path(scratch), args.jpeg_side, args.png_side).items():
            for mode in ("header_only", "full_decode", "probe_image"):
                out = subprocess.run(
                    [sys.executable, "-c", CHILD, str(path), mode, str(REPO)],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                row = {"format": kind, "file_mb": round(path.stat().st_size / 1e6, 1), "mode": mode}
                row.update(json.loads(out.stdout))
                results.append(row)
                print(json.dumps(row), flush=True)
    print("\n| picture | file MB | check | seconds | peak RSS over start MB |\n|---|---|---|---|---|")
    for row in results:
        side = f"{row['size'][0]}x{row['size'][1]} {row['format']}"
        print(f"| {side} | {row['file_mb']} | {row['mode']} | {row['seconds']:.2f} | {row['rss_growth_mb']:.0f} |")


if __name__ == "__main__":
    main()
