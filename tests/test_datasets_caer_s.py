"""CAER-S builder on fake class folders (Angry in train, Anger in test), flat and nested."""

import logging

import numpy as np
import pytest

from dataset_scripts import BadSampleError, CaerS, DatasetLayoutError, UnsafePathError, load_emotion_dataset
from dataset_scripts.writers import write_caer_s, write_caer_s_face_boxes
from modeling_emofusion.labels import CAER_S_CLASSES
from tests.fake_datasets import make_fake_caer_s, solid


@pytest.fixture(scope="module")
def caer(tmp_path_factory):
    root = tmp_path_factory.mktemp("caer")
    fake = make_fake_caer_s(root)
    dataset = load_emotion_dataset(
        "caer_s", root, cache_dir=str(tmp_path_factory.mktemp("cache")), validation_fraction=0.4, validation_seed=7
    )
    return root, fake, dataset


def _by_id(dataset_dict):
    return {ex["id"]: (split, ex) for split, ds in dataset_dict.items() for ex in ds}


def test_examples_labels_and_the_anger_folder_quirk(caer):
    _, fake, dataset = caer
    found = _by_id(dataset)
    assert set(found) == set(fake["expected"])
    names = dataset["train"].features["labels"].names
    assert names == list(CAER_S_CLASSES)
    for example_id, (label, red) in fake["expected"].items():
        split, example = found[example_id]
        assert (split == "test") == example_id.startswith("test/")
        assert example["labels"] == label
        assert example["bbox"] is None
        assert example["folder"] == example_id.split("/")[1]
        assert example["original_split"] == example_id.split("/")[0]
        assert example["image"].size == fake["size"]
        assert example["image"].getpixel((0, 0))[0] == red
    assert found["train/Angry/0001.png"][1]["labels"] == found["test/Anger/0001.png"][1]["labels"] == 0


def test_validation_split_follows_the_documented_seeded_rule(caer):
    _, fake, dataset = caer
    train_ids = set(dataset["train"]["id"])
    validation_ids = set(dataset["validation"]["id"])
    assert not train_ids & validation_ids
    # Per class: the files sorted by name, positions permutation(n)[:round(0.4 * n)] of rng([seed, class]).
    expected_validation = set()
    for class_index, folder, count in ((0, "Angry", 5), (3, "Happy", 3), (4, "Neutral", 2)):
        order = np.random.default_rng([7, class_index]).permutation(count)[: round(0.4 * count)]
        expected_validation |= {f"train/{folder}/{i + 1:04d}.png" for i in order}
    expected_validation.discard("train/Neutral/0002.png")  # unreadable: skipped wherever it falls
    assert validation_ids == expected_validation
    all_train = {i for i in fake["expected"] if i.startswith("train/")}
    assert train_ids | validation_ids == all_train
    assert set(dataset["test"]["id"]) == {"test/Anger/0001.png", "test/Anger/0002.png", "test/Sad/0001.png"}


def test_nested_layout_gives_the_same_ids_and_seed_zero_fraction_disables_validation(tmp_path):
    fake = make_fake_caer_s(tmp_path / "data", nested=True)
    dataset = load_emotion_dataset(
        "caer_s", tmp_path / "data" / "CAER-S", cache_dir=str(tmp_path / "cache"), validation_fraction=0.0
    )
    assert set(dataset) == {"train", "test"}
    assert set(_by_id(dataset)) == set(fake["expected"])


def test_unreadable_image_is_skipped_and_reported_or_raises_when_strict(caer, tmp_path, caplog):
    root, fake, _ = caer
    with caplog.at_level(logging.WARNING, logger="dataset_scripts"):
        builder = CaerS(data_dir=str(root), cache_dir=str(tmp_path / "a"), validation_fraction=0.0)
        builder.download_and_prepare()
    [sample] = builder.bad_samples["train"]["samples"]
    assert sample["id"] == "train/Neutral/0002.png" and sample["reason"].startswith("unreadable image")
    assert sample["path"].endswith("CAER-S/train/Neutral/0002.png")
    assert "train/Neutral/0002.png" in caplog.text and "skipped 1 bad samples (unreadable image: 1)" in caplog.text
    with pytest.raises(BadSampleError, match=r"Neutral/0002\.png: unreadable image"):
        load_emotion_dataset("caer_s", root, cache_dir=str(tmp_path / "b"), strict=True)


def test_face_box_file_gives_clipped_boxes_and_skips_zero_area(caer, tmp_path):
    root, _, _ = caer
    boxes = write_caer_s_face_boxes(
        tmp_path / "faces.txt",
        [
            ("train/Angry/0001.png", 0, [2, 3, 10, 12]),
            ("CAER-S/train/Happy/0002.png", 3, [-4, 5, 30, 40]),  # past the 24x16 image: clipped
            ("test/Anger/0002.png", 0, [5, 5, 5, 9]),  # zero area: skipped
            ("test/Sad/0001.png", 2, [1, 1, 4, 4]),  # label disagrees with the folder: folder wins
        ],
    )
    dataset = load_emotion_dataset(
        "caer_s", root, cache_dir=str(tmp_path / "cache"), face_boxes_file=str(boxes), validation_fraction=0.0
    )
    found = _by_id(dataset)
    assert found["train/Angry/0001.png"][1]["bbox"] == [2.0, 3.0, 10.0, 12.0]
    assert found["train/Happy/0002.png"][1]["bbox"] == [0.0, 5.0, 24.0, 16.0]
    assert found["test/Sad/0001.png"][1]["bbox"] == [1.0, 1.0, 4.0, 4.0]
    assert found["test/Sad/0001.png"][1]["labels"] == CAER_S_CLASSES.index("Sad")
    assert found["train/Angry/0002.png"][1]["bbox"] is None
    assert "test/Anger/0002.png" not in found


def test_face_box_path_escaping_the_root_is_refused(caer, tmp_path):
    root, _, _ = caer
    boxes = write_caer_s_face_boxes(tmp_path / "faces.txt", [("../../etc/x.png", 0, [1, 1, 4, 4])])
    with pytest.raises(UnsafePathError, match="leaves the data root"):
        load_emotion_dataset("caer_s", root, cache_dir=str(tmp_path / "cache"), face_boxes_file=str(boxes))


def test_wrong_layouts_are_immediate_clear_errors(tmp_path):
    with pytest.raises(DatasetLayoutError, match=r"expected .*/train/<Class>/NNNN\.png"):
        load_emotion_dataset("caer_s", tmp_path, cache_dir=str(tmp_path / "c1"))
    write_caer_s(tmp_path, {"train": {"Angry": [solid((8, 8), 1)], "Joy": [solid((8, 8), 2)]}})
    with pytest.raises(DatasetLayoutError, match=r"one folder per class .*found unknown folder\(s\) \['Joy'\]"):
        load_emotion_dataset("caer_s", tmp_path, cache_dir=str(tmp_path / "c2"))
