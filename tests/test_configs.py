"""Every file in configs/ parses through the script's own parser, as `python train.py FILE` reads it."""

from pathlib import Path

import pytest

from emofusion.captioning import parse_args as parse_caption_args
from emofusion.training import parse_args as parse_train_args
from modeling_emofusion.describing import DEFAULT_PROMPT_TEMPLATE
from modeling_emofusion.labels import TASKS


CONFIGS = Path(__file__).resolve().parent.parent / "configs"
TRAIN_CONFIGS = sorted(CONFIGS.glob("train_*.yaml"))
CAPTION_CONFIGS = sorted(CONFIGS.glob("caption_*.yaml"))


def test_one_config_of_each_kind_per_dataset():
    assert {p.stem.removeprefix("train_") for p in TRAIN_CONFIGS} == set(TASKS)
    assert {p.stem.removeprefix("caption_") for p in CAPTION_CONFIGS} == set(TASKS)


@pytest.mark.parametrize("path", TRAIN_CONFIGS, ids=lambda p: p.name)
def test_train_config_parses(path):
    # The configs are for a GPU (bf16); a flag after the file overrides it on this CPU-only machine.
    model_args, data_args, training_args = parse_train_args([str(path), "--bf16", "false"])
    assert data_args.dataset == path.stem.removeprefix("train_")
    assert model_args.vision_model_name_or_path == "openai/clip-vit-large-patch14"
    assert training_args.do_train and training_args.output_dir
    assert isinstance(data_args.builder_options, dict)
    if data_args.dataset == "bold":
        assert data_args.builder_options["num_frames"] == 8


@pytest.mark.parametrize("path", CAPTION_CONFIGS, ids=lambda p: p.name)
def test_caption_config_parses(path):
    args = parse_caption_args([str(path)])
    assert args.dataset == path.stem.removeprefix("caption_")
    assert args.model == "llava-hf/llava-1.5-13b-hf"
    assert args.template() == DEFAULT_PROMPT_TEMPLATE  # the paper's prompt
    assert args.generation()["do_sample"] is False
