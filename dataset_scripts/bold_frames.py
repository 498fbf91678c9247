"""BoLD clips: subject boxes from OpenPose joints, and frames from the mp4 (PyAV) or mmextract.

Joints files hold one row per (frame, person): `[frame_idx, person_id, x0, y0, c0, ..., x17, y17,
c17]` (OpenPose COCO-18); missing joints are all zero. `frame_idx` is absolute, and so are the
annotations' `min_frame`/`max_frame`; the clip's first frame is taken to be the smallest
`frame_idx` of its joints file (as the BEEU 2020 challenge-winning code does), so absolute frame
f is frame `f - start` of the mp4, and file number `f - start + first_index` of the
pre-extracted frames (`img_00001.jpg`, 1-based, is the usual extraction naming).
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Sequence

import numpy as np
from PIL import Image

from .common import IMAGE_EXTENSIONS, probe_image


NUM_JOINTS = 18
JOINTS_COLUMNS = 2 + 3 * NUM_JOINTS


class ClipError(ValueError):
    """A clip whose video, frames or joints cannot be used (the example is a bad sample).

    `path` is the file at fault, when there is one.
    """

    def __init__(self, reason: str, path: str | None = None):
        super().__init__(reason)
        self.path = path


def load_joints(path: str) -> np.ndarray:
    """The `(N, 56)` float joints array of a clip; ClipError if missing, empty or malformed.

    Malformed: not a numeric `(N, 56)` array, or a `frame_idx`/`person_id` that is not a finite
    number (the frame numbers place every box in the clip, so no row of the file can be trusted).
    """
    try:
        if os.path.getsize(path) == 0:
            raise ClipError("empty joints file (0 bytes; an interrupted copy?)", path)
        joints = np.load(path, allow_pickle=False)
    except ClipError:
        raise
    except FileNotFoundError:
        raise ClipError("missing joints file", path) from None
    except (OSError, ValueError, EOFError) as err:
        raise ClipError(f"unreadable joints file ({type(err).__name__}: {err})", path) from None
    if not isinstance(joints, np.ndarray):  # an .npz archive
        raise ClipError(f"bad joints array (an .npz archive; expected one (N, {JOINTS_COLUMNS}) .npy array)", path)
    if joints.dtype.kind not in "biuf":
        raise ClipError(f"bad joints array (dtype {joints.dtype}; expected numbers)", path)
    if joints.ndim != 2 or joints.shape[1] != JOINTS_COLUMNS or not len(joints):
        raise ClipError(f"bad joints array (shape {joints.shape}; expected (N, {JOINTS_COLUMNS}), N > 0)", path)
    joints = joints.astype(np.float64, copy=False)
    for column, name in ((0, "frame_idx"), (1, "person_id")):
        bad = np.flatnonzero(~np.isfinite(joints[:, column]))
        if len(bad):
            raise ClipError(
                f"bad joints array ({name} is NaN or infinite in {len(bad)} of {len(joints)} rows, "
                f"the first at row {bad[0]}; expected frame numbers and person ids)",
                path,
            )
    return joints


def sample_frames(min_frame: int, max_frame: int, num_frames: int) -> list[int]:
    """`num_frames` absolute frame indices spread evenly over [min_frame, max_frame], ends included
    (fewer when the range is shorter).

    >>> sample_frames(10, 40, 4)
    [10, 20, 30, 40]
    """
    if max_frame < min_frame:
        raise ClipError(f"bad frame range (max_frame {max_frame} < min_frame {min_frame})")
    return sorted({int(round(v)) for v in np.linspace(min_frame, max_frame, num_frames)})


def joints_box(row: np.ndarray, min_confidence: float, margin: float) -> list[float] | None:
    """The box of one (frame, person) joints row: min/max of its valid joints, grown by `margin`
    of its width and height on each side; None with fewer than two distinct valid joints."""
    points = row[2:].reshape(NUM_JOINTS, 3)
    # A NaN or infinite coordinate or confidence is a missing joint, like OpenPose's all-zero ones.
    finite = np.isfinite(points).all(axis=1)
    valid = points[finite & (points[:, 2] > min_confidence) & ~((points[:, 0] == 0) & (points[:, 1] == 0))]
    if len(valid) < 2:
        return None
    x1, y1 = valid[:, 0].min(), valid[:, 1].min()
    x2, y2 = valid[:, 0].max(), valid[:, 1].max()
    if x2 <= x1 or y2 <= y1:
        return None
    dx, dy = margin * (x2 - x1), margin * (y2 - y1)
    return [float(x1 - dx), float(y1 - dy), float(x2 + dx), float(y2 + dy)]


def person_frame_boxes(
    joints: np.ndarray,
    person_id: int,
    frames: Sequence[int],
    window: tuple[int, int],
    min_confidence: float = 0.1,
    margin: float = 0.1,
) -> list[list[float]]:
    """One box per frame in `frames` for `person_id`.

    A frame where the person has no usable joints takes the box of the nearest frame within
    `window` (the annotated [min_frame, max_frame]) that has one; ClipError when none has.
    """
    rows = joints[(joints[:, 1] == person_id) & (joints[:, 0] >= window[0]) & (joints[:, 0] <= window[1])]
    boxes: dict[int, list[float]] = {}
    for row in rows:
        box = joints_box(row, min_confidence, margin)
        if box is not None:
            boxes.setdefault(int(row[0]), box)
    if not boxes:
        raise ClipError(f"no valid joints (person_id {person_id}, frames {window[0]}..{window[1]})")
    known = np.array(sorted(boxes))
    out = []
    for frame in frames:
        nearest = int(known[np.abs(known - frame).argmin()])
        out.append(boxes[nearest])
    return out


def _import_av():
    try:
        import av
    except ImportError:
        raise ImportError(
            "Decoding BoLD videos needs PyAV: pip install 'emofusion[video]' (or 'av'), "
            "or use pre-extracted frames under BOLD_public/mmextract/."
        ) from None
    return av


def decode_video_frames(path: str, indices: Sequence[int]) -> list[Image.Image]:
    """Frames at 0-based `indices` of an mp4, decoded in order with PyAV; ClipError when the file
    is missing, unreadable or too short."""
    if not os.path.isfile(path):
        raise ClipError("missing video", path)
    av = _import_av()
    wanted = sorted(set(indices))
    wanted_set = set(wanted)
    if wanted and wanted[0] < 0:
        raise ClipError(f"frame before the clip (relative frame {wanted[0]})", path)
    found: dict[int, Image.Image] = {}
    decoded = 0
    try:
        with av.open(path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for position, frame in enumerate(container.decode(stream)):
                decoded = position + 1
                if position in wanted_set:
                    found[position] = frame.to_image()
                if position >= wanted[-1]:
                    break
    except (av.FFmpegError, IndexError, OSError, ValueError) as err:  # ValueError: a frame PIL cannot take
        raise ClipError(f"unreadable video ({type(err).__name__}: {err})", path) from None
    if len(found) < len(wanted):
        raise ClipError(f"video too short ({decoded} frames; frame {wanted[-1]} of the clip is needed)", path)
    return [found[i] for i in indices]


def encode_frame(image: Image.Image, quality: int) -> dict:
    """JPEG bytes for a `datasets.Image()` cell."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return {"bytes": buffer.getvalue(), "path": None}


def extracted_frame_files(folder: str) -> dict[int, str]:
    """Pre-extracted frames of a clip, keyed by the number in their file name (`img_00001.jpg` -> 1)."""
    files = {}
    for name in os.listdir(folder):
        stem, extension = os.path.splitext(name)
        digits = re.findall(r"\d+", stem)
        if extension.lower() in IMAGE_EXTENSIONS and digits:
            files[int(digits[-1])] = os.path.join(folder, name)
    return files


def read_extracted_frames(folder: str, numbers: Sequence[int], decode: bool) -> list[tuple[dict, tuple[int, int]]]:
    """`({"bytes", "path"}, (width, height))` of the frames numbered `numbers`; ClipError if one is
    missing or unreadable."""
    files = extracted_frame_files(folder)
    out = []
    for number in numbers:
        if number not in files:
            raise ClipError(f"missing extracted frame (number {number})", folder)
        size, reason = probe_image(files[number], decode=decode)
        if reason is not None:
            raise ClipError(reason, files[number])
        with open(files[number], "rb") as handle:
            out.append(({"bytes": handle.read(), "path": None}, size))
    return out
