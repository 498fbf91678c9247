"""The arguments of caption.py, parsed by HfArgumentParser (from the command line, a .json/.yaml file or both).

Nothing of the model code is imported here, so that `caption.py --help` answers at once: the
label and marking tables come from their light copy in `dataset_scripts.labels`, and the
paper's prompt is read from `modeling_emofusion.describing` only when it is used.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field

from dataset_scripts.labels import MARKING_MODES, TASKS


BACKENDS = ("transformers", "vllm")
DEFAULT_MODEL = "llava-hf/llava-1.5-13b-hf"  # the paper's LLaVA-1.5 13B; llava-hf/llava-1.5-7b-hf is the light choice
FRAME_CHOICES = ("middle", "first", "last")
# datasets' rule for split names, which also keeps them safe inside file names.
SPLIT_NAME = re.compile(r"^\w+(\.\w+)*$")
# modeling_emofusion.describing.DEFAULT_GENERATION["max_new_tokens"] (a test keeps the two equal).
DEFAULT_MAX_NEW_TOKENS = 384


@dataclass
class CaptionArguments:
    """What to describe, with which model and prompt, and where the description set goes."""

    dataset: str = field(
        metadata={"help": "Dataset whose label names fill the prompt.", "choices": sorted(TASKS)},
    )
    data_dir: str | None = field(
        default=None,
        metadata={
            "help": "The dataset as its owners ship it (read by dataset_scripts.load_emotion_dataset), or a prepared "
            "DatasetDict saved with save_to_disk."
        },
    )
    split: str = field(default="train", metadata={"help": "Split to describe (train, val, test)."})
    output_dir: str = field(default="descriptions", metadata={"help": "Folder of the description set."})
    model: str = field(
        default=DEFAULT_MODEL, metadata={"help": "Image-text-to-text model id on the Hub or a local folder."}
    )
    revision: str | None = field(default=None, metadata={"help": "Model revision (branch, tag or commit)."})
    backend: str = field(
        default="transformers",
        metadata={"help": "transformers (default) or vllm (optional extra, one process).", "choices": list(BACKENDS)},
    )
    batch_size: int = field(default=8, metadata={"help": "Subjects a generate call (vLLM: a request batch)."})
    max_new_tokens: int = field(default=DEFAULT_MAX_NEW_TOKENS, metadata={"help": "Token budget."})
    generation_kwargs: str | None = field(
        default=None,
        metadata={"help": "More generation settings as JSON, e.g. '{\"repetition_penalty\": 1.1}'. Greedy otherwise."},
    )
    prompt_template: str | None = field(
        default=None,
        metadata={
            "help": "Prompt text, or a file holding it; <class_names> becomes the label names. Default: the paper's "
            "prompt (a 'person in the image' variant where no box is drawn)."
        },
    )
    marking: str = field(
        default="box", metadata={"help": "How the subject is shown to the model.", "choices": list(MARKING_MODES)}
    )
    frame: str = field(
        default="middle",
        metadata={"help": "Clips (BoLD): which sampled frame is described: middle, first, last or its position."},
    )
    limit: int | None = field(default=None, metadata={"help": "Describe only the first N subjects of the split."})
    save_every: int = field(default=64, metadata={"help": "Write a shard every N described subjects."})
    dtype: str = field(
        default="auto", metadata={"help": "auto (bfloat16 on GPU, float32 on CPU), bfloat16, float16 or float32."}
    )
    tensor_parallel_size: int = field(default=1, metadata={"help": "vLLM: GPUs one model is split over."})
    gpu_memory_utilization: float = field(default=0.9, metadata={"help": "vLLM: share of GPU memory it may use."})
    max_model_len: int | None = field(default=None, metadata={"help": "vLLM: context length to reserve."})
    max_image_pixels: int | None = field(
        default=None,
        metadata={
            "help": "Pictures over twice this many pixels are skipped as possible decompression bombs (PIL's "
            "Image.MAX_IMAGE_PIXELS; default PIL's, about 179 million). 0: no limit."
        },
    )
    retry_errors: bool = field(default=False, metadata={"help": "Describe again the subjects recorded as errors."})
    overwrite_settings: bool = field(
        default=False,
        metadata={"help": "Discard a description set made with another model/prompt/settings in output_dir."},
    )
    rows_per_shard: int = field(default=10_000, metadata={"help": "Rows a Parquet file of the final set."})
    push_to_hub: str | None = field(default=None, metadata={"help": "Publish the set to this Hub dataset repo."})
    hub_private: bool = field(default=True, metadata={"help": "Create the Hub repo as private (with --push_to_hub)."})
    seed: int = field(default=0, metadata={"help": "Seed, for sampling settings."})

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise ValueError(f"--backend must be one of {BACKENDS}, got {self.backend!r}.")
        if self.marking not in MARKING_MODES:
            raise ValueError(f"--marking must be one of {MARKING_MODES}, got {self.marking!r}.")
        if not SPLIT_NAME.match(self.split):
            raise ValueError(f"--split must be a name of letters, digits and underscores, got {self.split!r}.")
        for name in ("batch_size", "max_new_tokens", "save_every", "rows_per_shard", "tensor_parallel_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be at least 1, got {getattr(self, name)}.")
        if self.max_image_pixels is not None and self.max_image_pixels < 0:
            raise ValueError(f"--max_image_pixels must be >= 0, got {self.max_image_pixels}.")
        if self.limit is not None and self.limit < 0:
            raise ValueError(f"--limit must be >= 0, got {self.limit}.")
        if self.frame not in FRAME_CHOICES and not self.frame.lstrip("-").isdigit():
            raise ValueError(f"--frame must be one of {FRAME_CHOICES} or a frame position, got {self.frame!r}.")
        self.generation_overrides()  # fail early on bad JSON

    def generation_overrides(self) -> dict:
        """`--generation_kwargs` as a dict (empty when not given)."""
        if not self.generation_kwargs:
            return {}
        try:
            overrides = json.loads(self.generation_kwargs)
        except json.JSONDecodeError as error:
            raise ValueError(f"--generation_kwargs must be a JSON object: {error}") from None
        if not isinstance(overrides, dict):
            raise ValueError(f"--generation_kwargs must be a JSON object, got {self.generation_kwargs!r}.")
        return overrides

    def generation(self) -> dict:
        """The generation settings: greedy, `--max_new_tokens`, then `--generation_kwargs`."""
        from modeling_emofusion.describing import DEFAULT_GENERATION

        return {**DEFAULT_GENERATION, "max_new_tokens": self.max_new_tokens, **self.generation_overrides()}

    def template(self) -> str:
        """The prompt template: `--prompt_template` (its file's text if it names a file), else the paper's."""
        if self.prompt_template is None:
            from modeling_emofusion.describing import DEFAULT_PROMPT_TEMPLATE

            return DEFAULT_PROMPT_TEMPLATE
        if os.path.isfile(self.prompt_template):
            with open(self.prompt_template, encoding="utf-8") as handle:
                text = handle.read().strip()
            if not text:
                raise ValueError(f"The prompt template file {self.prompt_template} is empty.")
            return text
        return self.prompt_template
