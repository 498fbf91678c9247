"""The option parser of train.py and caption.py: transformers' `HfArgumentParser`, with a `--help` to read.

`HfArgumentParser` already takes `--a_b` and `--a-b` alike, `--flag` / `--flag false`, and
`--no_flag` for a bool that defaults to true. On top of it, this parser

- names the program in its usage line (`emofusion train`, `train.py`), which is one line
  (`usage: train.py [CONFIG.yaml] [--option VALUE ...]`), not every option in brackets;
- puts each dataclass's options under its own heading, in order: the project's own first, then
  transformers' `TrainingArguments` under "Trainer options";
- shows, of the Trainer's 114 options, only the ones a run usually sets (`brief_help`); `--help-all`
  lists them all. Parsing is the same either way: a hidden option is still an option;
- words the help of a `--no_flag` as what it turns off (`HfArgumentParser` gives it the help of
  `--flag` itself, so `--no_hub_private` read "Create the Hub repo as private").

Only `transformers.HfArgumentParser` is imported here (no torch); the callers decide what else
their `--help` needs.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import get_type_hints

from transformers import HfArgumentParser

from .dataclass_args import turn_off_help


SCRIPT_USAGE = "%(prog)s [CONFIG.json|CONFIG.yaml] [--option VALUE ...]"


class _HelpAllAction(argparse.Action):
    """`--help-all`: the help with every option shown, including those `--help` leaves out."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings=option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        parser.show_all_options()
        parser.print_help()
        parser.exit()


class ScriptArgumentParser(HfArgumentParser):
    """`HfArgumentParser` with headings per dataclass, a named program and a short `--help`.

    Args:
        dataclass_types: the dataclasses whose fields are the options, in the order `--help` shows them.
        headings: `{dataclass: heading}`; a dataclass without one is headed by its first docstring line.
        brief_help: `{dataclass: field names}`: of that dataclass, `--help` shows only these
            (and says how many more `--help-all` lists).
        **kwargs: `argparse.ArgumentParser`'s (`prog`, `description`, `epilog`, ...).
    """

    def __init__(self, dataclass_types, headings=None, brief_help=None, **kwargs):
        # Read by _add_dataclass_arguments, which HfArgumentParser.__init__ calls.
        self._headings = dict(headings or {})
        self._brief_help = {dtype: set(names) for dtype, names in (brief_help or {}).items()}
        self._hidden_help: dict[argparse.Action, str | None] = {}
        kwargs.setdefault("usage", SCRIPT_USAGE)
        super().__init__(dataclass_types, **kwargs)
        if self._hidden_help:
            self.add_argument(
                "--help-all", "--help_all", action=_HelpAllAction,
                help="Show every option, the Trainer's included, and exit.",
            )  # fmt: skip

    def _add_dataclass_arguments(self, dtype):
        heading = self._headings.get(dtype) or getattr(dtype, "_argument_group_name", None)
        if heading is None:
            heading = (dtype.__doc__ or dtype.__name__).strip().splitlines()[0].rstrip(".")
        group = self.add_argument_group(heading)
        first = len(self._actions)
        hints = get_type_hints(dtype)
        for field in dataclasses.fields(dtype):
            if field.init:
                field.type = hints[field.name]
                self._parse_dataclass_field(group, field)
        added = self._actions[first:]
        for action in added:
            if isinstance(action, argparse._StoreFalseAction) and action.option_strings[0].startswith("--no_"):
                action.help = turn_off_help(action.dest, action.help)
                # The destination's default is the flag's own (True); "(default: False)" would mislead.
                action.default = argparse.SUPPRESS
        shown = self._brief_help.get(dtype)
        if shown is not None:
            hidden = [action for action in added if action.dest not in shown]
            for action in hidden:
                self._hidden_help[action] = action.help
                action.help = argparse.SUPPRESS
            total = len({action.dest for action in added})
            group.description = (
                f"The {len(shown & {a.dest for a in added})} most used of {total}; `--help-all` lists them all."
            )
            self._brief_descriptions = getattr(self, "_brief_descriptions", {})
            self._brief_descriptions[group] = total

    def show_all_options(self) -> None:
        """Show the options `--help` leaves out (the next `print_help` lists every option)."""
        for action, help_text in self._hidden_help.items():
            action.help = help_text
        for group, total in getattr(self, "_brief_descriptions", {}).items():
            group.description = f"All {total} of them."
        self._hidden_help = {}
