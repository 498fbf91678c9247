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

from modeling_emofusion.labels import BOLD_CSV_CATEGORIES, EMOTIC_CATEGORIES


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
        cell[0, i] = str(text)
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


EMOTIC_CSV_HEADER = (
    "Index",
    "Folder",
    "Filename",
    "Image Size",
    "BBox",
    "Categorical_Labels",
    "Continuous_Labels",
    "Gender",
    "Age",
)


def emotic_csv_box(bbox: Sequence[float], image_size: tuple[int, int]) -> list[int]:
    """The box as the public baseline's preprocessing writes it: clipped to the image, then int()."""
    width, height = image_size
    x1, y1, x2, y2 = (float(v) for v in bbox)
    return [
        int(min(width, max(0, x1))),
        int(min(height, max(0, y1))),
        int(min(width, max(0, x2))),
        int(min(height, max(0, y2))),
    ]


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
            writer.writerow(EMOTIC_CSV_HEADER)
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
                            emotic_csv_box(person.bbox, record.image_size),
                            [str(c) for c in person.categories],
                            [float(v) for v in person.vad],
                            person.gender,
                            person.age,
                        ]
                    )
                    index += 1
        written[split] = path
    return written
