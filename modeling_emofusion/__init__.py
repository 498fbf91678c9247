"""emofusion's Hub-facing code: configuration, model, processor, pipeline, labels, metrics.

Importing this package registers the classes with transformers' Auto classes, so that
`AutoConfig`, `AutoModel`, `AutoModelForImageClassification` and `AutoProcessor` load emofusion
checkpoints. Registering twice is harmless.
"""

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForImageClassification,
    AutoProcessor,
)

from emofusion._version import __version__  # one version for the whole distribution

from .configuration_emofusion import EmoFusionConfig
from .labels import BOLD_CSV_CATEGORIES, CAER_S_CLASSES, EMOTIC_CATEGORIES, TASKS, id2label_for, task_info
from .marking import MARKING_MODES, clip_box, mark_subject
from .modeling_emofusion import (
    EmoFusionClassifierOutput,
    EmoFusionForEmotionClassification,
    EmoFusionModel,
    EmoFusionModelOutput,
    EmoFusionPreTrainedModel,
)
from .processing_emofusion import EmoFusionProcessor


def _register_auto_classes() -> None:
    AutoConfig.register(EmoFusionConfig.model_type, EmoFusionConfig, exist_ok=True)
    AutoModel.register(EmoFusionConfig, EmoFusionModel, exist_ok=True)
    AutoModelForImageClassification.register(EmoFusionConfig, EmoFusionForEmotionClassification, exist_ok=True)
    AutoProcessor.register(EmoFusionConfig, EmoFusionProcessor, exist_ok=True)
    # Saved checkpoints carry the code and an auto_map, so they load with trust_remote_code=True
    # where emofusion is not installed.
    EmoFusionConfig.register_for_auto_class()
    EmoFusionModel.register_for_auto_class("AutoModel")
    EmoFusionForEmotionClassification.register_for_auto_class("AutoModelForImageClassification")
    EmoFusionProcessor.register_for_auto_class("AutoProcessor")


_register_auto_classes()

# The "emotion-in-context" pipeline task (guarded inside: registering again is a no-op).
from .pipeline_emofusion import (  # noqa: E402
    EmotionInContextPipeline,
    load_pipeline,
    register_pipeline,
    save_pipeline_files,
)


register_pipeline()

__all__ = [
    "BOLD_CSV_CATEGORIES",
    "CAER_S_CLASSES",
    "EMOTIC_CATEGORIES",
    "MARKING_MODES",
    "TASKS",
    "__version__",
    "EmoFusionClassifierOutput",
    "EmoFusionConfig",
    "EmoFusionForEmotionClassification",
    "EmoFusionModel",
    "EmoFusionModelOutput",
    "EmoFusionPreTrainedModel",
    "EmoFusionProcessor",
    "EmotionInContextPipeline",
    "clip_box",
    "id2label_for",
    "load_pipeline",
    "mark_subject",
    "save_pipeline_files",
    "task_info",
]
