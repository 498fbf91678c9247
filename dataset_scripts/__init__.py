"""datasets builders for EMOTIC, CAER-S and BoLD, reading the owners' on-disk formats.

>>> from dataset_scripts import load_emotion_dataset
>>> emotic = load_emotion_dataset("emotic", "/data/EMOTIC", descriptions="outputs/emotic-llava")  # doctest: +SKIP

`load_emotion_dataset(name, data_dir, descriptions=None, **builder_options)` returns a
`datasets.DatasetDict` keyed by split; the builder classes (`Emotic`, `CaerS`, `Bold`) are here
for those who prefer the builder API, and `dataset_scripts.writers` writes each format (tests,
benchmarks and the offline demo use it).
"""

from __future__ import annotations

import importlib


# Public name -> the submodule that defines it. The submodules import `datasets` (about a second),
# so they load on first use (PEP 562): `import dataset_scripts` alone imports nothing heavy, and
# `from dataset_scripts import Emotic` works as before.
_EXPORTS: dict[str, str] = {
    "Bold": "bold",
    "BoldConfig": "bold",
    "CaerS": "caer_s",
    "CaerSConfig": "caer_s",
    "AnnotationFormatError": "common",
    "BadSampleError": "common",
    "DatasetLayoutError": "common",
    "EmotionBuilderConfig": "common",
    "UnsafePathError": "common",
    "make_id": "common",
    "DescriptionSetError": "descriptions",
    "join_descriptions": "descriptions",
    "load_description_set": "descriptions",
    "normalize_rows": "descriptions",
    "Emotic": "emotic",
    "EmoticConfig": "emotic",
    "BUILDERS": "loading",
    "get_builder": "loading",
    "load_emotion_dataset": "loading",
    "load_prepared_dataset": "loading",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


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
    "load_prepared_dataset",
    "make_id",
    "normalize_rows",
]
