"""EMOTIC (Kosti et al., TPAMI 2019) as a `datasets` builder, read from the owners' files.

Layout (`data_dir`):

    emotic/{mscoco,framesdb,ade20k,emodb_small}/images/*.jpg
    Annotations/Annotations.mat            (or the older CVPR17_Annotations.mat)
    emotic_pre/{train,val,test}.csv        (optional: the public PyTorch baseline's preprocessed form)

One example per annotated person. `Annotations.mat` is read one image at a time with scipy's
MAT-file reader (`dataset_scripts.matfile`: the values `scipy.io.loadmat(squeeze_me=True,
struct_as_record=False)` gives, without holding a whole split in memory), its fields by NAME:
train persons carry one annotator (`annotations_categories.categories`,
`annotations_continuous`), val/test persons one entry per annotator plus `combined_categories`
and `combined_continuous`, which are the labels used for val/test (as in EMOTIC's evaluation).

Ids: `<split>/<folder>/<filename>#p<person index>`, e.g.
`train/mscoco/images/COCO_train2014_000000094388.jpg#p0`, where the split is EMOTIC's own
(`train`, `val`, `test`) and the person index is the position in the image's `person` array.
The emotic_pre CSVs hold no person index (that tool drops persons without labels or with a NaN
VAD, which shifts positions): when `Annotations.mat` is also present, each CSV row is matched to
its .mat person by image and box and gets the same id as in the .mat form; a CSV alone gives ids
`...#r<k>` (k-th row of that image), which never collide with .mat ids, so descriptions made from
one form cannot be joined to the wrong person of the other.

Missing VAD (NaN) is not a bad sample: the example is kept with NaN in `vad` (mask it in the
VAD loss). Boxes are clipped to the image; a box of zero area after clipping is a bad sample, and
so is a person or CSV row whose values do not parse (a box or VAD that is not numbers, a category
that is not a name, an unreadable or oversized cell): it is skipped and counted with its `.mat`
record or `file:line` and the field. A struct without a field the builder reads, or a CSV with
another header, is a wrong layout and stops the build with an error that says what was expected.

>>> from dataset_scripts import load_emotion_dataset
>>> emotic = load_emotion_dataset("emotic", "/data/EMOTIC")  # doctest: +SKIP
"""

from __future__ import annotations

import ast
import math
import os
import re
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
from datasets import Features, Image, Value
from datasets.utils import logging

from .common import (
    AnnotationFormatError,
    BadSampleLog,
    DatasetLayoutError,
    EmotionBuilderConfig,
    EmotionDatasetBuilder,
    box_feature,
    clip_box_or_reason,
    dataset_root,
    make_id,
    multi_hot_feature,
    probe_image,
    read_csv_rows,
    safe_join,
    show_cell,
    vad_feature,
)
from .labels import EMOTIC_CATEGORIES
from .matfile import iter_struct_array


logger = logging.get_logger(__name__)

# EMOTIC's split names -> datasets' split names.
SPLITS = {"train": datasets.Split.TRAIN, "val": datasets.Split.VALIDATION, "test": datasets.Split.TEST}
MAT_NAMES = ("Annotations.mat", "CVPR17_Annotations.mat")
CSV_HEADER = [
    "Index",
    "Folder",
    "Filename",
    "Image Size",
    "BBox",
    "Categorical_Labels",
    "Continuous_Labels",
    "Gender",
    "Age",
]
_CATEGORY_INDEX = {name: i for i, name in enumerate(EMOTIC_CATEGORIES)}
CSV_LAYOUT = "the public baseline's emotic_pre form: " + ", ".join(CSV_HEADER)
# Errors in one person's or image's record of the .mat: a bad sample, not a bad file.
_RECORD_ERRORS = (ValueError, TypeError, AttributeError, IndexError, KeyError)


class _MissingField(AnnotationFormatError):
    """A struct without a field the builder reads: the elements of a MATLAB struct array share
    their fields, so this is the file's layout, not one bad sample."""


@dataclass
class EmoticConfig(EmotionBuilderConfig):
    """EMOTIC options.

    Args:
        annotation_format: `"mat"` (Annotations.mat), `"csv"` (emotic_pre/*.csv) or `"auto"`
            (the .mat when present, else the CSVs).
        annotations_file: the .mat file, if not at `Annotations/Annotations.mat` (absolute, or
            relative to `data_dir`).
        csv_dir: folder of the preprocessed CSVs, relative to `data_dir` or absolute.
    """

    annotation_format: str = "auto"
    annotations_file: str | None = None
    csv_dir: str = "emotic_pre"


# ---------------------------------------------------------------------------------------------
# Reading scipy.io.loadmat(squeeze_me=True, struct_as_record=False) output, by field name.
# squeeze_me collapses 1-element arrays to scalars (one person, one category, one annotator),
# so every reader below accepts both the scalar and the array form.
# ---------------------------------------------------------------------------------------------


def _as_list(value) -> list:
    if isinstance(value, np.ndarray):
        return list(value.flat)
    return [value]


def _field(struct, name: str, where: str):
    names = getattr(struct, "_fieldnames", None)
    if names is None:
        raise AnnotationFormatError(f"{where}: expected a MATLAB struct with field {name!r}, got {type(struct)}.")
    if name not in names:
        raise _MissingField(f"{where}: struct has no field {name!r}; its fields are {names}.")
    return getattr(struct, name)


def _has_field(struct, name: str) -> bool:
    return name in (getattr(struct, "_fieldnames", None) or ())


def _floats(value, where: str) -> list[float]:
    """The numbers of a MATLAB value; a ValueError naming `where` (record and field) if it holds others."""
    try:
        return np.asarray(value, dtype=np.float64).ravel().tolist()
    except (ValueError, TypeError):
        raise ValueError(f"{where} holds {show_cell(value)}; expected numbers") from None


def _number(value, where: str) -> float:
    values = _floats(value, where)
    return values[0] if values else math.nan


def _text(value) -> str | None:
    if isinstance(value, str):
        return value
    items = _as_list(value)
    if len(items) == 1 and isinstance(items[0], str):
        return items[0]
    return None


def _strings(value) -> list:
    """A MATLAB cell of strings as a list; non-strings (e.g. NaN) are kept so they can be reported."""
    if isinstance(value, str):
        return [value]
    out = []
    for item in _as_list(value):
        out.extend(_strings(item) if isinstance(item, np.ndarray) else [item])
    return out


def _vad(struct, where: str) -> list[float]:
    if isinstance(struct, np.ndarray) and struct.dtype != object:
        values = _floats(struct, where)
        if len(values) == 3:
            return values
    if isinstance(struct, np.ndarray) and struct.size == 0:
        return [math.nan] * 3
    return [_number(_field(struct, name, where), f"{where}.{name}") for name in ("valence", "arousal", "dominance")]


@dataclass
class _Person:
    index: int
    bbox: list[float]
    categories: list
    vad: list[float]
    gender: str | None
    age: str | None
    num_annotators: int
    # Why this person's record cannot be used (a bad sample), or None.
    bad: str | None = None


def _read_person(person, index: int, where: str) -> _Person:
    bbox = _floats(_field(person, "body_bbox", where), where + ".body_bbox")
    annotators = [a for a in _as_list(_field(person, "annotations_categories", where)) if a is not None]
    if _has_field(person, "combined_categories"):  # val/test
        categories = _strings(_field(person, "combined_categories", where))
    else:  # train: the single annotator (the union, should a copy hold more than one)
        categories = []
        for annotator in annotators:
            for name in _strings(_field(annotator, "categories", where + ".annotations_categories")):
                if name not in categories:
                    categories.append(name)
    if _has_field(person, "combined_continuous"):
        vad = _vad(_field(person, "combined_continuous", where), where + ".combined_continuous")
    else:
        entries = _as_list(_field(person, "annotations_continuous", where))
        continuous = [_vad(c, where + ".annotations_continuous") for c in entries]
        if any(len(values) != 3 for values in continuous):
            raise ValueError(f"{where}.annotations_continuous holds {continuous}; expected [V, A, D] per annotator")
        vad = np.mean(continuous, axis=0).tolist() if continuous else [math.nan] * 3
    gender = _text(person.gender) if _has_field(person, "gender") else None
    age = _text(person.age) if _has_field(person, "age") else None
    return _Person(index, bbox, categories, vad, gender, age, len(annotators))


def _read_mat_split(path: Path, split: str) -> Iterator:
    """The split's image structs, one at a time (memory does not grow with the split)."""
    try:
        yield from iter_struct_array(path, split)
    except KeyError:
        raise AnnotationFormatError(
            f"{path}: no variable {split!r}; expected the EMOTIC splits train, val, test."
        ) from None
    except (ValueError, TypeError, OSError) as err:
        raise AnnotationFormatError(f"{path}: cannot be read as a MATLAB file ({type(err).__name__}: {err}).") from err


@dataclass
class _MatImage:
    folder: str
    filename: str
    source_database: str | None
    size: tuple[float, float] | None
    persons: list[_Person]
    where: str = ""
    # Why the image's record cannot be used (its persons are then unknown), or None.
    bad: str | None = None


def _bad_record(err: Exception) -> str:
    # The worded errors above name the record and field; anything else gets its type too.
    text = str(err) if type(err) in (ValueError, TypeError) else f"{type(err).__name__}: {err}"
    return f"bad .mat record ({text})"


def _read_image(image, where: str) -> _MatImage:
    filename = _text(_field(image, "filename", where))
    folder = _text(_field(image, "folder", where))
    if not filename or not folder:
        raise TypeError(
            f"{where}: 'filename' and 'folder' must be non-empty strings, got {show_cell(image.filename)} and "
            f"{show_cell(image.folder)}"
        )
    database = None
    if _has_field(image, "original_database"):
        source = image.original_database
        database = _text(source.name) if _has_field(source, "name") else _text(source)
    size = None
    if _has_field(image, "image_size"):
        image_size = image.image_size
        size = tuple(_number(_field(image_size, n, where), f"{where}.image_size.{n}") for n in ("n_col", "n_row"))
    persons = []
    for j, person in enumerate(_as_list(_field(image, "person", where))):
        person_where = f"{where}.person({j + 1})"
        try:
            persons.append(_read_person(person, j, person_where))
        except _MissingField:
            raise
        except _RECORD_ERRORS as err:  # a value of the wrong type or shape in this person's record
            bad = _bad_record(err)
            persons.append(_Person(j, [], [], [math.nan] * 3, None, None, 0, bad=bad))
    return _MatImage(folder.rstrip("/"), filename, database, size, persons, where)


def _iter_mat_images(path: Path, split: str) -> Iterator[_MatImage]:
    for i, image in enumerate(_read_mat_split(path, split)):
        # Messages name the record by file name (`Annotations.mat: train(3).person(1).body_bbox`),
        # the skip's path is the record in the full path.
        where, record = f"{path.name}: {split}({i + 1})", f"{path}: {split}({i + 1})"
        try:
            read = _read_image(image, where)
            read.where = record
            yield read
        except _MissingField:
            raise
        except _RECORD_ERRORS as err:
            yield _MatImage("", "", None, None, [], record, bad=_bad_record(err))


class _CellError(ValueError):
    """A CSV cell that does not hold what its column should (the row is a bad sample)."""


def _list_cell(row: dict, column: str, numbers: bool) -> list:
    """The Python list that the baseline wrote as a repr into `row[column]`."""
    cell = row[column]
    expected = "a list of numbers" if numbers else "a list"
    try:
        # The baseline writes Python reprs; a NaN would appear as a bare `nan`.
        value = ast.literal_eval(re.sub(r"\bnan\b", "None", cell))
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as err:
        shown, kind = show_cell(cell), type(err).__name__
        message = f"{column} {shown} does not parse as a Python literal ({kind}); expected {expected}"
        raise _CellError(message) from None
    if not isinstance(value, list):
        raise _CellError(f"{column} {show_cell(cell)} is not a list; expected {expected}")
    if not numbers:
        return value
    out = []
    for item in value:
        if item is None:
            out.append(math.nan)
        elif isinstance(item, (int, float)) and not isinstance(item, bool):
            out.append(float(item))
        else:
            raise _CellError(f"{column} {show_cell(cell)} holds {show_cell(item)}; expected {expected}")
    return out


def _category_reason(name) -> str | None:
    """Why a category label cannot be used, or None for a known category name."""
    if isinstance(name, str):
        if name.strip() in _CATEGORY_INDEX:
            return None
        return f"unknown category ({name!r}; expected one of EMOTIC's 26)"
    names = ", ".join(EMOTIC_CATEGORIES)
    if name is None:
        return "NaN category label (an empty or NaN cell; expected a category name)"
    if isinstance(name, (int, float, np.number)) and not isinstance(name, (bool, np.bool_)):
        if math.isnan(float(name)):
            return "NaN category label (expected a category name)"
        return f"category label is not a name (the number {float(name)!r}; expected one of {names})"
    return f"category label is not a name ({show_cell(name)}, a {type(name).__name__}; expected one of {names})"


def baseline_csv_box(bbox: Sequence[float], image_size: tuple[float, float]) -> list[int]:
    """The box as the public baseline's preprocessing writes it to emotic_pre: clipped to the image, then int().

    >>> baseline_csv_box([-3.5, 2.7, 70.2, 40.9], (64, 48))
    [0, 2, 64, 40]
    """
    width, height = image_size
    x1, y1, x2, y2 = (float(v) for v in bbox)
    clip = (min(width, max(0, x1)), min(height, max(0, y1)), min(width, max(0, x2)), min(height, max(0, y2)))
    return [int(v) for v in clip]


class Emotic(EmotionDatasetBuilder):
    """EMOTIC builder: `Emotic(data_dir="/data/EMOTIC").download_and_prepare()`.

    Splits `train`, `validation` (EMOTIC's `val`), `test`. Features: `id`, `image`, `bbox`,
    `labels` (26 multi-hot, EMOTIC order), `vad` (1..10, NaN when missing), `gender`, `age`,
    `source_database`, `num_annotators`, `person_index`, `image_path` (EMOTIC's relative path).
    """

    BUILDER_CONFIG_CLASS = EmoticConfig
    DATASET = "EMOTIC"
    VERSION = datasets.Version("1.0.0")

    @classmethod
    def _source_files(cls, data_dir: str) -> list[str]:
        root = dataset_root(data_dir)
        return [str(root / "Annotations" / n) for n in MAT_NAMES] + [
            str(root / "emotic_pre" / f"{s}.csv") for s in SPLITS
        ]

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description="EMOTIC: people in context, 26 categories (multi-label) and VAD, one example a person.",
            homepage="http://sunai.uoc.edu/emotic/",
            features=Features(
                {
                    "id": Value("string"),
                    "image": Image(),
                    "bbox": box_feature(),
                    "labels": multi_hot_feature(),
                    "vad": vad_feature(),
                    "gender": Value("string"),
                    "age": Value("string"),
                    "source_database": Value("string"),
                    "num_annotators": Value("int32"),
                    "person_index": Value("int32"),
                    "image_path": Value("string"),
                }
            ),
        )

    # -- layout ---------------------------------------------------------------------------------

    def _root(self) -> Path:
        root = dataset_root(self.config.data_dir)
        if not root.is_dir():
            raise DatasetLayoutError(f"EMOTIC data_dir {root} does not exist.")
        return root

    def _mat_path(self, root: Path) -> Path | None:
        if self.config.annotations_file:
            path = root / self.config.annotations_file
            if not path.is_file():
                raise DatasetLayoutError(f"EMOTIC: annotations_file {path} does not exist.")
            return path
        for name in MAT_NAMES:
            if (root / "Annotations" / name).is_file():
                return root / "Annotations" / name
        return None

    def _csv_paths(self, root: Path) -> dict[str, Path]:
        folder = root / self.config.csv_dir
        return {split: folder / f"{split}.csv" for split in SPLITS if (folder / f"{split}.csv").is_file()}

    def _split_generators(self, dl_manager) -> list[datasets.SplitGenerator]:
        root = self._root()
        images_root = root / "emotic"
        if not images_root.is_dir():
            raise DatasetLayoutError(
                f"EMOTIC: expected the images under {images_root}/{{mscoco,framesdb,ade20k,emodb_small}}/images/, "
                f"but {images_root} does not exist."
            )
        form = self.config.annotation_format
        if form not in ("auto", "mat", "csv"):
            raise ValueError(f"EMOTIC annotation_format must be 'auto', 'mat' or 'csv', got {form!r}.")
        mat_path = self._mat_path(root)
        csv_paths = self._csv_paths(root)
        expected_mat = f"{root}/Annotations/Annotations.mat (or CVPR17_Annotations.mat)"
        expected_csv = f"{root / self.config.csv_dir}/{{train,val,test}}.csv"
        if form == "auto":
            form = "mat" if mat_path else "csv" if csv_paths else None
            if form is None:
                raise DatasetLayoutError(f"EMOTIC: no annotations found; expected {expected_mat} or {expected_csv}.")
        if form == "mat":
            if mat_path is None:
                raise DatasetLayoutError(f"EMOTIC: expected the annotations at {expected_mat}; not found.")
            from scipy.io import whosmat

            try:
                present = {name for name, _, _ in whosmat(str(mat_path))}
            except Exception as err:
                raise AnnotationFormatError(f"{mat_path}: not a MATLAB file ({type(err).__name__}: {err}).") from err
            splits = [s for s in SPLITS if s in present]
            if not splits:
                raise AnnotationFormatError(
                    f"{mat_path}: expected the variables 'train', 'val', 'test' (EMOTIC struct arrays), "
                    f"found {sorted(present)}."
                )
        else:
            if not csv_paths:
                raise DatasetLayoutError(f"EMOTIC: annotation_format='csv' but no CSV found; expected {expected_csv}.")
            splits = list(csv_paths)
        missing = [s for s in SPLITS if s not in splits]
        if missing:
            logger.warning("EMOTIC: no %s split in the %s annotations; building %s only.", missing, form, splits)
        return [
            datasets.SplitGenerator(
                name=SPLITS[split],
                gen_kwargs={
                    "split_name": str(SPLITS[split]),
                    "split": split,
                    "form": form,
                    "mat_path": mat_path,
                    "csv_path": csv_paths.get(split),
                    "root": root,
                },
            )
            for split in splits
        ]

    # -- examples -------------------------------------------------------------------------------

    def _examples(self, log: BadSampleLog, split: str, form: str, mat_path, csv_path, root: Path):
        resolver = _ImageResolver(root / "emotic", mat_path or csv_path, self.config.verify_images)
        if form == "mat":
            rows = self._mat_rows(log, mat_path, split)
        else:
            rows = self._csv_rows(log, csv_path, mat_path, split)
        for example_id, folder, filename, person, database, source in rows:
            example = self._example(log, resolver, example_id, folder, filename, person, database, source)
            if example is not None:
                yield example_id, example

    def _mat_rows(self, log: BadSampleLog, mat_path: Path, split: str):
        for image in _iter_mat_images(mat_path, split):
            log.where = image.where
            if image.bad is not None:
                log.skip(image.where, image.bad)
                continue
            for person in image.persons:
                example_id = make_id(split, f"{image.folder}/{image.filename}", person.index)
                if person.bad is not None:
                    log.skip(f"{image.where}.person({person.index + 1})", person.bad, example_id)
                    continue
                source = f"{image.where}.person({person.index + 1})"
                yield example_id, image.folder, image.filename, person, image.source_database, source

    def _csv_rows(self, log: BadSampleLog, csv_path: Path, mat_path: Path | None, split: str):
        matcher = _MatMatcher(mat_path, split) if mat_path is not None else None
        if matcher is None:
            logger.warning(
                "EMOTIC %s: reading %s without Annotations.mat, so ids use the row rank within each image "
                "('#r<k>') instead of EMOTIC's person index ('#p<k>').",
                split,
                csv_path,
            )
        rank: dict[tuple[str, str], int] = defaultdict(int)
        rows = read_csv_rows(csv_path, log, (len(CSV_HEADER),), CSV_LAYOUT, header=CSV_HEADER)
        for line, cells in rows:
            where = f"{csv_path}:{line}"
            row = dict(zip(CSV_HEADER, cells))
            folder, filename = row["Folder"].rstrip("/"), row["Filename"]
            if not folder or not filename:
                log.skip(where, f"empty CSV cell ({'Folder' if not folder else 'Filename'}; expected a path)")
                continue
            key = (folder, filename)
            try:
                categories = _list_cell(row, "Categorical_Labels", numbers=False)
                vad = _list_cell(row, "Continuous_Labels", numbers=True)
                bbox = _list_cell(row, "BBox", numbers=True)
                if len(vad) != 3:
                    raise _CellError(f"Continuous_Labels holds {len(vad)} values; expected [V, A, D]")
            except _CellError as err:
                rank[key] += 1  # the row still holds its place: the other rows' ids do not shift
                log.skip(where, f"bad CSV cell ({err})")
                continue
            match = matcher.match(key, bbox) if matcher else None
            if match is not None:
                index, num_annotators, database = match
                example_id = make_id(split, f"{folder}/{filename}", index)
            else:
                if matcher is not None:
                    logger.warning("EMOTIC %s: %s matches no person of the .mat; id uses its row rank.", split, where)
                index, database = None, folder.split("/")[0]
                num_annotators = 1 if split == "train" else None
                example_id = make_id(split, f"{folder}/{filename}", f"r{rank[key]}")
            rank[key] += 1
            person = _Person(index, bbox, categories, vad, row["Gender"] or None, row["Age"] or None, num_annotators)
            yield example_id, folder, filename, person, database, where

    def _example(self, log: BadSampleLog, resolver, example_id, folder, filename, person: _Person, database, source):
        """The example, or None when it is a bad sample. `source` is the person's annotation
        (`.mat` record or `file:line`): the path of faults in the annotation, as the image's
        path is that of faults in the image."""
        relative = f"{folder}/{filename}"
        path, size, reason = resolver.resolve(folder, filename, source)
        if reason is not None:
            log.skip(path, reason, example_id)
            return None
        labels = [0.0] * len(EMOTIC_CATEGORIES)
        if person.num_annotators == 0:
            log.skip(source, "no category annotation", example_id)
            return None
        for name in person.categories:
            reason = _category_reason(name)
            if reason is not None:
                log.skip(source, reason, example_id)
                return None
            labels[_CATEGORY_INDEX[name.strip()]] = 1.0
        bbox, reason = clip_box_or_reason(person.bbox, size)
        if reason is not None:
            log.skip(path, reason, example_id)
            return None
        return {
            "id": example_id,
            "image": path,
            "bbox": bbox,
            "labels": labels,
            "vad": [float(v) for v in person.vad],
            "gender": person.gender,
            "age": person.age,
            "source_database": database,
            "num_annotators": person.num_annotators,
            "person_index": person.index,
            "image_path": relative,
        }


class _ImageResolver:
    """Finds `<emotic>/<folder>/<filename>` (or the nested `<emotic>/<db>/<folder>` of some copies)
    and probes it once per image, however many persons the image holds."""

    def __init__(self, images_root: Path, source: Path, decode: bool):
        self.images_root, self.source, self.decode = images_root, source, decode
        self._folders: dict[str, str] = {}
        self._last: tuple | None = None

    def _folder(self, folder: str, source: str) -> str:
        if folder not in self._folders:
            direct = safe_join(self.images_root, folder, source=source, field="folder")
            first = folder.split("/")[0]
            nested = safe_join(self.images_root, f"{first}/{folder}", source=source, field="folder")
            self._folders[folder] = nested if (not os.path.isdir(direct) and os.path.isdir(nested)) else direct
        return self._folders[folder]

    def resolve(
        self, folder: str, filename: str, source: str | None = None
    ) -> tuple[str, tuple[int, int] | None, str | None]:
        """The image's path, size and bad-sample reason; `source` (the annotation row or record)
        is named if the folder or filename would leave the data root."""
        if self._last is not None and self._last[0] == (folder, filename):
            return self._last[1]
        source = source or str(self.source)
        directory = self._folder(folder, source)
        # The filename must stay inside its folder, not only inside the data root.
        path = safe_join(directory, filename, source=source, field="filename")
        size, reason = probe_image(path, decode=self.decode)
        self._last = ((folder, filename), (path, size, reason))
        return path, size, reason


class _MatMatcher:
    """Matches emotic_pre rows to their Annotations.mat person: same image, and the .mat box clipped
    and truncated the way the baseline's preprocessing does equals the CSV box.

    Holds, per image, only `(person index, truncated box, annotator count)` and the source database.
    """

    def __init__(self, mat_path: Path, split: str):
        self.images: dict[tuple[str, str], tuple[str | None, list]] = {}
        for image in _iter_mat_images(mat_path, split):
            if image.bad is not None:  # its CSV rows match no person and get row-rank ids, with a warning
                continue
            persons = []
            if image.size is not None and all(math.isfinite(v) for v in image.size):
                for person in image.persons:
                    if person.bad is None and len(person.bbox) == 4 and all(math.isfinite(v) for v in person.bbox):
                        box = tuple(baseline_csv_box(person.bbox, image.size))
                        persons.append((person.index, box, person.num_annotators))
            self.images[(image.folder, image.filename)] = (image.source_database, persons)
        self.used: set[tuple[str, str, int]] = set()

    def match(self, key: tuple[str, str], bbox: list[float]) -> tuple[int, int, str | None] | None:
        if key not in self.images or len(bbox) != 4 or not all(math.isfinite(v) for v in bbox):
            return None
        database, persons = self.images[key]
        target = tuple(int(v) for v in bbox)
        for index, box, num_annotators in persons:
            if (*key, index) not in self.used and box == target:
                self.used.add((*key, index))
                return index, num_annotators, database
        return None
