"""Small fake datasets for the training tests, written in the owners' on-disk formats.

The labels can be learnt only from both inputs: "Happiness" (else "Peace") from the picture's
colour, "Sadness" from the description's words, so a fusion model can fit them quickly.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from modeling_emofusion.labels import CAER_S_CLASSES, EMOTIC_CATEGORIES


HAPPY, SAD = EMOTIC_CATEGORIES.index("Happiness"), EMOTIC_CATEGORIES.index("Sadness")
WORDS = "the person in the red box looks sad and tired seems calm relaxed".split()
METADATA = {
    "model": "tiny-llava",
    "revision": "0123abc",
    "backend": "transformers",
    "prompt_template": "Given the following list of emotions: <class_names> explain ...",
    "marking": "box",
    "generation": {"do_sample": False, "max_new_tokens": 64},
    "dataset": "emotic",
}


def _picture(happy: bool, index: int) -> Image.Image:
    colour = (40, 190 + index % 7, 60) if happy else (50, 60, 190 + index % 7)
    image = Image.new("RGB", (48, 40), colour)
    image.paste((200, 200, 200), (6 + index % 5, 6, 18 + index % 5, 30))  # a "person"
    return image


def _description(sad: bool) -> str:
    return "the person in the red box looks sad and tired" if sad else "the person in the red box seems calm relaxed"


def write_emotic(root: Path, sizes: dict[str, int]) -> tuple[Path, Path]:
    """EMOTIC's Annotations.mat + images under `root/emotic_data`, and a description set under
    `root/descriptions` keyed by the builder's ids. Returns (data_dir, descriptions_dir)."""
    from dataset_scripts import load_emotion_dataset
    from dataset_scripts.writers import EmoticImage, EmoticPerson, write_description_set, write_emotic_mat

    data_dir = root / "emotic_data"
    splits = {}
    for split, size in sizes.items():
        records = []
        for i in range(size):
            happy, sad = i % 2 == 0, (i // 2) % 2 == 0
            categories = ["Happiness" if happy else "Peace"] + (["Sadness"] if sad else [])
            vad = [7.0 if happy else 4.0, 5.0 + (i % 3), float("nan") if i % 5 == 0 else 6.0]
            person = EmoticPerson(bbox=[4, 2, 30, 38], categories=categories, vad=vad)
            name = f"COCO_{split}2014_{i:012d}.jpg"
            records.append(EmoticImage(name, "mscoco/images", (48, 40), [person], image=_picture(happy, i)))
        splits[split] = records
    write_emotic_mat(data_dir, splits)

    built = load_emotion_dataset("emotic", data_dir, cache_dir=str(root / "arrow_cache"))
    rows = []
    for split_name, split in built.items():
        for example_id, labels in zip(split["id"], split["labels"]):
            rows.append({"id": example_id, "description": _description(labels[SAD] > 0.5), "split": split_name})
    descriptions = write_description_set(root / "descriptions", rows, METADATA)
    return data_dir, descriptions


def write_caer_s(root: Path, per_class: int) -> Path:
    """CAER-S class folders: each class a distinct colour. Returns the data_dir."""
    from dataset_scripts.writers import write_caer_s as write

    folders = {"train": {}, "test": {}}
    for c, name in enumerate(CAER_S_CLASSES):
        colour = (30 * c + 20, 200 - 25 * c, (70 * c) % 255)
        for split in folders:
            folder = "Angry" if (name == "Anger" and split == "train") else name
            folders[split][folder] = [Image.new("RGB", (32, 32), colour) for _ in range(per_class)]
    write(root / "caer_data", folders)
    return root / "caer_data"
