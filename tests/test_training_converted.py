"""Training and describing from what `emofusion convert` writes, run as a user runs them: convert in a
subprocess, then `python train.py --data_dir <convert output>` (Parquet) or the training entry on its
Arrow output; the synthetic-data marker travels through convert to the model card."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import datasets
import pytest
import yaml
from training_data import METADATA, WORDS, write_emotic

from dataset_scripts import DatasetLayoutError, load_emotion_dataset, load_prepared_dataset
from emofusion.captioning.samples import load_split
from emofusion.testing import tiny_classifier
from emofusion.training import parse_args, run_training


REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def run(command, timeout=300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def convert(*args) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "emofusion.cli", "convert", *map(str, args)])


TRAIN_OPTIONS = [
    "--dataset", "emotic", "--do_train", "--do_predict", "--max_steps", "2",
    "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "8", "--learning_rate", "3e-3",
    "--save_strategy", "no", "--report_to", "none", "--use_cpu", "--seed", "7", "--disable_tqdm", "true",
]  # fmt: skip


def save_initial(path, words) -> str:
    model, processor = tiny_classifier("emotic", words=words, seed=0)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return str(path)


def test_train_py_on_converted_synthetic_data_keeps_the_synthetic_card(tmp_path):
    """The demo's synthetic data -> `emofusion convert` (Parquet) -> `python train.py --data_dir <out>`."""
    from emofusion.demo import write_descriptions
    from emofusion.synthetic import SYNTHETIC_MARKER, vocabulary, write_synthetic_emotic

    data_dir = tmp_path / "synthetic"
    write_synthetic_emotic(data_dir, {"train": 6, "val": 3, "test": 3}, seed=1)
    built = load_emotion_dataset("emotic", data_dir, cache_dir=str(tmp_path / "cache"))
    descriptions, _ = write_descriptions(built, tmp_path / "descriptions")
    out = tmp_path / "converted"
    convert("--dataset", "emotic", "--data_dir", data_dir, "--output_dir", out, "--cache_dir", tmp_path / "cache")
    assert json.loads((out / SYNTHETIC_MARKER).read_text()) == json.loads((data_dir / SYNTHETIC_MARKER).read_text())
    assert "Synthetic data" in (out / "README.md").read_text() and "forbids" not in (out / "README.md").read_text()

    # The converted rows are the builder's: same ids, boxes and labels.
    prepared = load_prepared_dataset(out, "emotic", cache_dir=str(tmp_path / "hf"))
    for split, rows in built.items():
        columns = ["id", "bbox", "labels", "vad"]
        assert prepared[split].select_columns(columns).to_list() == rows.select_columns(columns).to_list(), split

    model = save_initial(tmp_path / "init", vocabulary())
    run_dir = tmp_path / "run"
    run([sys.executable, str(REPO / "train.py"), "--model_name_or_path", model, "--data_dir", out,
         "--descriptions", descriptions, "--dataset_cache_dir", tmp_path / "hf", "--output_dir", run_dir,
         *TRAIN_OPTIONS])  # fmt: skip
    results = json.loads((run_dir / "all_results.json").read_text())
    assert math.isfinite(results["test_mAP"]) and results["test_samples"] == len(built["test"])
    card = (run_dir / "README.md").read_text(encoding="utf-8")
    _, header, body = card.split("---\n", 2)
    meta = yaml.safe_load(header)
    assert "model-index" not in meta and "synthetic-data" in meta["tags"] and "emotic" not in meta["tags"]
    lines = [line for line in body.splitlines() if line.strip()]
    assert lines[1].startswith("**Trained and tested on synthetic data (emofusion synthetic scenes)")
    assert "emofusion.synthetic.write_synthetic_emotic" in card and "as its owners ship it" not in card


def test_arrow_output_with_joined_descriptions_keeps_their_provenance(tmp_path):
    """`emofusion convert --descriptions --output_format arrow`, then training on it without --descriptions:
    the descriptions and their description_set.json come from the converted folder; caption.py reads it too."""
    data_dir, descriptions = write_emotic(tmp_path, {"train": 8, "val": 4, "test": 4})
    out = tmp_path / "converted"
    convert("--dataset", "emotic", "--data_dir", data_dir, "--output_dir", out, "--output_format", "arrow",
            "--descriptions", descriptions, "--cache_dir", tmp_path / "arrow_cache")  # fmt: skip
    summary = json.loads((out / "conversion.json").read_text())
    assert summary["description_set"]["model"] == METADATA["model"] and summary["synthetic"] is False

    model = save_initial(tmp_path / "init", WORDS)
    run_dir = tmp_path / "run"
    metrics = run_training(
        *parse_args(["--model_name_or_path", model, "--data_dir", str(out), "--output_dir", str(run_dir),
                     *TRAIN_OPTIONS])
    )  # fmt: skip
    assert math.isfinite(metrics["test_mAP"])
    config = json.loads((run_dir / "config.json").read_text())
    assert config["description_model"] == "tiny-llava" and config["description_revision"] == "0123abc"
    assert config["description_dataset"] == str(descriptions) and config.get("description_provenance") is None
    card = (run_dir / "README.md").read_text()
    assert "model-index:" in card and "EMOTIC prepared by `emofusion convert`" in card

    # Descriptions twice (in the data and by --descriptions) is a clear error, not a silent choice.
    with pytest.raises(ValueError, match=r"already holds descriptions .*joined from .*leave out --descriptions"):
        run_training(
            *parse_args(["--model_name_or_path", model, "--data_dir", str(out), "--descriptions", str(descriptions),
                         "--output_dir", str(tmp_path / "twice"), *TRAIN_OPTIONS])
        )  # fmt: skip
    # Another dataset's name, or a folder changed after convert, are refused naming the file.
    with pytest.raises(DatasetLayoutError, match=r"conversion\.json: .* holds 'emotic' .*pass --dataset emotic"):
        load_prepared_dataset(out, "caer_s")
    # caption.py's reader takes the same folder (the split and its pictures, boxes and ids).
    split = load_split("emotic", str(out), "test")
    assert len(split) == 4 and split.features["image"] == datasets.Image()


def test_a_converted_folder_that_was_changed_is_refused(tmp_path):
    data_dir, _ = write_emotic(tmp_path, {"train": 4, "val": 2, "test": 2})
    out = tmp_path / "converted"
    convert("--dataset", "emotic", "--data_dir", data_dir, "--output_dir", out, "--cache_dir", tmp_path / "cache")
    shard = next((out / "data").glob("test-*.parquet"))
    # Rows lost (a shard of another run copied over this one): the count in conversion.json says so.
    datasets.Dataset.from_parquet(str(shard)).select([0]).to_parquet(str(shard))
    with pytest.raises(DatasetLayoutError, match=r"conversion\.json lists splits .*'test': 2.* but the files hold"):
        load_prepared_dataset(out, "emotic", cache_dir=str(tmp_path / "hf"))
    shard.unlink()  # a split's files gone
    with pytest.raises(DatasetLayoutError, match=r"converted: cannot be read as a prepared dataset \(parquet\)"):
        load_prepared_dataset(out, "emotic", cache_dir=str(tmp_path / "hf"))
