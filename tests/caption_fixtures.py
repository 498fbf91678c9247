"""Small datasets in the dataset contract's schema, and the tiny LLaVA, for the caption tests."""

import io
import json

import datasets
import numpy as np
from datasets import Features, Image, List, Value
from PIL import Image as PILImage

from emofusion.testing_llava import tiny_llava


IMAGE_FEATURES = Features(
    id=Value("string"),
    image=Image(),
    bbox=List(Value("float32"), length=4),
    labels=List(Value("float32"), length=26),
)
CLIP_FEATURES = Features(
    id=Value("string"),
    frames=List(Image()),
    frame_bboxes=List(List(Value("float32"), length=4)),
    frame_indices=List(Value("int32")),
    bbox=List(Value("float32"), length=4),
    labels=List(Value("float32"), length=26),
)


CORRUPT = 5  # positions of the subjects that cannot be described
OUTSIDE = 9
NO_BOX = 3


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    PILImage.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def image_split(split: str, n: int, seed: int = 0) -> datasets.Dataset:
    """`n` subjects with ids like the builders' (split/relative path/person); one corrupt file, one box wholly
    outside its image, every fourth without a box."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        height = 36 + 3 * i
        rows.append(
            {
                "id": f"{split}/mscoco/images/COCO_{i:06d}.jpg/{i % 2}",
                "image": {"bytes": png_bytes(rng.integers(0, 256, (height, 48, 3), dtype=np.uint8)), "path": None},
                "bbox": None if i % 4 == NO_BOX else [2.0, 3.0, 30.0, min(35.0, height - 1.0)],
                "labels": [float(j == i % 26) for j in range(26)],
            }
        )
    if n > CORRUPT:
        rows[CORRUPT]["image"] = {"bytes": b"\x89PNG\r\n\x1a\n truncated", "path": None}
    if n > OUTSIDE:
        rows[OUTSIDE]["bbox"] = [200.0, 200.0, 300.0, 300.0]
    return datasets.Dataset.from_list(rows, features=IMAGE_FEATURES)


def clip_split(n: int = 3, frames: int = 5) -> datasets.Dataset:
    """BoLD-like clips: each frame has its own colour and box, so the described frame can be told."""
    rows = []
    for i in range(n):
        colours = [(40 * f, 20 * i, 100) for f in range(frames)]
        rows.append(
            {
                "id": f"train/003/clip{i}.mp4/0959.mp4/{i}",
                "frames": [{"bytes": png_bytes(np.full((32, 40, 3), c, np.uint8)), "path": None} for c in colours],
                "frame_bboxes": [[1.0 + f, 2.0, 20.0 + f, 30.0] for f in range(frames)],
                "frame_indices": list(range(0, 10 * frames, 10)),
                "bbox": [1.0, 2.0, 20.0 + frames, 30.0],
                "labels": [0.0] * 26,
            }
        )
    return datasets.Dataset.from_list(rows, features=CLIP_FEATURES)


def build_llava(folder) -> tuple[str, str]:
    """Save the tiny LLaVA to `folder`; returns (folder, --generation_kwargs JSON with a stop word).

    A random model never emits </s>: "list" as a second stop token makes some descriptions end ("ok")
    while others run to the token budget ("flagged").
    """
    _, processor = tiny_llava(folder)
    tokenizer = processor.tokenizer
    eos = [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("list")]
    return str(folder), json.dumps({"eos_token_id": eos})
