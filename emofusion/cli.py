"""The `emofusion` command: one entry point, subcommands imported only when used.

Each subcommand is a module with a `main(argv)` function that parses its own arguments (most
with HfArgumentParser, as the transformers example scripts do), so `emofusion train ...` and
`python train.py ...` accept exactly the same flags. Importing transformers takes seconds, so
nothing heavy is imported before a subcommand is chosen.
"""

from __future__ import annotations

import importlib
import sys


# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("emofusion.demo", "train and evaluate the whole method on a small synthetic dataset, offline"),
    "predict": ("emofusion.predict", "recognise the emotion of the person(s) in your own photo or video"),
    "convert": (
        "emofusion.convert",
        "prepare EMOTIC, CAER-S or BoLD as Arrow/Parquet (optionally a private Hub repo)",
    ),
    "caption": ("emofusion.captioning", "stage 1: write VLLM descriptions of every subject of a dataset split"),
    "train": ("emofusion.training", "stage 2: train and evaluate the fusion model"),
    "descriptions": (
        "emofusion.descriptions",
        "figures of description sets (stats SET, compare SET [SET ...]), downstream with --train",
    ),
    "app": ("emofusion.app.command", "a web page for a model (Gradio), or a Hugging Face Space folder for it"),
}


def _usage() -> str:
    lines = ["usage: emofusion <command> [options]", "", "commands:"]
    lines += [f"  {name:<12} {help_text}" for name, (_, help_text) in COMMANDS.items()]
    lines += ["", "`emofusion <command> --help` shows a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        sys.stdout.write(_usage() + "\n")
        return 0
    if argv[0] == "--version":
        from ._version import __version__

        sys.stdout.write(f"emofusion {__version__}\n")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        sys.stderr.write(f"emofusion: unknown command {name!r}\n\n{_usage()}\n")
        return 2
    import functools
    import inspect

    from .errors import run_main

    prog = f"emofusion {name}"
    command = importlib.import_module(COMMANDS[name][0]).main
    if "prog" in inspect.signature(command).parameters:
        # Commands that also run as scripts (train.py, caption.py) name the program they are run as.
        command = functools.partial(command, prog=prog)
    return run_main(prog, command, rest)


if __name__ == "__main__":
    sys.exit(main())
