"""The video path on CPU: frames per second and peak memory for a short and a long video, side by side.

Two synthetic 640x360 H.264 videos of the two crossing figures (emofusion.testing_video), of
`--minutes` lengths (default 1 and 10), go through `pipe(video=...)` with a tiny random fusion
model (image model, a given description) and the tiny random YOLOS person detector loaded by
transformers' object-detection pipeline from a folder, detecting on every sampled frame. Each
length runs in its own fresh process so that its peak resident memory (ru_maxrss) is its own:
the video is streamed, so the peak should not grow with the length. Random weights do not change
the cost of the decode/track/window machinery measured here; nothing is downloaded.

    python benchmarks/bench_video.py                           # 1 and 10 minutes, 10 fps source, 1 fps sampling
    python benchmarks/bench_video.py --minutes 0.2 1 --fps 0.5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time


REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, REPO)


def make_inputs(folder: str, minutes: list[float], source_fps: int) -> dict[float, str]:
    """The videos (cached in `folder`), the saved tiny model and the saved tiny detector."""
    from emofusion.testing import tiny_classifier
    from emofusion.testing_detection import tiny_person_detector
    from emofusion.testing_video import write_figures_video
    from modeling_emofusion import EmotionInContextPipeline

    videos = {}
    for length in minutes:
        path = os.path.join(folder, f"figures_{length:g}min_{source_fps}fps.mp4")
        if not os.path.isfile(path):
            start = time.perf_counter()
            num_frames = round(length * 60 * source_fps)
            write_figures_video(path, width=640, height=360, fps=source_fps, num_frames=num_frames, period=100)
            print(f"wrote {path} ({num_frames} frames) in {time.perf_counter() - start:.1f} s", file=sys.stderr)
        videos[length] = path
    if not os.path.isdir(os.path.join(folder, "model")):
        model, processor = tiny_classifier(task="emotic", seed=0)
        EmotionInContextPipeline(model=model, processor=processor).save_pretrained(os.path.join(folder, "model"))
        detector, image_processor = tiny_person_detector(num_detection_tokens=2)
        detector.save_pretrained(os.path.join(folder, "detector"))
        image_processor.save_pretrained(os.path.join(folder, "detector"))
    return videos


def measure(folder: str, video: str, fps: float) -> dict:
    """One run of the video path (in this process): wall time, frames, windows, peak RSS."""
    from modeling_emofusion import load_pipeline

    pipe = load_pipeline(os.path.join(folder, "model"), device=-1)
    loaded_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    detector = os.path.join(folder, "detector")
    timeline = pipe(video=video, fps=fps, description="the person appears calm", detector=detector)
    seconds = time.perf_counter() - start
    windows = sum(len(track["windows"]) for track in timeline["tracks"])
    return {
        "seconds": seconds,
        "num_frames": timeline["num_frames"],
        "sampled_frames": timeline["sampled_frames"],
        "tracks": len(timeline["tracks"]),
        "windows": windows,
        "rss_after_load_mb": loaded_rss / 1024,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[1.0, 10.0])
    parser.add_argument("--source_fps", type=int, default=10, help="frame rate of the synthetic videos")
    parser.add_argument("--fps", type=float, default=1.0, help="sampling rate of the pipeline")
    parser.add_argument("--folder", default=os.path.join(tempfile.gettempdir(), "emofusion-bench-video"))
    parser.add_argument("--_child", nargs=2, metavar=("VIDEO", "FPS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._child:
        print(json.dumps(measure(args.folder, args._child[0], float(args._child[1]))))
        return
    os.makedirs(args.folder, exist_ok=True)
    videos = make_inputs(args.folder, args.minutes, args.source_fps)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": REPO, "TRANSFORMERS_VERBOSITY": "error"}
    rows = []
    for length, video in videos.items():
        command = [sys.executable, __file__, "--folder", args.folder, "--_child", video, str(args.fps)]
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        rows.append((length, json.loads(done.stdout.strip().splitlines()[-1])))
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, python {platform.python_version()}")
    print(f"640x360 H.264 at {args.source_fps} fps, sampled at {args.fps} fps, detector on every sampled frame")
    print("| video | frames decoded | sampled | tracks | windows | seconds | decoded frames/s | sampled frames/s "
          "| RSS after load (MB) | peak RSS (MB) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for length, r in rows:
        print(
            f"| {length:g} min | {r['num_frames']} | {r['sampled_frames']} | {r['tracks']} | {r['windows']} "
            f"| {r['seconds']:.1f} | {r['num_frames'] / r['seconds']:.0f} | {r['sampled_frames'] / r['seconds']:.1f} "
            f"| {r['rss_after_load_mb']:.0f} | {r['peak_rss_mb']:.0f} |"
        )
    if len(rows) >= 2:
        (short, a), (long, b) = rows[0], rows[-1]
        print(
            f"{long:g} min vs {short:g} min: {b['num_frames'] / a['num_frames']:.1f}x the frames, "
            f"peak RSS x{b['peak_rss_mb'] / a['peak_rss_mb']:.2f}, "
            f"growth over the loaded model {b['peak_rss_mb'] - b['rss_after_load_mb']:.0f} MB vs "
            f"{a['peak_rss_mb'] - a['rss_after_load_mb']:.0f} MB"
        )


if __name__ == "__main__":
    main()
