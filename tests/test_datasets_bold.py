"""BoLD builder on fake clips: a real mp4 (PyAV), pre-extracted frames, joints arrays, headerless CSVs."""

import logging
import shutil

import pytest

from dataset_scripts import AnnotationFormatError, Bold, DatasetLayoutError, UnsafePathError, load_emotion_dataset
from dataset_scripts.writers import BoldAnnotation, write_bold_annotations
from modeling_emofusion.labels import BOLD_CSV_CATEGORIES, EMOTIC_CATEGORIES
from tests.fake_datasets import FIRST_FRAME, VIDEO_A, bold_frame_value, make_fake_bold, multi_hot, same_floats


@pytest.fixture(scope="module")
def bold(tmp_path_factory):
    root = tmp_path_factory.mktemp("bold")
    fake = make_fake_bold(root)
    logger = logging.getLogger("dataset_scripts")
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        builder = Bold(
            data_dir=str(root), cache_dir=str(tmp_path_factory.mktemp("cache")), num_frames=fake["num_frames"]
        )
        builder.download_and_prepare()
    finally:
        logger.removeHandler(handler)
    return root, fake, builder, builder.as_dataset(), records


def _by_id(dataset_dict):
    return {ex["id"]: (split, ex) for split, ds in dataset_dict.items() for ex in ds}


def test_examples_frames_boxes_and_labels_person_by_person(bold):
    _, fake, _, dataset, _ = bold
    found = _by_id(dataset)
    assert set(found) == set(fake["expected"])
    for example_id, want in fake["expected"].items():
        split, example = found[example_id]
        assert split == {"train": "train", "val": "validation", "test": "test"}[example_id.split("/")[0]]
        assert example["frame_indices"] == want["indices"]
        assert len(example["frames"]) == len(want["indices"])
        for frame, index in zip(example["frames"], want["indices"]):
            # Each fake frame's red value tells which frame it is: the right frames were decoded.
            assert frame.size == (64, 48)
            assert frame.getpixel((2, 2))[0] == pytest.approx(bold_frame_value(index - FIRST_FRAME), abs=4)
        assert len(example["frame_bboxes"]) == len(want["boxes"])
        for got, expected in zip(example["frame_bboxes"], want["boxes"]):
            assert same_floats(got, expected)
        union = [min(b[0] for b in want["boxes"]), min(b[1] for b in want["boxes"])]
        union += [max(b[2] for b in want["boxes"]), max(b[3] for b in want["boxes"])]
        assert same_floats(example["bbox"], union)
        if want["labels"] is None:
            assert example["labels"] is None and example["soft_labels"] is None and example["vad"] is None
        else:
            assert example["labels"] == multi_hot(want["labels"])
            soft = [want["soft"].get(name, 0.0) for name in EMOTIC_CATEGORIES]
            assert same_floats(example["soft_labels"], soft)
            assert same_floats(example["vad"], want["vad"])
        gender, age, ethnicity, confidence = want["meta"]
        assert (example["gender"], example["age"], example["ethnicity"]) == (gender, age, ethnicity)
        assert example["annotation_confidence"] == (pytest.approx(confidence) if confidence else None)
        assert example["video"] == example_id.split("/", 1)[1].rsplit("#", 1)[0]
        assert example["person_id"] == int(example_id.rsplit("#p", 1)[1])


def test_categories_are_remapped_to_emotic_order_and_binarised_at_one_half(bold):
    example = _by_id(bold[3])[f"train/{VIDEO_A}#p0"][1]
    # BoLD's first CSV category is Peace; in EMOTIC's order Peace is index 18.
    assert BOLD_CSV_CATEGORIES[0] == "Peace" and example["soft_labels"][18] == 0.5 and example["labels"][18] == 1.0
    yearning = EMOTIC_CATEGORIES.index("Yearning")
    assert example["soft_labels"][yearning] == pytest.approx(0.49) and example["labels"][yearning] == 0.0


def test_bad_clips_are_skipped_counted_and_logged(bold):
    _, fake, builder, _, records = bold
    report = builder.bad_samples["train"]
    got = [(s["id"], s["reason"]) for s in report["samples"]]
    assert [i for i, _ in got] == [i for i, _ in fake["bad"]]
    for (_, reason), (_, expected) in zip(got, fake["bad"]):
        assert reason.startswith(expected)
    paths = {s["id"]: s["path"] for s in report["samples"]}
    assert paths[fake["bad"][0][0]].endswith("videos/005/missingvideo.mp4/0001.mp4")
    assert paths[fake["bad"][1][0]].endswith("joints/003/IzvOYVMltkI.mp4/0114.npy")
    assert report["kept"] == 2 and report["skipped"] == 5
    messages = [r.getMessage() for r in records]
    assert any("missingvideo.mp4/0001.mp4" in m and "missing video" in m for m in messages)
    assert any("kept 2 examples, skipped 5 bad samples" in m for m in messages)


def test_wrong_column_count_is_an_immediate_error(tmp_path):
    (tmp_path / "BOLD_public" / "annotations").mkdir(parents=True)
    for folder in ("videos", "joints"):
        (tmp_path / "BOLD_public" / folder).mkdir()
    (tmp_path / "BOLD_public" / "annotations" / "train.csv").write_text("001/a.mp4/0001.mp4,0,1,5,0.5,0.5\n")
    with pytest.raises(AnnotationFormatError, match=r"train\.csv:1: expected 37 columns \(video, person_id, .*got 6"):
        load_emotion_dataset("bold", tmp_path, cache_dir=str(tmp_path / "cache"))


def test_test_meta_with_all_37_columns_is_read_without_labels(tmp_path, bold):
    root, _, _, dataset, _ = bold
    data = tmp_path / "data"
    shutil.copytree(root, data)
    write_bold_annotations(data, "test", [BoldAnnotation(VIDEO_A, 0, 100, 123, {"Peace": 0.9})], with_labels=True)
    (data / "BOLD_public" / "annotations" / "train.csv").unlink()
    (data / "BOLD_public" / "annotations" / "val.csv").unlink()
    rebuilt = load_emotion_dataset("bold", data, cache_dir=str(tmp_path / "cache"), num_frames=5)
    example = rebuilt["test"][0]
    assert example["labels"] is None and example["vad"] is None
    assert example["annotation_confidence"] == pytest.approx(0.9)
    assert example["frame_indices"] == dataset["test"][0]["frame_indices"]


def test_missing_folders_and_escaping_paths(tmp_path):
    with pytest.raises(DatasetLayoutError, match=r"annotations/\{train\.csv,val\.csv,test_meta\.csv\}"):
        load_emotion_dataset("bold", tmp_path, cache_dir=str(tmp_path / "c1"))
    write_bold_annotations(tmp_path, "train", [BoldAnnotation("../../../etc/x.mp4", 0, 1, 5)])
    with pytest.raises(DatasetLayoutError, match=r"BOLD_public/joints"):
        load_emotion_dataset("bold", tmp_path, cache_dir=str(tmp_path / "c2"))
    for folder in ("videos", "joints"):
        (tmp_path / "BOLD_public" / folder).mkdir()
    with pytest.raises(UnsafePathError, match="leaves the data root"):
        load_emotion_dataset("bold", tmp_path, cache_dir=str(tmp_path / "c3"))
