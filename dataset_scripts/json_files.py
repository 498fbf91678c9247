"""Reading the small JSON files the project writes beside its data (conversion.json, description_set.json,
a run's settings, the synthetic-data marker): one way, so that an unreadable one is always an error of the
caller's kind that names the file. Standard library only (the light packages import it)."""

from __future__ import annotations

import json
import os


def read_json_file(path: str | os.PathLike, error: type[Exception], writer: str | None = None):
    """The parsed content of `path`; unreadable or invalid JSON raises `error` naming the file (and who writes it)."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        hint = f"; {writer} writes it" if writer else ""
        raise error(f"{os.fspath(path)}: cannot be read as JSON ({err}){hint}.") from err
