"""What a video timeline (`pipe(video=...)`) becomes for people: an annotated H.264 mp4 and a timeline plot.

    >>> timeline = pipe(video="clip.mp4", fps=2.0)  # doctest: +SKIP
    >>> write_annotated_video(timeline, "clip.mp4", "annotated.mp4")  # doctest: +SKIP
    >>> plot_timeline(timeline, "timeline.png")  # doctest: +SKIP

The annotated video has every frame of the source, at its rate, with each track's box, id and
current top emotions drawn on it: the box of the track's latest sampled frame, the emotions of
its latest window. It is H.264 (yuv420p, even width and height, the index at the front of the
file) so that browsers play it. The plot has one panel per track: the score curves of its top
labels over time.
"""

from __future__ import annotations

import bisect
import os
from pathlib import Path

from .annotate import PALETTE, draw_predictions


def _window_subject(window: dict) -> dict:
    """A window as the subject `draw_predictions` expects (labels as names, scores best first)."""
    scores = sorted(window["scores"].items(), key=lambda item: item[1], reverse=True)
    return {
        "labels": [entry["label"] for entry in window["labels"]],
        "scores": [{"label": name, "score": score} for name, score in scores],
    }


class _TrackShapes:
    """Where a track is and what it feels at any source frame (None outside its time span)."""

    def __init__(self, track: dict):
        self.id = track["id"]
        self.frames = [entry["frame"] for entry in track["boxes"]]
        self.boxes = [entry["box"] for entry in track["boxes"]]
        gaps = [b - a for a, b in zip(self.frames, self.frames[1:])]
        # A box is held until the next sampled frame would have come.
        self.hold = sorted(gaps)[len(gaps) // 2] if gaps else 1
        windows = sorted(track["windows"], key=lambda w: w.get("first_frame", w["frame"]))
        self.window_starts = [w.get("first_frame", w["frame"]) for w in windows]
        self.windows = [_window_subject(w) for w in windows]

    def at(self, frame: int) -> dict | None:
        i = bisect.bisect_right(self.frames, frame) - 1
        if i < 0 or frame >= self.frames[i] + self.hold or not self.windows:
            return None
        j = max(bisect.bisect_right(self.window_starts, frame) - 1, 0)
        return {**self.windows[j], "bbox": self.boxes[i], "name": f"#{self.id}", "colour": PALETTE[self.id % 6]}


def write_annotated_video(
    timeline: dict, source: str | os.PathLike, output: str | os.PathLike, top_k: int = 3
) -> Path:
    """Write `source` (the video the timeline was made from) with the timeline drawn on it, as H.264 mp4."""
    from modeling_emofusion.video_reading import import_av

    av = import_av()
    shapes = [_TrackShapes(track) for track in timeline["tracks"]]
    output = Path(output)
    faststart = {"movflags": "+faststart"}  # the index before the data: a browser starts playing at once
    with av.open(os.fspath(source)) as reader, av.open(os.fspath(output), "w", options=faststart) as out:
        in_stream = reader.streams.video[0]
        in_stream.thread_type = "AUTO"
        rate = in_stream.average_rate or in_stream.guessed_rate or timeline.get("fps") or 25
        width, height = in_stream.codec_context.width, in_stream.codec_context.height
        # libx264 with yuv420p needs even sizes: the last odd row/column is dropped.
        even_w, even_h = width - width % 2, height - height % 2
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = even_w, even_h, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "23"}
        for index, frame in enumerate(reader.decode(in_stream)):
            image = frame.to_image()
            if image.size != (even_w, even_h):
                image = image.crop((0, 0, even_w, even_h))
            subjects = [s for s in (shape.at(index) for shape in shapes) if s is not None]
            if subjects:
                image = draw_predictions(image, subjects, top_k=top_k)
            for packet in stream.encode(av.VideoFrame.from_image(image)):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return output


def plot_timeline(timeline: dict, output: str | os.PathLike, top_k: int = 3) -> Path:
    """Write a PNG with one panel per track: the scores of its `top_k` labels (by mean score) over time."""
    try:
        import matplotlib
    except ImportError as error:
        raise ImportError('Plotting a video timeline needs matplotlib: pip install "emofusion[plot]".') from error
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    tracks = [track for track in timeline["tracks"] if track["windows"]]
    rows = max(len(tracks), 1)
    figure, axes = plt.subplots(rows, 1, figsize=(8, 2.2 * rows + 0.6), squeeze=False, sharex=True)
    end = max([track["end"] for track in tracks] + [0.0]) or 1.0
    for axis, track in zip(axes[:, 0], tracks):
        times = [w["time"] for w in track["windows"]]
        names = list(track["windows"][0]["scores"])
        mean = {name: sum(w["scores"][name] for w in track["windows"]) / len(times) for name in names}
        for name in sorted(names, key=mean.get, reverse=True)[:top_k]:
            axis.plot(times, [w["scores"][name] for w in track["windows"]], marker="o", markersize=3, label=name)
        axis.set_title(f"track #{track['id']} ({track['start']:.1f}-{track['end']:.1f} s)", fontsize=9)
        axis.set_ylabel("score")
        axis.set_xlim(0, end)
        axis.legend(fontsize=7, loc="upper right")
        axis.grid(alpha=0.3)
    if not tracks:
        axes[0, 0].text(0.5, 0.5, timeline.get("message") or "no person found", ha="center", va="center")
        axes[0, 0].set_axis_off()
    axes[-1, 0].set_xlabel("time (s)")
    figure.suptitle(os.path.basename(str(timeline["video"])), fontsize=10)
    figure.tight_layout()
    output = Path(output)
    figure.savefig(output, dpi=100)
    plt.close(figure)
    return output
