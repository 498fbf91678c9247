"""`emofusion convert`: prepare EMOTIC, CAER-S or BoLD as Parquet (or Arrow), optionally on a PRIVATE Hub repo.

The dataset is read from its owners' files by the builders of `dataset_scripts`, images and
frames are embedded (the output no longer depends on the original folders), and the result is
written as `data/<split>-NNNNN-of-NNNNN.parquet` shards with a README.md whose YAML `configs:`
lets `datasets.load_dataset(output_dir)` read it, or as `save_to_disk` Arrow files. The three
datasets' licences forbid redistribution: `--push_to_hub` only ever creates or updates a PRIVATE
dataset repo, and refuses a repo that exists and is public.

The output folder is a `--data_dir` for train.py and caption.py (`dataset_scripts.load_prepared_dataset`):
its conversion.json names the dataset, the row counts and the joined descriptions' provenance, and the
synthetic-data marker of the input (`emofusion_synthetic.json`, the demo's data) is copied beside it.

    emofusion convert --dataset emotic --data_dir /data/EMOTIC --output_dir outputs/emotic-parquet
    emofusion convert --dataset caer_s --data_dir /data/CAER-S --output_dir outputs/caer-s \\
        --validation_fraction 0.1 --push_to_hub me/caer-s-private
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .dataclass_args import DataclassArgumentParser
from .errors import check_output_folder


DATASET_OPTIONS = {
    "emotic": ("annotation_format",),
    "caer_s": ("validation_fraction", "validation_seed", "face_boxes_file"),
    "bold": ("num_frames", "box_margin", "frames_source"),
}


@dataclass
class ConvertArguments:
    dataset: str = field(metadata={"help": "Which dataset.", "choices": sorted(DATASET_OPTIONS)})
    data_dir: str = field(metadata={"help": "The dataset as its owners ship it (see README, 'Datasets')."})
    output_dir: str = field(metadata={"help": "Where the Parquet shards (or Arrow files) and the card go."})
    output_format: str = field(
        default="parquet", metadata={"help": "parquet or arrow.", "choices": ["parquet", "arrow"]}
    )
    overwrite_output_dir: bool = field(default=False, metadata={"help": "Replace a non-empty output_dir."})
    max_shard_size: str = field(default="500MB", metadata={"help": "Largest Parquet/Arrow shard, e.g. 500MB."})
    descriptions: str | None = field(
        default=None,
        metadata={
            "help": "Descriptions to join by id: a description set from caption.py, or any table of id, description "
            "(CSV, JSON Lines, Parquet, a folder of them, a save_to_disk dataset, a Hub dataset id)."
        },
    )
    on_missing: str = field(
        default="warn",
        metadata={
            "help": "Examples without a description: warn (drop), error, keep.",
            "choices": ["warn", "error", "keep"],
        },
    )
    cache_dir: str | None = field(default=None, metadata={"help": "Arrow cache of the builder (default: datasets')."})
    strict: bool = field(default=False, metadata={"help": "Stop at the first bad sample instead of skipping it."})
    verify_images: bool = field(default=True, metadata={"help": "Decode every image once (finds corrupt files)."})
    annotation_format: str | None = field(
        default=None, metadata={"help": "EMOTIC: mat, csv or auto.", "choices": ["auto", "mat", "csv"]}
    )
    validation_fraction: float | None = field(default=None, metadata={"help": "CAER-S: share of train held out."})
    validation_seed: int | None = field(default=None, metadata={"help": "CAER-S: seed of the held-out choice."})
    face_boxes_file: str | None = field(default=None, metadata={"help": "CAER-S: third-party face-box file."})
    num_frames: int | None = field(default=None, metadata={"help": "BoLD: frames sampled per person-clip."})
    box_margin: float | None = field(default=None, metadata={"help": "BoLD: margin around the joints box."})
    frames_source: str | None = field(
        default=None, metadata={"help": "BoLD: auto, video or mmextract.", "choices": ["auto", "video", "mmextract"]}
    )
    push_to_hub: str | None = field(
        default=None, metadata={"help": "Also push to this PRIVATE Hub dataset repo (user/name)."}
    )
    hub_token: str | None = field(default=None, metadata={"help": "Hub token (default: the logged-in one)."})

    def __post_init__(self):
        for name, options in DATASET_OPTIONS.items():
            if name != self.dataset:
                given = [o for o in options if getattr(self, o) is not None]
                if given:
                    raise ValueError(f"--{', --'.join(given)} apply to {name}, not to {self.dataset}.")

    def builder_options(self) -> dict:
        options = {"strict": self.strict, "verify_images": self.verify_images}
        options.update({o: getattr(self, o) for o in DATASET_OPTIONS[self.dataset] if getattr(self, o) is not None})
        return options


def _size_in_bytes(size: str) -> int:
    units = {"KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "B": 1}
    text = size.strip().upper()
    for unit, factor in units.items():
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * factor)
    return int(text)


def write_parquet(dataset_dict, output_dir: Path, max_shard_size: str = "500MB") -> dict[str, list[str]]:
    """Write each split as `data/<split>-NNNNN-of-NNNNN.parquet` with images embedded; return the files.

    The shard count comes from the embedded size of the first rows, so shards stay near
    `max_shard_size`; each shard is embedded and written on its own (memory holds one shard).
    """
    from datasets.table import embed_table_storage

    limit = _size_in_bytes(max_shard_size)
    files: dict[str, list[str]] = {}
    (output_dir / "data").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        for split, dataset in dataset_dict.items():
            sample = dataset.select(range(min(16, len(dataset)))).with_format("arrow")
            sample = sample.map(embed_table_storage, batched=True, keep_in_memory=True)
            per_row = sample.data.nbytes / max(1, len(sample))
            num_shards = max(1, math.ceil(per_row * len(dataset) / limit))
            files[split] = []
            for index in range(num_shards):
                shard = dataset.shard(num_shards=num_shards, index=index, contiguous=True).with_format("arrow")
                shard = shard.map(
                    embed_table_storage,
                    batched=True,
                    batch_size=64,
                    cache_file_name=str(Path(scratch) / f"{split}-{index}.arrow"),
                    desc=f"Embedding {split} shard {index + 1}/{num_shards}",
                )
                name = f"data/{split}-{index:05d}-of-{num_shards:05d}.parquet"
                shard.with_format(None).to_parquet(str(output_dir / name), batch_size=64)
                files[split].append(name)
                del shard
    return files


def dataset_card(
    args: ConvertArguments, splits: dict[str, list[str]], num_rows: dict[str, int], synthetic: dict | None = None
) -> str:
    """README.md of a converted dataset: YAML `configs:` for `load_dataset(output_dir)` and the licence notice
    (or, for synthetic data, what it is)."""
    configs = "\n".join(f"  - split: {split}\n    path: data/{split}-*.parquet" for split in splits)
    rows = "\n".join(f"| {split} | {n} |" for split, n in num_rows.items())
    header = f"---\nconfigs:\n- config_name: default\n  data_files:\n{configs}\n---\n\n"
    table = f"| split | examples |\n|---|---|\n{rows}\n\n"
    if synthetic is not None:
        from .synthetic import SYNTHETIC_MARKER

        return (
            f"{header}# Synthetic data in {args.dataset}'s layout, prepared by emofusion\n\n"
            f"**Synthetic data ({synthetic.get('name', 'synthetic data')}, written by "
            f"`{synthetic.get('writer', 'an unrecorded program')}`), not {args.dataset} nor any real photos.** "
            f"Converted with `emofusion convert --dataset {args.dataset}`; {SYNTHETIC_MARKER} records how it was "
            "made.\n\n" + table
        )
    return (
        f"{header}# {args.dataset} prepared by emofusion\n\n"
        f"Built from the owners' files with `emofusion convert --dataset {args.dataset}` "
        "(dataset_scripts builders; ids, boxes and labels as documented in emofusion's README).\n\n"
        + table
        + "**Licence.** This dataset is distributed by its owners under a non-commercial licence that "
        "forbids redistribution. Keep this copy private to people who have been granted access by "
        "the owners.\n"
    )


def push_private(dataset_dict, repo_id: str, token: str | None = None, max_shard_size: str = "500MB") -> str:
    """Push `dataset_dict` to the Hub as a PRIVATE dataset repo; refuse a repo that exists and is public."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    url = api.create_repo(repo_id, repo_type="dataset", private=True, exist_ok=True)
    if not api.repo_info(repo_id, repo_type="dataset").private:
        raise PermissionError(
            f"{repo_id} exists and is public. The dataset's licence forbids redistribution: push to a private repo."
        )
    dataset_dict.push_to_hub(
        repo_id,
        private=True,
        token=token,
        max_shard_size=max_shard_size,
        commit_message="Add dataset prepared with emofusion convert",
    )
    return str(url)


def main(argv: list[str] | None = None) -> int:
    parser = DataclassArgumentParser(ConvertArguments, prog="emofusion convert")
    if argv is not None and len(argv) == 1 and argv[0].endswith(".json"):
        (args,) = parser.parse_json_file(argv[0])
    else:
        (args,) = parser.parse_args_into_dataclasses(args=argv)

    from dataset_scripts import get_builder, load_description_set, load_emotion_dataset
    from dataset_scripts.common import AnnotationFormatError, BadSampleError, DatasetLayoutError, UnsafePathError
    from dataset_scripts.descriptions import DescriptionSetError

    from .synthetic import SYNTHETIC_MARKER, read_synthetic_marker

    output_dir = Path(check_output_folder(args.output_dir))
    if output_dir.exists() and any(output_dir.iterdir()):
        if not args.overwrite_output_dir:
            sys.stderr.write(
                f"emofusion convert: {output_dir} is not empty; pass --overwrite_output_dir to replace it.\n"
            )
            return 1
        shutil.rmtree(output_dir)
    try:
        synthetic = read_synthetic_marker(args.data_dir)
        description_metadata = None
        descriptions = None
        if args.descriptions is not None:
            descriptions, description_metadata = load_description_set(args.descriptions, cache_dir=args.cache_dir)
            made_for = description_metadata.get("dataset")
            if made_for and made_for != args.dataset:
                sys.stderr.write(
                    f"emofusion convert: warning: description set {args.descriptions} was made for {made_for!r}, "
                    f"not {args.dataset!r}.\n"
                )
        dataset = load_emotion_dataset(
            args.dataset,
            args.data_dir,
            descriptions=descriptions,
            cache_dir=args.cache_dir,
            on_missing=args.on_missing,
            **args.builder_options(),
        )
    except (
        DatasetLayoutError,
        AnnotationFormatError,
        UnsafePathError,
        BadSampleError,
        DescriptionSetError,
        ValueError,
    ) as err:
        sys.stderr.write(f"emofusion convert: {type(err).__name__}: {err}\n")
        return 1

    # The same options give the same (now prepared) cache, whose report says what was skipped.
    reports = get_builder(args.dataset, args.data_dir, cache_dir=args.cache_dir, **args.builder_options()).bad_samples
    output_dir.mkdir(parents=True, exist_ok=True)
    num_rows = {split: len(ds) for split, ds in dataset.items()}
    if synthetic is not None:  # whatever trains on the output must know it is no real dataset
        (output_dir / SYNTHETIC_MARKER).write_text(json.dumps(synthetic, indent=2) + "\n", encoding="utf-8")
    if args.output_format == "parquet":
        files = write_parquet(dataset, output_dir, args.max_shard_size)
        card = dataset_card(args, files, num_rows, synthetic=synthetic)
        (output_dir / "README.md").write_text(card, encoding="utf-8")
    else:
        dataset.save_to_disk(str(output_dir), max_shard_size=args.max_shard_size)
        files = {split: [f"{split}/"] for split in dataset}
    summary = {
        "dataset": args.dataset,
        "output_dir": str(output_dir),
        "format": args.output_format,
        "splits": {split: {"num_rows": num_rows[split], "files": files[split]} for split in dataset},
        "bad_samples": {split: {"skipped": r["skipped"], "reasons": r["reasons"]} for split, r in reports.items()},
        "arguments": {k: v for k, v in asdict(args).items() if k != "hub_token"},
        # The joined descriptions' description_set.json ({} for a table without one), for training on the output.
        "description_set": description_metadata,
        "synthetic": synthetic is not None,
        "pushed_to": None,
    }
    (output_dir / "conversion.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    if args.push_to_hub:
        try:
            summary["pushed_to"] = push_private(dataset, args.push_to_hub, args.hub_token, args.max_shard_size)
        except Exception as err:  # the local output is complete: say where it is, whatever the Hub said
            sys.stderr.write(
                f"emofusion convert: pushing to {args.push_to_hub} failed ({type(err).__name__}: {err}); "
                f"the converted dataset is complete in {output_dir}.\n"
            )
            return 1
        (output_dir / "conversion.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    sys.stdout.write(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
