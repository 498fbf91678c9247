"""How every emofusion command ends on an expected failure: one line on stderr and an exit code.

A user who points `--model` at a missing folder, gives a YAML file with a typo, or runs
`--device cuda` on a CPU-only torch needs one line that says what is wrong and what to do, not a
90-line traceback. `run_main` turns the failures a user can cause into `prog: error: message`
with exit code 2 (usage: the command line or a config file) or 1 (runtime: data, files, network,
devices); anything else is a bug and keeps its traceback. `--debug` (or a DEBUG logging level)
shows the traceback of expected failures too.

This module imports nothing heavy: the CLI's `--help` must stay instant.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Sequence


# The project's own packages: a ValueError raised from their code is a deliberate, worded check.
PROJECT_PACKAGES = ("emofusion", "modeling_emofusion", "dataset_scripts")
_PROJECT_DIRS = tuple(
    os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), name) + os.sep
    for name in PROJECT_PACKAGES
)

# Libraries whose exceptions are about the user's input or environment, never our bugs.
_EXPECTED_MODULE_PREFIXES = ("huggingface_hub.errors", "yaml", "httpx", "requests.exceptions", "urllib3.exceptions")
# Named by class so that nothing heavy is imported to recognise them.
_EXPECTED_CLASS_NAMES = {
    "DecompressionBombError",  # PIL: a picture over the decompression-bomb limit
    "UnidentifiedImageError",  # PIL: not a picture
    "DatasetGenerationError",  # datasets: a builder failed (its message names the cause)
    "DatasetNotFoundError",
    "EntryNotFoundError",
    "OfflineModeIsEnabled",
    "HubAccessError",  # modeling_emofusion.hub_access: a checkpoint that cannot be fetched, named
}


class EmofusionError(Exception):
    """A failure the user can fix (data, files, settings, devices): reported in one line, exit code 1."""

    exit_code = 1


class UsageError(EmofusionError):
    """A wrong command line or config file: reported in one line, exit code 2."""

    exit_code = 2


def check_output_folder(path: str | os.PathLike, flag: str = "--output_dir") -> str:
    """`path` as given, refused before any work when it cannot be a folder (it, or a parent, is a file)."""
    path = os.fspath(path)
    folder = os.path.abspath(path)
    while not os.path.exists(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder):
        where = "is a file" if folder == os.path.abspath(path) else f"is inside {folder}, which is a file"
        raise UsageError(f"{flag} {path}: {where}; expected a folder (created when missing).")
    return path


def _raised_in_project(error: BaseException) -> bool:
    """Whether the innermost frame of the traceback is in the project's own code (a deliberate raise)."""
    tb = error.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return os.path.abspath(tb.tb_frame.f_code.co_filename).startswith(_PROJECT_DIRS)


def is_expected(error: BaseException) -> bool:
    """True for failures caused by the user's input or environment, False for what looks like a bug."""
    if isinstance(error, (EmofusionError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError)):
        return True
    if isinstance(error, (ConnectionError, TimeoutError)):
        return True
    for cls in type(error).__mro__:
        if cls.__name__ in _EXPECTED_CLASS_NAMES or cls.__module__.startswith(_EXPECTED_MODULE_PREFIXES):
            return True
    # Our own worded checks (config fields, layouts, descriptions) are ValueErrors raised in our code.
    return isinstance(error, (ValueError, OSError)) and _raised_in_project(error)


def exit_code_for(error: BaseException) -> int:
    return getattr(error, "exit_code", 1)


def one_line(error: BaseException) -> str:
    """The error's message on one line (the first line of a multi-line message is its summary)."""
    text = str(error).strip() or type(error).__name__
    if isinstance(error, KeyError) and text.startswith("'"):
        text = f"missing key {text}"
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def debug_requested(argv: Sequence[str]) -> bool:
    """`--debug` on the command line, EMOFUSION_DEBUG=1, or a DEBUG level for the project's loggers."""
    argv = list(argv)
    if any(_is_our_debug_flag(argv, i) for i in range(len(argv))):
        return True
    if os.environ.get("EMOFUSION_DEBUG", "").lower() in ("1", "true", "yes"):
        return True
    for flag in ("--log_level", "--log-level"):
        if flag in argv[:-1] and argv[argv.index(flag) + 1].lower() == "debug":
            return True
    return any(logging.getLogger(name).level == logging.DEBUG for name in PROJECT_PACKAGES)


def _is_our_debug_flag(argv: list[str], i: int) -> bool:
    """A bare `--debug` is ours; `--debug VALUE` is TrainingArguments' own option (e.g. underflow_overflow)."""
    return argv[i] == "--debug" and (i + 1 == len(argv) or argv[i + 1].startswith("-"))


def strip_debug_flag(argv: Sequence[str]) -> list[str]:
    """argv without our bare `--debug` (the Trainer's `--debug VALUE` stays)."""
    argv = list(argv)
    return [arg for i, arg in enumerate(argv) if not _is_our_debug_flag(argv, i)]


def run_main(prog: str, main: Callable[[list[str]], int | None], argv: Sequence[str] | None = None) -> int:
    """Call `main(argv)` (argv without `--debug`) and turn expected failures into one stderr line.

    Returns the exit code: main's own, 2 for a usage error, 1 for another expected failure, 130
    on Ctrl-C. An unexpected exception propagates with its traceback (it is a bug to report).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = debug_requested(argv)
    argv = strip_debug_flag(argv)
    try:
        return int(main(argv) or 0)
    except KeyboardInterrupt:
        sys.stderr.write(f"{prog}: interrupted\n")
        return 130
    except Exception as error:  # noqa: BLE001 - sorted into expected (one line) and bugs (traceback)
        if debug or not is_expected(error):
            raise
        hint = "" if isinstance(error, UsageError) else " (--debug shows the traceback)"
        sys.stderr.write(f"{prog}: error: {one_line(error)}{hint}\n")
        return exit_code_for(error)
