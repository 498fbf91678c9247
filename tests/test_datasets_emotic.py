"""EMOTIC builder on a fake EMOTIC written in the owners' .mat format and the baseline's CSV form."""

import logging
import shutil

import numpy as np
import pytest
from scipy.io import savemat

from dataset_scripts import (
    AnnotationFormatError,
    BadSampleError,
    DatasetLayoutError,
    Emotic,
    UnsafePathError,
    load_emotion_dataset,
)
from dataset_scripts.writers import EmoticImage, EmoticPerson, write_emotic_mat
from tests.fake_datasets import make_fake_emotic, multi_hot, same_floats, solid


SPLIT_OF = {"train": "train", "val": "validation", "test": "test"}


@pytest.fixture(scope="module")
def emotic(tmp_path_factory):
    root = tmp_path_factory.mktemp("emotic")
    fake = make_fake_emotic(root)
    cache = tmp_path_factory.mktemp("emotic_cache")
    return root, fake, cache


@pytest.fixture(scope="module")
def mat_build(emotic):
    root, _, cache = emotic
    builder = Emotic(data_dir=str(root), cache_dir=str(cache), annotation_format="mat")
    builder.download_and_prepare()
    return builder, builder.as_dataset()


def _by_id(dataset_dict):
    return {ex["id"]: (split, ex) for split, ds in dataset_dict.items() for ex in ds}


def _check_example(example, want, split_dir_ok=True):
    assert example["bbox"] == [float(v) for v in want["bbox"]]
    assert example["labels"] == multi_hot(want["cats"])
    assert same_floats(example["vad"], want["vad"])
    assert (example["gender"], example["age"]) == (want["gender"], want["age"])
    assert example["image"].size == want["size"]
    assert example["image"].convert("RGB").getpixel((0, 0))[0] == pytest.approx(want["red"], abs=3)


def test_mat_form_gives_the_expected_examples_person_by_person(mat_build, emotic):
    _, fake, _ = emotic
    builder, dataset = mat_build
    assert set(dataset) == {"train", "validation", "test"}
    found = _by_id(dataset)
    assert set(found) == set(fake["expected"])
    for example_id, want in fake["expected"].items():
        split, example = found[example_id]
        assert split == SPLIT_OF[example_id.split("/")[0]]
        _check_example(example, want)
        assert example["source_database"] == want["db"]
        assert example["num_annotators"] == want["annotators"]
        assert example["person_index"] == int(example_id.rsplit("#p", 1)[1])
        assert example["image_path"] == example_id.split("/", 1)[1].rsplit("#", 1)[0]


def test_features_are_declared_precisely(mat_build):
    features = mat_build[1]["train"].features
    assert features["bbox"].length == 4 and features["vad"].length == 3 and features["labels"].length == 26
    assert type(features["image"]).__name__ == "Image"


def test_val_uses_combined_labels_and_averaged_vad(mat_build):
    example = _by_id(mat_build[1])["val/mscoco/images/COCO_val2014_000000000003.jpg#p0"][1]
    assert example["labels"] == multi_hot(["Anticipation", "Excitement"])
    assert example["vad"][0] == pytest.approx(19 / 3, rel=1e-6)  # non-integer combined value
    assert example["num_annotators"] == 3


def test_nan_vad_is_kept_and_empty_combined_categories_give_all_zero_labels(mat_build):
    found = _by_id(mat_build[1])
    nan_vad = found["train/mscoco/images/COCO_train2014_000000000001.jpg#p1"][1]["vad"]
    assert nan_vad[0] == 5 and np.isnan(nan_vad[1]) and nan_vad[2] == 5
    assert found["val/mscoco/images/COCO_val2014_000000000003.jpg#p1"][1]["labels"] == [0.0] * 26


def test_bad_samples_are_skipped_counted_and_logged_with_path_and_reason(emotic, tmp_path, caplog):
    root, fake, _ = emotic
    with caplog.at_level(logging.WARNING, logger="dataset_scripts"):
        builder = Emotic(data_dir=str(root), cache_dir=str(tmp_path), annotation_format="mat")
        builder.download_and_prepare()
    report = builder.bad_samples
    skipped = {sample["id"]: sample for split in report.values() for sample in split["samples"]}
    assert set(skipped) == set(fake["bad"])
    for example_id, reason in fake["bad"].items():
        assert skipped[example_id]["reason"].startswith(reason)
    assert report["train"]["skipped"] == 3 and report["train"]["kept"] == 3
    assert report["train"]["reasons"] == {"missing image": 1, "unreadable image": 1, "zero-area box": 1}
    assert report["test"]["reasons"] == {"NaN category label": 1, "unknown category": 1}
    missing = skipped["train/ade20k/images/sun_missing.jpg#p0"]["path"]
    assert missing.endswith("emotic/ade20k/images/sun_missing.jpg")
    messages = "\n".join(r.getMessage() for r in caplog.records)
    assert f"{missing} (id train/ade20k/images/sun_missing.jpg#p0): missing image" in messages
    assert "kept 3 examples, skipped 3 bad samples" in messages
    # A cached build still knows what it skipped.
    again = Emotic(data_dir=str(root), cache_dir=str(tmp_path), annotation_format="mat")
    again.download_and_prepare()
    assert again.bad_samples["test"]["skipped"] == 2


def test_strict_makes_the_first_bad_sample_an_error(emotic, tmp_path):
    root, _, _ = emotic
    with pytest.raises(BadSampleError, match=r"sun_missing\.jpg: missing image"):
        load_emotion_dataset("emotic", root, cache_dir=str(tmp_path), annotation_format="mat", strict=True)


def test_csv_form_gives_the_same_examples_as_the_mat_form(emotic, mat_build, tmp_path):
    root, fake, _ = emotic
    csv_dataset = load_emotion_dataset("emotic", root, cache_dir=str(tmp_path), annotation_format="csv")
    from_mat, from_csv = _by_id(mat_build[1]), _by_id(csv_dataset)
    # The preprocessing tool left out persons with a NaN VAD or no annotator; all else is identical.
    assert set(from_csv) == set(from_mat) - fake["csv_dropped"]
    for example_id, (split, example) in from_csv.items():
        mat_split, mat_example = from_mat[example_id]
        assert split == mat_split
        for key in example:
            if key == "image":
                assert example["image"].filename == mat_example["image"].filename
            else:
                assert example[key] == mat_example[key] or same_floats(example[key], mat_example[key], 0), key


def test_csv_alone_uses_row_rank_ids_and_otherwise_the_same_values(emotic, mat_build, tmp_path):
    root, _, _ = emotic
    alone = tmp_path / "emotic_csv_only"
    shutil.copytree(root / "emotic", alone / "emotic")
    shutil.copytree(root / "emotic_pre", alone / "emotic_pre")
    dataset = load_emotion_dataset("emotic", alone, cache_dir=str(tmp_path / "cache"))
    from_mat = _by_id(mat_build[1])
    found = _by_id(dataset)
    # train image 1: person 1 was dropped by the preprocessing, so ranks are 0 for p0; val: p0 -> r0, p1 -> r1.
    assert set(found) == {
        "train/mscoco/images/COCO_train2014_000000000001.jpg#r0",
        "train/framesdb/images/frame_abcdefgh12345678.jpg#r0",
        "val/mscoco/images/COCO_val2014_000000000003.jpg#r0",
        "val/mscoco/images/COCO_val2014_000000000003.jpg#r1",
        "test/ade20k/images/sun_abcdefg.jpg#r0",
    }
    for example_id, (_, example) in found.items():
        base, rank = example_id.rsplit("#r", 1)
        mat_example = from_mat[f"{base}#p{rank}"][1]
        assert example["person_index"] is None
        assert example["num_annotators"] == (1 if example_id.startswith("train") else None)
        assert example["source_database"] == mat_example["source_database"]
        assert example["bbox"] == mat_example["bbox"] and example["labels"] == mat_example["labels"]


def test_older_annotation_file_name_is_found(tmp_path):
    record = EmoticImage("a.jpg", "mscoco/images", (20, 20), [EmoticPerson([1, 1, 9, 9], ["Peace"], [5, 5, 5])])
    record.image = solid((20, 20), 5)
    write_emotic_mat(tmp_path / "data", {"train": [record]}, annotations_name="CVPR17_Annotations.mat")
    dataset = load_emotion_dataset("emotic", tmp_path / "data", cache_dir=str(tmp_path / "cache"))
    assert list(dataset) == ["train"] and dataset["train"][0]["id"] == "train/mscoco/images/a.jpg#p0"


def test_changed_annotations_rebuild_the_cache(tmp_path):
    def write(categories):
        record = EmoticImage("a.jpg", "mscoco/images", (20, 20), [EmoticPerson([1, 1, 9, 9], categories, [5, 5, 5])])
        record.image = solid((20, 20), 5)
        write_emotic_mat(tmp_path / "data", {"train": [record]})

    write(["Peace"])
    first = load_emotion_dataset("emotic", tmp_path / "data", cache_dir=str(tmp_path / "cache"))
    write(["Fear", "Pain"])
    second = load_emotion_dataset("emotic", tmp_path / "data", cache_dir=str(tmp_path / "cache"))
    assert first["train"][0]["labels"] == multi_hot(["Peace"])
    assert second["train"][0]["labels"] == multi_hot(["Fear", "Pain"])


def test_wrong_layouts_are_immediate_clear_errors(tmp_path, emotic):
    root, _, _ = emotic
    with pytest.raises(DatasetLayoutError, match=r"emotic/\{mscoco,framesdb,ade20k,emodb_small\}/images"):
        load_emotion_dataset("emotic", tmp_path, cache_dir=str(tmp_path / "c1"))
    (tmp_path / "emotic").mkdir()
    with pytest.raises(DatasetLayoutError, match=r"Annotations/Annotations\.mat .*emotic_pre/\{train,val,test\}\.csv"):
        load_emotion_dataset("emotic", tmp_path, cache_dir=str(tmp_path / "c2"))
    with pytest.raises(DatasetLayoutError, match="annotation_format='csv' but no CSV"):
        load_emotion_dataset("emotic", tmp_path, cache_dir=str(tmp_path / "c3"), annotation_format="csv")
    (tmp_path / "Annotations").mkdir()
    savemat(tmp_path / "Annotations" / "Annotations.mat", {"something": np.zeros(3)})
    with pytest.raises(AnnotationFormatError, match="expected the variables 'train', 'val', 'test'"):
        load_emotion_dataset("emotic", tmp_path, cache_dir=str(tmp_path / "c4"))


def test_missing_field_is_named(tmp_path):
    person = np.zeros((1, 1), dtype=[("body_bbox", object), ("gender", object)])
    person[0, 0]["body_bbox"] = np.array([[1.0, 1, 5, 5]])
    person[0, 0]["gender"] = "Male"
    image = np.zeros((1, 1), dtype=[("filename", object), ("folder", object), ("person", object)])
    image[0, 0]["filename"], image[0, 0]["folder"], image[0, 0]["person"] = "a.jpg", "mscoco/images", person
    (tmp_path / "emotic").mkdir()
    (tmp_path / "Annotations").mkdir()
    savemat(tmp_path / "Annotations" / "Annotations.mat", {"train": image})
    with pytest.raises(
        AnnotationFormatError, match=r"train\(1\)\.person\(1\): struct has no field 'annotations_categories'"
    ):
        load_emotion_dataset("emotic", tmp_path, cache_dir=str(tmp_path / "cache"))


def test_bad_csv_header_and_column_count(tmp_path, emotic):
    root, _, _ = emotic
    data = tmp_path / "data"
    shutil.copytree(root / "emotic", data / "emotic")
    (data / "emotic_pre").mkdir()
    (data / "emotic_pre" / "train.csv").write_text("Index,Folder,Filename\r\n0,mscoco/images,a.jpg\r\n")
    with pytest.raises(AnnotationFormatError, match="expected the header Index,Folder,Filename,Image Size,BBox"):
        load_emotion_dataset("emotic", data, cache_dir=str(tmp_path / "c1"))
    header = (root / "emotic_pre" / "train.csv").read_text().splitlines()[0]
    (data / "emotic_pre" / "train.csv").write_text(header + '\r\n0,mscoco/images,a.jpg,"[1, 2]"\r\n')
    with pytest.raises(AnnotationFormatError, match=r"train\.csv:2: expected 9 columns \(.*Gender, Age\), got 4"):
        load_emotion_dataset("emotic", data, cache_dir=str(tmp_path / "c2"))


@pytest.mark.parametrize(
    "folder, filename",
    [("../outside/images", "a.jpg"), ("/etc", "passwd"), ("mscoco/images", "../../../../x.jpg")],
)
def test_paths_escaping_the_data_root_are_refused(tmp_path, folder, filename):
    record = EmoticImage(filename, folder, (20, 20), [EmoticPerson([1, 1, 9, 9], ["Peace"], [5, 5, 5])])
    write_emotic_mat(tmp_path / "data", {"train": [record]})
    with pytest.raises(UnsafePathError, match="leaves the data root|absolute path"):
        load_emotion_dataset("emotic", tmp_path / "data", cache_dir=str(tmp_path / "cache"))


def test_a_split_with_only_bad_samples_comes_back_empty(tmp_path):
    good = EmoticImage("a.jpg", "mscoco/images", (20, 20), [EmoticPerson([1, 1, 9, 9], ["Peace"], [5, 5, 5])])
    good.image = solid((20, 20), 5)
    gone = EmoticImage("gone.jpg", "mscoco/images", (20, 20), [EmoticPerson([1, 1, 9, 9], ["Peace"], [5, 5, 5])])
    write_emotic_mat(tmp_path / "data", {"train": [good], "test": [gone]})
    dataset = load_emotion_dataset("emotic", tmp_path / "data", cache_dir=str(tmp_path / "cache"))
    assert len(dataset["train"]) == 1 and len(dataset["test"]) == 0
    assert dataset["test"].features == dataset["train"].features


def test_streamed_struct_elements_equal_loadmat(emotic):
    from scipy.io import loadmat

    from dataset_scripts.matfile import iter_struct_array

    def plain(value):
        if hasattr(value, "_fieldnames"):
            return {name: plain(getattr(value, name)) for name in value._fieldnames}
        if isinstance(value, np.ndarray):
            return ("array", value.shape, [plain(v) for v in value.flat])
        return "nan" if isinstance(value, float) and np.isnan(value) else value

    path = emotic[0] / "Annotations" / "Annotations.mat"
    for split in ("train", "val", "test"):
        whole = loadmat(str(path), squeeze_me=True, struct_as_record=False)[split]
        whole = list(whole.flat) if isinstance(whole, np.ndarray) else [whole]
        assert [plain(e) for e in iter_struct_array(path, split)] == [plain(e) for e in whole]
    with pytest.raises(KeyError):
        list(iter_struct_array(path, "nosuchsplit"))


def test_fields_are_read_by_name_not_position(emotic, mat_build, tmp_path, monkeypatch):
    from dataset_scripts import writers

    _, fake, _ = emotic
    for name in ("_TRAIN_PERSON_FIELDS", "_EVAL_PERSON_FIELDS", "_IMAGE_FIELDS"):
        monkeypatch.setattr(writers, name, tuple(reversed(getattr(writers, name))))
    write_emotic_mat(tmp_path / "data", fake["splits"])
    reordered = _by_id(load_emotion_dataset("emotic", tmp_path / "data", cache_dir=str(tmp_path / "cache")))
    original = _by_id(mat_build[1])
    assert set(reordered) == set(original)
    for example_id, (_, example) in reordered.items():
        assert {k: v for k, v in example.items() if k not in ("image", "vad")} == {
            k: v for k, v in original[example_id][1].items() if k not in ("image", "vad")
        }
        assert same_floats(example["vad"], original[example_id][1]["vad"], 0)


def test_csv_is_the_baseline_excel_dialect_with_python_reprs(emotic):
    root, _, _ = emotic
    raw = (root / "emotic_pre" / "val.csv").read_bytes()
    lines = raw.split(b"\r\n")
    assert lines[0] == b"Index,Folder,Filename,Image Size,BBox,Categorical_Labels,Continuous_Labels,Gender,Age"
    assert lines[1] == (
        b'0,mscoco/images,COCO_val2014_000000000003.jpg,"[36, 28]","[0, 0, 18, 28]",'
        b"\"['Anticipation', 'Excitement']\",\"[6.333333333333333, 4.5, 7.0]\",Female,Adult"
    )
