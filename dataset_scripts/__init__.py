"""datasets builders for EMOTIC, CAER-S and BoLD, reading the owners' on-disk formats.

>>> from dataset_scripts import load_emotion_dataset
>>> emotic = load_emotion_dataset("emotic", "/data/EMOTIC", descriptions="outputs/emotic-llava")  # doctest: +SKIP

`load_emotion_dataset(name, data_dir, descriptions=None, **builder_options)` returns a
`datasets.DatasetDict` keyed by split; the builder classes (`Emotic`, `CaerS`, `Bold`) are here
for those who prefer the builder API, and `dataset_scripts.writers` writes each format (tests,
benchmarks and the offline demo use it).
"""

from .bold import Bold, BoldConfig
from .caer_s import CaerS, CaerSConfig
from .common import (
    AnnotationFormatError,
    BadSampleError,
    DatasetLayoutError,
    EmotionBuilderConfig,
    UnsafePathError,
    make_id,
)
from .descriptions import DescriptionSetError, join_descriptions, load_description_set
from .emotic import Emotic, EmoticConfig
from .loading import BUILDERS, get_builder, load_emotion_dataset


__all__ = [
    "BUILDERS",
    "AnnotationFormatError",
    "BadSampleError",
    "Bold",
    "BoldConfig",
    "CaerS",
    "CaerSConfig",
    "DatasetLayoutError",
    "DescriptionSetError",
    "Emotic",
    "EmoticConfig",
    "EmotionBuilderConfig",
    "UnsafePathError",
    "get_builder",
    "join_descriptions",
    "load_description_set",
    "load_emotion_dataset",
    "make_id",
]
