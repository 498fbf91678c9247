"""Model cards claim only what is true: synthetic data is named so with no benchmark entry, and links exist."""

from __future__ import annotations

import re

import pytest
import yaml

from emofusion.synthetic import DESCRIPTION_METADATA, SYNTHETIC_MARKER, read_synthetic_marker, write_synthetic_emotic
from emofusion.testing import tiny_emofusion_config
from emofusion.training import model_card
from emofusion.training.model_card import ModelCardInfo, render_model_card


METRICS = {"test_mAP": 0.31, "test_mean_AUC": 0.7, "eval_mAP": 0.33, "test_loss": 1.0, "eval_loss": 1.1}
VLLM_METADATA = {
    "model": "llava-hf/llava-1.5-13b-hf",
    "revision": "abc123",
    "backend": "transformers",
    "prompt_template": "Describe the person in the red box.",
    "marking": "box",
    "generation": {"do_sample": False},
}


def parts(card: str) -> tuple[dict, list[str]]:
    """The YAML header and the non-empty lines of the body."""
    _, header, body = card.split("---\n", 2)
    return yaml.safe_load(header), [line for line in body.splitlines() if line.strip()]


def links(card: str) -> list[str]:
    return re.findall(r"https?://[^\s)>\]]+", card)


def test_real_dataset_card_has_its_model_index_and_links_only_the_paper():
    info = ModelCardInfo("emotic", "m", "user/m", metrics=METRICS, description_metadata=VLLM_METADATA)
    meta, lines = parts(render_model_card(info, tiny_emofusion_config("emotic")))
    (entry,) = meta["model-index"]
    datasets = {r["dataset"]["name"] for r in entry["results"]}
    assert datasets == {"EMOTIC"} and "emotic" in meta["tags"]
    assert lines[1].startswith("Emotion recognition **in context** on **EMOTIC**")
    card = render_model_card(info, tiny_emofusion_config("emotic"))
    assert "EMOTIC as its owners ship it" in card and "VLLM: `llava-hf/llava-1.5-13b-hf`" in card
    assert set(links(card)) == {"https://arxiv.org/abs/2404.07078"} and "github.com" not in card


def test_synthetic_data_card_says_so_first_and_claims_no_benchmark(tmp_path):
    write_synthetic_emotic(tmp_path / "data", {"train": 2, "val": 1, "test": 1}, seed=3)
    marker = read_synthetic_marker(tmp_path / "data")
    assert marker["synthetic"] is True and marker["seed"] == 3
    info = ModelCardInfo(
        "emotic", "fusion", "fusion", metrics=METRICS, description_metadata=DESCRIPTION_METADATA,
        description_source="descriptions", synthetic_data=marker,
    )  # fmt: skip
    card = render_model_card(info, tiny_emofusion_config("emotic"))
    meta, lines = parts(card)
    assert "model-index" not in meta and "emotic" not in meta["tags"] and "synthetic-data" in meta["tags"]
    assert lines[0] == "# fusion" and lines[1].startswith("**Trained and tested on synthetic data")
    assert "not on EMOTIC" in lines[1]
    assert "as its owners ship it" not in card and "annotators perceived" not in card
    assert "written by `emofusion.synthetic.write_synthetic_emotic` (seed 3, 2/1/1 train/val/test images)" in card
    assert "Written by: `emofusion.synthetic.describe`, not by a VLLM (backend synthetic)" in card
    assert "The same VLLM" not in card and "VLLM: `None`" not in card and "Prompt template" not in card
    assert set(links(card)) == {"https://arxiv.org/abs/2404.07078"}


def test_no_marker_means_real_data_and_a_broken_marker_is_named(tmp_path):
    assert read_synthetic_marker(tmp_path) is None and read_synthetic_marker(None) is None
    (tmp_path / SYNTHETIC_MARKER).write_text("{not json")
    with pytest.raises(ValueError, match=re.escape(str(tmp_path / SYNTHETIC_MARKER))):
        read_synthetic_marker(tmp_path)
    (tmp_path / SYNTHETIC_MARKER).write_text('{"synthetic": false}')
    with pytest.raises(ValueError, match='expected a JSON object with "synthetic": true'):
        read_synthetic_marker(tmp_path)


class _Metadata:
    def __init__(self, urls):
        self.urls = urls

    def get_all(self, name):
        return self.urls if name == "Project-URL" else None


def test_project_link_comes_from_the_package_metadata(monkeypatch):
    info = ModelCardInfo("caer_s", "m", "user/m", metrics=METRICS)
    config = tiny_emofusion_config("caer_s")
    # As pyproject.toml is now: only the paper, so the project is named without a link.
    assert model_card.project_url() is None
    assert " with\nemofusion." in render_model_card(info, config)
    urls = ["Paper, https://arxiv.org/abs/2404.07078", "Homepage, https://example.org/emofusion"]
    monkeypatch.setattr(model_card.metadata, "metadata", lambda name: _Metadata(urls))
    assert "[emofusion](https://example.org/emofusion)." in render_model_card(info, config)
