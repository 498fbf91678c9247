"""`emofusion demo --dataset bold`: the whole method on video clips, offline, on a small synthetic BoLD.

1. writes a synthetic BoLD in its owners' layout (`emofusion.synthetic_bold`: headerless
   annotation CSVs, `videos/*.mp4`, `joints/*.npy`), whose labels need the clip (a colour change,
   over frames) and the description, and a description set in caption.py's format;
2. loads it through the real BoLD builder (`--num_frames` frames of each person-clip, boxes from
   the joints) and joins the descriptions by id;
3. trains vision-only, text-only and fusion clip models (`config.num_frames` frames) with tiny
   random backbones through the real training code, with BoLD's figures (mAP, mean AUC, R^2, ERS)
   on its validation split: BoLD's test labels are not public, and the synthetic test split has
   none either;
4. reloads the fusion model with `from_pretrained` and runs the "emotion-in-context" pipeline on a
   test video, decoded with PyAV, with each frame's box from the clip's joints.

The steps and the output are those of the image demo (`emofusion.demo`).
"""

from __future__ import annotations

import json
import logging
import textwrap
import time
from pathlib import Path


logger = logging.getLogger("emofusion.demo")

NOTICE = (
    "This demo checks the machinery (data layout, builder, description join, training, evaluation, saving, "
    "the pipeline on a video) on synthetic clips with tiny random models. Its numbers are not the accuracy of the "
    "method on real videos."
)
LEGEND = (
    "vision: the clip alone; text: the description alone; fusion: both, through the Q-Former.\n"
    "Clip labels are set only by how the shirt of the subject in the red box changes colour halfway through the\n"
    "clip (one frame shows one colour, which two changes share), text labels only by a word in the subject's\n"
    "description (13 of the 26 categories each). On BoLD's validation split: mAP (1 is perfect, {chance:.2f} is\n"
    "what scores that know nothing get), mean ROC AUC (0.5 is chance), mean R^2 of valence, arousal and\n"
    "dominance, and BoLD's challenge score ERS = (mean R^2 + (mAP + mean AUC) / 2) / 2."
)


# -- 1. data ---------------------------------------------------------------------------------------


def write_dataset(root: Path, args) -> dict[str, list]:
    """Write the synthetic BoLD under `root` (BOLD_public/...); return its clips by BoLD split."""
    from emofusion.synthetic_bold import write_synthetic_bold

    sizes = {"train": args.train_clips, "val": args.val_clips, "test": args.test_clips}
    return write_synthetic_bold(root, sizes, seed=args.seed)


def write_descriptions(dataset, clips: dict[str, list], out_dir: Path) -> tuple[Path, int]:
    """Describe every person-clip the builder loaded (by its id) from its text cue, and write a description set.

    The cue comes from the written clips, not from the labels: the test split has none, as BoLD's.
    One sentence of scene talk beside the cue (the image demo has three) keeps the clip models' runs short.
    """
    from dataset_scripts.writers import write_description_set
    from emofusion.synthetic import DESCRIPTION_METADATA, describe

    text_group = {
        (clip.video, w.person_id): w.text_group for split in clips.values() for clip in split for w in clip.walkers
    }
    rows = []
    for split, examples in dataset.items():
        for example_id, video, person_id in zip(examples["id"], examples["video"], examples["person_id"]):
            rows.append(
                {
                    "id": example_id,
                    "description": describe(text_group[video, person_id], example_id, num_fillers=1),
                    "split": split,
                }
            )
    write_description_set(out_dir, rows, {**DESCRIPTION_METADATA, "dataset": "bold"})
    return out_dir, len(rows)


# -- 2. results ------------------------------------------------------------------------------------


def validation_figures(output_dir: Path) -> dict[str, float]:
    """BoLD's validation figures of a run, and its mAP over the two halves of the synthetic labels."""
    from emofusion.synthetic import TEXT_CATEGORIES
    from emofusion.synthetic_bold import CLIP_CATEGORIES

    report = json.loads((output_dir / "eval_per_class.json").read_text(encoding="utf-8"))
    # A class without positives in the split has no AP: the means are over the defined ones, as BoLD's mAP.
    ap = {name: values["AP"] for name, values in report["per_class"].items() if values["AP"] is not None}
    scalars = report["scalars"]

    def mean(names) -> float:
        defined = [ap[n] for n in names if n in ap]
        return sum(defined) / len(defined)

    figures = {"mAP": scalars["mAP"], "mAP_visual": mean(CLIP_CATEGORIES), "mAP_text": mean(TEXT_CATEGORIES)}
    figures.update({key: scalars[key] for key in ("mean_AUC", "mean_R2", "ERS") if key in scalars})
    return figures


def format_table(results: dict[str, dict], chance: float | None = None) -> str:
    """The ablations side by side (validation mAP over all labels and each half, AUC, R^2, ERS), and a legend."""
    from emofusion.demo import MODALITIES

    lines = [
        "| model  | mAP, all labels | mAP, clip labels | mAP, text labels | mean AUC | mean R^2 | ERS    |",
        "|--------|-----------------|------------------|------------------|----------|----------|--------|",
    ]

    def cell(value, width):
        return f"{value:<{width}.3f}" if value is not None else f"{'-':<{width}}"

    for modality in MODALITIES:
        if modality in results:
            r = results[modality]
            lines.append(
                f"| {modality:<6} | {r['mAP']:<15.3f} | {r['mAP_visual']:<16.3f} | {r['mAP_text']:<16.3f} | "
                f"{cell(r.get('mean_AUC'), 8)} | {cell(r.get('mean_R2'), 8)} | {cell(r.get('ERS'), 6)} |"
            )
    if chance is not None:
        lines += ["", LEGEND.format(chance=chance)]
    return "\n".join(lines)


# -- 3. the pipeline on a test video ---------------------------------------------------------------


def pipeline_on_video(pipe, video_path: str, frames: range, frame_boxes: list[list[float]], description: str) -> dict:
    """The pipeline's answer for one person of a video file: decode its frames, then `pipe(frames=...)`.

    The `frames` of the file (0-based) are decoded with PyAV (the clip is short) and given with their
    boxes; the pipeline keeps `config.num_frames` of them, evenly spread, as the BoLD builder samples
    a clip for training. When the pipeline reads video files itself (`pipe(video=path, fps=...,
    bbox=...)`, a timeline), this function is the one place to switch to it.
    """
    from dataset_scripts.bold_frames import decode_video_frames

    decoded = decode_video_frames(video_path, list(frames))
    (subject,) = pipe(frames=decoded, bbox=frame_boxes, description=description)
    return subject


class JointsPeople:
    """A clip's person as an object detector reports people, with the box its joints file gives.

    The demo's tiny models include no detector (a real one, e.g. hustvl/yolos-tiny, would come from
    the Hub); this stands in for it in the video path (`pipe(video=..., detector=...)`), which calls
    it once per sampled frame, in order (`detect_every=1`), on the frame at the model's working size.
    ByteTrack then joins its boxes into a track as it joins a detector's.
    """

    def __init__(self, joints, person_id: int, sampled_frames: list[int], first_frame: int, window, video_width: int):
        self.joints, self.person_id, self.sampled_frames = joints, person_id, sampled_frames
        self.first_frame, self.window, self.video_width = first_frame, window, video_width
        self.calls = 0

    def __call__(self, image, threshold: float = 0.5) -> list[dict]:
        from dataset_scripts.bold_frames import person_frame_boxes

        frame = self.sampled_frames[self.calls]
        self.calls += 1
        (box,) = person_frame_boxes(self.joints, self.person_id, [self.first_frame + frame], self.window)
        scale = image.width / self.video_width
        x1, y1, x2, y2 = (v * scale for v in box)
        return [{"score": 1.0, "label": "person", "box": {"xmin": x1, "ymin": y1, "xmax": x2, "ymax": y2}}]


def video_path_on(pipe, video_path: Path, clip, joints, description: str, num_frames: int, out_dir: Path) -> dict:
    """The pipeline's video path on a whole test video: `pipe(video=...)`'s timeline of person 0, the annotated
    H.264 video and the timeline plot, as `emofusion predict VIDEO` writes them.

    Every `CLIP_LENGTH // (num_frames + 1)`-th frame is read, so that one window of `num_frames`
    sampled frames spans the clip as the training clips do (ByteTrack confirms a person on its
    second sighting, so the first sampled frame starts no window).
    """
    from emofusion.synthetic_bold import CLIP_LENGTH, FRAME_SIZE
    from emofusion.video_outputs import plot_timeline, write_annotated_video

    step = max(1, CLIP_LENGTH // (num_frames + 1))
    window = (clip.min_frame, clip.max_frame)
    person = JointsPeople(joints, clip.walkers[0].person_id, list(range(0, CLIP_LENGTH, step)), clip.first_frame,
                          window, FRAME_SIZE[0])  # fmt: skip
    timeline = pipe(video=str(video_path), every_n_frames=step, detector=person, description=description)
    annotated = write_annotated_video(timeline, video_path, out_dir / "annotated.mp4")
    plot = plot_timeline(timeline, out_dir / "timeline.png")
    (out_dir / "timeline.json").write_text(json.dumps(timeline, indent=2), encoding="utf-8")
    windows = [window for track in timeline["tracks"] for window in track["windows"]]
    return {
        "every_n_frames": step,
        "tracks": len(timeline["tracks"]),
        "windows": [{"time": w["time"], "labels": [label["label"] for label in w["labels"]]} for w in windows],
        "annotated_video": str(annotated),
        "plot": str(plot),
        "timeline": str(out_dir / "timeline.json"),
    }


def run_pipeline(model_dir: Path, data_dir: Path, clip, descriptions: Path, out_png: Path) -> dict:
    """Reload a trained model with from_pretrained and run the pipeline on the first person of a test clip."""
    from transformers import pipeline

    from dataset_scripts import load_description_set
    from dataset_scripts.bold_frames import decode_video_frames, load_joints, person_frame_boxes
    from dataset_scripts.common import make_id
    from emofusion.annotate import draw_predictions
    from modeling_emofusion import EmoFusionForEmotionClassification, EmoFusionProcessor

    model = EmoFusionForEmotionClassification.from_pretrained(model_dir)
    processor = EmoFusionProcessor.from_pretrained(model_dir)
    pipe = pipeline("emotion-in-context", model=model, processor=processor, device=-1)
    root = data_dir / "BOLD_public"
    video_path = root / "videos" / clip.video
    walker = clip.walkers[0]
    # Each frame's box, from the clip's joints as the BoLD builder takes them.
    joints = load_joints(str(root / "joints" / (clip.video[: -len(".mp4")] + ".npy")))
    # The annotated frames [min_frame, max_frame] (absolute, as in the CSV; the file starts at first_frame).
    absolute = range(clip.min_frame, clip.max_frame + 1)
    boxes = person_frame_boxes(joints, walker.person_id, absolute, (clip.min_frame, clip.max_frame))
    frames = range(clip.min_frame - clip.first_frame, clip.max_frame - clip.first_frame + 1)
    rows, _ = load_description_set(str(descriptions))
    example_id = make_id("test", clip.video, walker.person_id)
    description = dict(zip(rows["id"], rows["description"]))[example_id]
    subject = pipeline_on_video(pipe, str(video_path), frames, boxes, description)

    middle = len(frames) // 2
    (frame,) = decode_video_frames(str(video_path), [frames[middle]])
    draw_predictions(frame, [{**subject, "bbox": boxes[middle]}], min_size=480).save(out_png)
    through_video = video_path_on(pipe, video_path, clip, joints, description, model.config.num_frames, out_png.parent)
    return {
        "id": example_id,
        "video": str(video_path),
        "model": str(model_dir),
        "description": description,
        "frames": [frames.start, frames.stop - 1],
        "frame_boxes": boxes,
        "subject": {k: v for k, v in subject.items() if k not in ("frames",)},
        "true_labels": walker.categories,
        "true_vad": walker.vad,
        "annotated": str(out_png),
        "video_path": through_video,
    }


def report(summary: dict, output_dir: Path) -> str:
    """The demo's stdout: the table with its legend, what it shows, and the pipeline example."""
    from emofusion.demo import conclusion

    example = summary["example"]
    subject = example["subject"]
    said = [textwrap.fill(text, 104) for text in (conclusion(summary["results"], "clip"), NOTICE) if text]
    vad = (
        ", ".join(f"{v:.1f}" for v in subject.get("vad", {}).values()) if isinstance(subject.get("vad"), dict) else ""
    )
    lines = [
        f"\nValidation figures of the clip models (the demo took {summary['seconds']:.0f} s):\n\n{summary['table']}\n",
        "\n\n".join(said),
        "",
        f"The pipeline on a test video, {example['video']}, person 0:",
        f"  predicted {', '.join(subject['labels']) or '(none)'}",
        f"  true      {', '.join(example['true_labels'])}",
    ]
    if vad:
        lines.append(f"  VAD       {vad} predicted, {', '.join(f'{v:.1f}' for v in example['true_vad'])} true")
    lines.append(f"Its middle frame, annotated: {example['annotated']}.")
    video = example.get("video_path")
    if video:
        found = "; ".join(f"at {w['time']:.1f} s {', '.join(w['labels']) or '(none)'}" for w in video["windows"])
        lines.append(
            f"The whole video through the pipeline's video path (pipe(video=...), every {video['every_n_frames']}th "
            f"frame, person 0 tracked): {found or 'no window'}.\n  Annotated video: {video['annotated_video']}; "
            f"timeline plot: {video['plot']}; timeline: {video['timeline']}."
        )
    lines.append(f"Everything is in {output_dir}.\n")
    return "\n".join(lines)


# -- main ------------------------------------------------------------------------------------------


def run_bold_demo(args, modalities: list[str]) -> dict:
    """Run the whole BoLD demo; return (and write to `<output_dir>/demo_results.json`) its results."""
    from dataset_scripts import load_emotion_dataset
    from emofusion.demo import chance_map, save_summary, train_model, write_initial_model

    start = time.perf_counter()
    out = Path(args.output_dir)
    data_dir, descriptions, models = out / "data", out / "descriptions", out / "models"
    cache_dir = str(out / "cache")
    steps = 3 + len(modalities)
    logger.info(f"[1/{steps}] Writing synthetic video clips in BoLD's file layout to {data_dir} ...")
    clips = write_dataset(data_dir, args)
    options = {"num_frames": args.num_frames}
    dataset = load_emotion_dataset("bold", data_dir, cache_dir=cache_dir, **options)
    sizes = {split: len(rows) for split, rows in dataset.items()}
    logger.info(
        f"[2/{steps}] Reading them with the BoLD builder ({sum(sizes.values())} person-clips of {args.num_frames} "
        f"frames) and writing a description of each to {descriptions} ..."
    )
    write_descriptions(dataset, clips, descriptions)

    write_initial_model(models / "init", args, task="bold", num_frames=args.num_frames)
    extra = ("--dataset_options", json.dumps(options))
    results = {}
    for index, modality in enumerate(modalities, start=3):
        name = "fusion" if modality == "fusion" else f"{modality}-only"
        logger.info(f"[{index}/{steps}] Training the {name} clip model and scoring it on validation ...")
        run_dir = models / modality
        train_model(modality, models / "init", data_dir, descriptions, run_dir, args, cache_dir, "bold", extra)
        results[modality] = validation_figures(run_dir)

    final = modalities[-1]
    logger.info(f"[{steps}/{steps}] Reloading the {final} model and running the pipeline on a test video ...")
    example = run_pipeline(models / final, data_dir, clips["test"][0], descriptions, out / "annotated.png")
    chance = chance_map(dataset["validation"])
    summary = {
        "dataset": "bold",
        "seconds": round(time.perf_counter() - start, 1),
        "sizes": sizes,
        "num_frames": args.num_frames,
        "split_scored": "validation",
        "results": results,
        "chance_mAP": chance,
        "example": example,
        "notice": NOTICE,
    }
    return save_summary(out, summary, format_table(results, chance))
