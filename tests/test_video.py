"""The pipeline's video path: streamed decoding, people tracked through time, per-track windows, the outputs.

What is checked how:
- tracking against known paths: a synthetic video of two figures whose paths cross (they overlap
  fully mid-way); `FigureFinder` finds them from the pixels (one colour channel each) and hands
  ByteTrack anonymous boxes in shuffled order; every window must stay with one figure (no id
  swap) and overlap its true box by IoU >= 0.5;
- the real detector path: a tiny random YOLOS loaded by transformers' object-detection pipeline
  from a folder; its boxes are arbitrary, so the check is that every window box is one the
  detector itself reports for that frame, run separately;
- a window's scores are those of the pipeline run by hand on the same frames and boxes.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from transformers import pipeline

from emofusion.errors import run_main
from emofusion.predict import main as predict_main
from emofusion.testing import tiny_classifier
from emofusion.testing_detection import tiny_person_detector
from emofusion.testing_video import FigureFinder, iou, write_figures_video
from emofusion.video_outputs import plot_timeline, write_annotated_video
from modeling_emofusion import EmotionInContextPipeline
from modeling_emofusion.pipeline_emofusion import TASK
from modeling_emofusion.video_reading import VideoReader


REPO = str(Path(__file__).resolve().parents[1])
DESCRIPTION = "the person in the red box appears happy and excited"
NUM_FRAMES = 20  # at 10 fps: a 2-second video in which the figures cross once


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    paths = write_figures_video(root / "crossing.mp4", width=160, height=96, fps=10, num_frames=NUM_FRAMES)
    write_figures_video(root / "empty.mp4", width=160, height=96, fps=10, num_frames=8, figures=False)
    return root, paths


@pytest.fixture(scope="module")
def image_pipe():
    model, processor = tiny_classifier(task="emotic", seed=1)
    return EmotionInContextPipeline(model=model, processor=processor)


@pytest.fixture(scope="module")
def clip_pipe():
    model, processor = tiny_classifier(task="emotic", seed=2, num_frames=4)
    return EmotionInContextPipeline(model=model, processor=processor)


def _figure_of(track, truth) -> set[str]:
    """The figure each window of a track overlaps best (one name if the track never swapped)."""
    return {max(truth[w["frame"]], key=lambda name: iou(w["box"], truth[w["frame"]][name])) for w in track["windows"]}


def _check_tracks_follow_the_figures(timeline, truth, confirmed: float, last: float):
    assert timeline["message"] is None
    tracks = timeline["tracks"]
    assert len(tracks) == 2
    figures = [_figure_of(track, truth) for track in tracks]
    assert all(len(f) == 1 for f in figures), f"a track changed figure: {figures}"
    assert figures[0] != figures[1]
    for track, (name,) in zip(tracks, figures):
        for window in track["windows"]:
            assert iou(window["box"], truth[window["frame"]][name]) >= 0.5, (track["id"], window)
        # From the second detection frame (a track is confirmed on its second sighting) to the last frame.
        assert track["start"] == pytest.approx(confirmed) and track["end"] == pytest.approx(last)


def test_crossing_figures_keep_their_ids_and_boxes(videos, image_pipe, tmp_path):
    root, truth = videos
    middle = truth[NUM_FRAMES // 2]
    assert iou(middle["red"], middle["green"]) > 0.4  # the paths really cross
    finder = FigureFinder(seed=3)
    timeline = image_pipe(video=str(root / "crossing.mp4"), fps=5.0, description=DESCRIPTION, detector=finder)
    assert timeline["video"] == str(root / "crossing.mp4")
    assert timeline["fps"] == pytest.approx(10.0) and timeline["num_frames"] == NUM_FRAMES
    assert finder.calls == NUM_FRAMES // 2  # every sampled frame (0, 2, 4, ...) was a detection frame
    _check_tracks_follow_the_figures(timeline, truth, confirmed=0.2, last=1.8)
    window = timeline["tracks"][0]["windows"][0]
    assert set(window) >= {"time", "frame", "box", "labels", "scores", "vad"}
    assert len(window["scores"]) == 26 and set(window["vad"]) == {"valence", "arousal", "dominance"}
    assert all(entry["score"] == window["scores"][entry["label"]] for entry in window["labels"])
    assert window["description"] == DESCRIPTION and window["description_source"] == "given"
    json.dumps(timeline)  # plain JSON

    # The window's scores are the pipeline's on that frame and box, run by hand.
    frames = {f.index: f for f in VideoReader(root / "crossing.mp4", every_n_frames=1)}
    (by_hand,) = image_pipe(frames[window["frame"]].picture.image, bbox=window["box"], description=DESCRIPTION)
    for entry in by_hand["scores"]:
        assert window["scores"][entry["label"]] == pytest.approx(entry["score"], abs=1e-5)

    annotated = write_annotated_video(timeline, root / "crossing.mp4", tmp_path / "annotated.mp4")
    with av.open(str(annotated)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
        decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    assert len(decoded) == NUM_FRAMES and decoded[0].shape == (96, 160, 3)
    # Boxes are drawn: the annotated frame differs from the source where the outlines are.
    assert np.abs(decoded[5].astype(int) - np.asarray(frames[5].picture.image, dtype=int)).max() > 100
    plot = plot_timeline(timeline, tmp_path / "timeline.png")
    with Image.open(plot) as picture:
        assert picture.format == "PNG" and picture.width > 300


def test_clip_model_windows_with_detection_every_other_frame(videos, clip_pipe):
    root, truth = videos
    finder = FigureFinder(seed=4)
    timeline = clip_pipe(
        video=root / "crossing.mp4", every_n_frames=1, detect_every=2, description=DESCRIPTION, detector=finder
    )
    assert finder.calls == NUM_FRAMES // 2
    # Boxes between detection frames are interpolated, and still on the figures.
    _check_tracks_follow_the_figures(timeline, truth, confirmed=0.2, last=1.9)
    assert timeline["window_frames"] == 4
    for track in timeline["tracks"]:
        spans = [(w["first_frame"], w["last_frame"]) for w in track["windows"]]
        assert all(0 <= last - first <= 3 for first, last in spans)
        assert all(a[1] < b[0] for a, b in zip(spans, spans[1:]))  # windows follow each other, no overlap
        frames = [b["frame"] for b in track["boxes"]]
        assert frames == list(range(frames[0], frames[-1] + 1))

    # A window's scores are the pipeline's on the same four frames and boxes, run by hand as a clip.
    track = timeline["tracks"][1]
    window = track["windows"][1]
    frames = {f.index: f for f in VideoReader(root / "crossing.mp4", every_n_frames=1)}
    boxes = {b["frame"]: b["box"] for b in track["boxes"]}
    span = range(window["first_frame"], window["last_frame"] + 1)
    (by_hand,) = clip_pipe(
        frames=[frames[i].picture.image for i in span], bbox=[boxes[i] for i in span], description=DESCRIPTION
    )
    for entry in by_hand["scores"]:
        assert window["scores"][entry["label"]] == pytest.approx(entry["score"], abs=1e-5)


def test_real_detector_path_boxes_are_the_detectors(videos, tmp_path):
    root, _ = videos
    detector, image_processor = tiny_person_detector(num_detection_tokens=2)
    detector.save_pretrained(tmp_path / "detector")
    image_processor.save_pretrained(tmp_path / "detector")
    model, processor = tiny_classifier(task="emotic", seed=3, modality="vision")
    pipe = EmotionInContextPipeline(model=model, processor=processor)
    timeline = pipe(video=str(root / "crossing.mp4"), every_n_frames=4, detector=str(tmp_path / "detector"))
    assert timeline["tracks"], timeline["message"]
    reference = pipeline("object-detection", model=str(tmp_path / "detector"), image_processor=image_processor)
    frames = {f.index: f for f in VideoReader(root / "crossing.mp4", every_n_frames=1)}
    found = {}
    for track in timeline["tracks"]:
        for window in track["windows"]:
            if window["frame"] not in found:
                detected = reference(frames[window["frame"]].picture.image, threshold=0.5)
                found[window["frame"]] = [
                    [d["box"][k] for k in ("xmin", "ymin", "xmax", "ymax")] for d in detected if d["label"] == "person"
                ]
            boxes = found[window["frame"]]
            assert any(np.allclose(window["box"], box, atol=0.01) for box in boxes), (window["box"], boxes)


def test_descriptions_generated_per_window_from_its_middle_frame(videos, tmp_path):
    from emofusion.testing_llava import tiny_llava
    from modeling_emofusion.describing import DEFAULT_PROMPT_TEMPLATE, TransformersDescriber

    root, _ = videos
    generation = {"do_sample": False, "num_beams": 1, "max_new_tokens": 6}
    tiny_llava(tmp_path / "tiny-llava")
    model, processor = tiny_classifier(task="emotic", seed=5, num_frames=4)
    model.config.description_model = str(tmp_path / "tiny-llava")  # as training records it
    model.config.prompt_template = DEFAULT_PROMPT_TEMPLATE
    model.config.description_generation = generation
    pipe = EmotionInContextPipeline(model=model, processor=processor)
    box = [20.0, 10.0, 80.0, 90.0]
    timeline = pipe(video=str(root / "crossing.mp4"), every_n_frames=3, bbox=box)
    (track,) = timeline["tracks"]
    assert [(w["first_frame"], w["last_frame"]) for w in track["windows"]] == [(0, 9), (12, 18)]
    reference = TransformersDescriber.from_pretrained(str(tmp_path / "tiny-llava"), marking="box", **generation)
    frames = {f.index: f for f in VideoReader(root / "crossing.mp4", every_n_frames=1)}
    labels = list(model.config.id2label.values())
    for window in track["windows"]:
        assert window["description_source"] == "generated"
        (expected,) = reference.describe(
            [frames[window["frame"]].picture.image], [box], prompt=DEFAULT_PROMPT_TEMPLATE, class_names=labels
        )
        assert window["description"] == expected.text


def test_video_without_people_gives_an_empty_timeline(videos, image_pipe):
    root, _ = videos
    timeline = image_pipe(video=str(root / "empty.mp4"), fps=5, description=DESCRIPTION, detector=FigureFinder())
    assert timeline["tracks"] == [] and timeline["num_frames"] == 8
    assert "no person found" in timeline["message"] and "empty.mp4" in timeline["message"]


def test_given_box_is_held_fixed_and_url_input(videos, image_pipe):
    root, _ = videos
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/crossing.mp4"
        timeline = image_pipe(video=url, fps=2, bbox=[10, 10, 60, 90], description=DESCRIPTION)
    finally:
        server.shutdown()
        server.server_close()
    assert timeline["video"] == url and timeline["num_frames"] == NUM_FRAMES and timeline["boxes"] == "fixed"
    (track,) = timeline["tracks"]
    assert track["id"] == 0 and len(track["windows"]) == 4  # 2 s at 2 fps
    assert all(w["box"] == [10.0, 10.0, 60.0, 90.0] for w in track["windows"])
    assert track["start"] == 0.0


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"", "the video file is empty (0 bytes)"),
        (np.random.default_rng(0).bytes(4000), "cannot read it as a video (Invalid data found"),
        ("truncated", "cannot read it as a video"),
        ("no-video", "the file has no video stream"),
    ],
)
def test_unreadable_videos_are_one_line_errors(videos, image_pipe, tmp_path, capsys, content, expected):
    root, _ = videos
    path = tmp_path / "bad.mp4"
    if content == "truncated":
        data = (root / "crossing.mp4").read_bytes()
        content = data[: len(data) // 2]
    if content == "no-video":
        with av.open(str(path), "w") as container:  # a valid mp4 holding sound only
            stream = container.add_stream("aac", rate=8000)
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), dtype=np.float32), format="fltp", layout="mono")
            frame.sample_rate = 8000
            for packet in [*stream.encode(frame), *stream.encode()]:
                container.mux(packet)
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError, match="bad.mp4") as caught:
        image_pipe(video=str(path), description=DESCRIPTION, detector=FigureFinder())
    assert expected in str(caught.value) and "\n" not in str(caught.value)
    # The command: one line on stderr, exit 1, before any model is loaded (--model does not exist).
    code = run_main("emofusion predict", predict_main, [str(path), "--model", str(tmp_path / "nothing")])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and expected in err and "bad.mp4" in err


def test_missing_video_and_bad_options(image_pipe, videos, tmp_path, capsys):
    root, _ = videos
    with pytest.raises(FileNotFoundError, match="nothing.mp4: no such video file"):
        image_pipe(video=str(tmp_path / "nothing.mp4"))
    with pytest.raises(ValueError, match="fps or every_n_frames"):
        image_pipe(video=str(root / "crossing.mp4"), fps=2, every_n_frames=3)
    with pytest.raises(ValueError, match="detect_every"):
        image_pipe(video=str(root / "crossing.mp4"), detect_every=0)
    with pytest.raises(TypeError, match="explain"):
        image_pipe(video=str(root / "crossing.mp4"), explain=True)
    code = run_main("emofusion predict", predict_main, [str(root / "crossing.mp4"), "--model", "m", "--fps", "0"])
    assert code == 2 and "--fps 0" in capsys.readouterr().err


def test_missing_extras_name_the_install(monkeypatch):
    from modeling_emofusion.video_reading import import_av
    from modeling_emofusion.video_tracking import PeopleTracker

    monkeypatch.setitem(sys.modules, "av", None)
    with pytest.raises(ImportError, match=r'pip install "emofusion\[video\]"'):
        import_av()
    monkeypatch.setitem(sys.modules, "trackers", None)
    with pytest.raises(ImportError, match=r'pip install "emofusion\[video\]"'):
        PeopleTracker(frame_rate=2.0, threshold=0.5)


def test_saved_checkpoint_runs_videos_with_its_own_code(videos, image_pipe, tmp_path):
    root, _ = videos
    image_pipe.save_pretrained(tmp_path / "checkpoint")
    for name in ("video_timeline.py", "video_reading.py", "video_tracking.py"):
        assert (tmp_path / "checkpoint" / name).is_file()
    remote = pipeline(TASK, model=str(tmp_path / "checkpoint"), trust_remote_code=True, device=-1)
    assert type(remote).__module__ != EmotionInContextPipeline.__module__  # the checkpoint's copy runs
    timeline = remote(video=str(root / "crossing.mp4"), fps=2, description=DESCRIPTION, detector=FigureFinder())
    assert len(timeline["tracks"]) == 2


def test_predict_video_command(videos, clip_pipe, tmp_path):
    """`emofusion predict VIDEO` as users run it: a subprocess writing the JSON, the mp4 and the plot."""
    root, _ = videos
    clip_pipe.save_pretrained(tmp_path / "clip-model")
    out = tmp_path / "timeline.json"
    command = [
        sys.executable, "-m", "emofusion.cli", "predict", str(root / "crossing.mp4"),
        "--model", str(tmp_path / "clip-model"),
        "--bbox", "20,10,80,90", "--description", DESCRIPTION, "--fps", "5", "--top-k", "3",
        "--save-annotated", str(tmp_path / "annotated.mp4"), "--plot", str(tmp_path / "timeline.png"), "-o", str(out),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": REPO, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert report["num_frames"] == NUM_FRAMES and report["boxes"] == "fixed" and report["window_frames"] == 4
    (track,) = report["tracks"]
    assert len(track["windows"]) == 3  # 10 sampled frames in windows of 4: 4 + 4 + 2
    assert all(len(w["scores"]) == 3 and w["box"] == [20.0, 10.0, 80.0, 90.0] for w in track["windows"])
    with av.open(report["annotated"]) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert sum(1 for _ in container.decode(stream)) == NUM_FRAMES
    assert Path(report["plot"]).stat().st_size > 1000
