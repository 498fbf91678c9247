"""Where descriptions are kept while a run goes on, and the final description set they become.

```
OUT/
  _work/settings.json                 what the set is made with; another model or prompt is refused
  _work/<split>/<time>-rank<k>-<uid>.parquet   shards each process writes atomically every N subjects
  data/<split>-0000i-of-0000n-<digest>.parquet   the merged set (each id once), written at the end
  description_set.json, README.md     metadata and dataset card (card.py)
  .caption-rank<k>.lock(.json)        one writer per folder and rank, and who it is (lock.py)
```
A shard is written to a hidden temporary name and renamed, so a process killed at any moment
leaves only whole shards; a restart reads their ids and skips them. Where one id has rows in
several shards (an error retried with `--retry_errors`), the most recent shard wins. Shards carry
page checksums, and a run reads every one in full before it starts: a shard damaged on disk is set
aside (renamed `*.unreadable`) and its subjects described again, instead of failing every restart.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterable

import pyarrow as pa
import pyarrow.parquet as pq
from transformers.utils import logging

from dataset_scripts.descriptions import METADATA_FILE, ROW_SCHEMA, STATUSES, DescriptionSetError, read_metadata_file
from dataset_scripts.json_files import read_json_file


logger = logging.get_logger(__name__)

WORK_DIR = "_work"
DATA_DIR = "data"
SETTINGS_FILE = "settings.json"
# Settings that change what a description says: a set never mixes two of them.
CHECKED_SETTINGS = (
    "dataset",
    "model",
    "revision",
    "backend",
    "prompt_template",
    "marking",
    "generation",
    "dtype",
    "frame",
)

# The recorded settings' types, checked before a run relies on them (None: may be null).
SETTINGS_TYPES = {
    "dataset": (str,),
    "model": (str,),
    "revision": (str, type(None)),
    "backend": (str,),
    "prompt_template": (str,),
    "marking": (str,),
    "generation": (dict,),
    "dtype": (str,),
    "frame": (str, type(None)),
    "resolved_revision": (str, type(None)),  # added once the model is loaded
}

# Work shards also keep each subject's position in the split, to order the final set like the dataset.
WORK_SCHEMA = ROW_SCHEMA.append(pa.field("index", pa.int64()))
# Page checksums let a full read tell a shard damaged on disk from a good one (without them, most flipped
# bytes in a data page decode silently into other text).
WRITE_OPTIONS = {"write_page_checksum": True}


def atomic_write_text(path: str, text: str) -> None:
    tmp = os.path.join(os.path.dirname(path), f".tmp-{uuid.uuid4().hex}-{os.path.basename(path)}")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def work_dir(output_dir: str, split: str | None = None) -> str:
    return os.path.join(output_dir, WORK_DIR, split) if split else os.path.join(output_dir, WORK_DIR)


def settings_path(output_dir: str) -> str:
    return os.path.join(work_dir(output_dir), SETTINGS_FILE)


def read_settings(output_dir: str) -> dict | None:
    """The settings recorded in `output_dir` (None when there are none), every field checked for its type."""
    path = settings_path(output_dir)
    if not os.path.isfile(path):
        return None
    settings = read_json_file(path, DescriptionSetError)
    if not isinstance(settings, dict):
        raise DescriptionSetError(
            f"{path}: expected a JSON object of the run's settings ({', '.join(CHECKED_SETTINGS)}), "
            f"got {type(settings).__name__}."
        )
    for name, types in SETTINGS_TYPES.items():
        if name not in settings:
            if name in CHECKED_SETTINGS:
                raise DescriptionSetError(f"{path}: field {name!r} is missing; expected {_type_names(types)}.")
        elif not isinstance(settings[name], types) or isinstance(settings[name], bool):
            raise DescriptionSetError(
                f"{path}: field {name!r} is {settings[name]!r} ({type(settings[name]).__name__}); "
                f"expected {_type_names(types)}."
            )
    return settings


def _type_names(types: tuple) -> str:
    names = {str: "a string", dict: "an object", type(None): "null"}
    return " or ".join(names[t] for t in types)


def validate_output_dir(output_dir: str) -> None:
    """Check everything a run relies on in `output_dir` before it loads a model: description_set.json and the
    recorded settings, every field typed. Errors name the file and the field, and say how to start again."""
    try:
        if os.path.isfile(os.path.join(output_dir, METADATA_FILE)):
            read_metadata_file(os.path.join(output_dir, METADATA_FILE))
        read_settings(output_dir)
    except DescriptionSetError as error:
        raise DescriptionSetError(
            f"{error} Repair the file, or pass --overwrite_settings to delete the set in {output_dir} and start again."
        ) from error


def check_settings(output_dir: str, settings: dict, overwrite: bool = False) -> None:
    """Record `settings` for `output_dir`, or refuse when it holds a set made with other settings.

    With `overwrite=True`, a set made with other settings (or a damaged one) is deleted first.
    """
    path = settings_path(output_dir)
    try:
        recorded = read_settings(output_dir)
    except DescriptionSetError as error:
        if not overwrite:
            raise
        logger.warning(f"Deleting the descriptions in {output_dir}: {error}")
        clear_set(output_dir)
        recorded = None
    if recorded is not None:
        changed = {
            k: (recorded.get(k), settings.get(k)) for k in CHECKED_SETTINGS if recorded.get(k) != settings.get(k)
        }
        if changed and not overwrite:
            lines = "\n".join(f"  {k}: {old!r} -> {new!r}" for k, (old, new) in changed.items())
            raise ValueError(
                f"{output_dir} holds descriptions made with other settings:\n{lines}\nUse another --output_dir, or "
                "pass --overwrite_settings to delete them and start again."
            )
        if changed:
            logger.warning(f"Deleting the descriptions in {output_dir}: settings changed ({sorted(changed)}).")
            clear_set(output_dir)
    elif os.path.isfile(os.path.join(output_dir, METADATA_FILE)) and not overwrite:
        raise ValueError(
            f"{output_dir} holds a description set without its {WORK_DIR}/ folder, so a run cannot continue it. "
            "Use another --output_dir, or pass --overwrite_settings to replace it."
        )
    elif overwrite:
        clear_set(output_dir)
    os.makedirs(work_dir(output_dir), exist_ok=True)
    atomic_write_text(path, json.dumps(settings, indent=2, sort_keys=True))


def check_revision(output_dir: str, revision: str | None, overwrite: bool = False) -> None:
    """Refuse a model revision (e.g. the commit a Hub id resolved to) other than the one the set was begun with."""
    path = settings_path(output_dir)
    settings = read_settings(output_dir)
    recorded = settings.get("resolved_revision")
    if recorded is not None and revision != recorded:
        if not overwrite:
            raise ValueError(
                f"{output_dir} holds descriptions made with revision {recorded} of {settings['model']}, but it loaded "
                f"as revision {revision}. Pass --revision {recorded}, use another --output_dir, or pass "
                "--overwrite_settings to delete them and start again."
            )
        logger.warning(f"Deleting the descriptions in {output_dir}: the model revision changed.")
        clear_set(output_dir)
        os.makedirs(work_dir(output_dir), exist_ok=True)
    settings["resolved_revision"] = revision
    atomic_write_text(path, json.dumps(settings, indent=2, sort_keys=True))


def clear_set(output_dir: str) -> None:
    """Delete a description set's shards, merged data and metadata (nothing else in `output_dir`)."""
    for name in (WORK_DIR, DATA_DIR):
        shutil.rmtree(os.path.join(output_dir, name), ignore_errors=True)
    for name in (METADATA_FILE, "README.md"):
        if os.path.isfile(os.path.join(output_dir, name)):
            os.remove(os.path.join(output_dir, name))


def work_shards(output_dir: str, split: str) -> list[str]:
    """Finished work shards of a split, oldest first (names start with the write time)."""
    return sorted(glob.glob(os.path.join(work_dir(output_dir, split), "[!.]*.parquet")))


def read_shard(path: str, columns: list[str] | None = None) -> pa.Table:
    """A work shard read in full, its page checksums verified."""
    return pq.read_table(path, columns=columns, page_checksum_verification=True)


def shard_problem(path: str) -> str | None:
    """Why the work shard at `path` cannot be used (unreadable, another schema, bad values), or None."""
    try:
        table = read_shard(path)
    except (OSError, pa.ArrowException) as error:
        return f"{type(error).__name__}: {error}"
    if not table.schema.equals(WORK_SCHEMA):
        return f"its columns are {table.schema.names} ({table.schema.types}); expected {WORK_SCHEMA.names}"
    if table.column("id").null_count:
        return "it has rows without an id"
    statuses = set(table.column("status").to_pylist()) - set(STATUSES)
    if statuses:
        return f"column 'status' holds {sorted(statuses, key=str)}; expected one of {STATUSES}"
    return None


def set_aside_unreadable(output_dir: str, split: str) -> list[str]:
    """Read every work shard of `split` in full; rename those that cannot be used (damaged on disk: writes are
    atomic) to `*.unreadable`, so that their subjects are described again. Returns the shards set aside."""
    bad = []
    for path in work_shards(output_dir, split):
        problem = shard_problem(path)
        if problem is not None:
            logger.warning(
                f"Setting aside the damaged shard {path} as {os.path.basename(path)}.unreadable ({problem}); "
                "its subjects will be described again."
            )
            os.replace(path, path + ".unreadable")
            bad.append(path)
    return bad


def remove_own_partial_files(output_dir: str, rank: int) -> None:
    """Delete the temporary files rank `rank` left when it was killed in the middle of a write: its own shards'
    in every split, and, for rank 0 (the only writer of the metadata, card and merged set), theirs.

    Only call with this rank's lock held (`OutputLock`): no other process then writes these files.
    """
    patterns = [os.path.join(work_dir(output_dir), "*", f".tmp-*-rank{rank:05d}-*")]
    if rank == 0:
        patterns += [os.path.join(output_dir, ".tmp-*"), os.path.join(work_dir(output_dir), ".tmp-*")]
        patterns += [os.path.join(output_dir, DATA_DIR, ".tmp-*")]
    for pattern in patterns:
        for path in glob.glob(pattern):
            os.remove(path)


def read_done(output_dir: str, split: str) -> dict[str, str]:
    """id -> status of every subject of `split` already described (the most recent row of an id wins)."""
    done = {}
    for path in work_shards(output_dir, split):
        table = read_shard(path, columns=["id", "status"])
        done.update(zip(table.column("id").to_pylist(), table.column("status").to_pylist()))
    return done


class ShardWriter:
    """Buffers one process's rows and writes them as a new atomic work shard every `save_every` rows.

    >>> writer = ShardWriter("descriptions", "train", rank=0, save_every=64)
    >>> writer.add({"id": "train/0", "description": "...", "status": "ok", ...}); writer.flush()
    """

    def __init__(self, output_dir: str, split: str, rank: int = 0, save_every: int = 64):
        self.directory = work_dir(output_dir, split)
        os.makedirs(self.directory, exist_ok=True)
        self.rank = rank
        self.save_every = save_every
        self.rows: list[dict] = []
        self.written: list[str] = []

    def add(self, rows: Iterable[dict]) -> None:
        self.rows.extend(rows)
        if len(self.rows) >= self.save_every:
            self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        table = pa.Table.from_pylist(self.rows, schema=WORK_SCHEMA)
        name = f"{time.time_ns():020d}-rank{self.rank:05d}-{uuid.uuid4().hex[:8]}.parquet"
        path = os.path.join(self.directory, name)
        tmp = os.path.join(self.directory, f".tmp-{uuid.uuid4().hex[:8]}-rank{self.rank:05d}-{name}")
        pq.write_table(table, tmp, **WRITE_OPTIONS)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        self.written.append(path)
        self.rows = []


def merge_split(output_dir: str, split: str, rows_per_shard: int = 10_000) -> dict[str, int]:
    """Write `data/<split>-*.parquet`: every described id once, in dataset order. Returns status counts.

    File names end with a digest of their content: `datasets` caches a local folder by its file
    names, so a set that changed must change names to be read afresh.
    """
    latest: dict[str, dict] = {}
    for path in work_shards(output_dir, split):
        for row in read_shard(path).to_pylist():
            latest[row["id"]] = row
    rows = sorted(latest.values(), key=lambda row: (row["index"], row["id"]))
    data_dir = os.path.join(output_dir, DATA_DIR)
    os.makedirs(data_dir, exist_ok=True)
    num_files = max(1, -(-len(rows) // rows_per_shard))
    written = set()
    for i in range(num_files):
        chunk = rows[i * rows_per_shard : (i + 1) * rows_per_shard]
        table = pa.Table.from_pylist(chunk, schema=WORK_SCHEMA).drop_columns(["index"])
        tmp = os.path.join(data_dir, f".tmp-{uuid.uuid4().hex}.parquet")
        pq.write_table(table, tmp, **WRITE_OPTIONS)
        with open(tmp, "rb") as handle:
            digest = hashlib.sha256(handle.read()).hexdigest()[:12]
            os.fsync(handle.fileno())
        path = os.path.join(data_dir, f"{split}-{i:05d}-of-{num_files:05d}-{digest}.parquet")
        os.replace(tmp, path)
        written.add(path)
    for path in glob.glob(os.path.join(data_dir, f"{split}-*.parquet")):
        if path not in written:
            os.remove(path)
    counts = {"ok": 0, "error": 0, "flagged": 0}
    for row in rows:
        counts[row["status"]] += 1
    return counts
