"""One bad sample never stops a build: each fault below is skipped and counted with its reason
(file, row and field), `strict=True` raises naming them, and what does stop a build says why.

The faults are the ones a real copy of a dataset has: an interrupted copy (a zero-byte joints
file), a damaged or hand-edited annotation (a NaN frame number, a cell that does not parse, a cell
over the csv module's field limit, bytes that are not UTF-8, a row with a column missing), and a
picture over PIL's decompression-bomb limit.
"""

import csv
import json
import logging
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image
from scipy.io import loadmat, savemat

from dataset_scripts import BadSampleError, UnsafePathError, get_builder, load_emotion_dataset
from dataset_scripts.common import BadSampleLog, probe_image
from dataset_scripts.writers import (
    BoldAnnotation,
    EmoticImage,
    EmoticPerson,
    bold_joints_row,
    write_bold_annotations,
    write_bold_extracted_frames,
    write_bold_joints,
    write_caer_s,
    write_caer_s_face_boxes,
    write_emotic_csv,
    write_emotic_mat,
)
from modeling_emofusion.labels import BOLD_CSV_CATEGORIES
from tests.fake_datasets import solid


REPO = Path(__file__).resolve().parents[1]
OVERSIZED = "x" * (csv.field_size_limit() + 10)


def bomb_png(path: Path, width: int = 20000, height: int = 20000) -> Path:
    """A valid PNG header claiming `width x height` pixels (over PIL's limit), a few bytes on disk."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )
    return path


def _reasons(report: dict) -> dict[str, str]:
    """`{path: reason}` of a split's skipped samples."""
    return {sample["path"]: sample["reason"] for sample in report["samples"]}


def _one(reasons: dict[str, str], path_end: str) -> str:
    [reason] = [r for p, r in reasons.items() if p.endswith(path_end)]
    return reason


# ---------------------------------------------------------------------------------------------
# BoLD
# ---------------------------------------------------------------------------------------------


def _keypoints(x1, y1, x2, y2):
    points = np.zeros((18, 3))
    points[0] = (x1, y1, 0.9)
    points[10] = (x2, y2, 0.9)
    return points


def _bold_row(video, person, lo, hi, **cells):
    """A 37-column BoLD row as strings; `cells` overrides columns by name."""
    row = BoldAnnotation(video, person, lo, hi, {"Happiness": 0.8}, vad=(5, 5, 5))
    values = [row.video, row.person_id, row.min_frame, row.max_frame]
    values += [row.scores.get(name, 0.0) for name in BOLD_CSV_CATEGORIES]
    values += [*row.vad, row.gender, row.age, row.ethnicity, row.confidence]
    names = ["video", "person_id", "min_frame", "max_frame", *BOLD_CSV_CATEGORIES]
    names += ["Valence", "Arousal", "Dominance", "Gender", "Age", "Ethnicity", "annotation_confidence"]
    for name, value in cells.items():
        values[names.index(name)] = value
    return [str(v) for v in values]


def make_faulty_bold(root: Path) -> dict:
    """A BoLD whose train CSV holds two good person-clips among one of each fault.

    Returns `{line number: expected reason start}` of the bad rows and the CSV path.
    """
    good, zero, nan, text = (
        "001/good.mp4/0001.mp4",
        "002/zero.mp4/0001.mp4",
        "003/nan.mp4/0001.mp4",
        "004/s.mp4/0001.mp4",
    )
    frames = [solid((32, 24), 10 * k) for k in range(8)]
    for video in (good, zero, nan, text):
        write_bold_extracted_frames(root, video, frames)
    rows = [bold_joints_row(100 + k, p, _keypoints(2 + k, 2, 20 + k, 20)) for k in range(8) for p in (0, 1)]
    write_bold_joints(root, good, np.stack(rows))
    nan_rows = np.stack(rows)
    nan_rows[3, 0] = np.nan  # one NaN frame_idx
    write_bold_joints(root, nan, nan_rows)
    joints = root / "BOLD_public" / "joints"
    (joints / "002" / "zero.mp4").mkdir(parents=True)
    (joints / "002" / "zero.mp4" / "0001.npy").write_bytes(b"")  # an interrupted copy
    (joints / "004" / "s.mp4").mkdir(parents=True)
    np.save(joints / "004" / "s.mp4" / "0001.npy", np.full((8, 56), "a"))  # a string array
    write_bold_annotations(root, "val", [BoldAnnotation(good, 0, 101, 106, {"Peace": 0.9})])
    csv_path = root / "BOLD_public" / "annotations" / "train.csv"
    lines = [
        _bold_row(good, 0, 100, 107),
        _bold_row(zero, 0, 100, 107),
        _bold_row(nan, 0, 100, 107),
        _bold_row(text, 0, 100, 107),
        _bold_row(good, 1, "abc", 107),
        _bold_row(good, 1, 100, 107, Valence="high"),
        _bold_row(good, 1, 100, 107)[:20],
        _bold_row(good, 1, 100, 107, Gender=OVERSIZED),
        _bold_row(good, 1, 100, 107),
    ]
    with open(csv_path, "w", newline="") as handle:
        csv.writer(handle).writerows(lines)
    with open(csv_path, "ab") as handle:  # a row with bytes that are not UTF-8
        handle.write(",".join(_bold_row(good, 2, 100, 107)).replace("001/good", "001/g\xff\xfed").encode("latin-1"))
    bad = {
        2: "empty joints file (0 bytes",
        3: "bad joints array (frame_idx is NaN or infinite in 1 of 16 rows, the first at row 3",
        4: "bad joints array (dtype <U1; expected numbers)",
        5: "bad CSV cell (column 'min_frame' 'abc'; expected an integer)",
        6: "bad CSV cell (column 'Valence' 'high'; expected a number)",
        7: "wrong column count (20; expected 37",
        8: "unreadable CSV row (field larger than field limit",
        10: "unreadable CSV row (bytes that are not UTF-8 text)",
    }
    return {"bad": bad, "csv": csv_path, "good": good}


@pytest.fixture(scope="module")
def faulty_bold(tmp_path_factory):
    root = tmp_path_factory.mktemp("bold_faults")
    return root, make_faulty_bold(root)


def test_bold_build_completes_skipping_each_faulty_row_with_file_row_and_field(faulty_bold, tmp_path, caplog):
    root, fake = faulty_bold
    builder = get_builder("bold", root, cache_dir=str(tmp_path / "c"), num_frames=4)
    with caplog.at_level(logging.WARNING, logger="dataset_scripts"):
        builder.download_and_prepare()
    report = builder.bad_samples["train"]
    assert report["kept"] == 2 and report["skipped"] == len(fake["bad"])
    assert builder.as_dataset("train")["id"] == [f"train/{fake['good']}#p0", f"train/{fake['good']}#p1"]
    reasons = _reasons(report)
    for line, reason in fake["bad"].items():
        if line in (2, 3, 4):  # joints faults are the joints file's
            stem = {2: "002/zero.mp4", 3: "003/nan.mp4", 4: "004/s.mp4"}[line]
            assert _one(reasons, f"joints/{stem}/0001.npy").startswith(reason)
        else:
            assert reasons[f"{fake['csv']}:{line}"].startswith(reason), line
    assert "csv.field_size_limit()" in reasons[f"{fake['csv']}:8"]
    assert report["reasons"] == {
        "empty joints file": 1,
        "bad joints array": 2,
        "bad CSV cell": 2,
        "wrong column count": 1,
        "unreadable CSV row": 2,
    }
    # One line per skip, naming the row; the cell itself is cut short in the message.
    assert f"skipping {fake['csv']}:5" in caplog.text
    assert max(len(record.getMessage()) for record in caplog.records) < 1000


@pytest.mark.parametrize(
    "line, field",
    [(2, "empty joints file"), (5, "column 'min_frame'"), (8, "field larger than field limit")],
)
def test_bold_strict_names_the_file_row_and_field(faulty_bold, tmp_path, line, field):
    root, fake = faulty_bold
    copy = tmp_path / "copy" / "BOLD_public"
    (copy / "annotations").mkdir(parents=True)
    for folder in ("joints", "mmextract"):
        os.symlink(root / "BOLD_public" / folder, copy / folder)
    # The first (good) row, then the faulty one, which is line 2 of this copy's train.csv.
    lines = fake["csv"].read_bytes().split(b"\r\n")
    (copy / "annotations" / "train.csv").write_bytes(lines[0] + b"\r\n" + lines[line - 1] + b"\r\n")
    with pytest.raises(BadSampleError) as caught:
        load_emotion_dataset("bold", copy.parent, cache_dir=str(tmp_path / "c"), num_frames=4, strict=True)
    message = str(caught.value)
    assert field in message
    assert ("joints/002/zero.mp4/0001.npy" if line == 2 else "annotations/train.csv:2") in message


def test_a_path_leaving_the_data_root_stops_the_build_naming_the_row(tmp_path):
    # Not a bad sample but a refused annotation file: the build stops, naming the file, row and field.
    rows = [BoldAnnotation("001/a.mp4/0001.mp4", 0, 1, 5), BoldAnnotation("../../../etc/x.mp4", 0, 1, 5)]
    write_bold_annotations(tmp_path, "train", rows)
    for folder in ("videos", "joints"):
        (tmp_path / "BOLD_public" / folder).mkdir()
    with pytest.raises(
        UnsafePathError, match=r"train\.csv:2: field 'video' holds '\.\./\.\./\.\./etc/x\.mp4', which leaves"
    ):
        load_emotion_dataset("bold", tmp_path, cache_dir=str(tmp_path / "c"))


def test_joints_with_nan_coordinates_count_as_missing_joints():
    from dataset_scripts.bold_frames import joints_box

    points = _keypoints(2, 2, 20, 20)
    points[4] = (np.nan, 50, 0.9)  # a NaN joint with a high confidence: ignored, not a NaN box
    assert joints_box(bold_joints_row(0, 0, points), 0.1, 0.0) == [2.0, 2.0, 20.0, 20.0]


# ---------------------------------------------------------------------------------------------
# EMOTIC
# ---------------------------------------------------------------------------------------------


def _emotic_person(bbox=(1, 1, 15, 15), categories=("Peace",)):
    return EmoticPerson(list(bbox), list(categories), [5, 5, 5])


def make_faulty_emotic_csv(root: Path) -> dict:
    """emotic_pre/train.csv with good rows around one row of each fault; the images alongside."""
    records = [
        EmoticImage(f"COCO_train2014_{i:012d}.jpg", "mscoco/images", (20, 20), [_emotic_person()]) for i in range(2)
    ]
    records.append(EmoticImage("bomb.jpg", "mscoco/images", (20, 20), [_emotic_person()]))
    for record in records[:2]:
        path = root / "emotic" / "mscoco" / "images" / record.filename
        path.parent.mkdir(parents=True, exist_ok=True)
        solid((20, 20), 10).save(path)
    bomb_png(root / "emotic" / "mscoco" / "images" / "bomb.jpg")
    path = write_emotic_csv(root, {"train": records})["train"]
    rows = list(csv.reader(open(path, newline="")))
    good = rows[1]
    faulty = [
        good[:4] + ["[1, 2, x, 4]"] + good[5:],  # BBox that does not parse
        good[:6] + ["['a', 5, 5]"] + good[7:],  # Continuous_Labels that are not numbers
        good[:5] + ["[3.0]"] + good[6:],  # a category that is a number
        good[:5] + [f"['{OVERSIZED}']"] + good[6:],  # a cell over the csv field limit
        good[:7],  # a column missing
        good[:5] + ["[1, 2, 3]"] + good[6:],  # Categorical_Labels that are numbers, not names
    ]
    with open(path, "w", newline="") as handle:
        csv.writer(handle, dialect="excel").writerows([rows[0], good, *faulty, rows[2], rows[3]])
    limit = csv.field_size_limit()
    bad = {
        3: "bad CSV cell (BBox '[1, 2, x, 4]' does not parse as a Python literal (ValueError); expected a list of "
        "numbers)",
        4: "bad CSV cell (Continuous_Labels \"['a', 5, 5]\" holds 'a'; expected a list of numbers)",
        5: "category label is not a name (the number 3.0; expected one of Affection, Anger,",
        6: f"unreadable CSV row (field larger than field limit ({limit}); csv.field_size_limit() sets the limit)",
        7: "wrong column count (7; expected 9: the public baseline's emotic_pre form: Index, Folder,",
        8: "category label is not a name (the number 1.0; expected one of",
    }
    return {"csv": path, "bad": bad}


def test_emotic_csv_faults_and_an_oversized_picture_are_counted_skips(tmp_path, caplog):
    fake = make_faulty_emotic_csv(tmp_path / "data")
    builder = get_builder("emotic", tmp_path / "data", cache_dir=str(tmp_path / "c"))
    with caplog.at_level(logging.WARNING, logger="dataset_scripts"):
        builder.download_and_prepare()
    report = builder.bad_samples["train"]
    assert report["kept"] == 2 and report["skipped"] == 7
    assert builder.as_dataset("train")["id"] == [
        "train/mscoco/images/COCO_train2014_000000000000.jpg#r0",
        "train/mscoco/images/COCO_train2014_000000000001.jpg#r0",
    ]
    reasons = _reasons(report)
    for line, reason in fake["bad"].items():
        assert reasons[f"{fake['csv']}:{line}"].startswith(reason), (line, reasons)
    bomb = _one(reasons, "mscoco/images/bomb.jpg")
    assert bomb.startswith("picture over PIL's decompression-bomb limit (400,000,000 pixels, over 2 x ")
    # One line names the file and says how to allow it.
    [line] = [r.getMessage() for r in caplog.records if "bomb.jpg" in r.getMessage()]
    assert "skipping" in line and "set PIL.Image.MAX_IMAGE_PIXELS to a larger number, or None" in line


def test_emotic_csv_strict_names_file_row_and_field(tmp_path):
    fake = make_faulty_emotic_csv(tmp_path / "data")
    with pytest.raises(BadSampleError, match=r"train\.csv:3: bad CSV cell \(BBox '\[1, 2, x, 4\]' does not parse"):
        load_emotion_dataset("emotic", tmp_path / "data", cache_dir=str(tmp_path / "c"), strict=True)
    assert fake["csv"].is_file()


def test_emotic_mat_records_with_wrong_values_are_skipped_and_a_number_category_is_named(tmp_path):
    records = [
        EmoticImage(
            "a.jpg",
            "mscoco/images",
            (20, 20),
            [_emotic_person(), _emotic_person(categories=[3.0]), _emotic_person(), _emotic_person()],
            image=solid((20, 20), 5),
        ),
        EmoticImage("b.jpg", "mscoco/images", (20, 20), [_emotic_person()], image=solid((20, 20), 6)),
    ]
    path = write_emotic_mat(tmp_path / "data", {"train": records})
    # Damage two persons' values and one image's filename, as a hand-edited copy would.
    contents = loadmat(path, squeeze_me=False, struct_as_record=True)
    train = contents["train"]
    persons = train[0, 0]["person"]
    persons[0, 2]["body_bbox"] = np.array(["a box"])
    persons[0, 3]["annotations_continuous"][0, 0]["valence"] = np.array(["high"])
    train[0, 1]["filename"] = np.array([[7.0]])
    savemat(path, {"train": train}, do_compression=True, oned_as="row")
    builder = get_builder("emotic", tmp_path / "data", cache_dir=str(tmp_path / "c"))
    builder.download_and_prepare()
    report = builder.bad_samples["train"]
    assert report["kept"] == 1
    by_id = {sample["id"]: sample for sample in report["samples"]}
    number = by_id["train/mscoco/images/a.jpg#p1"]["reason"]
    assert number.startswith("category label is not a name (the number 3.0; expected one of Affection, Anger")
    assert "NaN" not in number
    # The path is the record; the reason names the field and what it should hold.
    bbox = by_id["train/mscoco/images/a.jpg#p2"]
    assert bbox["path"].endswith("Annotations/Annotations.mat: train(1).person(3)")
    assert (
        bbox["reason"]
        == "bad .mat record (Annotations.mat: train(1).person(3).body_bbox holds 'a box'; expected numbers)"
    )
    vad = by_id["train/mscoco/images/a.jpg#p3"]
    assert vad["path"].endswith("train(1).person(4)")
    assert vad["reason"] == (
        "bad .mat record (Annotations.mat: train(1).person(4).annotations_continuous.valence holds 'high'; "
        "expected numbers)"
    )
    image = by_id[None]
    assert image["path"].endswith("Annotations.mat: train(2)")
    assert image["reason"] == (
        "bad .mat record (Annotations.mat: train(2): 'filename' and 'folder' must be non-empty strings, got 7.0 and "
        "'mscoco/images')"
    )
    with pytest.raises(
        BadSampleError, match=r"Annotations\.mat: train\(1\)\.person\(2\): category label is not a name"
    ):
        load_emotion_dataset("emotic", tmp_path / "data", cache_dir=str(tmp_path / "c2"), strict=True)


def test_an_unexpected_failure_names_the_row_and_the_cause_in_its_own_message(tmp_path, monkeypatch):
    from dataset_scripts import emotic

    make_faulty_emotic_csv(tmp_path / "data")

    def broken(*args):
        raise RuntimeError("something no check foresaw")

    monkeypatch.setattr(emotic, "clip_box_or_reason", broken)
    with pytest.raises(datasets.exceptions.DatasetGenerationError) as caught:
        load_emotion_dataset("emotic", tmp_path / "data", cache_dir=str(tmp_path / "c"))
    message = str(caught.value)
    assert "EMOTIC train: the build stopped while reading" in message
    assert "emotic_pre/train.csv:2: RuntimeError: something no check foresaw" in message


# ---------------------------------------------------------------------------------------------
# CAER-S
# ---------------------------------------------------------------------------------------------


def test_caer_s_empty_class_folder_and_empty_split_warn_and_still_build(tmp_path, caplog):
    write_caer_s(tmp_path, {"train": {"Angry": [solid((8, 8), 1)] * 3, "Happy": []}, "test": {"Anger": []}})
    bomb_png(tmp_path / "CAER-S" / "train" / "Angry" / "0009.png")
    with caplog.at_level(logging.WARNING, logger="dataset_scripts"):
        dataset = load_emotion_dataset("caer_s", tmp_path, cache_dir=str(tmp_path / "c"), validation_fraction=0)
    assert len(dataset["train"]) == 3 and len(dataset["test"]) == 0
    assert f"the class folder {tmp_path / 'CAER-S' / 'train' / 'Happy'} holds no image" in caplog.text
    assert "class Happy has no train example" in caplog.text
    assert "CAER-S test: no image in any class folder" in caplog.text and "the split is empty" in caplog.text
    assert "0009.png (id train/Angry/0009.png): picture over PIL's decompression-bomb limit" in caplog.text


def test_caer_s_bad_face_box_lines_skip_their_image_naming_file_and_line(tmp_path):
    write_caer_s(tmp_path, {"train": {"Angry": [solid((24, 16), 1)] * 3}})
    boxes = write_caer_s_face_boxes(tmp_path / "faces.txt", [("train/Angry/0001.png", 0, [1, 1, 8, 8])])
    with open(boxes, "a") as handle:
        handle.write("train/Angry/0002.png,0,1,1,8\n")  # a field missing
        handle.write("train/Angry/0003.png,0,1,one,8,8\n")  # a coordinate that is not a number
    options = {"cache_dir": str(tmp_path / "c"), "face_boxes_file": str(boxes), "validation_fraction": 0}
    builder = get_builder("caer_s", tmp_path, **options)
    builder.download_and_prepare()
    assert builder.as_dataset("train")["id"] == ["train/Angry/0001.png"]
    reasons = {s["id"]: s["reason"] for s in builder.bad_samples["train"]["samples"]}
    assert (
        reasons["train/Angry/0002.png"]
        == f"bad face-box line ({boxes}:2: 5 fields; expected 6: relpath,label,x1,y1,x2,y2)"
    )
    assert reasons["train/Angry/0003.png"].startswith(f"bad face-box line ({boxes}:3: label and box ")
    options["cache_dir"] = str(tmp_path / "c2")
    with pytest.raises(BadSampleError, match=r"faces\.txt:2: 5 fields; expected 6"):
        load_emotion_dataset("caer_s", tmp_path, strict=True, **options)


# ---------------------------------------------------------------------------------------------
# Pictures: checked without a full-size decode
# ---------------------------------------------------------------------------------------------


def test_image_check_decodes_jpegs_at_reduced_size_and_still_finds_truncation(tmp_path):
    from dataset_scripts.common import _check_image_data

    pixels = (np.random.default_rng(0).random((600, 800, 3)) * 255).astype("uint8")
    Image.fromarray(pixels).save(tmp_path / "a.jpg", quality=90)
    with Image.open(tmp_path / "a.jpg") as image:
        _check_image_data(image)
        assert image.size == (100, 75)  # decoded at 1/8 scale, not into an 800x600 buffer
    assert probe_image(tmp_path / "a.jpg") == ((800, 600), None)
    data = (tmp_path / "a.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) * 9 // 10])
    size, reason = probe_image(tmp_path / "cut.jpg")
    assert size is None and reason.startswith("unreadable image (OSError: image file is truncated")
    assert probe_image(tmp_path / "cut.jpg", decode=False) == ((800, 600), None)


def test_large_png_is_verified_not_decoded_and_corruption_is_found(tmp_path, monkeypatch):
    from PIL import ImageFile

    from dataset_scripts import common

    Image.fromarray((np.random.default_rng(1).random((40, 50, 3)) * 255).astype("uint8")).save(tmp_path / "a.png")
    data = bytearray((tmp_path / "a.png").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "bad.png").write_bytes(bytes(data))
    monkeypatch.setattr(common, "FULL_DECODE_PIXELS", 100)  # 50x40 counts as large here

    def no_decode(self):
        raise AssertionError("decoded into a pixel buffer")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decode)
    assert probe_image(tmp_path / "a.png") == ((50, 40), None)
    size, reason = probe_image(tmp_path / "bad.png")
    assert size is None and reason.startswith("unreadable image (SyntaxError: broken PNG file")


def test_csv_reader_reads_on_after_a_bad_row(tmp_path):
    from dataset_scripts.common import read_csv_rows

    log = BadSampleLog("X", "train")
    (tmp_path / "a.csv").write_text(f"a,b\n{OVERSIZED},b\nc,d\ne\nf,g\n")
    rows = list(read_csv_rows(tmp_path / "a.csv", log, (2,), "a, b"))
    assert rows == [(1, ["a", "b"]), (3, ["c", "d"]), (5, ["f", "g"])]
    assert [record["path"] for record in log.records] == [f"{tmp_path / 'a.csv'}:2", f"{tmp_path / 'a.csv'}:4"]


# ---------------------------------------------------------------------------------------------
# The command a user runs
# ---------------------------------------------------------------------------------------------


def _convert(args, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "emofusion.cli", "convert", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )


def test_emofusion_convert_finishes_on_faulty_bold_and_strict_is_one_line_naming_the_row(
    faulty_bold, tmp_path, capsys
):
    from emofusion.cli import main

    root, fake = faulty_bold
    common = ["--dataset", "bold", "--data_dir", str(root), "--num_frames", "4"]
    done = _convert([*common, "--output_dir", str(tmp_path / "out"), "--cache_dir", str(tmp_path / "c")], tmp_path)
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "out" / "conversion.json").read_text())
    assert summary["splits"]["train"]["num_rows"] == 2
    assert summary["bad_samples"]["train"]["skipped"] == len(fake["bad"])
    assert summary["bad_samples"]["train"]["reasons"]["empty joints file"] == 1
    assert "bad CSV cell (column 'min_frame' 'abc'; expected an integer)" in done.stderr
    # The console script's own main (a second interpreter would only add start-up time).
    code = main(
        ["convert", *common, "--output_dir", str(tmp_path / "o2"), "--cache_dir", str(tmp_path / "s"), "--strict"]
    )
    assert code == 1
    err = capsys.readouterr().err
    [line] = [line for line in err.splitlines() if line.startswith("emofusion convert")]
    assert "BadSampleError" in line and "joints/002/zero.mp4/0001.npy: empty joints file (0 bytes" in line
    assert "Traceback" not in err


def test_a_split_whose_descriptions_are_all_empty_is_warned_about(tmp_path, caplog):
    write_caer_s(tmp_path, {"train": {"Angry": [solid((8, 8), 1)] * 2}, "test": {"Anger": [solid((8, 8), 2)]}})
    ids = ["train/Angry/0001.png", "train/Angry/0002.png", "test/Anger/0001.png"]
    rows = datasets.Dataset.from_dict(
        {"id": ids, "description": ["", "  ", "A person frowning."], "status": ["ok"] * 3}
    )
    with caplog.at_level(logging.WARNING, logger="dataset_scripts"):
        dataset = load_emotion_dataset(
            "caer_s", tmp_path, descriptions=rows, cache_dir=str(tmp_path / "c"), validation_fraction=0
        )
    assert dataset["train"]["description"] == ["", "  "]
    assert "Split 'train': all 2 descriptions are empty; a model would learn from the image alone." in caplog.text
    assert "Split 'test'" not in caplog.text
