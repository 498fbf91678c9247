"""Read description sets (stage 1's output) and join them to a dataset by example id.

A description set, as caption.py writes it:

    OUT/
      README.md              dataset card whose YAML `configs:` lets datasets.load_dataset(OUT) read it
      description_set.json   {"format": "emofusion-descriptions", "version": 1, "model", "revision",
                              "backend", "prompt_template", "marking", "generation", "dataset", "splits"}
      data/<split>-*.parquet id, description ("" on error), status ("ok"|"error"|"flagged"), reason,
                             split, prompt, num_tokens

Each id appears exactly once over all shards; rows with status "error" are not descriptions. The
join is by id only, never by row order, so a description can never land on the wrong person.

>>> from dataset_scripts import load_description_set, join_descriptions, load_emotion_dataset
>>> rows, meta = load_description_set("outputs/emotic-llava")  # doctest: +SKIP
>>> emotic = join_descriptions(load_emotion_dataset("emotic", "/data/EMOTIC"), rows)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
from datasets.utils import logging


logger = logging.get_logger(__name__)

DESCRIPTION_SET_FORMAT = "emofusion-descriptions"
DESCRIPTION_SET_VERSION = 1
METADATA_FILE = "description_set.json"
REQUIRED_COLUMNS = ("id", "description", "status")
STATUSES = ("ok", "error", "flagged")
# The columns of a description shard, as caption.py writes them.
ROW_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("description", pa.string()),
        ("status", pa.string()),
        ("reason", pa.string()),
        ("split", pa.string()),
        ("prompt", pa.string()),
        ("num_tokens", pa.int64()),
    ]
)
ON_MISSING = ("warn", "error", "keep")
_REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


class DescriptionSetError(ValueError):
    """A description set that does not follow the format above."""


# Every field of description_set.json, with the types a reader may rely on (None: the field may be null).
METADATA_FIELDS = {
    "format": (str,),
    "version": (int,),
    "model": (str, None),  # None: written by no model (emofusion.synthetic)
    "revision": (str, None),
    "backend": (str,),
    "prompt_template": (str,),
    "marking": (str,),
    "generation": (dict,),
    "dataset": (str, None),
    "splits": (dict,),
}
OPTIONAL_METADATA_FIELDS = {"frame": (str,)}  # clips: which sampled frame was described


def _type_names(types: tuple) -> str:
    names = {str: "a string", int: "an integer", dict: "an object", None: "null"}
    return " or ".join(names[t] for t in types)


def _has_type(value, types: tuple) -> bool:
    if value is None:
        return None in types
    if isinstance(value, bool):  # JSON true/false is never a count or a version
        return False
    return any(t is not None and isinstance(value, t) for t in types)


def validate_metadata(metadata, path: str | os.PathLike) -> dict:
    """Check a parsed description_set.json: every field present with its type, format and version known, and
    `splits` mapping each split name to its {"ok", "flagged", "error"} counts. Errors name `path` and the field."""
    if not isinstance(metadata, dict):
        raise DescriptionSetError(
            f"{path}: expected a JSON object with fields {list(METADATA_FIELDS)}, got {type(metadata).__name__}."
        )
    for name, types in {**METADATA_FIELDS, **OPTIONAL_METADATA_FIELDS}.items():
        if name not in metadata:
            if name in METADATA_FIELDS:
                raise DescriptionSetError(f"{path}: field {name!r} is missing; expected {_type_names(types)}.")
            continue
        if not _has_type(metadata[name], types):
            raise DescriptionSetError(
                f"{path}: field {name!r} is {metadata[name]!r} ({type(metadata[name]).__name__}); "
                f"expected {_type_names(types)}."
            )
    if metadata["format"] != DESCRIPTION_SET_FORMAT:
        raise DescriptionSetError(
            f"{path}: field 'format' is {metadata['format']!r}; expected {DESCRIPTION_SET_FORMAT!r}."
        )
    if metadata["version"] != DESCRIPTION_SET_VERSION:
        raise DescriptionSetError(
            f"{path}: field 'version' is {metadata['version']!r}; this reader knows version {DESCRIPTION_SET_VERSION}."
        )
    for split, counts in metadata["splits"].items():
        if not isinstance(counts, dict) or sorted(counts) != sorted(STATUSES):
            raise DescriptionSetError(
                f"{path}: field 'splits.{split}' is {counts!r}; expected an object of counts "
                f"{{{', '.join(STATUSES)}}}."
            )
        for status, count in counts.items():
            if not _has_type(count, (int,)) or count < 0:
                raise DescriptionSetError(
                    f"{path}: field 'splits.{split}.{status}' is {count!r}; expected a count (an integer >= 0)."
                )
    return metadata


def read_metadata_file(path: str | os.PathLike) -> dict:
    """Read and validate a description_set.json (`validate_metadata`); errors name the file and the field."""
    path = Path(path)
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DescriptionSetError(f"{path}: cannot be read as JSON ({err}).") from err
    return validate_metadata(metadata, path)


def _read_rows(files: list[Path]) -> datasets.Dataset:
    tables = []
    for file in files:
        try:
            table = pq.read_table(file)
        except (OSError, pa.ArrowException) as err:
            raise DescriptionSetError(f"{file}: cannot be read as Parquet ({err}).") from err
        missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
        if missing:
            raise DescriptionSetError(
                f"{file}: missing column(s) {missing}; a description shard holds {list(REQUIRED_COLUMNS)} "
                "(plus reason, split, prompt, num_tokens)."
            )
        not_text = [
            f"{c} ({table.schema.field(c).type})"
            for c in REQUIRED_COLUMNS
            if not (
                pa.types.is_string(table.schema.field(c).type) or pa.types.is_large_string(table.schema.field(c).type)
            )
        ]
        if not_text:
            raise DescriptionSetError(f"{file}: column(s) {not_text} must hold strings.")
        tables.append(table)
    table = pa.concat_tables(tables, promote_options="permissive")
    rows = datasets.Dataset(datasets.table.InMemoryTable(table))
    bad_status = sorted(set(rows["status"]) - set(STATUSES))
    if bad_status:
        raise DescriptionSetError(
            f"{files[0].parent}: column 'status' holds {bad_status}; expected one of {STATUSES}."
        )
    counts = Counter(rows["id"])
    duplicates = [i for i, n in counts.items() if n > 1]
    if duplicates:
        raise DescriptionSetError(
            f"{files[0].parent}: {len(duplicates)} id(s) appear more than once over the shards "
            f"(e.g. {duplicates[:3]}); each id must appear exactly once."
        )
    return rows


def load_description_set(
    path_or_repo_id: str | os.PathLike, revision: str | None = None
) -> tuple[datasets.Dataset, dict]:
    """Load a description set: a folder written by caption.py, one of its Parquet shards, or a Hub repo id.

    Returns `(rows, metadata)`: a `datasets.Dataset` with at least `id`, `description`, `status`,
    and the `description_set.json` dict (model, revision, prompt_template, marking, generation...).
    A lone Parquet file takes its metadata from a `description_set.json` in its folder or the one
    above, else returns `{}` with a warning. A Hub id (`user/name`, a private dataset repo is fine)
    is fetched with huggingface_hub at `revision`.

    >>> rows, meta = load_description_set("outputs/emotic-llava")  # doctest: +SKIP
    >>> meta["model"], rows[0]["id"]  # doctest: +SKIP
    ('llava-hf/llava-1.5-13b-hf', 'train/mscoco/images/COCO_train2014_000000094388.jpg#p0')
    """
    path = Path(path_or_repo_id).expanduser()
    if path.is_file():
        if path.suffix != ".parquet":
            raise DescriptionSetError(f"{path}: expected a description-set folder or a .parquet shard.")
        for folder in (path.parent, path.parent.parent):
            if (folder / METADATA_FILE).is_file():
                return _read_rows([path]), read_metadata_file(folder / METADATA_FILE)
        logger.warning("%s: no %s beside it; returning the rows without metadata.", path, METADATA_FILE)
        return _read_rows([path]), {}
    if not path.is_dir():
        if not _REPO_ID.match(str(path_or_repo_id)):
            raise FileNotFoundError(f"Description set {path_or_repo_id!r}: no such folder or file, nor a Hub repo id.")
        from huggingface_hub import snapshot_download

        path = Path(
            snapshot_download(
                str(path_or_repo_id),
                repo_type="dataset",
                revision=revision,
                allow_patterns=[METADATA_FILE, "README.md", "data/*.parquet"],
            )
        )
    if not (path / METADATA_FILE).is_file():
        raise DescriptionSetError(f"{path}: not a description set; expected {path / METADATA_FILE}.")
    metadata = read_metadata_file(path / METADATA_FILE)
    # Not hidden files: a writer's unfinished temporary shard must never be read as data.
    files = sorted(f for f in (path / "data").glob("*.parquet") if not f.name.startswith("."))
    if not files:
        raise DescriptionSetError(f"{path}: no shards; expected {path}/data/<split>-*.parquet.")
    return _read_rows(files), metadata


def join_descriptions(
    dataset_dict: datasets.DatasetDict | datasets.Dataset,
    rows: datasets.Dataset,
    on_missing: str = "warn",
    *,
    use_flagged: bool = True,
) -> datasets.DatasetDict | datasets.Dataset:
    """Add a `description` column to every split, looked up by `id`.

    Rows with status "ok" are descriptions; "flagged" ones too unless `use_flagged=False`; "error"
    rows never are. Examples without a description are handled by `on_missing`:

    - `"warn"`: dropped, and their count and first ids are logged per split;
    - `"error"`: a ValueError that names the count and the first ids;
    - `"keep"`: kept with description `""`.

    >>> joined = join_descriptions(emotic, rows, on_missing="error")  # doctest: +SKIP
    """
    if on_missing not in ON_MISSING:
        raise ValueError(f"on_missing must be one of {ON_MISSING}, got {on_missing!r}.")
    missing_columns = [c for c in REQUIRED_COLUMNS if c not in rows.column_names]
    if missing_columns:
        raise DescriptionSetError(f"Description rows lack column(s) {missing_columns}.")
    accepted = ("ok", "flagged") if use_flagged else ("ok",)
    lookup: dict[str, str] = {}
    refused: Counter = Counter()
    for example_id, description, status in zip(rows["id"], rows["description"], rows["status"]):
        if status in accepted:
            lookup[example_id] = description
        else:
            refused[status] += 1
    if refused:
        logger.info("Description rows not used as descriptions: %s.", dict(refused))

    single = isinstance(dataset_dict, datasets.Dataset)
    splits = {"data": dataset_dict} if single else dict(dataset_dict)
    joined, seen = {}, set()
    for split, dataset in splits.items():
        if "description" in dataset.column_names:
            raise ValueError(f"Split {split!r} already has a 'description' column; remove it before joining.")
        ids = list(dataset["id"])
        seen.update(ids)
        missing = [i for i, example_id in enumerate(ids) if example_id not in lookup]
        if missing:
            sample = [ids[i] for i in missing[:5]]
            message = f"{split}: {len(missing)} of {len(ids)} examples have no description (e.g. {sample})"
            if on_missing == "error":
                raise ValueError(message + "; on_missing='error'.")
            if on_missing == "warn":
                logger.warning("%s; dropping them (on_missing='warn').", message)
                missing_set = set(missing)
                keep = [i for i in range(len(ids)) if i not in missing_set]
                dataset = dataset.select(keep)
                ids = [ids[i] for i in keep]
            else:
                logger.warning("%s; keeping them with an empty description (on_missing='keep').", message)
        column = [lookup.get(example_id, "") for example_id in ids]
        joined[split] = dataset.add_column("description", column, feature=datasets.Value("string"))
    unused = len(set(lookup) - seen)
    if unused:
        logger.info("%d descriptions have ids that are not in the dataset (other splits or datasets).", unused)
    return joined["data"] if single else datasets.DatasetDict(joined)
