"""Write EMOTIC, CAER-S and BoLD (and description sets) exactly as they lie on a user's disk.

The builders in this package read the owners' formats; these functions write the same formats
from Python records, so that tests, benchmarks and the offline demo run the real readers on real
files: a nested MATLAB struct `Annotations.mat` (scipy.io.savemat), the preprocessed EMOTIC CSVs
of the public PyTorch baseline, CAER-S class folders, BoLD's headerless CSVs, joints arrays, mp4
clips (PyAV) and pre-extracted frames, and description sets in the format caption.py writes.

A synthetic EMOTIC in two calls:

>>> from PIL import Image
>>> from dataset_scripts.writers import EmoticImage, EmoticPerson, write_emotic_mat
>>> person = EmoticPerson(bbox=[4, 2, 30, 40], categories=["Happiness", "Engagement"], vad=[7, 5, 6])
>>> record = EmoticImage("COCO_train2014_000000000001.jpg", "mscoco/images", (48, 48), [person],
...                      image=Image.new("RGB", (48, 48)))
>>> path = write_emotic_mat("/tmp/emotic_doc", {"train": [record], "val": [record], "test": [record]})
>>> str(path)
'/tmp/emotic_doc/Annotations/Annotations.mat'
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from .descriptions import DESCRIPTION_SET_FORMAT, DESCRIPTION_SET_VERSION, METADATA_FILE, ROW_SCHEMA, STATUSES
from .emotic import CSV_HEADER, baseline_csv_box
from .labels import BOLD_CSV_CATEGORIES


NAN = float("nan")

# ---------------------------------------------------------------------------------------------
# EMOTIC
# ---------------------------------------------------------------------------------------------


@dataclass
class EmoticPerson:
    """One annotated person of an EMOTIC image.

    Args:
        bbox: body box `[x1, y1, x2, y2]` in pixels; it may extend past the image, as in EMOTIC.
        categories: train: the annotator's categories; val/test: the combined categories (may be
            empty, as in EMOTIC).
        vad: `[valence, arousal, dominance]` on the 1..10 scale (NaN when missing); val/test: the
            combined (averaged) values.
        gender: "Male" or "Female".
        age: "Kid", "Teenager" or "Adult".
        annotators: val/test only: one `(categories, vad)` pair per annotator. Default: a single
            annotator whose answers equal the combined ones. An empty list writes a person with no
            annotation at all.
    """

    bbox: Sequence[float]
    categories: Sequence[str]
    vad: Sequence[float] = (NAN, NAN, NAN)
    gender: str = "Female"
    age: str = "Adult"
    annotators: Sequence[tuple[Sequence[str], Sequence[float]]] | None = None


@dataclass
class EmoticImage:
    """One EMOTIC image and its persons.

    Args:
        filename: e.g. `COCO_train2014_000000094388.jpg`.
        folder: as in EMOTIC, already ending in `/images`, e.g. `mscoco/images`.
        image_size: `(width, height)` written to `image_size.n_col` / `image_size.n_row`.
        persons: `EmoticPerson`s (or dicts with their fields).
        source_database: `original_database.name` (`mscoco`, `framesdb`, `ade20k`, `emodb_small`).
        image: written to `<root>/emotic/<folder>/<filename>` when given (JPEG for .jpg names).
        disk_folder: where the image file goes under `<root>/emotic` when it differs from
            `folder` (e.g. the nested `framesdb/framesdb/images` of some copies).
    """

    filename: str
    folder: str
    image_size: tuple[int, int]
    persons: Sequence[EmoticPerson | Mapping]
    source_database: str = "mscoco"
    image: Image.Image | None = None
    disk_folder: str | None = None

    def __post_init__(self):
        self.persons = [p if isinstance(p, EmoticPerson) else EmoticPerson(**p) for p in self.persons]


def _struct_array(records: Sequence[Mapping], fields: Sequence[str]) -> np.ndarray:
    """A 1xN MATLAB struct array (savemat writes a numpy structured array as one)."""
    array = np.zeros((1, len(records)), dtype=[(name, object) for name in fields])
    for i, record in enumerate(records):
        for name in fields:
            array[0, i][name] = record[name]
    return array


def _cell(strings: Sequence[str]) -> np.ndarray:
    """A 1xK MATLAB cell of strings (0x0 when empty, as MATLAB writes `{}`)."""
    if not strings:
        return np.zeros((0, 0), dtype=object)
    cell = np.zeros((1, len(strings)), dtype=object)
    for i, text in enumerate(strings):
        # A non-string (e.g. a NaN) is written as a number, as a damaged annotation would hold it.
        cell[0, i] = text if isinstance(text, str) else float(text)
    return cell


def _vad_struct(values: Sequence[float]) -> dict:
    valence, arousal, dominance = (float(v) for v in values)
    return {"valence": valence, "arousal": arousal, "dominance": dominance}


def _person_struct(person: EmoticPerson, split: str) -> dict:
    record = {"body_bbox": np.asarray(person.bbox, dtype=np.float64).reshape(1, 4)}
    if split == "train":
        # Train: one annotator, 1x1 structs, no combined_* fields.
        record["annotations_categories"] = {"categories": _cell(person.categories)}
        record["annotations_continuous"] = _vad_struct(person.vad)
    else:
        annotators = person.annotators
        if annotators is None:
            annotators = [(person.categories, person.vad)]
        record["annotations_categories"] = _struct_array(
            [{"categories": _cell(cats)} for cats, _ in annotators], ["categories"]
        )
        record["combined_categories"] = _cell(person.categories)
        record["annotations_continuous"] = _struct_array(
            [_vad_struct(vad) for _, vad in annotators], ["valence", "arousal", "dominance"]
        )
        record["combined_continuous"] = _vad_struct(person.vad)
    record["gender"] = person.gender
    record["age"] = person.age
    return record


# Field order as in EMOTIC (the public baseline reads them by position; we read them by name).
_TRAIN_PERSON_FIELDS = ("body_bbox", "annotations_categories", "annotations_continuous", "gender", "age")
_EVAL_PERSON_FIELDS = (
    "body_bbox",
    "annotations_categories",
    "combined_categories",
    "annotations_continuous",
    "combined_continuous",
    "gender",
    "age",
)
_IMAGE_FIELDS = ("filename", "folder", "image_size", "original_database", "person")


def _save_image(image: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = image.convert("RGB") if path.suffix.lower() in (".jpg", ".jpeg") else image
    image.save(path, quality=95) if path.suffix.lower() in (".jpg", ".jpeg") else image.save(path)


def write_emotic_mat(
    root: str | os.PathLike,
    splits: Mapping[str, Sequence[EmoticImage | Mapping]],
    *,
    annotations_name: str = "Annotations.mat",
) -> Path:
    """Write `<root>/Annotations/<annotations_name>` as EMOTIC's nested MATLAB struct, and the images.

    `splits` maps `train`, `val`, `test` to lists of `EmoticImage` (or dicts with its fields). Each
    split becomes a top-level 1xN struct array of images with fields `filename`, `folder`,
    `image_size` (`n_col`, `n_row`), `original_database` (`name`, `info`) and `person`, a 1xP
    struct array. Train persons carry `body_bbox`, `annotations_categories.categories`,
    `annotations_continuous`, `gender`, `age`; val/test persons carry one
    `annotations_categories`/`annotations_continuous` entry per annotator plus
    `combined_categories` and `combined_continuous`. Images given as PIL images are saved to
    `<root>/emotic/<folder>/<filename>`. Returns the path of the .mat file.

    >>> from dataset_scripts.writers import write_emotic_mat
    >>> write_emotic_mat("/tmp/emotic_doc2", {"train": [{"filename": "a.jpg", "folder": "mscoco/images",
    ...     "image_size": (64, 48), "persons": [{"bbox": [0, 0, 20, 30], "categories": ["Peace"]}]}]}).name
    'Annotations.mat'
    """
    from scipy.io import savemat

    root = Path(root)
    contents = {}
    for split, records in splits.items():
        if split not in ("train", "val", "test"):
            raise ValueError(f"EMOTIC splits are 'train', 'val' and 'test', got {split!r}.")
        images = [r if isinstance(r, EmoticImage) else EmoticImage(**r) for r in records]
        person_fields = _TRAIN_PERSON_FIELDS if split == "train" else _EVAL_PERSON_FIELDS
        entries = []
        for record in images:
            width, height = record.image_size
            entries.append(
                {
                    "filename": record.filename,
                    "folder": record.folder,
                    "image_size": {"n_col": float(width), "n_row": float(height)},
                    "original_database": {"name": record.source_database, "info": {"source": record.source_database}},
                    "person": _struct_array([_person_struct(p, split) for p in record.persons], person_fields),
                }
            )
            if record.image is not None:
                _save_image(record.image, root / "emotic" / (record.disk_folder or record.folder) / record.filename)
        contents[split] = _struct_array(entries, _IMAGE_FIELDS)
    path = root / "Annotations" / annotations_name
    path.parent.mkdir(parents=True, exist_ok=True)
    (root / "emotic").mkdir(parents=True, exist_ok=True)
    savemat(path, contents, do_compression=True, oned_as="row")
    return path


def write_emotic_csv(
    root: str | os.PathLike, splits: Mapping[str, Sequence[EmoticImage | Mapping]], *, csv_dir: str = "emotic_pre"
) -> dict[str, Path]:
    """Write `<root>/emotic_pre/{train,val,test}.csv` as the public PyTorch baseline's mat2py does.

    Excel dialect (CRLF), header `Index,Folder,Filename,Image Size,BBox,Categorical_Labels,
    Continuous_Labels,Gender,Age`, one row per person, list cells as Python reprs. Like that tool,
    it drops persons without category annotators and persons whose (combined) VAD has a NaN, and
    writes boxes clipped to the image and truncated to integers; train rows hold the single
    annotator, val/test rows the combined labels. Images are not written (see `write_emotic_mat`).

    >>> from dataset_scripts.writers import write_emotic_csv
    >>> write_emotic_csv("/tmp/emotic_doc3", {"train": [{"filename": "a.jpg", "folder": "mscoco/images",
    ...     "image_size": (64, 48), "persons": [{"bbox": [0, 0, 20, 30], "categories": ["Peace"],
    ...     "vad": [5, 5, 5]}]}]})["train"].name
    'train.csv'
    """
    root = Path(root) / csv_dir
    root.mkdir(parents=True, exist_ok=True)
    written = {}
    for split, records in splits.items():
        images = [r if isinstance(r, EmoticImage) else EmoticImage(**r) for r in records]
        path = root / f"{split}.csv"
        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle, delimiter=",", dialect="excel")
            writer.writerow(CSV_HEADER)
            index = 0
            for record in images:
                for person in record.persons:
                    no_annotators = person.annotators is not None and len(person.annotators) == 0
                    if no_annotators or any(math.isnan(float(v)) for v in person.vad):
                        continue
                    writer.writerow(
                        [
                            index,
                            record.folder,
                            record.filename,
                            [int(record.image_size[0]), int(record.image_size[1])],
                            baseline_csv_box(person.bbox, record.image_size),
                            [c if isinstance(c, str) else float(c) for c in person.categories],
                            [float(v) for v in person.vad],
                            person.gender,
                            person.age,
                        ]
                    )
                    index += 1
        written[split] = path
    return written


# ---------------------------------------------------------------------------------------------
# CAER-S
# ---------------------------------------------------------------------------------------------


def write_caer_s(
    root: str | os.PathLike,
    splits: Mapping[str, Mapping[str, Sequence[Image.Image]]],
    *,
    nested: bool = False,
) -> Path:
    """Write `<root>/CAER-S/<split>/<Folder>/NNNN.png` (4-digit names from 0001), as CAER-S ships.

    `splits` maps `train`/`test` to `{folder: [PIL images]}`, with the folders spelled as on disk
    (`Angry` in train, `Anger` in test). `nested=True` writes the `train/train/...` layout of some
    copies. Returns the `CAER-S` folder.

    >>> from PIL import Image
    >>> from dataset_scripts.writers import write_caer_s
    >>> write_caer_s("/tmp/caer_doc", {"train": {"Angry": [Image.new("RGB", (8, 8))]}}).name
    'CAER-S'
    """
    base = Path(root) / "CAER-S"
    for split, folders in splits.items():
        split_dir = base / split / split if nested else base / split
        for folder, images in folders.items():
            (split_dir / folder).mkdir(parents=True, exist_ok=True)
            for number, image in enumerate(images, start=1):
                image.save(split_dir / folder / f"{number:04d}.png")
    return base


def write_caer_s_face_boxes(path: str | os.PathLike, entries: Iterable[tuple[str, int, Sequence[float]]]) -> Path:
    """Write a third-party CAER-S face-box file: one `relpath,label,x1,y1,x2,y2` line per image.

    >>> from dataset_scripts.writers import write_caer_s_face_boxes
    >>> write_caer_s_face_boxes("/tmp/caer_doc/boxes.txt", [("train/Angry/0001.png", 0, [1, 1, 6, 6])]).name
    'boxes.txt'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        for relpath, label, box in entries:
            handle.write(",".join([relpath, str(int(label)), *(f"{v:g}" for v in box)]) + "\n")
    return path


# ---------------------------------------------------------------------------------------------
# BoLD
# ---------------------------------------------------------------------------------------------


@dataclass
class BoldAnnotation:
    """One row of a BoLD annotation CSV (a person in a clip).

    Args:
        video: clip path under `videos/`, e.g. `003/IzvOYVMltkI.mp4/0114.mp4`.
        person_id: the person's id in the joints file.
        min_frame, max_frame: the annotated frame range (absolute, as the joints' frame_idx).
        scores: soft score in [0, 1] by category name (EMOTIC spelling); unlisted ones are 0.
        vad: valence, arousal, dominance.
        gender, age, ethnicity, confidence: the last four columns, written as given.
    """

    video: str
    person_id: int
    min_frame: int
    max_frame: int
    scores: Mapping[str, float] = field(default_factory=dict)
    vad: Sequence[float] = (5.0, 5.0, 5.0)
    gender: str | int = 1
    age: str | int = 2
    ethnicity: str | int = 1
    confidence: float = 0.9


BOLD_ANNOTATION_FILES = {"train": "train.csv", "val": "val.csv", "test": "test_meta.csv"}


def _bold_root(root: str | os.PathLike) -> Path:
    return Path(root) / "BOLD_public"


def write_bold_annotations(
    root: str | os.PathLike,
    split: str,
    annotations: Sequence[BoldAnnotation | Mapping],
    *,
    with_labels: bool | None = None,
) -> Path:
    """Write `<root>/BOLD_public/annotations/{train.csv,val.csv,test_meta.csv}`: no header, 37 columns.

    Columns: video, person_id, min_frame, max_frame, the 26 scores in BoLD's column order
    (`BOLD_CSV_CATEGORIES`), Valence, Arousal, Dominance, Gender, Age, Ethnicity,
    annotation_confidence. `test_meta.csv` gets only the first four columns unless
    `with_labels=True` (its labels are not public).

    >>> from dataset_scripts.writers import write_bold_annotations
    >>> write_bold_annotations("/tmp/bold_doc", "train", [{"video": "001/a.mp4/0001.mp4", "person_id": 0,
    ...     "min_frame": 0, "max_frame": 9, "scores": {"Happiness": 0.8}}]).name
    'train.csv'
    """
    if split not in BOLD_ANNOTATION_FILES:
        raise ValueError(f"BoLD splits are {sorted(BOLD_ANNOTATION_FILES)}, got {split!r}.")
    with_labels = split != "test" if with_labels is None else with_labels
    path = _bold_root(root) / "annotations" / BOLD_ANNOTATION_FILES[split]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        for item in annotations:
            row = item if isinstance(item, BoldAnnotation) else BoldAnnotation(**item)
            unknown = set(row.scores) - set(BOLD_CSV_CATEGORIES)
            if unknown:
                raise ValueError(
                    f"Unknown BoLD categories {sorted(unknown)}: expected names from {BOLD_CSV_CATEGORIES}."
                )
            cells = [row.video, row.person_id, row.min_frame, row.max_frame]
            if with_labels:
                cells += [row.scores.get(name, 0.0) for name in BOLD_CSV_CATEGORIES]
                cells += [*row.vad, row.gender, row.age, row.ethnicity, row.confidence]
            writer.writerow(cells)
    return path


def bold_joints_row(frame_idx: int, person_id: int, keypoints: np.ndarray | Sequence) -> np.ndarray:
    """One joints row `[frame_idx, person_id, x0, y0, c0, ..., x17, y17, c17]` from an (18, 3) array
    of (x, y, confidence); missing joints are all zero, as OpenPose writes them."""
    keypoints = np.asarray(keypoints, dtype=np.float64).reshape(18, 3)
    return np.concatenate([[frame_idx, person_id], keypoints.ravel()])


def write_bold_joints(root: str | os.PathLike, video: str, joints: np.ndarray) -> Path:
    """Write `<root>/BOLD_public/joints/<video without .mp4>.npy` (an (N, 56) float array)."""
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 2 or joints.shape[1] != 56:
        raise ValueError(f"BoLD joints are (N, 56) arrays, got {joints.shape}.")
    stem = video[: -len(".mp4")] if video.endswith(".mp4") else video
    path = _bold_root(root) / "joints" / f"{stem}.npy"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, joints, allow_pickle=False)
    return path


def write_bold_video(
    root: str | os.PathLike, video: str, frames: Sequence[Image.Image | np.ndarray], *, fps: int = 25
) -> Path:
    """Write `<root>/BOLD_public/videos/<video>` as an H.264 mp4 with PyAV (near-lossless, qp 0).

    Frames are RGB PIL images or (H, W, 3) uint8 arrays of even width and height.
    """
    import av

    path = _bold_root(root) / "videos" / video
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = [np.asarray(f.convert("RGB") if isinstance(f, Image.Image) else f, dtype=np.uint8) for f in frames]
    height, width = arrays[0].shape[:2]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv444p"
        stream.options = {"qp": "0", "preset": "ultrafast"}
        for array in arrays:
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_bold_extracted_frames(
    root: str | os.PathLike, video: str, frames: Sequence[Image.Image], *, first_index: int = 1
) -> Path:
    """Write pre-extracted frames `<root>/BOLD_public/mmextract/<video>/img_00001.jpg ...`."""
    folder = _bold_root(root) / "mmextract" / video
    folder.mkdir(parents=True, exist_ok=True)
    for number, frame in enumerate(frames, start=first_index):
        frame.convert("RGB").save(folder / f"img_{number:05d}.jpg", quality=95)
    return folder


# ---------------------------------------------------------------------------------------------
# Description sets (the format caption.py writes; see dataset_scripts.descriptions)
# ---------------------------------------------------------------------------------------------


def write_description_set(
    out_dir: str | os.PathLike, rows: Sequence[Mapping], metadata: Mapping | None = None
) -> Path:
    """Write a description set: `data/<split>-00000-of-00001.parquet`, `description_set.json`, `README.md`.

    Each row needs `id`, `description` and `split`; `status` defaults to "ok", `reason` to None,
    `prompt` to "" and `num_tokens` to the description's word count. `metadata` fills
    description_set.json (model, revision, backend, prompt_template, marking, generation,
    dataset); format, version and the per-split status counts are added.

    >>> from dataset_scripts.writers import write_description_set
    >>> write_description_set("/tmp/desc_doc", [{"id": "train/a.jpg#p0", "description": "calm", "split": "train"}],
    ...                       {"model": "tiny-llava", "dataset": "emotic"}).name
    'desc_doc'
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out_dir)
    (out / "data").mkdir(parents=True, exist_ok=True)
    by_split: dict[str, list[dict]] = {}
    for row in rows:
        description = row.get("description", "")
        full = {
            "id": row["id"],
            "description": description,
            "status": row.get("status", "ok"),
            "reason": row.get("reason"),
            "split": row["split"],
            "prompt": row.get("prompt", ""),
            "num_tokens": row.get("num_tokens", len(description.split())),
        }
        by_split.setdefault(full["split"], []).append(full)
    counts = {}
    for split, split_rows in by_split.items():
        table = pa.Table.from_pylist(split_rows, schema=ROW_SCHEMA)
        pq.write_table(table, out / "data" / f"{split}-00000-of-00001.parquet")
        counts[split] = {status: sum(r["status"] == status for r in split_rows) for status in STATUSES}
    meta = {
        "format": DESCRIPTION_SET_FORMAT,
        "version": DESCRIPTION_SET_VERSION,
        "model": "",
        "revision": None,
        "backend": "transformers",
        "prompt_template": "",
        "marking": "box",
        "generation": {},
        "dataset": "",
        **dict(metadata or {}),
        "splits": counts,
    }
    (out / METADATA_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
    configs = "\n".join(f"  - split: {s}\n    path: data/{s}-*.parquet" for s in by_split)
    (out / "README.md").write_text(
        f"---\nconfigs:\n- config_name: default\n  data_files:\n{configs}\n---\n\n"
        f"# Descriptions of {meta['dataset'] or 'a dataset'} by {meta['model'] or 'a VLLM'}\n",
        encoding="utf-8",
    )
    return out
