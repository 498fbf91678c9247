"""The label tables and the box geometry the builders need, without importing transformers or torch.

They are defined once, in `modeling_emofusion/labels.py` and `modeling_emofusion/marking.py`.
Those two files travel inside every saved checkpoint (transformers' remote code copies the files
the configuration and the pipeline import), so they import nothing of this project and nothing
heavy. Importing them as `modeling_emofusion.labels` would first run `modeling_emofusion/__init__`,
which imports transformers and torch to register the Auto classes; so, unless the model package
is already imported, this module loads the two files on their own. Either way the values are the
same tables.

>>> from dataset_scripts.labels import EMOTIC_CATEGORIES, clip_box
>>> len(EMOTIC_CATEGORIES), clip_box([-5, 10, 50, 300], (40, 200))
(26, (0.0, 10.0, 40.0, 200.0))
"""

from __future__ import annotations

import importlib.util
import os
import sys
from types import ModuleType


def _model_file(name: str) -> ModuleType:
    """`modeling_emofusion.<name>`, or the same file loaded without running the package's `__init__`."""
    if f"modeling_emofusion.{name}" in sys.modules:
        return sys.modules[f"modeling_emofusion.{name}"]
    alias = f"{__name__}._{name}"
    if alias in sys.modules:
        return sys.modules[alias]
    package = importlib.util.find_spec("modeling_emofusion")  # finds the folder, runs nothing
    if package is None or not package.submodule_search_locations:
        raise ImportError("dataset_scripts needs the modeling_emofusion package (installed with emofusion).")
    location = os.path.join(list(package.submodule_search_locations)[0], f"{name}.py")
    spec = importlib.util.spec_from_file_location(alias, location)
    module = importlib.util.module_from_spec(spec)
    sys.modules[alias] = module  # functions defined there resolve by module name (datasets' fingerprints)
    spec.loader.exec_module(module)
    return module


_labels = _model_file("labels")
_marking = _model_file("marking")

EMOTIC_CATEGORIES: tuple[str, ...] = _labels.EMOTIC_CATEGORIES
BOLD_CSV_CATEGORIES: tuple[str, ...] = _labels.BOLD_CSV_CATEGORIES
BOLD_TO_EMOTIC: tuple[int, ...] = _labels.BOLD_TO_EMOTIC
CAER_S_CLASSES: tuple[str, ...] = _labels.CAER_S_CLASSES
CAER_S_FOLDER_ALIASES: dict[str, str] = _labels.CAER_S_FOLDER_ALIASES
VAD_NAMES: tuple[str, ...] = _labels.VAD_NAMES
TASKS: dict[str, dict] = _labels.TASKS
task_info = _labels.task_info
id2label_for = _labels.id2label_for
MARKING_MODES: tuple[str, ...] = _marking.MARKING_MODES
clip_box = _marking.clip_box

__all__ = [
    "BOLD_CSV_CATEGORIES",
    "BOLD_TO_EMOTIC",
    "CAER_S_CLASSES",
    "CAER_S_FOLDER_ALIASES",
    "EMOTIC_CATEGORIES",
    "MARKING_MODES",
    "TASKS",
    "VAD_NAMES",
    "clip_box",
    "id2label_for",
    "task_info",
]
