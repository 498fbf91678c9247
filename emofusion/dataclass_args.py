"""Command-line options from a dataclass, as `transformers.HfArgumentParser` makes them, without transformers.

`emofusion demo --help` and `emofusion convert --help` should answer at once, and importing
transformers alone takes about a second; so the commands that need nothing of transformers to parse
their options use this parser. It follows HfArgumentParser's conventions, so that every command
reads alike: `--a_b` and `--a-b` both work, a bool is `--flag`, `--flag true|false`, and, when it
defaults to true, `--no_flag`; `Optional[X]` fields take an X; metadata `help` and `choices` go to
argparse; defaults show in `--help`; `parse_json_file` fills the dataclass from a JSON object.

>>> from dataclasses import dataclass, field
>>> @dataclass
... class Options:
...     output_dir: str = field(metadata={"help": "Where results go."})
...     verify_images: bool = True
>>> DataclassArgumentParser(Options).parse_args_into_dataclasses(["--output-dir", "out", "--no_verify_images"])
(Options(output_dir='out', verify_images=False),)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import types
import typing


def string_to_bool(value) -> bool:
    """`yes/no`, `true/false`, `t/f`, `y/n`, `1/0` (any case), as HfArgumentParser reads them."""
    if isinstance(value, bool):
        return value
    if value.lower() in ("yes", "true", "t", "y", "1"):
        return True
    if value.lower() in ("no", "false", "f", "n", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected one of yes/no, true/false, t/f, y/n, 1/0, got {value!r}")


def turn_off_help(flag: str, help_text: str | None) -> str:
    """The help of `--no_<flag>`, worded from the help of `--<flag>`.

    >>> turn_off_help("hub_private", "Create the Hub repo as private.")
    'Turn off --hub_private, which is on by default and means: create the Hub repo as private.'
    """
    text = (help_text or "").strip().rstrip(".")
    if len(text) > 1 and text[0].isupper() and text[1].islower():
        text = text[0].lower() + text[1:]
    return f"Turn off --{flag}, which is on by default" + (f" and means: {text}." if text else ".")


def _without_none(annotation):
    # Optional[X] / X | None -> X; other unions are not options a command line can hold.
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"only Optional[X] unions can be options, got {annotation!r}")
        return args[0]
    return annotation


class DataclassArgumentParser(argparse.ArgumentParser):
    """An `argparse.ArgumentParser` whose options are the fields of `dataclass_types`."""

    def __init__(self, dataclass_types, **kwargs):
        kwargs.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
        super().__init__(**kwargs)
        many = isinstance(dataclass_types, (list, tuple))
        self.dataclass_types = list(dataclass_types) if many else [dataclass_types]
        for dtype in self.dataclass_types:
            hints = typing.get_type_hints(dtype)
            for f in dataclasses.fields(dtype):
                if f.init:
                    self._add_field(f, _without_none(hints[f.name]))

    def _add_field(self, f: dataclasses.Field, annotation) -> None:
        names = [f"--{f.name}"] + ([f"--{f.name.replace('_', '-')}"] if "_" in f.name else [])
        kwargs = dict(f.metadata)
        if f.default is not dataclasses.MISSING:
            kwargs["default"] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            kwargs["default"] = f.default_factory()
        elif annotation is not bool:
            kwargs["required"] = True
        if annotation is bool:
            kwargs.update(type=string_to_bool, nargs="?", const=True, default=kwargs.get("default", False))
        else:
            kwargs["type"] = annotation
        self.add_argument(*names, **kwargs)
        if annotation is bool and f.default is True:
            # After the option itself: both write the same destination, and the first sets the default.
            no_names = [f"--no_{f.name}"] + ([f"--no-{f.name.replace('_', '-')}"] if "_" in f.name else [])
            self.add_argument(
                *no_names, action="store_false", dest=f.name, help=turn_off_help(f.name, kwargs.get("help"))
            )

    def _build(self, values: dict) -> tuple:
        outputs = []
        for dtype in self.dataclass_types:
            keys = {f.name for f in dataclasses.fields(dtype) if f.init}
            outputs.append(dtype(**{k: v for k, v in values.items() if k in keys}))
        return tuple(outputs)

    def parse_args_into_dataclasses(self, args: list[str] | None = None) -> tuple:
        """Parse `args` (default: `sys.argv[1:]`) into one instance of each dataclass, in order."""
        return self._build(vars(self.parse_args(args)))

    def parse_json_file(self, json_file: str | os.PathLike) -> tuple:
        """Fill the dataclasses from a JSON object whose keys are field names; unknown keys are a ValueError."""
        with open(json_file, encoding="utf-8") as handle:
            values = json.load(handle)
        if not isinstance(values, dict):
            raise ValueError(f"{json_file}: expected a JSON object of option names and values.")
        known = {f.name for dtype in self.dataclass_types for f in dataclasses.fields(dtype) if f.init}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{json_file}: unknown option(s) {unknown}; expected some of {sorted(known)}.")
        return self._build(values)
