"""Stage 2: train and evaluate the fusion model (`train.py`, `emofusion train`).

>>> from emofusion.training import parse_args, run_training
>>> metrics = run_training(*parse_args(["--model_name_or_path", "ckpt", "--dataset", "emotic",  # doctest: +SKIP
...     "--data_dir", "/data/EMOTIC", "--descriptions", "outputs/emotic-llava", "--output_dir", "out",
...     "--do_predict"]))

Only the arguments are imported with the package, so that `train.py --help` and a wrong option
answer before datasets and the model code load; the rest is imported on first use.
"""

import importlib

from .arguments import DataArguments, ModelArguments, parse_args


# name -> submodule, imported when the name is first used.
_LAZY = {
    "EmotionCollator": "data",
    "ExampleTransform": "data",
    "VisionFeatureCache": "feature_cache",
    "build_feature_cache": "feature_cache",
    "run_training": "run",
}


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """`python train.py ...` / `emofusion train ...`: parse the arguments, then load what training needs, and run."""
    arguments = parse_args(argv, prog=prog)
    from .run import run_parsed

    return run_parsed(*arguments)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "DataArguments",
    "EmotionCollator",
    "ExampleTransform",
    "ModelArguments",
    "VisionFeatureCache",
    "build_feature_cache",
    "main",
    "parse_args",
    "run_training",
]
