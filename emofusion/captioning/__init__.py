"""Stage 1: describe every subject of a dataset split with a VLLM, into a description set.

    python caption.py --dataset emotic --data_dir /data/EMOTIC --split train \
        --model llava-hf/llava-1.5-13b-hf --output_dir emotic-llava13b
    accelerate launch caption.py ...   # the same, split over processes/GPUs
    python caption.py emotic-llava.yaml --split val   # options from a .json/.yaml file, flags override it

The library behind it: `caption_split(CaptionArguments(...), dataset=None, describer=None)`.

Only the arguments are imported with the package, so that `caption.py --help` and a wrong option
answer before torch, datasets and the model code load; the rest is imported on first use.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys

from ..config_file import CONFIG_FILE_HELP, parse_with_config_file
from ..script_parser import ScriptArgumentParser
from .arguments import CaptionArguments


__all__ = ["CaptionArguments", "build_describer", "caption_split", "main", "parse_args", "push_set"]

_LAZY = {"build_describer", "caption_split", "push_set"}  # from .run


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(".run", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | _LAZY)


def build_parser(prog: str | None = None) -> ScriptArgumentParser:
    return ScriptArgumentParser(
        CaptionArguments,
        headings={CaptionArguments: "Caption options"},
        prog=prog,
        description="Stage 1: describe every subject of a dataset split with a VLLM, into a description set.",
        epilog=CONFIG_FILE_HELP,
    )


def parse_args(argv: list[str] | None = None, prog: str | None = None) -> CaptionArguments:
    """Arguments from the command line, which may start with a `.json` / `.yaml` file holding them
    (`caption.py args.yaml --split val`: flags after the file override its values)."""
    (args,) = parse_with_config_file(build_parser(prog), sys.argv[1:] if argv is None else argv)
    return args


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = parse_args(argv, prog=prog)
    from .run import caption_split

    # One summary line a process; details only from the main one (RANK is set by accelerate/torchrun).
    is_main = os.environ.get("RANK", "0") == "0"
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%m/%d/%Y %H:%M:%S",
        level=logging.INFO if is_main else logging.WARNING,
        handlers=[logging.StreamHandler(sys.stderr)],
    )
    summary = caption_split(args)
    if is_main:
        sys.stdout.write(json.dumps(summary) + "\n")
    return 0
