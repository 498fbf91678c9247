"""caption_split in one process: the description set, its card, resume, settings, bad input, clips."""

import json
import os

import datasets
import pandas as pd
import pytest
from caption_fixtures import (
    CORRUPT,
    NO_BOX,
    OUTSIDE,
    build_llava,
    clip_split,
    image_split,
)

from emofusion.captioning import CaptionArguments, caption_split, main
from emofusion.captioning.samples import SampleReader
from modeling_emofusion.describing import (
    DEFAULT_PROMPT_TEMPLATE,
    NO_BOX_PROMPT_TEMPLATE,
    TransformersDescriber,
    fill_prompt,
)
from modeling_emofusion.labels import EMOTIC_CATEGORIES


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return build_llava(tmp_path_factory.mktemp("tiny-llava"))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("emotic-prepared"))
    splits = {"train": image_split("train", 12), "val": image_split("val", 4, seed=1)}
    datasets.DatasetDict(splits).save_to_disk(folder)
    return folder


def arguments(model, data_dir, output_dir, **overrides) -> CaptionArguments:
    folder, generation = model
    values = dict(
        dataset="emotic",
        data_dir=data_dir,
        split="train",
        model=folder,
        output_dir=str(output_dir),
        batch_size=4,
        save_every=3,
        max_new_tokens=8,
        generation_kwargs=generation,
    )
    return CaptionArguments(**{**values, **overrides})


def rows_of(output_dir) -> datasets.DatasetDict:
    return datasets.load_dataset(str(output_dir))


@pytest.fixture(scope="module")
def described(model, data_dir, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("descriptions")
    summaries = [caption_split(arguments(model, data_dir, output_dir, split=split)) for split in ("train", "val")]
    return output_dir, summaries


def test_the_set_loads_with_load_dataset_and_joins_by_id(described, data_dir):
    output_dir, (train_summary, _) = described
    sets = rows_of(output_dir)
    assert set(sets) == {"train", "val"}
    source = datasets.load_from_disk(data_dir)
    for split in ("train", "val"):
        rows = sets[split].to_pandas()
        assert list(rows.columns) == ["id", "description", "status", "reason", "split", "prompt", "num_tokens"]
        assert rows["id"].tolist() == list(source[split]["id"])  # every id once, in dataset order
        joined = pd.DataFrame({"id": list(source[split]["id"])}).merge(rows, on="id", how="left", validate="1:1")
        assert joined["status"].notna().all() and (joined["split"] == split).all()

    train = sets["train"].to_pandas().set_index("id")
    ids = list(source["train"]["id"])
    corrupt, outside = train.loc[ids[CORRUPT]], train.loc[ids[OUTSIDE]]
    assert corrupt.status == "error" and corrupt.reason.startswith("unreadable image") and corrupt.description == ""
    assert outside.status == "error" and "invalid bbox" in outside.reason and outside.num_tokens == 0
    assert set(train.status) == {"ok", "flagged", "error"}
    flagged = train[train.status == "flagged"]
    assert (flagged.num_tokens == 8).all() and flagged.reason.str.startswith("truncated").all()
    assert train[train.status == "ok"].reason.isna().all()
    # The paper's prompt where a red box is drawn, the "person in the image" variant where no box is given.
    assert train.loc[ids[0]].prompt == fill_prompt(DEFAULT_PROMPT_TEMPLATE, EMOTIC_CATEGORIES)
    assert train.loc[ids[NO_BOX]].prompt == fill_prompt(NO_BOX_PROMPT_TEMPLATE, EMOTIC_CATEGORIES)
    assert train_summary["total"] == 12 and train_summary["missing"] == 0 and train_summary["error"] == 2


def test_metadata_and_card_record_how_the_set_was_made(described, model):
    output_dir, _ = described
    with open(os.path.join(output_dir, "description_set.json")) as handle:
        metadata = json.load(handle)
    assert list(metadata) == [
        "format", "version", "model", "revision", "backend", "prompt_template", "marking", "generation", "dataset",
        "splits",
    ]  # fmt: skip
    assert metadata["format"] == "emofusion-descriptions" and metadata["version"] == 1
    assert metadata["model"] == model[0] and metadata["revision"] is None and metadata["backend"] == "transformers"
    assert metadata["prompt_template"] == DEFAULT_PROMPT_TEMPLATE and metadata["marking"] == "box"
    assert metadata["generation"] == {"do_sample": False, "num_beams": 1, "max_new_tokens": 8, **json.loads(model[1])}
    train = rows_of(output_dir)["train"].to_pandas()
    assert metadata["splits"]["train"] == train.status.value_counts().reindex(["ok", "error", "flagged"]).to_dict()
    assert sum(metadata["splits"]["val"].values()) == 4
    with open(os.path.join(output_dir, "README.md")) as card:
        text = card.read()
    assert text.startswith("---\nconfigs:\n- config_name: default\n") and DEFAULT_PROMPT_TEMPLATE in text
    assert model[0] in text and '"max_new_tokens": 8' in text and "| train |" in text and "| val |" in text


def test_a_rerun_skips_what_is_done_and_other_settings_are_refused(described, model, data_dir, tmp_path):
    output_dir, _ = described
    before = rows_of(output_dir)["train"].to_pandas()
    again = caption_split(arguments(model, data_dir, output_dir))
    assert again["described"] == 0 and again["total"] == 12
    assert rows_of(output_dir)["train"].to_pandas().equals(before)

    with pytest.raises(ValueError, match="other settings:\n  prompt_template"):
        caption_split(arguments(model, data_dir, output_dir, prompt_template="Describe <class_names>"))
    with pytest.raises(ValueError, match="generation"):
        caption_split(arguments(model, data_dir, output_dir, max_new_tokens=9))

    # Asked for, the old set is discarded; a template from a file is read.
    copy = tmp_path / "copy"
    caption_split(arguments(model, data_dir, copy, limit=2))
    template = tmp_path / "prompt.txt"
    template.write_text("Which of <class_names> fits the person in the red box?\n")
    changed = arguments(model, data_dir, copy, limit=3, prompt_template=str(template), overwrite_settings=True)
    summary = caption_split(changed)
    assert summary["described"] == 3 and summary["total"] == 3
    prompts = rows_of(copy)["train"]["prompt"]
    assert prompts[0] == "Which of " + ", ".join(EMOTIC_CATEGORIES) + " fits the person in the red box?"


class FailingDescriber(TransformersDescriber):
    """Generation fails for one image size, as a CUDA error or a bad input would for one subject."""

    def describe(self, images, bboxes=None, prompt=None, class_names=None):
        if any(image.height == 42 for image in images):
            raise RuntimeError("CUDA error: device-side assert triggered")
        return super().describe(images, bboxes, prompt, class_names)


def test_a_generation_failure_is_an_error_row_and_errors_can_be_retried(model, data_dir, tmp_path):
    folder, generation = model
    describer = FailingDescriber.from_pretrained(folder, device="cpu", max_new_tokens=8, **json.loads(generation))
    summary = caption_split(arguments(model, data_dir, tmp_path, limit=6), describer=describer)
    rows = rows_of(tmp_path)["train"].to_pandas()
    failed = rows[rows.reason.fillna("").str.startswith("generation failed")]
    assert failed.id.tolist() == [rows.id[2]]  # height 36 + 3 * 2; the rest of its batch was described
    assert failed.reason.item() == "generation failed: RuntimeError: CUDA error: device-side assert triggered"
    assert summary["error"] == 2 and (rows.status != "error").sum() == 4

    retried = caption_split(arguments(model, data_dir, tmp_path, limit=6, retry_errors=True))
    assert retried["described"] == 2  # the two errors; the corrupt image stays an error
    rows = rows_of(tmp_path)["train"].to_pandas()
    assert rows.id.is_unique and len(rows) == 6 and rows.loc[2, "status"] != "error"


def test_a_describer_that_differs_from_the_arguments_is_refused(model, data_dir, tmp_path):
    folder, generation = model
    describer = TransformersDescriber.from_pretrained(folder, device="cpu", max_new_tokens=5)
    with pytest.raises(ValueError, match="does not match the arguments the set records \\(generation"):
        caption_split(arguments(model, data_dir, tmp_path), describer=describer)


def test_clips_describe_the_chosen_frame_with_its_box(model, tmp_path):
    clips = clip_split()
    reader = SampleReader(clips, frame="middle")
    sample = reader.read(1)
    assert sample.image.getpixel((30, 30)) == (80, 20, 100) and sample.bbox == [3.0, 2.0, 22.0, 30.0]
    assert SampleReader(clips, frame="-1").read(0).image.getpixel((0, 0)) == (160, 0, 100)
    assert "outside a clip of 5 frames" in SampleReader(clips, frame="7").read(0).error

    summary = caption_split(arguments(model, None, tmp_path, dataset="bold", frame="last"), dataset=clips)
    assert summary["total"] == 3 and summary["error"] == 0
    with open(os.path.join(tmp_path, "description_set.json")) as handle:
        assert json.load(handle)["frame"] == "last"


def test_bad_arguments_and_data_are_clear_errors(model, data_dir, tmp_path):
    with pytest.raises(ValueError, match="no split 'test'"):
        caption_split(arguments(model, data_dir, tmp_path, split="test"))
    with pytest.raises(ValueError, match="--marking must be one of"):
        arguments(model, data_dir, tmp_path, marking="blur")
    with pytest.raises(ValueError, match="--generation_kwargs must be a JSON object"):
        arguments(model, data_dir, tmp_path, generation_kwargs="greedy")
    twice = image_split("train", 3).map(lambda row: {"id": "same"})
    with pytest.raises(ValueError, match="repeats 1 ids"):
        SampleReader(twice)
    with pytest.raises(ValueError, match="argument --backend: invalid choice: 'onnx'"):  # one line, exit code 2
        main(["--dataset", "emotic", "--backend", "onnx"])
