"""`emofusion descriptions`: what a description set holds, and how sets from different VLLMs compare.

    emofusion descriptions stats SET [--dataset NAME --data_dir DIR] [--train CONFIG]
    emofusion descriptions compare SET [SET ...] [--dataset NAME --data_dir DIR] [--train CONFIG]

Both write one report (`report.md`, `report.json`, PNG figures) to `--output_dir`: per set its
provenance (model, revision, prompt), status counts, length distribution, how often a description
names one of the dataset's label words (and, with the dataset, a true label or a false one), its
vocabulary and its coverage of the dataset's ids; `compare` adds the vocabulary overlap between
sets. With `--train CONFIG` the same model (the config's) is trained on each set, with the same
seed and split, and the downstream test metrics of the fusion and text-only models are set side by
side. Only the argument parsing is imported here, so `--help` answers at once.
"""

from __future__ import annotations

import sys


SUBCOMMANDS = {
    "stats": "the figures of one description set",
    "compare": "the figures of several description sets side by side (and downstream, with --train)",
}


def _usage(prog: str) -> str:
    lines = [f"usage: {prog} {{{','.join(SUBCOMMANDS)}}} SET [SET ...] [options]", "", "commands:"]
    lines += [f"  {name:<8} {text}" for name, text in SUBCOMMANDS.items()]
    lines += ["", f"`{prog} <command> --help` shows a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None, prog: str = "emofusion descriptions") -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        sys.stdout.write(_usage(prog) + "\n")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        from ..errors import UsageError

        raise UsageError(f"unknown command {name!r}; expected one of {list(SUBCOMMANDS)}.")
    from .arguments import parse_args

    args = parse_args(name, rest, prog=f"{prog} {name}")
    from .run import run

    report = run(args)
    sys.stdout.write(report["summary"] + "\n")
    return 0
