"""`emofusion convert`: a fake dataset to embedded Parquet / Arrow, through main(argv)."""

import json
import shutil

import datasets
import pytest

from emofusion.convert import main
from tests.fake_datasets import make_fake_caer_s, make_fake_emotic


def test_emotic_to_parquet_embeds_images_and_loads_back(tmp_path, capsys):
    root = tmp_path / "emotic"
    make_fake_emotic(root, csv=False)
    out = tmp_path / "out"
    code = main(
        ["--dataset", "emotic", "--data_dir", str(root), "--output_dir", str(out), "--cache_dir", str(tmp_path / "c")]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["splits"]["train"] == {"num_rows": 3, "files": ["data/train-00000-of-00001.parquet"]}
    assert json.loads((out / "conversion.json").read_text())["splits"] == summary["splits"]
    assert summary["bad_samples"]["train"] == {
        "skipped": 3,
        "reasons": {"missing image": 1, "unreadable image": 1, "zero-area box": 1},
    }
    card = (out / "README.md").read_text()
    assert "path: data/validation-*.parquet" in card and "forbids redistribution" in card
    # The images are inside the Parquet files: the original folders are no longer needed.
    shutil.rmtree(root)
    loaded = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "hf"))
    assert {split: len(ds) for split, ds in loaded.items()} == {"train": 3, "validation": 2, "test": 1}
    example = min(loaded["train"], key=lambda ex: ex["id"])
    assert example["id"] == "train/framesdb/images/frame_abcdefgh12345678.jpg#p0"
    assert example["image"].size == (32, 24) and example["bbox"] == [1.0, 1.0, 31.0, 23.0]
    assert loaded["train"].features["image"] == datasets.Image()


def test_caer_s_to_arrow_with_options_and_refusals(tmp_path, capsys):
    root = tmp_path / "caer"
    make_fake_caer_s(root)
    out = tmp_path / "out"
    args = [
        "--dataset",
        "caer_s",
        "--data_dir",
        str(root),
        "--output_dir",
        str(out),
        "--cache_dir",
        str(tmp_path / "c"),
    ]
    assert main(args + ["--output_format", "arrow", "--validation_fraction", "0"]) == 0
    loaded = datasets.load_from_disk(str(out))
    assert set(loaded) == {"train", "test"} and len(loaded["train"]) == 9
    capsys.readouterr()
    # A non-empty output folder is never overwritten by accident.
    assert main(args) == 1
    assert "is not empty" in capsys.readouterr().err
    # Options of another dataset are refused.
    with pytest.raises(ValueError, match="--num_frames apply to bold, not to caer_s"):
        main(args + ["--num_frames", "4"])
    # A wrong layout is a clear message, not a traceback.
    assert main(["--dataset", "bold", "--data_dir", str(root), "--output_dir", str(tmp_path / "o2")]) == 1
    assert "DatasetLayoutError: BoLD: expected" in capsys.readouterr().err


def test_push_to_hub_failure_keeps_the_finished_output(tmp_path, capsys, monkeypatch):
    # No network here: the real push fails, after the local output is complete.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    root = tmp_path / "caer"
    make_fake_caer_s(root)
    out = tmp_path / "out"
    code = main(
        ["--dataset", "caer_s", "--data_dir", str(root), "--output_dir", str(out), "--cache_dir", str(tmp_path / "c")]
        + ["--push_to_hub", "someone/caer-s-private", "--hub_token", "hf_not_a_real_token"]
    )
    assert code == 1
    assert "pushing to someone/caer-s-private failed" in capsys.readouterr().err
    assert json.loads((out / "conversion.json").read_text())["splits"]["test"]["num_rows"] == 3
    assert "hub_token" not in json.loads((out / "conversion.json").read_text())["arguments"]
