"""`load_emotion_dataset`: one call from a dataset name and a folder to a `datasets.DatasetDict`.

`load_prepared_dataset` reads what `emofusion convert` writes (Parquet with a README.md whose YAML
`configs:` `datasets.load_dataset` follows, or `save_to_disk` Arrow) and other prepared folders.
"""

from __future__ import annotations

import os

import datasets
from datasets.exceptions import DatasetGenerationError
from datasets.utils import logging

from .bold import Bold
from .caer_s import CaerS
from .common import DatasetLayoutError
from .descriptions import join_descriptions, load_description_set
from .emotic import Emotic
from .json_files import read_json_file


logger = logging.get_logger(__name__)

BUILDERS: dict[str, type[datasets.GeneratorBasedBuilder]] = {"emotic": Emotic, "caer_s": CaerS, "bold": Bold}
CONVERSION_FILE = "conversion.json"  # emofusion convert's summary, written last: its presence means complete


def prepared_format(data_dir: str | os.PathLike) -> str | None:
    """How `data_dir` holds a prepared dataset: "arrow" (`save_to_disk`), "parquet" (emofusion convert's
    Parquet, or a dataset folder downloaded from the Hub), or None (the owners' layout, for the builders)."""
    folder = os.fspath(data_dir)
    if os.path.isfile(os.path.join(folder, "dataset_dict.json")):
        return "arrow"
    if os.path.isfile(os.path.join(folder, CONVERSION_FILE)):
        return "parquet"
    data = os.path.join(folder, "data")
    if os.path.isfile(os.path.join(folder, "README.md")) and os.path.isdir(data):
        if any(name.endswith(".parquet") and not name.startswith(".") for name in os.listdir(data)):
            return "parquet"
    return None


def read_conversion_summary(data_dir: str | os.PathLike) -> dict | None:
    """`<data_dir>/conversion.json` as emofusion convert wrote it, or None when there is none."""
    path = os.path.join(os.fspath(data_dir), CONVERSION_FILE)
    if not os.path.isfile(path):
        return None
    summary = read_json_file(path, DatasetLayoutError, writer="emofusion convert")
    if not isinstance(summary, dict) or not isinstance(summary.get("splits"), dict):
        raise DatasetLayoutError(f"{path}: expected emofusion convert's summary, an object with 'splits'.")
    return summary


def load_prepared_dataset(
    data_dir: str | os.PathLike, name: str | None = None, *, cache_dir: str | None = None
) -> datasets.DatasetDict | None:
    """The splits of a prepared dataset folder (see `prepared_format`), or None when `data_dir` is not one.

    A folder written by `emofusion convert` must hold the dataset `name` (its conversion.json says
    which) and every row its summary counts. Parquet is read by `datasets.load_dataset(data_dir)`,
    Arrow by `datasets.load_from_disk`; the features (image, bbox, labels...) are the builders'.

    >>> emotic = load_prepared_dataset("outputs/emotic-parquet", "emotic")  # doctest: +SKIP
    """
    kind = prepared_format(data_dir)
    if kind is None:
        return None
    folder = os.fspath(data_dir)
    summary = read_conversion_summary(folder)
    if summary is not None and name is not None and summary.get("dataset") not in (None, name):
        raise DatasetLayoutError(
            f"{os.path.join(folder, CONVERSION_FILE)}: {folder} holds {summary['dataset']!r} (written by "
            f"emofusion convert), not {name!r}; pass --dataset {summary['dataset']}."
        )
    logger.info("Loading the prepared dataset in %s (%s).", folder, kind)
    try:
        if kind == "arrow":
            dataset = datasets.load_from_disk(folder)
        else:
            dataset = datasets.load_dataset(folder, cache_dir=cache_dir)
    except (DatasetGenerationError, ValueError, OSError) as err:
        cause = err.__cause__ or err
        raise DatasetLayoutError(
            f"{folder}: cannot be read as a prepared dataset ({kind}): {type(cause).__name__}: {cause}. If "
            "emofusion convert wrote it, convert again."
        ) from err
    if not isinstance(dataset, datasets.DatasetDict):
        dataset = datasets.DatasetDict({"train": dataset})
    if summary is not None:
        expected = {split: info.get("num_rows") for split, info in summary["splits"].items()}
        found = {split: len(rows) for split, rows in dataset.items()}
        if expected != found:
            raise DatasetLayoutError(
                f"{folder}: {CONVERSION_FILE} lists splits {expected} but the files hold {found}; the folder was "
                "changed after emofusion convert wrote it. Convert again."
            )
    return dataset


def get_builder(name: str, data_dir: str | os.PathLike, cache_dir: str | None = None, **builder_options):
    """The builder of dataset `name` (`emotic`, `caer_s`, `bold`) over `data_dir`, not yet prepared.

    >>> builder = get_builder("caer_s", "/data/CAER-S", validation_fraction=0.1)  # doctest: +SKIP
    >>> builder.download_and_prepare(); builder.as_dataset()  # doctest: +SKIP
    """
    key = name.lower().replace("-", "_")
    if key not in BUILDERS:
        raise ValueError(f"Unknown dataset {name!r}: expected one of {sorted(BUILDERS)}.")
    return BUILDERS[key](data_dir=os.fspath(data_dir), cache_dir=cache_dir, **builder_options)


def load_emotion_dataset(
    name: str,
    data_dir: str | os.PathLike,
    descriptions: str | os.PathLike | datasets.Dataset | None = None,
    *,
    cache_dir: str | None = None,
    download_mode: str | None = None,
    on_missing: str = "warn",
    descriptions_revision: str | None = None,
    **builder_options,
) -> datasets.DatasetDict:
    """Build (or reuse from the cache) EMOTIC, CAER-S or BoLD from its owners' files and return its splits.

    Args:
        name: `"emotic"`, `"caer_s"` or `"bold"`.
        data_dir: the folder holding the dataset as its owners ship it (README.md, "Datasets").
        descriptions: optional descriptions to join by id: a description set written by caption.py,
            any table of `id`, `description` (CSV, JSON Lines, Parquet, a folder of them, a
            `save_to_disk` dataset), a Hub dataset id, or the rows as a `datasets.Dataset`
            (see `load_description_set`).
        cache_dir: where the Arrow cache goes (default: datasets' cache). The cache is rebuilt
            when the annotation files, the builder code or the options change.
        download_mode: `"force_redownload"` rebuilds the cache.
        on_missing: what to do with examples that have no description (see `join_descriptions`).
        descriptions_revision: Hub revision of the description set.
        **builder_options: the dataset's options, e.g. `strict=True`, `verify_images=False`,
            `annotation_format="csv"` (EMOTIC), `validation_fraction=0.1`, `face_boxes_file=...`
            (CAER-S), `num_frames=8`, `box_margin=0.1` (BoLD).

    >>> from dataset_scripts import load_emotion_dataset
    >>> emotic = load_emotion_dataset("emotic", "/data/EMOTIC", descriptions="outputs/emotic-llava")  # doctest: +SKIP
    >>> emotic["train"][0]["id"]  # doctest: +SKIP
    'train/mscoco/images/COCO_train2014_000000094388.jpg#p0'
    """
    builder = get_builder(name, data_dir, cache_dir=cache_dir, **builder_options)
    builder.download_and_prepare(download_mode=download_mode)
    fresh = bool(builder._bad_sample_reports)  # built now (it has logged its counts) rather than cached
    splits = {}
    for split, info in builder.info.splits.items():
        if info.num_examples:
            splits[split] = builder.as_dataset(split=split)
        else:  # every example was bad: an empty split rather than an error far from the cause
            if not fresh:  # a fresh build has said so already, with its counts
                logger.warning("%s %s: no example left; the split is empty.", name, split)
            empty = {column: [] for column in builder.info.features}
            splits[split] = datasets.Dataset.from_dict(empty, features=builder.info.features, split=split)
    dataset = datasets.DatasetDict(splits)
    # A fresh build has logged its bad samples already; a cached one says here what it skipped then.
    cached_reports = {} if fresh else builder.bad_samples
    skipped = {split: report["skipped"] for split, report in cached_reports.items() if report.get("skipped")}
    if skipped:
        logger.warning(
            "%s: the cached build skipped bad samples (%s); get_builder(...).bad_samples lists them.",
            name,
            ", ".join(f"{split}: {n}" for split, n in skipped.items()),
        )
    if descriptions is None:
        return dataset
    if isinstance(descriptions, datasets.Dataset):
        rows = descriptions  # checked by join_descriptions
    else:
        rows, metadata = load_description_set(descriptions, revision=descriptions_revision, cache_dir=cache_dir)
        if metadata.get("dataset") and metadata["dataset"] != name:
            logger.warning("Description set %s was made for %r, not %r.", descriptions, metadata["dataset"], name)
    joined = join_descriptions(dataset, rows, on_missing=on_missing)
    warn_empty_descriptions(joined, str(descriptions) if not isinstance(descriptions, datasets.Dataset) else None)
    return joined


def warn_empty_descriptions(dataset: datasets.DatasetDict, source: str | None = None) -> list[str]:
    """Warn for each non-empty split whose descriptions are all empty (blank) strings; return those splits.

    A model trained on such a split learns from the image alone, silently: usually the
    description set failed (every row an error kept with `on_missing="keep"`, or a wrong set).
    """
    blank = []
    for split, rows in dataset.items():
        if "description" not in rows.column_names or not len(rows):
            continue
        if not any(text and text.strip() for text in rows["description"]):
            blank.append(split)
            logger.warning(
                "Split %r: all %d descriptions are empty%s; a model would learn from the image alone.",
                split,
                len(rows),
                f" (description set {source})" if source else "",
            )
    return blank
