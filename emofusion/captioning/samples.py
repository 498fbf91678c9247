"""Reading subjects to describe from a dataset split: ids, images (one frame of a clip) and boxes.

Images are decoded here, one subject at a time, so that an unreadable file or a bad box becomes a
recorded error for that subject instead of stopping the run. Rows are read in Arrow form and
decoded with `datasets.Image().decode_example`, as `datasets` itself would.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass

import datasets
from PIL import Image

from modeling_emofusion.marking import clip_box

from .arguments import FRAME_CHOICES


@dataclass
class Sample:
    """One subject: its position in the split, id, decoded RGB image and box, or why it cannot be described."""

    index: int
    id: str
    image: Image.Image | None = None
    bbox: list[float] | None = None
    error: str | None = None


def load_split(dataset_name: str, data_dir: str, split: str) -> datasets.Dataset:
    """A split of `dataset_name`, from a prepared folder (what `emofusion convert` writes, Parquet or Arrow, or a
    `save_to_disk` DatasetDict) or from the owners' layout via `load_emotion_dataset`."""
    if data_dir is None:
        raise ValueError("--data_dir is required: the dataset as its owners ship it, or a prepared dataset folder.")
    if not os.path.isdir(data_dir):
        raise FileNotFoundError(f"--data_dir {data_dir} is not a folder.")
    try:
        from dataset_scripts import load_emotion_dataset, load_prepared_dataset
    except ImportError as error:
        raise ImportError(
            f"Cannot read {dataset_name} from {data_dir}: dataset_scripts is unavailable ({error})."
        ) from error
    splits = load_prepared_dataset(data_dir, dataset_name)
    if splits is None:
        splits = load_emotion_dataset(dataset_name, data_dir)
    if split not in splits:
        raise ValueError(f"{dataset_name} in {data_dir} has no split {split!r}; it has {sorted(splits)}.")
    return splits[split]


def set_max_image_pixels(limit: int | None) -> None:
    """PIL's decompression-bomb limit (`Image.MAX_IMAGE_PIXELS`) for this process: None keeps PIL's, 0 lifts it."""
    if limit is not None:
        Image.MAX_IMAGE_PIXELS = limit or None


def bomb_reason(error: Image.DecompressionBombError, where: str | None) -> str:
    """One line for a picture over PIL's limit, and how to allow it."""
    limit = Image.MAX_IMAGE_PIXELS
    return (
        f"picture too large{f' {where}' if where else ''}: {error} PIL refuses pictures over twice "
        f"Image.MAX_IMAGE_PIXELS ({limit}) as possible decompression bombs; to describe it, pass "
        f"--max_image_pixels with a larger value (or 0 for no limit)."
    )


def frame_position(choice: str, num_frames: int) -> int:
    """Which of a clip's `num_frames` sampled frames `choice` ("middle", "first", "last" or a position) means."""
    if num_frames < 1:
        raise ValueError("the clip has no frames")
    if choice not in FRAME_CHOICES:
        position = int(choice)
        if not -num_frames <= position < num_frames:
            raise ValueError(f"frame position {position} is outside a clip of {num_frames} frames")
        return position % num_frames
    return {"first": 0, "middle": num_frames // 2, "last": num_frames - 1}[choice]


class SampleReader:
    """Reads subjects from a split in the dataset contract's schema.

    Images: an `image` column (`datasets.Image()`) and `bbox` (`[x1, y1, x2, y2]` or None). Clips
    (BoLD): `frames` (a list of images) with `frame_bboxes`, of which the `frame` choice is described
    with its own box (the clip's `bbox` where no frame box is given).

    >>> reader = SampleReader(dataset, frame="middle")
    >>> sample = reader.read(0)  # Sample(index=0, id="train/...", image=<PIL RGB>, bbox=[...])
    """

    def __init__(self, dataset: datasets.Dataset, frame: str = "middle"):
        columns = dataset.column_names
        if "id" not in columns:
            raise ValueError(f"The dataset has no `id` column (columns: {columns}); descriptions join on it.")
        if "image" in columns:
            self.image_column = "image"
        elif "frames" in columns:
            self.image_column = "frames"
        else:
            raise ValueError(f"The dataset has neither an `image` nor a `frames` column (columns: {columns}).")
        self.is_video = self.image_column == "frames"
        self.frame = frame if self.is_video else None
        wanted = [c for c in ("id", self.image_column, "bbox", "frame_bboxes") if c in columns]
        self._rows = dataset.select_columns(wanted).with_format("arrow")
        self.ids = [str(i) for i in dataset["id"]]
        duplicates = [i for i, n in Counter(self.ids).items() if n > 1]
        if duplicates:
            raise ValueError(
                f"The dataset's `id` column repeats {len(duplicates)} ids (e.g. {duplicates[:3]}); ids must be unique."
            )
        self._decoder = datasets.Image()

    def __len__(self) -> int:
        return len(self.ids)

    def read(self, index: int) -> Sample:
        """The subject at `index`, decoded; a subject that cannot be described carries `error` instead."""
        row = self._rows[index].to_pylist()[0]
        sample = Sample(index=index, id=self.ids[index], bbox=row.get("bbox"))
        try:
            encoded = row[self.image_column]
            if self.is_video:
                position = frame_position(self.frame, len(encoded or []))
                encoded = encoded[position]
                frame_boxes = row.get("frame_bboxes") or []
                if position < len(frame_boxes) and frame_boxes[position] is not None:
                    sample.bbox = frame_boxes[position]
            if encoded is None:
                raise ValueError("no image")
        except (ValueError, IndexError) as error:
            sample.error = f"no frame to describe: {error}"
            return sample
        try:
            # convert() forces the whole file to be decoded, so truncated files fail here.
            sample.image = self._decoder.decode_example(encoded).convert("RGB")
        except Image.DecompressionBombError as error:
            sample.error = bomb_reason(error, encoded.get("path") if isinstance(encoded, dict) else None)
            return sample
        except Exception as error:  # PIL raises many types for broken files
            where = encoded.get("path") if isinstance(encoded, dict) else None
            sample.error = f"unreadable image{f' {where}' if where else ''}: {type(error).__name__}: {error}"
            return sample
        if sample.bbox is not None:
            try:
                sample.bbox = list(clip_box(sample.bbox, sample.image.size))
            except ValueError as error:
                sample.error = f"invalid bbox: {error}"
                sample.image = None
        return sample

    def read_many(self, indices: list[int]) -> list[Sample]:
        return [self.read(index) for index in indices]
