"""One caption.py writer per output folder and process rank.

Two runs on one folder would describe everything twice and remove each other's files. Each
process of a run holds `OUT/.caption-rank<k>.lock` for as long as it runs:

- the lock itself is an OS file lock (`filelock.FileLock`, flock on Unix), which the kernel drops
  when its holder exits or is killed, so a run killed with SIGKILL never blocks the next one;
- beside it, `OUT/.caption-rank<k>.lock.json` names the holder (host, pid, start time, command)
  for the refusal message, and its modification time is refreshed after every batch.

A free lock whose holder record is still there was left by a run that was killed: it is taken
over with a warning naming that run. One exception, for shared file systems whose locks are not
seen from other hosts: a record written on another host whose last refresh is younger than
`STALE_AFTER_S` (3 hours) is refused as well; older, it is taken over.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from datetime import datetime, timezone

from filelock import FileLock, Timeout
from transformers.utils import logging

from emofusion.errors import EmofusionError


logger = logging.get_logger(__name__)

# A holder on another host that has not refreshed its record for this long is taken to be gone.
STALE_AFTER_S = 3 * 3600


class OutputLockedError(EmofusionError):
    """Another run is writing the same output folder with the same process rank."""


def lock_path(output_dir: str, rank: int) -> str:
    return os.path.join(output_dir, f".caption-rank{rank:05d}.lock")


def describe_holder(record: dict | None) -> str:
    if not record:
        return "a run that has not yet recorded itself"
    return (
        f"host {record.get('host')}, pid {record.get('pid')}, started {record.get('started')}"
        f" ({' '.join(record.get('command') or [])})"
    )


class OutputLock:
    """The lock of one process rank on an output folder; `with OutputLock(out, rank): ...`.

    >>> with OutputLock("descriptions", rank=0):
    ...     ...  # describe and write; another run on "descriptions" is refused meanwhile
    """

    def __init__(self, output_dir: str, rank: int = 0):
        self.output_dir = output_dir
        self.rank = rank
        self.path = lock_path(output_dir, rank)
        self.record_path = self.path + ".json"
        self._lock = FileLock(self.path, timeout=0)
        self.record: dict | None = None

    def read_record(self) -> dict | None:
        try:
            with open(self.record_path, encoding="utf-8") as handle:
                record = json.load(handle)
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict):
            return None
        record["refreshed"] = os.path.getmtime(self.record_path)
        return record

    def refused(self, record: dict | None) -> OutputLockedError:
        return OutputLockedError(
            f"{self.output_dir} is being written by another caption.py run (rank {self.rank}): "
            f"{describe_holder(record)}. Wait for it to finish, or use another --output_dir."
        )

    def acquire(self) -> OutputLock:
        os.makedirs(self.output_dir, exist_ok=True)
        try:
            self._lock.acquire()
        except Timeout:
            raise self.refused(self.read_record()) from None
        previous = self.read_record()
        if previous is not None:
            other_host = previous.get("host") != socket.gethostname()
            if other_host and time.time() - previous["refreshed"] < STALE_AFTER_S:
                self._lock.release()
                raise self.refused(previous)
            logger.warning(
                f"Taking over the lock of {self.output_dir} (rank {self.rank}) left by {describe_holder(previous)}, "
                "which is no longer running."
            )
        self.record = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": sys.argv,
        }
        tmp = f"{self.record_path}.{os.getpid()}.part"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(self.record, handle, indent=2)
        os.replace(tmp, self.record_path)
        return self

    def refresh(self) -> None:
        """Mark the holder alive (for holders on other hosts, see the module's note)."""
        if self.record is not None:
            os.utime(self.record_path)

    def release(self) -> None:
        if self.record is None:
            return
        try:
            os.remove(self.record_path)
        except FileNotFoundError:
            pass
        self.record = None
        self._lock.release()

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc_info) -> None:
        self.release()
