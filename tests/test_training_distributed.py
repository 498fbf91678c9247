"""A 2-process CPU run of train.py through `accelerate launch` (torch.distributed, gloo), with the
vision-feature cache shared out by rank."""

import json
import os
import subprocess
import sys
from pathlib import Path

from ports import free_port
from training_data import WORDS, write_emotic

from emofusion.testing import tiny_classifier


REPO = Path(__file__).resolve().parents[1]


def test_two_process_accelerate_launch(tmp_path):
    data_dir, descriptions = write_emotic(tmp_path, {"train": 16, "val": 8, "test": 8})
    model, processor = tiny_classifier("emotic", words=WORDS)
    model.save_pretrained(tmp_path / "init")
    processor.save_pretrained(tmp_path / "init")
    output_dir = tmp_path / "out"
    command = [
        sys.executable, "-m", "accelerate.commands.launch",
        # --multi_gpu selects the torch.distributed launcher; --use_cpu below keeps it on CPU (gloo).
        "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port()),
        str(REPO / "train.py"),
        "--model_name_or_path", str(tmp_path / "init"), "--dataset", "emotic",
        "--data_dir", str(data_dir), "--descriptions", str(descriptions),
        "--dataset_cache_dir", str(tmp_path / "arrow_cache"), "--output_dir", str(output_dir),
        "--do_train", "--do_eval", "--do_predict", "--max_steps", "2",
        "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "4",
        "--freeze_vision", "--cache_vision_features", "--vision_cache_dir", str(tmp_path / "features"),
        "--save_strategy", "no", "--report_to", "none", "--use_cpu", "--disable_tqdm", "true",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert "Process rank: 0" in log and "Process rank: 1" in log and "distributed: True" in log

    results = json.loads((output_dir / "all_results.json").read_text())
    # 2 steps x 4 examples x 2 processes = the 16 training examples: one epoch only if both ran.
    assert results["epoch"] == 1.0
    assert results["test_samples"] == 8 and 0.0 <= results["test_mAP"] <= 1.0
    assert len((output_dir / "test_predictions.jsonl").read_text().splitlines()) == 8
    assert len(list((tmp_path / "features").glob("*/index.json"))) == 3
    assert (output_dir / "model.safetensors").is_file() and (output_dir / "README.md").is_file()
