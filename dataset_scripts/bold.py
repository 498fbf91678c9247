"""BoLD (Luo et al., IJCV 2020, "ARBEE") as a `datasets` builder, read from the owners' files.

Layout (`data_dir` is `BOLD_public` or the folder holding it):

    BOLD_public/annotations/{train.csv,val.csv,test_meta.csv}
    BOLD_public/videos/<video>                 e.g. 003/IzvOYVMltkI.mp4/0114.mp4
    BOLD_public/joints/<video without .mp4>.npy
    BOLD_public/mmextract/<video>/img_00001.jpg ...   (optional pre-extracted frames)

The CSVs have no header and 37 columns: `video, person_id, min_frame, max_frame`, 26 soft
category scores in BoLD's column order, `Valence, Arousal, Dominance`, `Gender, Age, Ethnicity,
annotation_confidence`. `test_meta.csv` has no public labels: its examples have `labels`,
`soft_labels` and `vad` None (4 columns, or 37 with the label columns ignored).

One example per annotated person-clip: `num_frames` frames spread evenly over
[min_frame, max_frame] (`frame_indices`, absolute as in the CSV), decoded from the mp4 with PyAV
(the `video` extra), or read from `mmextract/<video>/` when that folder exists. The subject box
of each frame is the min/max of that person's valid joints (confidence > `min_joint_confidence`),
grown by `box_margin` of its size on each side and clipped to the frame (`frame_bboxes`); a
frame without valid joints takes the nearest annotated frame's box. `bbox` is their union.
Categories are remapped to EMOTIC's order: `soft_labels` keeps the scores, `labels` is
`soft_labels >= 0.5`. VAD is kept as given.

Bad samples, skipped and counted (`strict=True` raises at the first, naming it): a row whose
cells do not parse (`<csv>:<line>` and the column), with another column count than the file's
first row, over the csv module's field limit or not UTF-8; a clip whose joints file is missing,
empty (an interrupted copy), not a numeric `(N, 56)` array or holds a NaN `frame_idx`/`person_id`;
a missing, unreadable or too short video or frame. A first row of the wrong width stops the build.

Ids: `<split>/<video>#p<person_id>`, e.g. `train/003/IzvOYVMltkI.mp4/0114.mp4#p2`, with BoLD's split
names (`train`, `val`, `test`).

>>> from dataset_scripts import load_emotion_dataset
>>> bold = load_emotion_dataset("bold", "/data/BOLD_public", num_frames=8)  # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import datasets
from datasets import Features, Image, List, Value
from datasets.utils import logging

from .bold_frames import (
    ClipError,
    decode_video_frames,
    encode_frame,
    load_joints,
    person_frame_boxes,
    read_extracted_frames,
    sample_frames,
)
from .common import (
    BadSampleLog,
    DatasetLayoutError,
    EmotionBuilderConfig,
    EmotionDatasetBuilder,
    box_feature,
    clip_box_or_reason,
    dataset_root,
    make_id,
    multi_hot_feature,
    read_csv_rows,
    safe_join,
    show_cell,
    vad_feature,
)
from .labels import BOLD_CSV_CATEGORIES, BOLD_TO_EMOTIC


logger = logging.get_logger(__name__)

# BoLD split name -> (annotation file, datasets split)
SPLITS = {
    "train": ("train.csv", datasets.Split.TRAIN),
    "val": ("val.csv", datasets.Split.VALIDATION),
    "test": ("test_meta.csv", datasets.Split.TEST),
}
NUM_COLUMNS = 37
CSV_COLUMNS = (
    "video, person_id, min_frame, max_frame, 26 category scores "
    f"({', '.join(BOLD_CSV_CATEGORIES)}), Valence, Arousal, Dominance, Gender, Age, Ethnicity, annotation_confidence"
)
BINARY_THRESHOLD = 0.5


@dataclass
class BoldConfig(EmotionBuilderConfig):
    """BoLD options.

    Args:
        num_frames: frames sampled evenly over each person's [min_frame, max_frame].
        box_margin: fraction of the joints box's width/height added on each side.
        min_joint_confidence: joints at or below this OpenPose confidence are ignored.
        frames_source: `"auto"` (mmextract frames when the clip's folder exists, else the mp4),
            `"video"` or `"mmextract"`.
        mmextract_first_index: the number in the first pre-extracted frame's name (`img_00001.jpg`: 1).
        frame_quality: JPEG quality of frames decoded from the mp4 (extracted frames are kept as they are).
    """

    num_frames: int = 8
    box_margin: float = 0.1
    min_joint_confidence: float = 0.1
    frames_source: str = "auto"
    mmextract_first_index: int = 1
    frame_quality: int = 90


class _CellError(ValueError):
    """A CSV cell that does not hold what its column should (the row is a bad sample)."""


def _row_number(value: str, column: str, kind=float):
    try:
        number = float(value) if value.strip() else math.nan
    except ValueError:
        expected = "an integer" if kind is int else "a number"
        raise _CellError(f"column {column!r} {show_cell(value)}; expected {expected}") from None
    if kind is int:
        # int32 features: a larger number could not be stored, and is no frame number or person id.
        if not math.isfinite(number) or number != int(number) or abs(number) >= 2**31:
            raise _CellError(f"column {column!r} {show_cell(value)}; expected an integer")
        return int(number)
    return number


class Bold(EmotionDatasetBuilder):
    """BoLD builder: `Bold(data_dir="/data/BOLD_public", num_frames=8).download_and_prepare()`.

    Splits `train`, `validation` (BoLD's `val`), `test` (no labels). Features: `id`, `frames`,
    `frame_bboxes`, `frame_indices`, `bbox`, `labels` (26 multi-hot, EMOTIC order), `soft_labels`,
    `vad`, `video`, `person_id`, `min_frame`, `max_frame`, `gender`, `age`, `ethnicity`,
    `annotation_confidence`.
    """

    BUILDER_CONFIG_CLASS = BoldConfig
    DATASET = "BoLD"
    VERSION = datasets.Version("1.0.0")
    # Examples carry their frames' bytes: flush to disk every few examples to keep memory flat.
    DEFAULT_WRITER_BATCH_SIZE = 16

    @classmethod
    def _source_files(cls, data_dir: str) -> list[str]:
        root = dataset_root(data_dir, "BOLD_public")
        return [str(root / "annotations" / name) for name, _ in SPLITS.values()]

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description="BoLD: body language clips, 26 emotion categories (soft, multi-label) and VAD.",
            homepage="https://cydar.ist.psu.edu/emotionchallenge/",
            features=Features(
                {
                    "id": Value("string"),
                    "frames": List(Image()),
                    "frame_bboxes": List(box_feature()),
                    "frame_indices": List(Value("int32")),
                    "bbox": box_feature(),
                    "labels": multi_hot_feature(),
                    "soft_labels": multi_hot_feature(),
                    "vad": vad_feature(),
                    "video": Value("string"),
                    "person_id": Value("int32"),
                    "min_frame": Value("int32"),
                    "max_frame": Value("int32"),
                    "gender": Value("string"),
                    "age": Value("string"),
                    "ethnicity": Value("string"),
                    "annotation_confidence": Value("float32"),
                }
            ),
        )

    def _root(self) -> Path:
        root = dataset_root(self.config.data_dir, "BOLD_public")
        if not (root / "annotations").is_dir():
            raise DatasetLayoutError(
                f"BoLD: expected {root}/annotations/{{train.csv,val.csv,test_meta.csv}} (data_dir is BOLD_public "
                "or the folder holding it); no annotations folder found."
            )
        return root

    def _split_generators(self, dl_manager) -> list[datasets.SplitGenerator]:
        root = self._root()
        if self.config.frames_source not in ("auto", "video", "mmextract"):
            raise ValueError(
                f"BoLD frames_source must be 'auto', 'video' or 'mmextract', got {self.config.frames_source!r}."
            )
        if self.config.num_frames < 1:
            raise ValueError(f"BoLD num_frames must be at least 1, got {self.config.num_frames}.")
        needed = ["joints", "mmextract" if self.config.frames_source == "mmextract" else "videos"]
        if self.config.frames_source == "auto" and (root / "mmextract").is_dir():
            needed = ["joints"]
        for folder in needed:
            if not (root / folder).is_dir():
                raise DatasetLayoutError(f"BoLD: expected the folder {root / folder}; not found.")
        present = {s: root / "annotations" / name for s, (name, _) in SPLITS.items()}
        present = {s: p for s, p in present.items() if p.is_file()}
        if not present:
            raise DatasetLayoutError(
                f"BoLD: expected {root}/annotations/{{train.csv,val.csv,test_meta.csv}}; none found."
            )
        for split in SPLITS:
            if split not in present:
                logger.warning("BoLD: no %s in %s; building the other splits.", SPLITS[split][0], root / "annotations")
        return [
            datasets.SplitGenerator(
                name=SPLITS[s][1],
                gen_kwargs={"split_name": str(SPLITS[s][1]), "split": s, "csv_path": p, "root": root},
            )
            for s, p in present.items()
        ]

    def _examples(self, log: BadSampleLog, split: str, csv_path: Path, root: Path):
        joints_cache: tuple[Path, object] | None = None
        seen: set[str] = set()
        allowed = (NUM_COLUMNS,) if split != "test" else (4, NUM_COLUMNS)
        for line, row in read_csv_rows(csv_path, log, allowed, CSV_COLUMNS):
            where = f"{csv_path}:{line}"
            video = row[0].strip()
            if not video:
                log.skip(where, "empty CSV cell (column 'video'; expected a clip path)")
                continue
            try:
                person_id = _row_number(row[1], "person_id", int)
                min_frame = _row_number(row[2], "min_frame", int)
                max_frame = _row_number(row[3], "max_frame", int)
            except _CellError as err:
                log.skip(where, f"bad CSV cell ({err})")
                continue
            example_id = make_id(split, video, person_id)
            video_path = safe_join(root / "videos", video, source=where, field="video")
            if example_id in seen:
                log.skip(video_path, f"duplicate row (person_id {person_id} again at {where})", example_id)
                continue
            example = {
                "id": example_id,
                "video": video,
                "person_id": person_id,
                "min_frame": min_frame,
                "max_frame": max_frame,
                "labels": None,
                "soft_labels": None,
                "vad": None,
                "gender": None,
                "age": None,
                "ethnicity": None,
                "annotation_confidence": None,
            }
            if len(row) == NUM_COLUMNS:
                try:
                    extra = self._labels_and_metadata(row, where, labelled=split != "test")
                except _CellError as err:
                    log.skip(where, f"bad CSV cell ({err})", example_id)
                    continue
                if isinstance(extra, str):
                    log.skip(video_path, extra, example_id)
                    continue
                example.update(extra)

            stem = video[: -len(".mp4")] if video.endswith(".mp4") else video
            joints_path = safe_join(root / "joints", stem + ".npy", source=where, field="video")
            try:
                if joints_cache is None or joints_cache[0] != joints_path:
                    joints_cache = (joints_path, load_joints(joints_path))
                joints = joints_cache[1]
                frames = sample_frames(min_frame, max_frame, self.config.num_frames)
                boxes = person_frame_boxes(
                    joints,
                    person_id,
                    frames,
                    (min_frame, max_frame),
                    min_confidence=self.config.min_joint_confidence,
                    margin=self.config.box_margin,
                )
                start = int(joints[:, 0].min())
                images, sizes = self._frames(root, video, video_path, [f - start for f in frames], where)
            except ClipError as err:
                log.skip(err.path or joints_path, str(err), example_id)
                continue
            frame_boxes = []
            for box, size in zip(boxes, sizes):
                clipped, reason = clip_box_or_reason(box, size)
                if reason is not None:
                    break
                frame_boxes.append(clipped)
            if reason is not None:
                log.skip(video_path, reason, example_id)
                continue
            example.update(
                {
                    "frames": images,
                    "frame_bboxes": frame_boxes,
                    "frame_indices": frames,
                    "bbox": [
                        min(b[0] for b in frame_boxes),
                        min(b[1] for b in frame_boxes),
                        max(b[2] for b in frame_boxes),
                        max(b[3] for b in frame_boxes),
                    ],
                }
            )
            seen.add(example_id)  # only a kept row: a later row of the same person replaces a bad one
            yield example_id, example

    def _labels_and_metadata(self, row: list[str], where: str, labelled: bool) -> dict | str:
        """The label and metadata columns, or the reason the example is bad."""
        metadata = {
            "gender": row[33].strip() or None,
            "age": row[34].strip() or None,
            "ethnicity": row[35].strip() or None,
            "annotation_confidence": _row_number(row[36], "annotation_confidence"),
        }
        if not labelled:
            return metadata
        scores = [_row_number(v, BOLD_CSV_CATEGORIES[i]) for i, v in enumerate(row[4:30])]
        bad = [BOLD_CSV_CATEGORIES[i] for i, s in enumerate(scores) if not 0.0 <= s <= 1.0]
        if bad:
            return f"NaN or out-of-range category score ({', '.join(bad)} at {where})"
        soft = [0.0] * len(scores)
        for csv_index, score in enumerate(scores):
            soft[BOLD_TO_EMOTIC[csv_index]] = score
        vad = [_row_number(v, name) for v, name in zip(row[30:33], ("Valence", "Arousal", "Dominance"))]
        return {
            **metadata,
            "soft_labels": soft,
            "labels": [1.0 if s >= BINARY_THRESHOLD else 0.0 for s in soft],
            "vad": vad,
        }

    def _frames(self, root: Path, video: str, video_path: str, relative: list[int], where: str):
        """Encoded frames and their sizes, from mmextract when chosen/present, else the mp4."""
        source = self.config.frames_source
        extracted = safe_join(root / "mmextract", video, source=where, field="video")
        if source == "mmextract" or (source == "auto" and os.path.isdir(extracted)):
            if not os.path.isdir(extracted):
                raise ClipError("missing extracted frames", extracted)
            first = self.config.mmextract_first_index
            read = read_extracted_frames(extracted, [r + first for r in relative], self.config.verify_images)
            return [cell for cell, _ in read], [size for _, size in read]
        images = decode_video_frames(video_path, relative)
        return [encode_frame(image, self.config.frame_quality) for image in images], [i.size for i in images]
