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

Descriptions from anywhere else are any table with an `id` column (the dataset's example ids) and a
`description` column (text), optionally `status` ("ok", "error" or "flagged"; "ok" when absent or
empty): a CSV / TSV, JSON Lines or Parquet file, a folder of such files, a `save_to_disk` dataset
(`Dataset` or `DatasetDict`), or a Hub dataset id, read with `datasets`' own readers. Other columns
are kept and play no part in the join. Such a table carries no provenance (which VLLM, prompt,
marking), so its metadata is `{}`:

    id,description
    train/mscoco/images/COCO_train2014_000000094388.jpg#p0,"The man in the red box smiles at the child ..."
    test/emodb_small/images/0a1b2c3d.jpg#p1,"She sits alone at the station, head lowered ..."

>>> from dataset_scripts import load_description_set, join_descriptions, load_emotion_dataset
>>> rows, meta = load_description_set("outputs/emotic-llava")  # doctest: +SKIP
>>> emotic = join_descriptions(load_emotion_dataset("emotic", "/data/EMOTIC"), rows)  # doctest: +SKIP
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from datasets.data_files import EmptyDatasetError
from datasets.exceptions import DatasetGenerationError
from datasets.utils import logging

from .json_files import read_json_file


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
# What a table of descriptions from elsewhere must hold; `status` defaults to DEFAULT_STATUS.
TABLE_COLUMNS = ("id", "description")
DEFAULT_STATUS = "ok"
# File suffix -> the `datasets` packaged reader and its options.
TABLE_READERS = {
    ".csv": ("csv", {}),
    ".tsv": ("csv", {"delimiter": "\t"}),
    ".json": ("json", {}),
    ".jsonl": ("json", {}),
    ".parquet": ("parquet", {}),
}
TABLE_HELP = (
    "a table with columns 'id' (the dataset's example ids) and 'description' (text), optionally 'status' "
    f"({', '.join(STATUSES)}; default {DEFAULT_STATUS!r})"
)


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
    return validate_metadata(read_json_file(path, DescriptionSetError), path)


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


def _is_text(type_: pa.DataType) -> bool:
    return pa.types.is_string(type_) or pa.types.is_large_string(type_)


def _text_column(table: pa.Table, name: str, source: str) -> pa.ChunkedArray:
    """Column `name` as strings; a column of nulls only (an empty CSV column) is read as missing text."""
    column = table.column(name)
    if column.null_count == len(column) and not _is_text(column.type):
        return pa.chunked_array([pa.nulls(len(column), pa.string())])
    if not _is_text(column.type):
        first = next((v for v in column.to_pylist() if v is not None), None)
        raise DescriptionSetError(
            f"{source}: column {name!r} holds {column.type} values (e.g. {first!r}); expected strings"
            + (
                ", the dataset's example ids (e.g. 'train/mscoco/images/COCO_train2014_000000094388.jpg#p0')."
                if name == "id"
                else "."
            )
        )
    return column.cast(pa.string())


def normalize_rows(rows: datasets.Dataset | pa.Table, source: str | os.PathLike) -> datasets.Dataset:
    """Check a table of descriptions and give it the columns the join reads: `id`, `description`, `status`.

    `rows` needs `id` and `description` (strings); `status`, when present, holds "ok", "error" or
    "flagged", and an empty status means "ok". Without a `status` column a row whose description is
    empty is an "error" (no description), every other row "ok". Null descriptions become "". Other
    columns are kept. Errors name `source`, the column and what was expected.
    """
    source = str(source)
    table = rows if isinstance(rows, pa.Table) else rows.with_format("arrow")[:]
    missing = [c for c in TABLE_COLUMNS if c not in table.column_names]
    if missing:
        raise DescriptionSetError(
            f"{source}: missing column(s) {missing}; expected {TABLE_HELP}. It has {table.column_names}."
        )
    ids = _text_column(table, "id", source)
    if ids.null_count:
        raise DescriptionSetError(f"{source}: column 'id' is empty in {ids.null_count} row(s); every row needs an id.")
    descriptions = _text_column(table, "description", source)
    blank = pc.fill_null(pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(descriptions)), 0), True)
    descriptions = pc.fill_null(descriptions, "")
    if "status" in table.column_names:
        status = _text_column(table, "status", source)
        bad = sorted(set(pc.unique(status).to_pylist()) - set(STATUSES) - {None})
        if bad:
            raise DescriptionSetError(
                f"{source}: column 'status' holds {bad}; expected one of {STATUSES} (empty means {DEFAULT_STATUS!r})."
            )
        status = pc.fill_null(status, DEFAULT_STATUS)
    else:
        status = pc.if_else(blank, pa.scalar("error"), pa.scalar(DEFAULT_STATUS))
    counts = pc.value_counts(ids)
    repeated = pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1)).to_pylist()
    if repeated:
        raise DescriptionSetError(
            f"{source}: {len(repeated)} id(s) appear more than once (e.g. {repeated[:3]}); each id must appear "
            "exactly once."
        )
    # The readers' schema metadata describes the columns as read; the types change here.
    table = table.replace_schema_metadata(None)
    for name, column in (("id", ids), ("description", descriptions), ("status", status)):
        if name in table.column_names:
            table = table.set_column(table.column_names.index(name), name, column)
        else:
            table = table.append_column(name, column)
    return datasets.Dataset(datasets.table.InMemoryTable(table))


def _as_one_table(loaded: datasets.Dataset | datasets.DatasetDict, source: str) -> pa.Table:
    """All the rows of a Dataset or of every split of a DatasetDict (ids are unique over all of them)."""
    parts = [loaded] if isinstance(loaded, datasets.Dataset) else list(loaded.values())
    try:
        tables = [part.with_format("arrow")[:].replace_schema_metadata(None) for part in parts]
        return pa.concat_tables(tables, promote_options="permissive")
    except pa.ArrowException as err:
        raise DescriptionSetError(f"{source}: its splits have columns of different types ({err}).") from err


def _read_table_file(path: Path, cache_dir: str | None) -> datasets.Dataset:
    """One CSV / TSV / JSON Lines / Parquet file, read by `datasets`' packaged reader of its suffix."""
    suffix = path.suffix.lower()
    if suffix not in TABLE_READERS:
        raise DescriptionSetError(
            f"{path}: expected a description table ({', '.join(TABLE_READERS)}), a description-set folder or a "
            f"Hub dataset id; {suffix or 'a file without suffix'} is none of them."
        )
    reader, options = TABLE_READERS[suffix]
    try:
        loaded = datasets.load_dataset(reader, data_files=str(path), split="train", cache_dir=cache_dir, **options)
    except (DatasetGenerationError, pa.ArrowException, ValueError, OSError) as err:
        cause = err.__cause__ or err
        raise DescriptionSetError(f"{path}: cannot be read as {reader} ({type(cause).__name__}: {cause}).") from err
    return normalize_rows(loaded, path)


def _is_saved_dataset(path: Path) -> bool:
    return (path / "dataset_dict.json").is_file() or (
        (path / "dataset_info.json").is_file() and (path / "state.json").is_file()
    )


def _read_with_load_dataset(name: str, revision: str | None, cache_dir: str | None) -> datasets.Dataset:
    """A folder of tables or a Hub dataset repo, read by `datasets.load_dataset(name)` (every split)."""
    try:
        loaded = datasets.load_dataset(name, revision=revision, cache_dir=cache_dir)
    except EmptyDatasetError as err:
        raise DescriptionSetError(
            f"{name}: no description table in it; expected a description set written by caption.py "
            f"({METADATA_FILE} + data/*.parquet), a save_to_disk dataset, or files {', '.join(TABLE_READERS)} "
            f"holding {TABLE_HELP}."
        ) from err
    except (DatasetGenerationError, pa.ArrowException) as err:
        cause = err.__cause__ or err
        raise DescriptionSetError(f"{name}: cannot be read ({type(cause).__name__}: {cause}).") from err
    return normalize_rows(_as_one_table(loaded, name), name)


def _hub_description_set(repo_id: str, revision: str | None) -> Path | None:
    """The local copy of Hub repo `repo_id` when it is a description set written by caption.py, else None."""
    from huggingface_hub import hf_hub_download, snapshot_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        hf_hub_download(repo_id, METADATA_FILE, repo_type="dataset", revision=revision)
    except EntryNotFoundError:  # no description_set.json (or offline and not cached): a plain table
        return None
    return Path(
        snapshot_download(
            repo_id,
            repo_type="dataset",
            revision=revision,
            allow_patterns=[METADATA_FILE, "README.md", "data/*.parquet"],
        )
    )


def _read_description_set_folder(path: Path) -> tuple[datasets.Dataset, dict]:
    metadata = read_metadata_file(path / METADATA_FILE)
    # Not hidden files: a writer's unfinished temporary shard must never be read as data.
    files = sorted(f for f in (path / "data").glob("*.parquet") if not f.name.startswith("."))
    if not files:
        raise DescriptionSetError(f"{path}: no shards; expected {path}/data/<split>-*.parquet.")
    return _read_rows(files), metadata


def load_description_set(
    path_or_repo_id: str | os.PathLike | datasets.Dataset | datasets.DatasetDict,
    revision: str | None = None,
    *,
    cache_dir: str | None = None,
) -> tuple[datasets.Dataset, dict]:
    """Load descriptions: a description set written by caption.py, or any table of `id`, `description`.

    Accepted: a description-set folder (`description_set.json` + `data/*.parquet`) or one of its
    Parquet shards; a CSV / TSV / JSON Lines / Parquet file; a folder of such files or a
    `save_to_disk` dataset (`Dataset` or `DatasetDict`, every split is read); a Hub dataset id
    (`user/name` at `revision`; a private repo is fine); or the rows themselves as a `datasets.Dataset`.

    Returns `(rows, metadata)`: a `datasets.Dataset` with at least `id`, `description`, `status`
    (see `normalize_rows`), and the `description_set.json` dict (model, revision, prompt_template,
    marking, generation...), `{}` for a table that has none: its provenance is unknown. A lone
    Parquet shard takes its metadata from a `description_set.json` in its folder or the one above.
    `cache_dir` is where `datasets` keeps the Arrow copy of a table it reads.

    >>> rows, meta = load_description_set("outputs/emotic-llava")  # doctest: +SKIP
    >>> meta["model"], rows[0]["id"]  # doctest: +SKIP
    ('llava-hf/llava-1.5-13b-hf', 'train/mscoco/images/COCO_train2014_000000094388.jpg#p0')
    >>> rows, meta = load_description_set("my_descriptions.csv")  # doctest: +SKIP
    >>> meta  # doctest: +SKIP
    {}
    """
    if isinstance(path_or_repo_id, (datasets.Dataset, datasets.DatasetDict)):
        return normalize_rows(_as_one_table(path_or_repo_id, "the given rows"), "the given rows"), {}
    path = Path(path_or_repo_id).expanduser()
    if path.is_file():
        if path.suffix == ".parquet":
            for folder in (path.parent, path.parent.parent):
                if (folder / METADATA_FILE).is_file():
                    return _read_rows([path]), read_metadata_file(folder / METADATA_FILE)
        logger.info("%s: a table without %s; the descriptions' provenance is unknown.", path, METADATA_FILE)
        return _read_table_file(path, cache_dir), {}
    if path.is_dir():
        if (path / METADATA_FILE).is_file():
            return _read_description_set_folder(path)
        if _is_saved_dataset(path):
            return normalize_rows(_as_one_table(datasets.load_from_disk(str(path)), str(path)), path), {}
        logger.info("%s: a folder without %s; the descriptions' provenance is unknown.", path, METADATA_FILE)
        return _read_with_load_dataset(str(path), None, cache_dir), {}
    if not _REPO_ID.match(str(path_or_repo_id)):
        raise FileNotFoundError(f"Description set {path_or_repo_id!r}: no such folder or file, nor a Hub repo id.")
    try:
        local = _hub_description_set(str(path_or_repo_id), revision)
        if local is not None:
            return _read_description_set_folder(local)
        return _read_with_load_dataset(str(path_or_repo_id), revision, cache_dir), {}
    except ConnectionError as error:
        # `outputs/emotic-llava` is both a relative path and a well-formed repo id: say both were tried.
        raise DescriptionSetError(
            f"Description set {str(path_or_repo_id)!r}: no such file or folder under {os.getcwd()}, and as a Hub "
            f"dataset id it cannot be fetched ({error}). Give the folder caption.py wrote (or a table of id, "
            "description); a Hub set works offline once it is in the HF_HOME cache, with HF_HUB_OFFLINE=1."
        ) from error


def join_descriptions(
    dataset_dict: datasets.DatasetDict | datasets.Dataset,
    rows: datasets.Dataset,
    on_missing: str = "warn",
    *,
    use_flagged: bool = True,
) -> datasets.DatasetDict | datasets.Dataset:
    """Add a `description` column to every split, looked up by `id`.

    `rows` is any table of `id`, `description` and optionally `status` (`normalize_rows`). Rows with
    status "ok" are descriptions; "flagged" ones too unless `use_flagged=False`; "error" rows never are.
    Examples without a description are handled by `on_missing`:

    - `"warn"`: dropped, and their count and first ids are logged per split;
    - `"error"`: a ValueError that names the count and the first ids;
    - `"keep"`: kept with description `""`.

    >>> joined = join_descriptions(emotic, rows, on_missing="error")  # doctest: +SKIP
    """
    if on_missing not in ON_MISSING:
        raise ValueError(f"on_missing must be one of {ON_MISSING}, got {on_missing!r}.")
    rows = normalize_rows(rows, "the description rows")  # any table of id, description (+ status)
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
