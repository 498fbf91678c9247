"""Multi-process runs on CPU (gloo) that need EmoFusion's distributed contracts: every trainable parameter gets a
gradient (DDP without find_unused_parameters), and sharding units that exist in the model (FSDP auto-wrap)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from ports import free_port
from safetensors.torch import load_file
from training_data import WORDS, write_emotic

from emofusion.testing import tiny_classifier
from modeling_emofusion import EmoFusionForEmotionClassification


REPO = Path(__file__).resolve().parents[1]
LAUNCH = [
    sys.executable, "-m", "accelerate.commands.launch",
    "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
]  # fmt: skip
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def _run(command, timeout=300):
    result = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-4000:]
    return result.stdout + result.stderr


def test_two_process_training_with_a_trainable_encoder_and_activation_checkpointing(tmp_path):
    """The Trainer runs DDP with find_unused_parameters=False under gradient checkpointing: any parameter without a
    gradient (CLIP's post_layernorm before) stops the run at the first step."""
    data_dir, descriptions = write_emotic(tmp_path, {"train": 16, "val": 4, "test": 4})
    model, processor = tiny_classifier("emotic", words=WORDS)
    model.save_pretrained(tmp_path / "init")
    processor.save_pretrained(tmp_path / "init")
    output_dir = tmp_path / "out"
    log = _run([
        *LAUNCH, "--multi_gpu", "--main_process_port", str(free_port()), str(REPO / "train.py"),
        "--model_name_or_path", str(tmp_path / "init"), "--dataset", "emotic",
        "--data_dir", str(data_dir), "--descriptions", str(descriptions),
        "--dataset_cache_dir", str(tmp_path / "arrow_cache"), "--output_dir", str(output_dir),
        "--do_train", "--max_steps", "2", "--per_device_train_batch_size", "4",
        "--gradient_checkpointing", "--save_strategy", "no", "--report_to", "none", "--use_cpu",
        "--disable_tqdm", "true",
    ])  # fmt: skip
    assert "Process rank: 0" in log and "Process rank: 1" in log and "distributed: True" in log
    results = json.loads((output_dir / "all_results.json").read_text())
    assert results["epoch"] == 1.0  # 2 steps x 4 examples x 2 processes = the 16 training examples
    config = json.loads((output_dir / "config.json").read_text())
    assert config["freeze_vision"] is False


def test_two_process_fsdp_trains_saves_and_reloads(tmp_path):
    """FSDP2 on CPU over gloo, wrapping the model's own `_no_split_modules`: train, save the full state dict,
    reload it in one process and get the logits the trained, sharded model gave (see tests/fsdp_script.py)."""
    model, _ = tiny_classifier("emotic")
    model.save_pretrained(tmp_path / "init")
    _run([
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
        str(REPO / "tests" / "fsdp_script.py"), str(tmp_path / "init"), str(tmp_path / "trained"),
    ])  # fmt: skip
    expected = json.loads((tmp_path / "trained" / "logits.json").read_text())
    reloaded = EmoFusionForEmotionClassification.from_pretrained(tmp_path / "trained")
    inputs = load_file(tmp_path / "trained" / "inputs.safetensors")
    with torch.no_grad():
        logits = reloaded(**inputs).logits
    torch.testing.assert_close(logits, torch.tensor(expected["logits"]), rtol=1e-5, atol=1e-6)
    initial = EmoFusionForEmotionClassification.from_pretrained(tmp_path / "init")
    with torch.no_grad():
        assert not torch.allclose(initial(**inputs).logits, logits)  # it did train
    assert expected["world_size"] == 2
    assert {"CLIPEncoderLayer", "InstructBlipQFormerLayer"} <= set(expected["wrapped"])
