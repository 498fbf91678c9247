"""Small fake EMOTIC, CAER-S and BoLD written in the owners' exact formats, with the examples the
builders must produce from them, person by person.

Each `make_*` function writes a dataset under a folder with `dataset_scripts.writers` and returns
what a test needs to check the builder: the expected examples by id, and the bad samples by id
with the reason the builder must give.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

from dataset_scripts.writers import (
    BoldAnnotation,
    EmoticImage,
    EmoticPerson,
    bold_joints_row,
    write_bold_annotations,
    write_bold_extracted_frames,
    write_bold_joints,
    write_bold_video,
    write_caer_s,
    write_emotic_csv,
    write_emotic_mat,
)
from modeling_emofusion.labels import EMOTIC_CATEGORIES


NAN = float("nan")


def multi_hot(names) -> list[float]:
    return [1.0 if name in names else 0.0 for name in EMOTIC_CATEGORIES]


def solid(size: tuple[int, int], value: int) -> Image.Image:
    """An image whose pixels tell which one it is (red channel = `value`)."""
    return Image.new("RGB", size, (value, 90, 200 - value // 2))


def same_floats(a, b, tol=1e-5) -> bool:
    """List equality with NaN == NaN and a float32 tolerance."""
    if a is None or b is None:
        return a is None and b is None
    return len(a) == len(b) and all(
        (math.isnan(x) and math.isnan(y)) or abs(x - y) <= tol * max(1.0, abs(y)) for x, y in zip(a, b)
    )


# ---------------------------------------------------------------------------------------------
# EMOTIC
# ---------------------------------------------------------------------------------------------


def _emotic_records():
    """(splits for the writers, expected .mat-form examples by id, bad samples by id -> reason)."""
    coco = "COCO_train2014_000000000001.jpg"
    frames = "frame_abcdefgh12345678.jpg"
    splits = {
        "train": [
            EmoticImage(
                coco,
                "mscoco/images",
                (40, 30),
                [
                    EmoticPerson([2, 3, 20, 25], ["Happiness", "Engagement"], [7, 5, 6], "Male", "Adult"),
                    # Box past the image (clipped) and a missing arousal (kept as NaN).
                    EmoticPerson([-5, 4, 50, 28], ["Peace"], [5, NAN, 5], "Female", "Kid"),
                ],
                "mscoco",
                image=solid((40, 30), 10),
            ),
            # One person with one category: squeeze_me collapses both to scalars. Stored nested
            # (framesdb/framesdb/images) on disk, as some copies are.
            EmoticImage(
                frames,
                "framesdb/images",
                (32, 24),
                [EmoticPerson([1, 1, 31, 23], ["Fear"], [2, 8, 3], "Male", "Teenager")],
                "framesdb",
                image=solid((32, 24), 20),
                disk_folder="framesdb/framesdb/images",
            ),
            EmoticImage(
                "sun_missing.jpg",
                "ade20k/images",
                (30, 30),
                [EmoticPerson([1, 1, 9, 9], ["Pain"], [3, 3, 3])],
                "ade20k",
            ),
            EmoticImage(
                "abcdefghijklmnopqr.jpg",
                "emodb_small/images",
                (30, 30),
                [EmoticPerson([1, 1, 9, 9], ["Pain"], [3, 3, 3])],
                "emodb_small",
            ),
            EmoticImage(
                "COCO_train2014_000000000002.jpg",
                "mscoco/images",
                (30, 30),
                [EmoticPerson([10, 10, 10, 20], ["Pain"], [3, 3, 3])],
                "mscoco",
                image=solid((30, 30), 30),
            ),
        ],
        "val": [
            EmoticImage(
                "COCO_val2014_000000000003.jpg",
                "mscoco/images",
                (36, 28),
                [
                    EmoticPerson(
                        [0, 0, 18, 28],
                        ["Anticipation", "Excitement"],
                        [19 / 3, 4.5, 7.0],
                        "Female",
                        "Adult",
                        annotators=[
                            (["Anticipation"], [6, 4, 7]),
                            (["Anticipation", "Excitement"], [7, 5, 7]),
                            (["Excitement"], [6, 4.5, 7]),
                        ],
                    ),
                    # Annotated, but no combined category: kept, all-zero labels.
                    EmoticPerson([18, 0, 36, 28], [], [5, 5, 5], "Male", "Adult", annotators=[([], [5, 5, 5])]),
                    # Never annotated: skipped.
                    EmoticPerson([5, 5, 15, 15], [], [NAN, NAN, NAN], annotators=[]),
                ],
                "mscoco",
                image=solid((36, 28), 40),
            )
        ],
        "test": [
            EmoticImage(
                "sun_abcdefg.jpg",
                "ade20k/images",
                (30, 20),
                [
                    EmoticPerson([2, 2, 12, 18], ["Sadness"], [3, 4, 4.5], "Female", "Adult"),
                    EmoticPerson([4, 2, 14, 18], [NAN], [3, 4, 4]),
                    EmoticPerson([6, 2, 16, 18], ["Joy"], [3, 4, 4]),
                ],
                "ade20k",
                image=solid((30, 20), 50),
            )
        ],
    }
    expected = {
        f"train/mscoco/images/{coco}#p0": dict(
            bbox=[2, 3, 20, 25], cats=["Happiness", "Engagement"], vad=[7, 5, 6], gender="Male", age="Adult",
            db="mscoco", annotators=1, size=(40, 30), red=10,
        ),
        f"train/mscoco/images/{coco}#p1": dict(
            bbox=[0, 4, 40, 28], cats=["Peace"], vad=[5, NAN, 5], gender="Female", age="Kid", db="mscoco",
            annotators=1, size=(40, 30), red=10,
        ),
        f"train/framesdb/images/{frames}#p0": dict(
            bbox=[1, 1, 31, 23], cats=["Fear"], vad=[2, 8, 3], gender="Male", age="Teenager", db="framesdb",
            annotators=1, size=(32, 24), red=20,
        ),
        "val/mscoco/images/COCO_val2014_000000000003.jpg#p0": dict(
            bbox=[0, 0, 18, 28], cats=["Anticipation", "Excitement"], vad=[19 / 3, 4.5, 7.0], gender="Female",
            age="Adult", db="mscoco", annotators=3, size=(36, 28), red=40,
        ),
        "val/mscoco/images/COCO_val2014_000000000003.jpg#p1": dict(
            bbox=[18, 0, 36, 28], cats=[], vad=[5, 5, 5], gender="Male", age="Adult", db="mscoco", annotators=1,
            size=(36, 28), red=40,
        ),
        "test/ade20k/images/sun_abcdefg.jpg#p0": dict(
            bbox=[2, 2, 12, 18], cats=["Sadness"], vad=[3, 4, 4.5], gender="Female", age="Adult", db="ade20k",
            annotators=1, size=(30, 20), red=50,
        ),
    }  # fmt: skip
    bad = {
        "train/ade20k/images/sun_missing.jpg#p0": "missing image",
        "train/emodb_small/images/abcdefghijklmnopqr.jpg#p0": "unreadable image",
        "train/mscoco/images/COCO_train2014_000000000002.jpg#p0": "zero-area box",
        "val/mscoco/images/COCO_val2014_000000000003.jpg#p2": "no category annotation",
        "test/ade20k/images/sun_abcdefg.jpg#p1": "NaN category label",
        "test/ade20k/images/sun_abcdefg.jpg#p2": "unknown category",
    }
    return splits, expected, bad


def make_fake_emotic(root: Path, *, mat: bool = True, csv: bool = True) -> dict:
    """Write a fake EMOTIC (.mat and/or emotic_pre CSVs, images) and return what to expect.

    Returns `{"expected": {id: fields}, "bad": {id: reason}, "csv_dropped": ids}` for the .mat form;
    `csv_dropped` are the persons the baseline's preprocessing leaves out of the CSVs (a NaN in
    their VAD, or no annotator), which are therefore absent from the CSV form.
    """
    splits, expected, bad = _emotic_records()
    if mat:
        write_emotic_mat(root, splits)
    else:
        for records in splits.values():  # the images only
            for record in records:
                if record.image is not None:
                    path = root / "emotic" / (record.disk_folder or record.folder) / record.filename
                    path.parent.mkdir(parents=True, exist_ok=True)
                    record.image.save(path, quality=95)
    if csv:
        write_emotic_csv(root, splits)
    # An unreadable image: the first bytes of a JPEG, cut short.
    broken = root / "emotic" / "emodb_small" / "images" / "abcdefghijklmnopqr.jpg"
    broken.parent.mkdir(parents=True, exist_ok=True)
    broken.write_bytes((root / "emotic" / "mscoco" / "images" / "COCO_train2014_000000000001.jpg").read_bytes()[:200])
    csv_dropped = {
        "train/mscoco/images/COCO_train2014_000000000001.jpg#p1",
        "val/mscoco/images/COCO_val2014_000000000003.jpg#p2",
    }
    return {"expected": expected, "bad": bad, "csv_dropped": csv_dropped, "splits": splits}


# ---------------------------------------------------------------------------------------------
# CAER-S
# ---------------------------------------------------------------------------------------------


def make_fake_caer_s(root: Path, *, nested: bool = False) -> dict:
    """Write a fake CAER-S; return `{"expected": {id: (label, red)}, "bad": {id: reason}}`.

    Train spells anger `Angry`, test `Anger`; `train/Neutral/0002.png` is a truncated file.
    """
    sizes = (24, 16)
    splits = {
        "train": {
            "Angry": [solid(sizes, 10 + i) for i in range(5)],
            "Happy": [solid(sizes, 30 + i) for i in range(3)],
            "Neutral": [solid(sizes, 50), solid(sizes, 51)],
        },
        "test": {"Anger": [solid(sizes, 60), solid(sizes, 61)], "Sad": [solid(sizes, 70)]},
    }
    base = write_caer_s(root, splits, nested=nested)
    broken = base / "train" / ("train" if nested else "") / "Neutral" / "0002.png"
    broken.write_bytes(broken.read_bytes()[:40])
    expected = {}
    for split, folders in splits.items():
        for folder, images in folders.items():
            label = {"Angry": 0, "Anger": 0, "Happy": 3, "Neutral": 4, "Sad": 5}[folder]
            for number, image in enumerate(images, start=1):
                expected[f"{split}/{folder}/{number:04d}.png"] = (label, image.getpixel((0, 0))[0])
    bad = {"train/Neutral/0002.png": "unreadable image"}
    del expected["train/Neutral/0002.png"]
    return {"expected": expected, "bad": bad, "base": base, "size": sizes}


# ---------------------------------------------------------------------------------------------
# BoLD
# ---------------------------------------------------------------------------------------------

VIDEO_A = "003/IzvOYVMltkI.mp4/0114.mp4"
VIDEO_B = "005/missingvideo.mp4/0001.mp4"
VIDEO_C = "007/extracted.mp4/0002.mp4"
VIDEO_D = "009/broken.mp4/0003.mp4"
BOLD_SIZE = (64, 48)
FIRST_FRAME = 100  # absolute frame index of every fake clip's first frame


def bold_frame_value(relative: int) -> int:
    return 8 * relative + 4


def _keypoints(x1, y1, x2, y2, confidence=0.9) -> np.ndarray:
    """18 joints: two corners of the subject (nose and right ankle) plus a low-confidence one."""
    points = np.zeros((18, 3))
    points[0] = (x1, y1, confidence)
    points[10] = (x2, y2, confidence)
    points[4] = (x2 + 20, y2 + 20, 0.05)  # below min_joint_confidence: ignored
    return points


def make_fake_bold(root: Path) -> dict:
    """Write a fake BoLD: two clips (one mp4, one pre-extracted), one missing, joints and CSVs.

    Clip A (mp4, 24 frames from absolute 100): person 0 moves right by 1 px a frame; person 1 has
    no joints before frame 110 (its earlier frames take frame 110's box); person 5 never appears.
    Clip C has only pre-extracted frames (mmextract) and is used by val.
    """
    frames = [solid(BOLD_SIZE, bold_frame_value(k)) for k in range(24)]
    write_bold_video(root, VIDEO_A, frames)
    write_bold_extracted_frames(root, VIDEO_C, frames[:12])
    rows = []
    for k in range(24):
        frame = FIRST_FRAME + k
        rows.append(bold_joints_row(frame, 0, _keypoints(10 + k, 5, 30 + k, 45)))
        if frame >= 110:
            # Box past the right and bottom borders: clipped to the frame.
            rows.append(bold_joints_row(frame, 1, _keypoints(40, 20, 60, 46)))
    write_bold_joints(root, VIDEO_A, np.stack(rows))
    write_bold_joints(
        root, VIDEO_B, np.stack([bold_joints_row(FIRST_FRAME + k, 0, _keypoints(1, 1, 9, 9)) for k in range(5)])
    )
    write_bold_joints(
        root, VIDEO_D, np.stack([bold_joints_row(FIRST_FRAME + k, 0, _keypoints(1, 1, 9, 9)) for k in range(5)])
    )
    broken = root / "BOLD_public" / "videos" / VIDEO_D
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
    write_bold_joints(
        root, VIDEO_C, np.stack([bold_joints_row(FIRST_FRAME + k, 3, _keypoints(5, 5, 25, 25)) for k in range(12)])
    )
    scores = {"Peace": 0.5, "Happiness": 0.75, "Anger": 0.25, "Yearning": 0.49}
    train = [
        BoldAnnotation(
            VIDEO_A, 0, 102, 114, scores, vad=(6.5, 4.0, 5.25), gender=1, age=2, ethnicity=3, confidence=0.8
        ),
        BoldAnnotation(VIDEO_A, 1, 104, 116, {"Fear": 1.0}, vad=(2.0, 8.0, 3.0)),
        BoldAnnotation(VIDEO_B, 0, 101, 103, {"Peace": 0.6}),
        BoldAnnotation(VIDEO_A, 5, 100, 110, {"Peace": 0.6}),
        BoldAnnotation(VIDEO_A, 7, 102, 110, {"Peace": NAN}),
        BoldAnnotation(VIDEO_A, 1, 104, 116, {"Fear": 1.0}),  # the same person-clip twice
        BoldAnnotation(VIDEO_D, 0, 100, 104, {"Peace": 0.6}),
    ]
    write_bold_annotations(root, "train", train)
    write_bold_annotations(root, "val", [BoldAnnotation(VIDEO_C, 3, 101, 109, {"Sadness": 0.9}, vad=(2, 3, 2))])
    write_bold_annotations(root, "test", [BoldAnnotation(VIDEO_A, 0, 100, 123)])
    margin = 0.1

    def box(x1, y1, x2, y2):
        dx, dy = margin * (x2 - x1), margin * (y2 - y1)
        return [max(0.0, x1 - dx), max(0.0, y1 - dy), min(64.0, x2 + dx), min(48.0, y2 + dy)]

    expected = {
        f"train/{VIDEO_A}#p0": dict(
            indices=[102, 105, 108, 111, 114],
            boxes=[box(10 + f - 100, 5, 30 + f - 100, 45) for f in (102, 105, 108, 111, 114)],
            soft={"Peace": 0.5, "Happiness": 0.75, "Anger": 0.25, "Yearning": 0.49},
            labels=["Peace", "Happiness"],
            vad=[6.5, 4.0, 5.25],
            meta=("1", "2", "3", 0.8),
        ),
        f"train/{VIDEO_A}#p1": dict(
            indices=[104, 107, 110, 113, 116],
            boxes=[box(40, 20, 60, 46)] * 5,
            soft={"Fear": 1.0},
            labels=["Fear"],
            vad=[2.0, 8.0, 3.0],
            meta=("1", "2", "1", 0.9),
        ),
        f"val/{VIDEO_C}#p3": dict(
            indices=[101, 103, 105, 107, 109],
            boxes=[box(5, 5, 25, 25)] * 5,
            soft={"Sadness": 0.9},
            labels=["Sadness"],
            vad=[2.0, 3.0, 2.0],
            meta=("1", "2", "1", 0.9),
        ),
        f"test/{VIDEO_A}#p0": dict(
            indices=[100, 106, 112, 117, 123],
            boxes=[box(10 + f - 100, 5, 30 + f - 100, 45) for f in (100, 106, 112, 117, 123)],
            soft=None,
            labels=None,
            vad=None,
            meta=(None, None, None, None),
        ),
    }
    bad = [
        (f"train/{VIDEO_B}#p0", "missing video"),
        (f"train/{VIDEO_A}#p5", "no valid joints"),
        (f"train/{VIDEO_A}#p7", "NaN or out-of-range category score"),
        (f"train/{VIDEO_A}#p1", "duplicate row"),
        (f"train/{VIDEO_D}#p0", "unreadable video"),
    ]
    return {"expected": expected, "bad": bad, "num_frames": 5}
