"""What the three dataset builders share: features, ids, path safety, bad-sample accounting.

Every builder reads a dataset exactly as its owners ship it and yields one example per subject
with the schema below (see README.md, "Datasets"):

- `id`: a stable string, unique over the whole dataset, built from the original split, the
  original relative path and the person (`make_id`). Descriptions join on it.
- `image` (EMOTIC, CAER-S) or `frames` (BoLD), the subject `bbox` `[x1, y1, x2, y2]` in pixels
  clipped to the image, `labels` in the task's one label order, `vad` where the dataset has it,
  and the metadata the dataset carries.

Bad samples (a missing, unreadable or oversized image, video or joints file, an annotation row
or cell that does not parse, a NaN label, a box of zero area) are skipped, counted and logged
with their path (`file:line` for an annotation row) and reason (`BadSampleLog`); `strict=True`
turns the first one into an error naming the file, the row and the field. No single sample ever
stops a build. A wrong layout (missing folders, a wrong header or first row, a struct without
an expected field) is an immediate `DatasetLayoutError` or `AnnotationFormatError` saying what
was expected where, and a path from an annotation file that would leave the data root is refused
(`UnsafePathError`). An unexpected failure is re-raised as a `DatasetGenerationError` whose own
message names the sample being read and the cause.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import re
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import datasets
from datasets import List, Value
from datasets.utils import logging
from PIL import Image

from .labels import EMOTIC_CATEGORIES, clip_box


logger = logging.get_logger(__name__)

NUM_EMOTIC_CATEGORIES = len(EMOTIC_CATEGORIES)
BAD_SAMPLES_FILE = "bad_samples.json"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
# Over this many pixels a PNG is checked with Image.verify() (every chunk read and its CRC
# checked) rather than decoded into a full pixel buffer; JPEGs are always decoded at 1/8 scale.
FULL_DECODE_PIXELS = 4096 * 4096


def box_feature() -> List:
    """`[x1, y1, x2, y2]` in pixels, float32."""
    return List(Value("float32"), length=4)


def multi_hot_feature() -> List:
    """26 floats (0/1) in EMOTIC's canonical category order."""
    return List(Value("float32"), length=NUM_EMOTIC_CATEGORIES)


def vad_feature() -> List:
    """Valence, arousal, dominance (float32, NaN where the dataset has no value)."""
    return List(Value("float32"), length=3)


class DatasetLayoutError(FileNotFoundError):
    """The files on disk do not have the layout the dataset's owners ship."""


class AnnotationFormatError(ValueError):
    """An annotation file does not have the expected fields or columns."""


class UnsafePathError(ValueError):
    """A path read from an annotation file would leave the data root."""


class BadSampleError(ValueError):
    """A bad sample met with `strict=True`."""


@dataclass
class EmotionBuilderConfig(datasets.BuilderConfig):
    """Options shared by the three builders.

    Args:
        strict: raise at the first bad sample instead of skipping and counting it.
        verify_images: decode every image once while building, so that truncated or corrupt
            files are found now rather than in the middle of training. `False` only reads the
            image headers (size and format), which is faster.
    """

    strict: bool = False
    verify_images: bool = True


def make_id(split: str, relative_path: str, person: str | int | None = None) -> str:
    """The example id: `<original split>/<original relative path>[#p<person>]`.

    >>> make_id("train", "mscoco/images/COCO_train2014_000000094388.jpg", 0)
    'train/mscoco/images/COCO_train2014_000000094388.jpg#p0'
    >>> make_id("test", "Anger/0001.png")
    'test/Anger/0001.png'
    """
    base = f"{split}/{str(relative_path).replace(os.sep, '/')}"
    if person is None:
        return base
    person = str(person)
    return f"{base}#{person}" if person[:1].isalpha() else f"{base}#p{person}"


def dataset_root(data_dir: str | os.PathLike, nested: str | None = None) -> Path:
    """`data_dir` made absolute, or its `nested` folder (`"CAER-S"`, `"BOLD_public"`) where it holds one."""
    root = Path(data_dir).expanduser().resolve()
    return root / nested if nested is not None and (root / nested).is_dir() else root


def safe_join(root: str | os.PathLike, relative: str, *, source: str, field: str) -> str:
    """Join a path read from an annotation file onto `root`, refusing any that leaves it.

    The check is lexical (after normalising `.` and `..`), so links that the user placed inside
    the data root still work, but an annotation cannot name `/etc/passwd` or `../../x`. Returns a
    string: pathlib interns every path part, which would grow memory with the number of files.

    >>> safe_join("/data/emotic", "mscoco/images/a.jpg", source="Annotations.mat", field="folder")
    '/data/emotic/mscoco/images/a.jpg'
    """
    text = str(relative).replace("\\", "/")
    if not text or "\x00" in text:
        raise UnsafePathError(f"{source}: field {field!r} holds an empty or invalid path {relative!r}.")
    root_abs = os.path.abspath(root)
    if text.startswith("/") or (len(text) > 1 and text[1] == ":"):
        raise UnsafePathError(
            f"{source}: field {field!r} holds the absolute path {relative!r}; expected a path relative to {root_abs}."
        )
    joined = os.path.normpath(os.path.join(root_abs, *[part for part in text.split("/") if part]))
    if os.path.commonpath([root_abs, joined]) != root_abs:
        raise UnsafePathError(f"{source}: field {field!r} holds {relative!r}, which leaves the data root {root_abs}.")
    return joined


def _check_image_data(image: Image.Image) -> None:
    """Read an opened image's whole compressed data, so truncated and corrupt files raise here.

    The builders need only the size, so no full-size pixel buffer is made for it: a JPEG is
    decoded at 1/8 scale (draft mode still entropy-decodes every block, so a truncated or corrupt
    file fails the same way), and a PNG of more than `FULL_DECODE_PIXELS` is verified chunk by
    chunk (CRCs) instead of decoded.
    """
    if image.format == "JPEG":
        image.draft(image.mode, (1, 1))
        image.load()
    elif image.format == "PNG" and image.width * image.height > FULL_DECODE_PIXELS:
        image.verify()
    else:
        image.load()


def decompression_bomb_reason(error: Exception) -> str:
    """The bad-sample reason for a picture over PIL's decompression-bomb limit, with how to allow it."""
    found = re.search(r"\((\d+) pixels\)", str(error))
    pixels = f"{int(found.group(1)):,} pixels" if found else str(error)
    limit = Image.MAX_IMAGE_PIXELS
    over = f"over 2 x PIL.Image.MAX_IMAGE_PIXELS = {2 * limit:,}" if limit else "over PIL's limit"
    return (
        f"picture over PIL's decompression-bomb limit ({pixels}, {over}; to allow it, set "
        "PIL.Image.MAX_IMAGE_PIXELS to a larger number, or None, before building)"
    )


def probe_image(path: str | os.PathLike, decode: bool = True) -> tuple[tuple[int, int] | None, str | None]:
    """Open an image and return `((width, height), None)`, or `(None, reason)` when it is bad.

    With `decode=True` the whole file is read and checked (see `_check_image_data`), which finds
    truncated and corrupt files without a full-size decode; `decode=False` reads the header only.
    """
    try:
        with Image.open(path) as image:
            size = image.size
            if decode:
                _check_image_data(image)
        return size, None
    except FileNotFoundError:
        return None, "missing image"
    except Image.DecompressionBombError as err:
        return None, decompression_bomb_reason(err)
    except Exception as err:  # noqa: BLE001 - whatever a decoder raises on this file, the file is bad
        return None, f"unreadable image ({type(err).__name__}: {err})"


def clip_box_or_reason(bbox: Sequence[float], image_size: tuple[int, int]) -> tuple[list[float] | None, str | None]:
    """Clip a box to the image; `(None, reason)` for NaN, zero-area or outside boxes."""
    try:
        return list(clip_box(bbox, image_size)), None
    except ValueError as err:
        values = list(bbox) if isinstance(bbox, Iterable) else [bbox]
        if len(values) == 4 and all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
            x1, y1, x2, y2 = (float(v) for v in values)
            if x2 <= x1 or y2 <= y1:
                return None, f"zero-area box ({values})"
        return None, f"bad box ({err})"


class BadSampleLog:
    """Counts, logs and remembers the samples a builder skips in one split.

    `strict=True` raises `BadSampleError` at the first one instead. `summary()` logs one line
    with the counts by reason at the end of the split.
    """

    def __init__(self, dataset: str, split: str, strict: bool = False):
        self.dataset, self.split, self.strict = dataset, split, strict
        self.records: list[dict] = []
        self.kept = 0
        # The sample being read (`file:line`, a path): named if something unexpected stops the build.
        self.where: str | None = None

    def skip(self, path: str | os.PathLike, reason: str, example_id: str | None = None) -> None:
        if self.strict:
            raise BadSampleError(
                f"{self.dataset} {self.split}: bad sample {path}: {reason}. "
                "(strict=True stops at the first bad sample; strict=False skips and counts them.)"
            )
        logger.warning("%s %s: skipping %s (id %s): %s", self.dataset, self.split, path, example_id, reason)
        self.records.append({"id": example_id, "path": str(path), "reason": reason})

    def reason_counts(self) -> dict[str, int]:
        # Reasons read "<kind> (<details>)": count by kind.
        return dict(Counter(record["reason"].split(" (")[0] for record in self.records))

    def summary(self) -> dict:
        counts = self.reason_counts()
        if not self.kept:
            logger.warning(
                "%s %s: the split is empty (%s).",
                self.dataset,
                self.split,
                f"all {len(self.records)} samples were bad" if self.records else "no sample found",
            )
        if self.records:
            detail = ", ".join(f"{reason}: {n}" for reason, n in sorted(counts.items()))
            logger.warning(
                "%s %s: kept %d examples, skipped %d bad samples (%s).",
                self.dataset,
                self.split,
                self.kept,
                len(self.records),
                detail,
            )
        else:
            logger.info("%s %s: kept %d examples, no bad samples.", self.dataset, self.split, self.kept)
        return {"kept": self.kept, "skipped": len(self.records), "reasons": counts, "samples": self.records}


def show_cell(value, limit: int = 60) -> str:
    """`repr(value)`, cut to `limit` characters: a bad cell may be megabytes long."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 5]}...' ({len(str(value)):,} characters)"


def is_text(cell: str) -> bool:
    try:
        cell.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: bytes that were not UTF-8 (errors="surrogateescape")
        return False
    return True


def read_csv_rows(
    path: str | os.PathLike,
    log: BadSampleLog,
    num_columns: Sequence[int],
    layout: str,
    header: Sequence[str] | None = None,
) -> Iterator[tuple[int, list[str]]]:
    """`(line, row)` for each well-formed row of an annotation CSV; the others are bad samples.

    A row that the csv module cannot read (a cell over `csv.field_size_limit()`, a stray quote),
    that holds bytes which are not UTF-8, or that has a column count not in `num_columns` is
    skipped and counted as `<path>:<line>`, and the file reads on. The header (when given) and
    the first data row show the file's layout: a wrong one is an `AnnotationFormatError`
    naming the file, the line and `layout` (what was expected).
    """
    with open(path, newline="", encoding="utf-8-sig", errors="surrogateescape") as handle:
        reader = csv.reader(handle, dialect="excel")
        if header is not None:
            found = next(reader, None)
            if found != list(header):
                raise AnnotationFormatError(f"{path}: expected the header {','.join(header)}, got {found}.")
        first = True
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as err:
                where = f"{path}:{reader.line_num}"
                log.where = where
                hint = "; csv.field_size_limit() sets the limit" if "field limit" in str(err) else ""
                log.skip(where, f"unreadable CSV row ({err}{hint})")
                continue
            line = reader.line_num
            if not row:
                continue
            where = f"{path}:{line}"
            log.where = where
            if not all(is_text(cell) for cell in row):
                log.skip(where, "unreadable CSV row (bytes that are not UTF-8 text)")
                continue
            if len(row) not in num_columns:
                expected = " or ".join(map(str, num_columns))
                if first:
                    raise AnnotationFormatError(f"{where}: expected {expected} columns ({layout}), got {len(row)}.")
                log.skip(where, f"wrong column count ({len(row)}; expected {expected}: {layout})")
                continue
            first = False
            yield line, row


def fingerprint_files(paths: Iterable[str | os.PathLike], extra: str = "") -> str:
    """A short hash of the files' sizes and modification times, plus `extra`.

    Builders pass it as the cache `hash`, so editing an annotation file (or the builder code)
    rebuilds the Arrow cache instead of silently reusing the old one.
    """
    digest = hashlib.sha256(extra.encode())
    for path in sorted(str(p) for p in paths):
        try:
            stat = os.stat(path)
            digest.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns};".encode())
        except OSError:
            digest.update(f"{path}:absent;".encode())
    return digest.hexdigest()[:16]


def source_code_hash(*module_files: str) -> str:
    """Hash of the builder modules' source, part of the cache fingerprint."""
    digest = hashlib.sha256()
    for module_file in (__file__, *module_files):
        digest.update(Path(module_file).read_bytes())
    return digest.hexdigest()[:16]


class EmotionDatasetBuilder(datasets.GeneratorBasedBuilder):
    """Base of the three builders: cache fingerprinting and the bad-sample report.

    Subclasses set `DATASET` and implement `_source_files(data_dir)` (the annotation files whose
    change must rebuild the cache), `_info`, `_split_generators` (whose `gen_kwargs` hold the
    split's `split_name`) and `_examples(log, **gen_kwargs)`, which yields `(key, example)` for the
    good samples and passes the bad ones to `log.skip`.
    """

    BUILDER_CONFIG_CLASS = EmotionBuilderConfig
    DATASET = ""

    def __init__(self, *args, **kwargs):
        data_dir = kwargs.get("data_dir")
        if data_dir is None:
            raise ValueError(f"{type(self).__name__} needs data_dir=<folder holding the {self.DATASET} files>.")
        if kwargs.get("hash") is None:
            module_file = sys.modules[type(self).__module__].__file__
            kwargs["hash"] = fingerprint_files(self._source_files(data_dir), source_code_hash(module_file))
        self._bad_sample_reports: dict[str, dict] = {}
        super().__init__(*args, **kwargs)

    @classmethod
    def _source_files(cls, data_dir: str) -> list[str]:
        return []

    def _examples(self, log: BadSampleLog, **gen_kwargs) -> Iterator[tuple[str, dict]]:
        raise NotImplementedError

    def _generate_examples(self, split_name: str, **gen_kwargs) -> Iterator[tuple[str, dict]]:
        """The split's good examples, counted; the bad ones end in the split's bad-sample report."""
        log = BadSampleLog(self.DATASET, split_name, strict=self.config.strict)
        self._log = log
        for key, example in self._examples(log, **gen_kwargs):
            log.kept += 1
            yield key, example
        self._bad_sample_reports[split_name] = log.summary()

    def _prepare_split(self, *args, **kwargs):
        self._log = None
        try:
            return super()._prepare_split(*args, **kwargs)
        except datasets.exceptions.DatasetGenerationError as err:
            # datasets wraps errors raised while generating; ours already say what is wrong where.
            cause = err.__cause__
            if isinstance(cause, (BadSampleError, UnsafePathError, AnnotationFormatError, DatasetLayoutError)):
                raise cause.with_traceback(cause.__traceback__) from None
            if cause is None:
                raise
            # Not one of our worded errors: say in this error's own message where and why it stopped.
            log = getattr(self, "_log", None)
            where = f" while reading {log.where}" if log is not None and log.where else ""
            split = f" {log.split}" if log is not None else ""
            raise datasets.exceptions.DatasetGenerationError(
                f"{self.DATASET}{split}: the build stopped{where}: {type(cause).__name__}: {cause} "
                "(an unexpected failure: a bad sample should have been skipped; please report this message)"
            ) from cause

    def _download_and_prepare(self, dl_manager, verification_mode, **prepare_split_kwargs):
        super()._download_and_prepare(dl_manager, verification_mode, **prepare_split_kwargs)
        # Written inside the cache folder before it is moved into place, so a cached build still
        # knows what was skipped when it was made.
        report_path = os.path.join(self._output_dir, BAD_SAMPLES_FILE)
        with open(report_path, "w", encoding="utf-8") as handle:
            json.dump(self._bad_sample_reports, handle, indent=2)

    @property
    def bad_samples(self) -> dict[str, dict]:
        """Per split: `{"kept", "skipped", "reasons": {reason: n}, "samples": [{"id", "path", "reason"}]}`.

        Read from the prepared cache, so it is also there when the build was cached.
        """
        report_path = os.path.join(self.cache_dir, BAD_SAMPLES_FILE)
        if os.path.isfile(report_path):
            with open(report_path, encoding="utf-8") as handle:
                return json.load(handle)
        return dict(self._bad_sample_reports)
