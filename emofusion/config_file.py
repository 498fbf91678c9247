"""Options of a script from a `.json` / `.yaml` file, with command-line flags after it overriding it.

    python train.py emotic.yaml                                   # everything from the file
    python train.py emotic.yaml --learning_rate 5e-5 --seed 3     # the file, two values changed
    accelerate launch train.py emotic.yaml --output_dir outputs/b

The file's values become the defaults of the `HfArgumentParser` (as TRL's parser does), so the
flags after it are parsed, type-converted and validated exactly as on a plain command line, and
the last word is the command line's. A file that is missing, does not parse, is not a mapping or
names an unknown option is a usage error (exit code 2) that names the file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

from .errors import UsageError


CONFIG_SUFFIXES = (".json", ".yaml", ".yml")
CONFIG_FILE_HELP = (
    "Options may also come from a .json or .yaml file given first, e.g. `%(prog)s config.yaml`; "
    "flags after the file override its values: `%(prog)s config.yaml --seed 3`."
)


class ArgumentsError(UsageError, ValueError):
    """Wrong options (command line or config file): one line, exit code 2. Also a ValueError, as
    `HfArgumentParser` and the dataclasses' own checks raise."""


def _where(error: BaseException) -> str:
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    return f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""


def read_config_file(path: str) -> dict:
    """The option mapping of a `.json` / `.yaml` file, or an `ArgumentsError` naming the file."""
    if not os.path.exists(path):
        raise ArgumentsError(f"config file {path} not found.")
    if os.path.isdir(path):
        raise ArgumentsError(f"config file {path} is a folder, not a .json/.yaml file.")
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except UnicodeDecodeError as error:
        raise ArgumentsError(f"config file {path} is not UTF-8 text ({error.reason} at byte {error.start}).") from None
    if path.endswith(".json"):
        try:
            values = json.loads(text)
        except json.JSONDecodeError as error:
            raise ArgumentsError(
                f"config file {path} is not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})."
            ) from None
    else:
        import yaml

        try:
            values = yaml.safe_load(text)
        except yaml.YAMLError as error:
            problem = getattr(error, "problem", None) or str(error).splitlines()[0]
            raise ArgumentsError(f"config file {path} is not valid YAML: {problem}{_where(error)}.") from None
    if values is None:  # an empty file
        return {}
    if not isinstance(values, dict):
        raise ArgumentsError(
            f"config file {path} must hold a mapping of option names to values "
            f"(e.g. `dataset: emotic`), not a {type(values).__name__}."
        )
    return values


def _use_as_defaults(parser, values: dict, path: str) -> None:
    """Make the file's values the parser's defaults; options it gives are no longer required."""
    destinations = {action.dest for action in parser._actions}
    unknown = sorted(str(key) for key in values if key not in destinations)
    if unknown:
        raise ArgumentsError(
            f"config file {path}: unknown option(s) {', '.join(unknown)} (`--help` lists the options)."
        )
    parser.set_defaults(**values)
    for action in parser._actions:
        if action.dest in values:
            action.required = False


def parse_with_config_file(parser, argv: Sequence[str]) -> tuple:
    """`parser.parse_args_into_dataclasses` on `[FILE.json|.yaml] [--flag value ...]`.

    A config file, when given, comes first; flags after it override its values. Any option
    error (unknown flag, a dataclass check that fails) is an `ArgumentsError` naming the file.
    """
    argv = list(argv)
    path = None

    def refuse(message: str):
        # argparse's own errors (a missing required option, a bad value) as one line, not the whole usage.
        where = f" ({source})" if source else ""
        raise ArgumentsError(f"{message}{where}; `--help` lists the options.")

    parser.error = refuse
    if argv and not argv[0].startswith("-") and argv[0].lower().endswith(CONFIG_SUFFIXES):
        path, argv = argv[0], argv[1:]
        _use_as_defaults(parser, read_config_file(path), path)
    source = f"config file {path} with the flags after it" if path and argv else f"config file {path}" if path else ""
    try:
        *parsed, remaining = parser.parse_args_into_dataclasses(args=argv, return_remaining_strings=True)
    except ValueError as error:
        if isinstance(error, ArgumentsError):
            raise
        raise ArgumentsError(f"{source}: {error}" if source else str(error)) from error
    if remaining:
        hint = ""
        if any(arg.lower().endswith(CONFIG_SUFFIXES) and not arg.startswith("-") for arg in remaining):
            hint = " A config file goes first: `script.py FILE.yaml --flag value ...`."
        raise ArgumentsError(f"unrecognized arguments: {' '.join(remaining)}.{hint}")
    return tuple(parsed)
