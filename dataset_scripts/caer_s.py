"""CAER-S (Lee et al., ICCV 2019) as a `datasets` builder, read from the owners' class folders.

Layout (`data_dir` is the `CAER-S` folder or the folder holding it):

    CAER-S/train/<Class>/0001.png ...     (some copies nest train/train/<Class>/...)
    CAER-S/test/<Class>/0001.png ...

Seven classes, in this order: Anger, Disgust, Fear, Happy, Neutral, Sad, Surprise. The anger
folder is `Angry` in train and `Anger` in test; both are class 0.

Ids: `<split>/<folder>/<file>` with the folder spelled as on disk, e.g. `train/Angry/0001.png`,
`test/Anger/0001.png`; a nested `train/train/...` copy gives the same ids. An image carved into
the validation split keeps its `train/...` id, so ids never depend on the split seed.

Validation split: CAER-S has none. `validation_fraction` of each class of train (rounded) is held
out: for class c (index in the order above), with its n train files sorted by (folder, name), the
files at positions `numpy.random.default_rng([validation_seed, c]).permutation(n)[:round(fraction * n)]`.
The defaults (0.1, seed 42) give 700 of 7,001 images a class; `validation_fraction=0` disables it.

Boxes: none ship with CAER-S, so `bbox` is None unless `face_boxes_file` names a third-party
face-box file, one line per image: `train/Angry/0001.png,0,295,97,394,195` (relative path, label,
x1, y1, x2, y2). Images the file does not list keep `bbox` None. A line that does not parse
(a wrong field count, a label or box that is not numbers) makes its image a bad sample, skipped
and counted with the file and line; a first line of the wrong form (other than a header) is a
wrong layout and stops the build.

An empty class folder, or a split without any image, is built (empty) with a warning.

>>> from dataset_scripts import load_emotion_dataset
>>> caer = load_emotion_dataset("caer_s", "/data/CAER-S", validation_fraction=0.1)  # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
from datasets import ClassLabel, Features, Image, Value
from datasets.utils import logging

from .common import (
    IMAGE_EXTENSIONS,
    AnnotationFormatError,
    BadSampleLog,
    DatasetLayoutError,
    EmotionBuilderConfig,
    EmotionDatasetBuilder,
    box_feature,
    clip_box_or_reason,
    dataset_root,
    is_text,
    make_id,
    probe_image,
    safe_join,
    show_cell,
)
from .labels import CAER_S_CLASSES, CAER_S_FOLDER_ALIASES


logger = logging.get_logger(__name__)

ORIGINAL_SPLITS = ("train", "test")
_FOLDER_TO_CLASS = {name: name for name in CAER_S_CLASSES} | dict(CAER_S_FOLDER_ALIASES)


@dataclass
class CaerSConfig(EmotionBuilderConfig):
    """CAER-S options.

    Args:
        validation_fraction: share of each class of train held out as the `validation` split
            (0 disables it).
        validation_seed: seed of that choice (see the module docstring for the exact rule).
        face_boxes_file: optional third-party face-box file (absolute, or relative to `data_dir`).
    """

    validation_fraction: float = 0.1
    validation_seed: int = 42
    face_boxes_file: str | None = None


def _class_of(folder: str) -> str | None:
    return _FOLDER_TO_CLASS.get(folder)


def _canonical_relpath(relpath: str) -> str:
    """`CAER-S/train/train/Angry/0001.png` -> `train/Angry/0001.png` (the id's path)."""
    parts = [p for p in relpath.strip().replace("\\", "/").split("/") if p not in ("", ".")]
    if parts and parts[0] == "CAER-S":
        parts = parts[1:]
    if len(parts) >= 2 and parts[0] in ORIGINAL_SPLITS and parts[1] == parts[0]:
        parts = parts[1:]
    return "/".join(parts)


class CaerS(EmotionDatasetBuilder):
    """CAER-S builder: `CaerS(data_dir="/data/CAER-S").download_and_prepare()`.

    Splits `train`, `validation` (held out from train, seeded) and `test`. Features: `id`,
    `image`, `bbox` (None without a face-box file), `labels` (ClassLabel over CAER_S_CLASSES),
    `folder` (the class folder as spelled on disk), `original_split`.
    """

    BUILDER_CONFIG_CLASS = CaerSConfig
    DATASET = "CAER-S"
    VERSION = datasets.Version("1.0.0")

    @classmethod
    def _source_files(cls, data_dir: str) -> list[str]:
        # The folder listing is CAER-S's annotation: a folder's mtime changes when files come or go.
        root = dataset_root(data_dir, "CAER-S")
        folders = [root]
        for split in ORIGINAL_SPLITS:
            for base in (root / split, root / split / split):
                if base.is_dir():
                    folders += [base, *(p for p in base.iterdir() if p.is_dir())]
        return [str(p) for p in folders]

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description="CAER-S: frames of TV shows, 7 emotion classes (single-label).",
            homepage="https://caer-dataset.github.io/",
            features=Features(
                {
                    "id": Value("string"),
                    "image": Image(),
                    "bbox": box_feature(),
                    "labels": ClassLabel(names=list(CAER_S_CLASSES)),
                    "folder": Value("string"),
                    "original_split": Value("string"),
                }
            ),
        )

    def _root(self) -> Path:
        root = dataset_root(self.config.data_dir, "CAER-S")
        if not root.is_dir():
            raise DatasetLayoutError(f"CAER-S data_dir {root} does not exist.")
        return root

    def _class_folders(self, root: Path, split: str) -> tuple[Path, list[str]]:
        """The split's folder (nested `train/train` resolved) and its class folder names."""
        base = root / split
        folders = sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
        if split in folders and not any(_class_of(f) for f in folders):
            base = base / split
            folders = sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
        expected = "Anger (Angry in train), Disgust, Fear, Happy, Neutral, Sad, Surprise"
        unknown = [f for f in folders if _class_of(f) is None]
        if unknown or not folders:
            raise DatasetLayoutError(
                f"CAER-S: {base} should hold one folder per class ({expected}); "
                + (f"found unknown folder(s) {unknown}." if unknown else "found none.")
            )
        missing = sorted(set(CAER_S_CLASSES) - {_class_of(f) for f in folders})
        if missing:
            logger.warning("CAER-S %s: no folder for class(es) %s in %s.", split, missing, base)
        return base, folders

    def _split_generators(self, dl_manager) -> list[datasets.SplitGenerator]:
        root = self._root()
        present = [s for s in ORIGINAL_SPLITS if (root / s).is_dir()]
        if not present:
            raise DatasetLayoutError(
                f"CAER-S: expected {root}/train/<Class>/NNNN.png and {root}/test/<Class>/NNNN.png; "
                f"found neither {root}/train nor {root}/test."
            )
        fraction = self.config.validation_fraction
        if not 0.0 <= fraction < 1.0:
            raise ValueError(f"CAER-S validation_fraction must be in [0, 1), got {fraction}.")
        boxes = self._read_face_boxes(root) if self.config.face_boxes_file else {}
        files = {}
        for split in present:
            base, folders = self._class_folders(root, split)
            files[split] = []
            for folder in folders:
                # Names as strings (os.listdir): pathlib would intern every one of the 70k file names.
                names = [
                    name
                    for name in sorted(os.listdir(base / folder))
                    if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS and not name.startswith(".")
                ]
                if not names:
                    logger.warning(
                        "CAER-S %s: the class folder %s holds no image (%s); class %s has no %s example.",
                        split,
                        base / folder,
                        "/".join(IMAGE_EXTENSIONS),
                        _class_of(folder),
                        split,
                    )
                files[split] += [(str(base), folder, name) for name in names]
            if not files[split]:
                logger.warning("CAER-S %s: no image in any class folder of %s; the split is empty.", split, base)
        generators = []
        if "train" in files and files["train"]:
            train, validation = self._carve_validation(files["train"], fraction)
            generators.append(self._generator(datasets.Split.TRAIN, "train", train, boxes))
            if validation:
                generators.append(self._generator(datasets.Split.VALIDATION, "train", validation, boxes))
            elif fraction > 0:
                logger.warning("CAER-S: validation_fraction=%s holds out no image of %s classes.", fraction, root)
        elif "train" in files:
            generators.append(self._generator(datasets.Split.TRAIN, "train", [], boxes))
        else:
            logger.warning("CAER-S: no train folder in %s; building test only.", root)
        if "test" in files:
            generators.append(self._generator(datasets.Split.TEST, "test", files["test"], boxes))
        else:
            logger.warning("CAER-S: no test folder in %s.", root)
        return generators

    def _generator(self, name, original_split, files, boxes) -> datasets.SplitGenerator:
        return datasets.SplitGenerator(
            name=name,
            gen_kwargs={"split_name": str(name), "original_split": original_split, "files": files, "boxes": boxes},
        )

    def _carve_validation(self, files: list, fraction: float) -> tuple[list, list]:
        by_class: dict[int, list[int]] = {}
        for position, (_, folder, _) in enumerate(files):
            by_class.setdefault(CAER_S_CLASSES.index(_class_of(folder)), []).append(position)
        held_out = set()
        for class_index, positions in by_class.items():
            count = round(fraction * len(positions))
            order = np.random.default_rng([self.config.validation_seed, class_index]).permutation(len(positions))
            held_out.update(positions[i] for i in order[:count])
        train = [f for i, f in enumerate(files) if i not in held_out]
        validation = [f for i, f in enumerate(files) if i in held_out]
        return train, validation

    def _read_face_boxes(self, root: Path) -> dict[str, tuple[int, list[float]] | str]:
        """`{relpath: (label, box)}`, or `{relpath: reason}` for a line that does not parse."""
        path = Path(self.config.face_boxes_file).expanduser()
        path = path if path.is_absolute() else dataset_root(self.config.data_dir) / path
        if not path.is_file():
            raise DatasetLayoutError(f"CAER-S: face_boxes_file {path} does not exist.")
        boxes: dict[str, tuple[int, list[float]] | str] = {}
        layout = "relpath,label,x1,y1,x2,y2"
        first, bad = True, 0
        with open(path, encoding="utf-8-sig", errors="surrogateescape") as handle:
            for line_number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                fields = [f.strip() for f in line.split(",")]
                where = f"{path}:{line_number}"
                reason = None
                if len(fields) != 6:
                    if first:
                        raise AnnotationFormatError(
                            f"{where}: expected 6 comma-separated fields ({layout}), got {len(fields)}."
                        )
                    reason = f"bad face-box line ({where}: {len(fields)} fields; expected 6: {layout})"
                else:
                    try:
                        label, box = int(fields[1]), [float(v) for v in fields[2:]]
                    except ValueError:
                        if line_number == 1:  # a header line
                            continue
                        reason = (
                            f"bad face-box line ({where}: label and box {show_cell(fields[1:])}; "
                            "expected an integer and 4 numbers)"
                        )
                first = False
                relpath = _canonical_relpath(fields[0])
                if not relpath or not is_text(relpath):
                    # Not attributable to an image: it cannot be skipped with one, so it is named here.
                    bad += 1
                    logger.warning("CAER-S: %s names no image (%s); line ignored.", where, show_cell(fields[0]))
                    continue
                safe_join(root, relpath, source=where, field="relpath")
                boxes[relpath] = reason if reason is not None else (label, box)
        bad += sum(isinstance(entry, str) for entry in boxes.values())
        logger.info("CAER-S: %d face boxes read from %s (%d bad lines).", len(boxes), path, bad)
        return boxes

    def _examples(self, log: BadSampleLog, original_split: str, files: list, boxes: dict):
        label_mismatches = 0
        for base, folder, filename in files:
            relpath = f"{original_split}/{folder}/{filename}"
            example_id = make_id(original_split, f"{folder}/{filename}")
            path = os.path.join(base, folder, filename)
            size, reason = probe_image(path, decode=self.config.verify_images)
            if reason is not None:
                log.skip(path, reason, example_id)
                continue
            class_name = _class_of(folder)
            bbox = None
            if relpath in boxes:
                if isinstance(boxes[relpath], str):  # its line in the face-box file does not parse
                    log.skip(path, boxes[relpath], example_id)
                    continue
                label, box = boxes[relpath]
                label_mismatches += label != CAER_S_CLASSES.index(class_name)
                if any(math.isnan(v) for v in box):
                    log.skip(path, f"NaN in face box {box}", example_id)
                    continue
                bbox, reason = clip_box_or_reason(box, size)
                if reason is not None:
                    log.skip(path, reason, example_id)
                    continue
            yield (
                example_id,
                {
                    "id": example_id,
                    "image": path,
                    "bbox": bbox,
                    "labels": class_name,
                    "folder": folder,
                    "original_split": original_split,
                },
            )
        if label_mismatches:
            logger.warning(
                "CAER-S %s: %d face-box lines give a label other than their folder's class; the folder wins.",
                log.split,
                label_mismatches,
            )
