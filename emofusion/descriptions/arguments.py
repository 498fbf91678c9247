"""Options of `emofusion descriptions stats|compare`, parsed without importing transformers (`--help` is instant)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from dataset_scripts.labels import TASKS

from ..dataclass_args import DataclassArgumentParser
from ..errors import UsageError, check_output_folder


TOKENIZER_WORDS = "words"  # the length of a description in words: the matches of WORD_PATTERN
TOKENIZER_MODEL = "model"  # each set's recorded VLLM's tokenizer, where it is on this machine
WORD_PATTERN = r"\w+"
MODALITIES = ("fusion", "text", "vision")


@dataclass
class DescriptionsArguments:
    """Options shared by `stats` and `compare` (the sets themselves are positional)."""

    output_dir: str = field(
        default="descriptions-report", metadata={"help": "Where report.md, report.json and the figures go."}
    )
    dataset: str | None = field(
        default=None,
        metadata={
            "help": "The dataset the sets describe (its label words; with --data_dir its labels and ids). Default: "
            "the sets' own description_set.json field 'dataset'.",
            "choices": tuple(TASKS),
        },
    )
    data_dir: str | None = field(
        default=None,
        metadata={
            "help": "With --dataset: the dataset's folder as its owners ship it. Adds the mention precision and "
            "recall against the true labels and the coverage of the dataset's ids."
        },
    )
    dataset_cache_dir: str | None = field(
        default=None, metadata={"help": "Where the Arrow cache of the dataset goes (default: datasets' cache)."}
    )
    label_words: str | None = field(
        default=None,
        metadata={
            "help": 'A JSON file mapping label names to more words that name them (e.g. {"Happiness": '
            '["smiling", "joyful"]}): their mentions are counted as well, apart from the verbatim label words.'
        },
    )
    tokenizer: str = field(
        default=TOKENIZER_WORDS,
        metadata={
            "help": f"How lengths are counted: '{TOKENIZER_WORDS}' (regex {WORD_PATTERN} matches), "
            f"'{TOKENIZER_MODEL}' (each set's recorded model's tokenizer, offline; words where it is not "
            "cached), or a tokenizer name or folder used for every set."
        },
    )
    use_flagged: bool = field(
        default=True,
        metadata={"help": "Count 'flagged' rows as descriptions, as training does by default ('error' rows never)."},
    )
    train: str | None = field(
        default=None,
        metadata={
            "help": "A train.py config (.yaml/.json): train the same model on each set, same seed and split, "
            "and report the test metrics side by side. Its descriptions and output_dir are replaced."
        },
    )
    modalities: str = field(
        default="fusion,text",
        metadata={"help": "With --train: the models to train on each set, comma separated (fusion, text, vision)."},
    )

    def __post_init__(self):
        if self.data_dir is not None and self.dataset is None:
            raise UsageError("--data_dir needs --dataset (which dataset the folder holds).")
        if self.dataset is not None and self.dataset not in TASKS:
            raise UsageError(f"--dataset {self.dataset!r}: expected one of {sorted(TASKS)}.")
        if self.data_dir is not None and not os.path.isdir(self.data_dir):
            raise UsageError(f"--data_dir {self.data_dir}: no such folder.")
        for flag, path in (("--label_words", self.label_words), ("--train", self.train)):
            if path is not None and not os.path.isfile(path):
                raise UsageError(f"{flag} {path}: no such file.")
        if self.train is not None and not self.train.endswith((".json", ".yaml", ".yml")):
            raise UsageError(f"--train {self.train}: expected a train.py config file (.json, .yaml or .yml).")
        wanted = [m.strip() for m in self.modalities.split(",") if m.strip()]
        if not wanted or set(wanted) - set(MODALITIES):
            raise UsageError(f"--modalities {self.modalities!r}: expected some of {MODALITIES}, comma separated.")
        check_output_folder(self.output_dir)

    @property
    def modality_list(self) -> list[str]:
        return list(dict.fromkeys(m.strip() for m in self.modalities.split(",") if m.strip()))


@dataclass
class Request:
    """One `stats` or `compare` run: the command, its sets and its options."""

    command: str
    sets: list[str]
    options: DescriptionsArguments


def build_parser(command: str, prog: str) -> DataclassArgumentParser:
    descriptions = {
        "stats": "The figures of one description set: provenance, counts, lengths, label mentions, coverage.",
        "compare": "Description sets side by side: the figures of each, their vocabulary overlap, and with "
        "--train the downstream metrics of the same model trained on each.",
    }
    parser = DataclassArgumentParser(DescriptionsArguments, prog=prog, description=descriptions[command])
    parser.add_argument(
        "sets",
        nargs=1 if command == "stats" else "+",
        metavar="SET",
        help="A description set: the folder caption.py wrote, a table of id, description (CSV, JSON Lines, "
        "Parquet), or a Hub dataset id.",
    )
    return parser


def parse_args(command: str, argv: list[str], prog: str) -> Request:
    """The request of `emofusion descriptions COMMAND argv...`; a wrong option is a one-line usage error."""
    parser = build_parser(command, prog)
    namespace = vars(parser.parse_args(argv))
    sets = namespace.pop("sets")
    (options,) = parser._build(namespace)
    return Request(command, list(sets), options)
