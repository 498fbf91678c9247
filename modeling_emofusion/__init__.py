"""emofusion's Hub-facing code: configuration, model, processor, pipeline, labels, metrics.

Importing this package registers the classes with transformers' Auto classes and the
"emotion-in-context" pipeline task. Registering twice is harmless.
"""

from .labels import BOLD_CSV_CATEGORIES, CAER_S_CLASSES, EMOTIC_CATEGORIES, TASKS, id2label_for, task_info
from .marking import MARKING_MODES, clip_box, mark_subject


__version__ = "0.1.0"

__all__ = [
    "BOLD_CSV_CATEGORIES",
    "CAER_S_CLASSES",
    "EMOTIC_CATEGORIES",
    "MARKING_MODES",
    "TASKS",
    "clip_box",
    "id2label_for",
    "mark_subject",
    "task_info",
]
