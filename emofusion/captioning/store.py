"""Where descriptions are kept while a run goes on, and the final description set they become.

```
OUT/
  _work/settings.json                 what the set is made with; another model or prompt is refused
  _work/<split>/<time>-rank<k>-<uid>.parquet   shards each process writes atomically every N subjects
  data/<split>-0000i-of-0000n-<digest>.parquet   the merged set (each id once), written at the end
  description_set.json, README.md     metadata and dataset card (card.py)
```
A shard is written to a hidden temporary name and renamed, so a process killed at any moment
leaves only whole shards; a restart reads their ids and skips them. Where one id has rows in
several shards (an error retried with `--retry_errors`), the most recent shard wins.
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

from dataset_scripts.descriptions import ROW_SCHEMA


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

# Work shards also keep each subject's position in the split, to order the final set like the dataset.
WORK_SCHEMA = ROW_SCHEMA.append(pa.field("index", pa.int64()))


def atomic_write_text(path: str, text: str) -> None:
    tmp = os.path.join(os.path.dirname(path), f".tmp-{uuid.uuid4().hex}-{os.path.basename(path)}")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def work_dir(output_dir: str, split: str | None = None) -> str:
    return os.path.join(output_dir, WORK_DIR, split) if split else os.path.join(output_dir, WORK_DIR)


def check_settings(output_dir: str, settings: dict, overwrite: bool = False) -> None:
    """Record `settings` for `output_dir`, or refuse when it holds a set made with other settings.

    With `overwrite=True`, a set made with other settings is deleted first.
    """
    path = os.path.join(work_dir(output_dir), SETTINGS_FILE)
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as handle:
            recorded = json.load(handle)
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
    elif os.path.isfile(os.path.join(output_dir, "description_set.json")) and not overwrite:
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
    path = os.path.join(work_dir(output_dir), SETTINGS_FILE)
    with open(path, encoding="utf-8") as handle:
        settings = json.load(handle)
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
    for name in ("description_set.json", "README.md"):
        if os.path.isfile(os.path.join(output_dir, name)):
            os.remove(os.path.join(output_dir, name))


def work_shards(output_dir: str, split: str) -> list[str]:
    """Finished work shards of a split, oldest first (names start with the write time)."""
    return sorted(glob.glob(os.path.join(work_dir(output_dir, split), "[!.]*.parquet")))


def set_aside_unreadable(output_dir: str, split: str) -> list[str]:
    """Rename shards that cannot be read (a damaged disk; writes are atomic) so that their ids are described again."""
    bad = []
    for path in work_shards(output_dir, split):
        try:
            pq.read_metadata(path)
        except (OSError, pa.ArrowException) as error:
            logger.warning(f"Setting aside unreadable shard {path} ({error}); its subjects will be described again.")
            os.replace(path, path + ".unreadable")
            bad.append(path)
    return bad


def remove_own_partial_files(output_dir: str, split: str, rank: int) -> None:
    """Delete temporary files this rank left when it was killed in the middle of a write."""
    for path in glob.glob(os.path.join(work_dir(output_dir, split), f".tmp-*-rank{rank:05d}-*")):
        os.remove(path)


def read_done(output_dir: str, split: str) -> dict[str, str]:
    """id -> status of every subject of `split` already described (the most recent row of an id wins)."""
    done = {}
    for path in work_shards(output_dir, split):
        table = pq.read_table(path, columns=["id", "status"])
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
        pq.write_table(table, tmp)
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
        for row in pq.read_table(path).to_pylist():
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
        pq.write_table(table, tmp)
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


def remove_stale_partial_files(output_dir: str) -> None:
    """Delete every temporary file under `output_dir` (call only when no process is writing)."""
    for path in glob.glob(os.path.join(output_dir, "**", ".tmp-*"), recursive=True):
        os.remove(path)
