"""Stage 2: train and evaluate the fusion model (`train.py`, `emofusion train`).

>>> from emofusion.training import parse_args, run_training
>>> metrics = run_training(*parse_args(["--model_name_or_path", "ckpt", "--dataset", "emotic",  # doctest: +SKIP
...     "--data_dir", "/data/EMOTIC", "--descriptions", "outputs/emotic-llava", "--output_dir", "out",
...     "--do_predict"]))
"""

from .arguments import DataArguments, ModelArguments, parse_args
from .data import EmotionCollator, ExampleTransform
from .feature_cache import VisionFeatureCache, build_feature_cache
from .run import main, run_training


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
