"""On-disk cache of a frozen vision encoder's features, computed once and reused every epoch.

With `--freeze_vision --cache_vision_features`, the encoder's output (`model.get_vision_features`,
before any projection) is computed once per split and stored as safetensors shards:

    <cache_root>/<key>/index.json        what the key was made of, shapes, rows per shard
    <cache_root>/<key>/ids.json          example ids in row order
    <cache_root>/<key>/shard-00000.safetensors   vision_hidden_states (n, ...) [+ frame_mask (n, T)]

The key is a hash of everything the features depend on: the encoder's weights and config, the
image processing (size, normalisation), the subject-marking mode, the split's content (ids,
boxes, image bytes or file stats), the storage dtype and autocast. Change any of them and a new
cache is built; the old one is left in place. Shards are written atomically; an interrupted
build keeps its finished shards and resumes. With several processes, shards are shared out by
rank. Reading is memory-mapped (`safetensors.safe_open`), one example at a time.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import datasets
import pyarrow as pa
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm.auto import tqdm
from transformers.utils import logging

from .data import EmotionCollator, ExampleTransform


logger = logging.get_logger(__name__)

CACHE_FORMAT = "emofusion-vision-features"
CACHE_VERSION = 1
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# Target shard size: big enough for few files, small enough to write atomically and resume cheaply.
SHARD_BYTES = 512 * 2**20
# Columns of an example that change what the encoder sees.
PICTURE_COLUMNS = ("id", "image", "frames", "bbox", "frame_bboxes")


def default_cache_root() -> str:
    """$HF_HOME/emofusion/vision-features."""
    from huggingface_hub import constants

    return os.path.join(constants.HF_HOME, "emofusion", "vision-features")


def _digest() -> hashlib.blake2b:
    return hashlib.blake2b(digest_size=16)


def encoder_fingerprint(model) -> str:
    """Hash of the vision encoder's config and every weight (name, dtype, shape, bytes)."""
    vision = model.emofusion.vision_model if hasattr(model, "emofusion") else model.vision_model
    h = _digest()
    h.update(vision.config.to_json_string(use_diff=False).encode())
    for name, tensor in sorted(vision.state_dict().items()):
        tensor = tensor.detach().to("cpu").contiguous()
        h.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
        h.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return h.hexdigest()


def processing_fingerprint(processor) -> str:
    """Hash of the image processing (size, crop, normalisation...) and the subject-marking mode."""
    h = _digest()
    config = json.loads(processor.image_processor.to_json_string())
    config.pop("processor_class", None)
    h.update(json.dumps(config, sort_keys=True).encode())
    h.update(f"marking={processor.marking}".encode())
    return h.hexdigest()


def _hash_array(h, array: pa.Array) -> None:
    """Hash an Arrow array's content; image structs whose bytes are not embedded hash their file's stat."""
    if isinstance(array, pa.ChunkedArray):
        for chunk in array.chunks:
            _hash_array(h, chunk)
        return
    h.update(str(array.type).encode())
    if pa.types.is_struct(array.type):
        names = [array.type.field(i).name for i in range(array.type.num_fields)]
        children = dict(zip(names, array.flatten()))
        if {"bytes", "path"} <= set(names):
            _hash_array(h, children["bytes"])
            for path, data in zip(children["path"].to_pylist(), children["bytes"].to_pylist()):
                if data is None and path is not None and os.path.exists(path):
                    stat = os.stat(path)
                    h.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}".encode())
                elif data is None:
                    h.update(f"{path}".encode())
            return
        for name in names:
            _hash_array(h, children[name])
        return
    if pa.types.is_list(array.type) or pa.types.is_large_list(array.type) or pa.types.is_fixed_size_list(array.type):
        h.update(array.value_lengths().fill_null(-1).to_numpy(zero_copy_only=False).tobytes())
        _hash_array(h, array.flatten())
        return
    # Plain values: hash them through a compact copy so a sliced array hashes its own rows only.
    compact = pa.concat_arrays([array]) if array.offset else array
    for buffer in compact.buffers():
        if buffer is not None:
            h.update(memoryview(buffer))


def data_fingerprint(split: datasets.Dataset) -> str:
    """Hash of the split's rows, in order, over the columns that change what the encoder sees."""
    columns = [c for c in PICTURE_COLUMNS if c in split.column_names]
    dataset = split.with_format(None).select_columns(columns)
    h = _digest()
    h.update(f"{len(split)}|{columns}".encode())
    # The Arrow table under a selection/shuffle holds all source rows: hash it and the row mapping,
    # rather than copying the selected rows (pictures included) to a new file.
    table = dataset.data.table
    for column in columns:
        _hash_array(h, table.column(column))
    indices = getattr(dataset, "_indices", None)
    if indices is not None:
        _hash_array(h, indices.column(0))
    return h.hexdigest()


def cache_key(model, processor, split: datasets.Dataset, dtype: str, autocast: str | None) -> tuple[str, dict]:
    """The cache key of a split and the parts it was made of."""
    parts = {
        "format": f"{CACHE_FORMAT}/{CACHE_VERSION}",
        "encoder": encoder_fingerprint(model),
        "processing": processing_fingerprint(processor),
        "marking": processor.marking,
        "data": data_fingerprint(split),
        "dtype": dtype,
        "autocast": autocast or "none",
    }
    h = _digest()
    h.update(json.dumps(parts, sort_keys=True).encode())
    return h.hexdigest(), parts


class VisionFeatureCache:
    """Read access to one built cache: `cache[example_id] -> {"vision_hidden_states", ["frame_mask"]}`.

    >>> cache = VisionFeatureCache("~/.cache/huggingface/emofusion/vision-features/3f2a...")  # doctest: +SKIP
    >>> cache["train/mscoco/images/COCO_train2014_000000094388.jpg#p0"]["vision_hidden_states"].shape  # doctest: +SKIP
    torch.Size([257, 1024])
    """

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory).expanduser()
        index_path = self.directory / "index.json"
        if not index_path.is_file():
            raise FileNotFoundError(f"{self.directory}: not a finished vision-feature cache (no index.json).")
        self.index = json.loads(index_path.read_text())
        if self.index.get("format") != CACHE_FORMAT or self.index.get("version") != CACHE_VERSION:
            raise ValueError(
                f"{index_path}: format {self.index.get('format')!r} v{self.index.get('version')}; "
                f"expected {CACHE_FORMAT!r} v{CACHE_VERSION}. Delete the folder to rebuild it."
            )
        ids = json.loads((self.directory / "ids.json").read_text())
        self.rows = {example_id: row for row, example_id in enumerate(ids)}
        self.rows_per_shard = int(self.index["rows_per_shard"])
        self._handles: dict[int, object] = {}

    def __len__(self) -> int:
        return len(self.rows)

    def __contains__(self, example_id: str) -> bool:
        return example_id in self.rows

    def __getstate__(self):
        # safetensors handles cannot be pickled into data-loader workers; each worker reopens them.
        state = dict(self.__dict__)
        state["_handles"] = {}
        return state

    def _handle(self, shard: int):
        if shard not in self._handles:
            path = self.directory / f"shard-{shard:05d}.safetensors"
            self._handles[shard] = safe_open(str(path), framework="pt")
        return self._handles[shard]

    def __getitem__(self, example_id: str) -> dict[str, torch.Tensor]:
        try:
            row = self.rows[example_id]
        except KeyError:
            raise KeyError(f"Example {example_id!r} is not in the vision-feature cache {self.directory}.") from None
        handle = self._handle(row // self.rows_per_shard)
        offset = row % self.rows_per_shard
        features = handle.get_slice("vision_hidden_states")[offset : offset + 1][0].float()
        if not self.index.get("clips"):
            return {"vision_hidden_states": features}
        frame_mask = handle.get_slice("frame_mask")[offset : offset + 1][0]
        frames = int(frame_mask.sum())
        return {"vision_hidden_states": features[:frames], "frame_mask": frame_mask[:frames]}


def _autocast_context(device: torch.device, autocast_dtype: torch.dtype | None):
    if autocast_dtype is None:
        return torch.autocast(device_type=device.type, enabled=False)
    return torch.autocast(device_type=device.type, dtype=autocast_dtype)


def _encode(model, loader, device, autocast_dtype) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Features of every batch of `loader`, clips padded to the longest within the shard."""
    features, masks = [], []
    for batch in loader:
        pixel_values = batch["pixel_values"].to(device)
        frame_mask = batch["frame_mask"].to(device) if "frame_mask" in batch else None
        with torch.no_grad(), _autocast_context(device, autocast_dtype):
            encoded = model.get_vision_features(pixel_values, frame_mask)
        features.extend(encoded.float().cpu())
        if frame_mask is not None:
            masks.extend(frame_mask.cpu())
    if not masks:
        return torch.stack(features), None
    longest = max(m.shape[0] for m in masks)
    padded = features[0].new_zeros(len(features), longest, *features[0].shape[1:])
    mask = torch.zeros(len(features), longest, dtype=torch.long)
    for i, (feature, m) in enumerate(zip(features, masks)):
        padded[i, : feature.shape[0]] = feature
        mask[i, : m.shape[0]] = m
    return padded, mask


def build_feature_cache(
    model,
    processor,
    split: datasets.Dataset,
    task: str,
    cache_root: str | os.PathLike | None = None,
    *,
    dtype: str = "float32",
    batch_size: int = 16,
    device: torch.device | str | None = None,
    num_workers: int = 0,
    autocast_dtype: torch.dtype | None = None,
    split_name: str = "data",
    shard_bytes: int = SHARD_BYTES,
) -> VisionFeatureCache:
    """Build (or reuse) the vision-feature cache of `split` and return it.

    All processes of a distributed run call this; each computes the shards of its rank, the
    main process writes the index. The model is put in eval mode and on `device`.

    >>> cache = build_feature_cache(model, processor, dataset["train"], "emotic", "/tmp/features")  # doctest: +SKIP
    """
    from accelerate import PartialState

    if dtype not in DTYPES:
        raise ValueError(f"Feature cache dtype {dtype!r}: expected one of {sorted(DTYPES)}.")
    if len(split) == 0:
        raise ValueError(f"Cannot cache vision features of the empty split {split_name!r}.")
    state = PartialState()
    root = Path(cache_root if cache_root is not None else default_cache_root()).expanduser()
    autocast_name = str(autocast_dtype).replace("torch.", "") if autocast_dtype is not None else None
    key, parts = cache_key(model, processor, split, dtype, autocast_name)
    directory = root / key
    if (directory / "index.json").is_file():
        logger.info("Reusing the vision-feature cache of %s: %s", split_name, directory)
        return VisionFeatureCache(directory)

    device = torch.device(device) if device is not None else state.device
    model.eval().to(device)
    # The same transform as training without the cache, minus text and labels: identical pixels.
    pictures = split.with_transform(ExampleTransform(processor, task, modality="vision", label_column=None))
    # Size shards from one encoded example: rows * bytes per row ~ shard_bytes.
    probe, _ = _encode(model, [EmotionCollator()([pictures[0]])], device, autocast_dtype)
    bytes_per_row = probe[0].numel() * torch.finfo(DTYPES[dtype]).bits // 8
    rows_per_shard = max(1, shard_bytes // bytes_per_row)
    num_shards = -(-len(split) // rows_per_shard)
    directory.mkdir(parents=True, exist_ok=True)

    mine = [s for s in range(num_shards) if s % state.num_processes == state.process_index]
    todo = [s for s in mine if not (directory / f"shard-{s:05d}.safetensors").is_file()]
    if len(todo) < len(mine):
        logger.info("%s: %d of %d shards already built, resuming.", directory, len(mine) - len(todo), len(mine))
    progress = tqdm(
        total=sum(min(rows_per_shard, len(split) - s * rows_per_shard) for s in todo),
        desc=f"Caching vision features ({split_name})",
        unit="ex",
        disable=not state.is_local_main_process,
    )
    for shard in todo:
        start, stop = shard * rows_per_shard, min((shard + 1) * rows_per_shard, len(split))
        loader = torch.utils.data.DataLoader(
            pictures.select(range(start, stop)),
            batch_size=batch_size,
            num_workers=num_workers,
            collate_fn=EmotionCollator(),
        )
        features, frame_mask = _encode(model, loader, device, autocast_dtype)
        tensors = {"vision_hidden_states": features.to(DTYPES[dtype]).contiguous()}
        if frame_mask is not None:
            tensors["frame_mask"] = frame_mask.contiguous()
        final = directory / f"shard-{shard:05d}.safetensors"
        temporary = final.with_suffix(f".tmp{state.process_index}")
        save_file(tensors, str(temporary), metadata={"key": key, "rows": f"{start}-{stop}"})
        os.replace(temporary, final)
        progress.update(stop - start)
    progress.close()

    state.wait_for_everyone()
    if state.is_main_process:
        (directory / "ids.json").write_text(json.dumps(list(split["id"])))
        index = {
            "format": CACHE_FORMAT,
            "version": CACHE_VERSION,
            "key": key,
            "parts": parts,
            "split": split_name,
            "num_rows": len(split),
            "rows_per_shard": rows_per_shard,
            "num_shards": num_shards,
            "row_shape": list(probe.shape[1:]),
            "clips": "frames" in split.column_names,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        temporary = directory / "index.json.tmp"
        temporary.write_text(json.dumps(index, indent=2))
        os.replace(temporary, directory / "index.json")
        logger.info("Cached vision features of %s (%d examples) in %s", split_name, len(split), directory)
    state.wait_for_everyone()
    return VisionFeatureCache(directory)
