"""train.py and caption.py as users run them: config files (YAML, JSON) with overriding flags, under
`accelerate launch` too, kill -9 while saving and the rerun of the same command, and one-line errors."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import datasets
import pytest
import torch
import yaml
from caption_fixtures import build_llava, image_split
from safetensors.torch import load_file
from training_data import WORDS, write_emotic

from emofusion.captioning import main as caption_main
from emofusion.errors import EmofusionError, run_main
from emofusion.testing import tiny_classifier
from emofusion.training import main as train_main
from emofusion.training import parse_args
from emofusion.training.checkpoints import IncompleteCheckpointError, checkpoint_problems
from emofusion.training.run import check_hub_access, resolve_checkpoint


REPO = Path(__file__).resolve().parents[1]
RUNTIME_KEYS = ("runtime", "per_second", "preparation_time")

# Loaded at interpreter start (PYTHONPATH), it kills the process with SIGKILL at the point that
# EMOFUSION_TEST_KILL names: inside the Trainer's save of checkpoint-N (the model, optimizer and
# scheduler are written, the RNG and trainer state are not), or in the final save_model, after its
# weights file is half written.
KILL_HOOK = textwrap.dedent(
    """
    import os, signal

    where = os.environ.get("EMOFUSION_TEST_KILL")
    if where:
        from transformers import Trainer

        if where.startswith("checkpoint-"):
            step = int(where.split("-")[1])
            save_rng_state = Trainer._save_rng_state

            def _save_rng_state(self, output_dir):
                if self.state.global_step == step:
                    os.kill(os.getpid(), signal.SIGKILL)
                return save_rng_state(self, output_dir)

            Trainer._save_rng_state = _save_rng_state
        elif where == "final-save":
            save_model = Trainer.save_model

            def final_save_model(self, output_dir=None, _internal_call=False):
                save_model(self, output_dir, _internal_call)
                if not _internal_call:
                    weights = os.path.join(self.args.output_dir, "model.safetensors")
                    with open(weights, "r+b") as handle:
                        handle.truncate(os.path.getsize(weights) // 2)
                    os.kill(os.getpid(), signal.SIGKILL)

            Trainer.save_model = final_save_model
    """
)


def environment(**extra) -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", **extra}


def run(command, timeout=300, **env) -> subprocess.CompletedProcess:
    return subprocess.run(command, env=environment(**env), capture_output=True, text=True, timeout=timeout)


def train_py(*args) -> list[str]:
    return [sys.executable, str(REPO / "train.py"), *map(str, args)]


def figures(metrics: dict, prefix: str = "test_") -> dict:
    return {k: v for k, v in metrics.items() if k.startswith(prefix) and not any(r in k for r in RUNTIME_KEYS)}


def assert_same_weights(folder, reference) -> None:
    final, expected = load_file(Path(folder) / "model.safetensors"), load_file(Path(reference) / "model.safetensors")
    assert final.keys() == expected.keys()
    for name, tensor in expected.items():
        torch.testing.assert_close(final[name], tensor, rtol=1e-6, atol=1e-7, msg=name)


def one_error_line(result, *, code: int) -> str:
    assert result.returncode == code, result.stdout[-2000:] + result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    return lines[0]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A small EMOTIC with descriptions, a tiny initial model, and the options of a 6-step run that
    saves a checkpoint every 2 steps (one config for every test)."""
    root = tmp_path_factory.mktemp("entry")
    data_dir, descriptions = write_emotic(root, {"train": 16, "val": 8, "test": 8})
    model, processor = tiny_classifier("emotic", words=WORDS, seed=0)
    model.save_pretrained(root / "init")
    processor.save_pretrained(root / "init")
    options = {
        "model_name_or_path": str(root / "init"),
        "dataset": "emotic",
        "data_dir": str(data_dir),
        "descriptions": str(descriptions),
        "dataset_cache_dir": str(root / "arrow_cache"),
        "per_device_train_batch_size": 4,
        "per_device_eval_batch_size": 8,
        "learning_rate": 3e-3,
        "vad_loss_weight": 0.1,
        "max_steps": 6,
        "save_strategy": "steps",
        "save_steps": 2,
        "save_total_limit": 1,
        "report_to": "none",
        "use_cpu": True,
        "seed": 7,
        "disable_tqdm": True,
        "do_train": True,
        "do_predict": True,
    }
    return root, options


@pytest.fixture(scope="module")
def uninterrupted(setup):
    """`accelerate launch ... train.py cfg.yaml --max_steps 6 --output_dir ...` (one CPU process): the
    YAML says 50 steps and another folder; the flags after it win."""
    root, options = setup
    config = root / "emotic.yaml"
    config.write_text(yaml.safe_dump({**options, "max_steps": 50, "output_dir": str(root / "not-here")}))
    command = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--num_processes", "1", "--cpu", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        str(REPO / "train.py"), str(config), "--max_steps", "6", "--output_dir", str(root / "whole"),
    ]  # fmt: skip
    result = run(command)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return root / "whole"


def test_accelerate_launch_with_a_yaml_config_and_overriding_flags(setup, uninterrupted):
    root, _ = setup
    assert not (root / "not-here").exists()
    state = json.loads((uninterrupted / "trainer_state.json").read_text())
    assert state["global_step"] == 6 and state["max_steps"] == 6
    assert [p.name for p in uninterrupted.glob("checkpoint-*")] == ["checkpoint-6"]  # save_total_limit 1
    results = json.loads((uninterrupted / "all_results.json").read_text())
    assert 0.0 <= results["test_mAP"] <= 1.0 and results["test_samples"] == 8
    assert (uninterrupted / "model.safetensors").is_file() and (uninterrupted / "README.md").is_file()


def test_kill_while_saving_then_the_same_command_ends_as_an_uninterrupted_run(setup, uninterrupted, tmp_path):
    root, options = setup
    output_dir = tmp_path / "resumed"
    config = tmp_path / "emotic.json"
    config.write_text(json.dumps({**options, "output_dir": str(output_dir)}))
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(KILL_HOOK)
    with_hook = f"{hooks}{os.pathsep}{REPO}"

    # 1. kill -9 while checkpoint-4 is being written.
    killed = run(train_py(config), PYTHONPATH=with_hook, EMOFUSION_TEST_KILL="checkpoint-4")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert (output_dir / "checkpoint-4" / "optimizer.pt").is_file()
    assert not (output_dir / "checkpoint-4" / "trainer_state.json").exists()
    assert (output_dir / "checkpoint-2" / "trainer_state.json").is_file()

    # 2. The same command: checkpoint-4 is set aside, the run resumes from checkpoint-2, and it is
    #    killed again, this time in the final save_model, its weights half written.
    again = run(train_py(config), PYTHONPATH=with_hook, EMOFUSION_TEST_KILL="final-save")
    assert again.returncode == -signal.SIGKILL, again.stdout[-3000:] + again.stderr[-3000:]
    log = again.stdout + again.stderr
    assert f"Checkpoint {output_dir / 'checkpoint-4'} is incomplete (trainer_state.json is missing" in log
    assert f"resuming training at {output_dir / 'checkpoint-2'}" in log
    [set_aside] = output_dir.glob("_incomplete-checkpoint-4-*")
    assert (set_aside / "optimizer.pt").is_file()  # renamed, not deleted
    # The Trainer's rotation (save_total_limit 1) kept the newest checkpoint and left the set-aside one alone.
    assert sorted(p.name for p in output_dir.glob("checkpoint-*")) == ["checkpoint-6"]

    # 3. The same command once more: it resumes from checkpoint-6 and finishes.
    final = run(train_py(config))
    assert final.returncode == 0, final.stdout[-3000:] + final.stderr[-3000:]
    assert f"resuming training at {output_dir / 'checkpoint-6'}" in final.stdout + final.stderr
    assert_same_weights(output_dir, uninterrupted)
    resumed = json.loads((output_dir / "all_results.json").read_text())
    reference = json.loads((uninterrupted / "all_results.json").read_text())
    assert figures(resumed) == figures(reference) and figures(resumed)
    assert set_aside.is_dir()

    # An explicit --resume_from_checkpoint naming the incomplete folder: a clear error, nothing resumed.
    *_, training_args = parse_args([str(config), "--resume_from_checkpoint", str(set_aside)])
    with pytest.raises(IncompleteCheckpointError, match="trainer_state.json is missing.*rng_state.pth"):
        resolve_checkpoint(training_args)


def test_what_makes_a_checkpoint_incomplete(uninterrupted, tmp_path):
    complete = uninterrupted / "checkpoint-6"
    assert checkpoint_problems(str(complete)) == []

    def broken(name, damage):
        folder = tmp_path / name
        shutil.copytree(complete, folder)
        damage(folder)
        return checkpoint_problems(str(folder))

    def truncate(path):
        with open(path, "r+b") as handle:
            handle.truncate(path.stat().st_size // 2)

    assert broken("weights", lambda f: truncate(f / "model.safetensors")) == [
        "model.safetensors is not a whole safetensors file (Error while deserializing header: incomplete metadata, "
        "file not fully covered)"
    ]
    assert broken("no-weights", lambda f: (f / "model.safetensors").unlink()) == [
        "the model weights (model.safetensors) are missing"
    ]
    [problem] = broken("optimizer", lambda f: truncate(f / "optimizer.pt"))
    assert problem.startswith("optimizer.pt is not a whole torch archive")
    assert broken("scheduler", lambda f: (f / "scheduler.pt").unlink()) == ["scheduler.pt is missing"]
    assert broken("rng", lambda f: (f / "rng_state.pth").unlink()) == ["the RNG state (rng_state.pth) is missing"]
    [problem] = broken("state", lambda f: truncate(f / "trainer_state.json"))
    assert problem.startswith("trainer_state.json does not parse")
    [problem] = broken("config", lambda f: (f / "config.json").write_text('{"model_type": "emo'))
    assert problem.startswith("config.json does not parse")
    # --save_only_model checkpoints have no optimizer, scheduler or RNG state, and need none.
    folder = tmp_path / "model-only"
    shutil.copytree(complete, folder)
    for name in ("optimizer.pt", "scheduler.pt", "rng_state.pth"):
        (folder / name).unlink()
    assert checkpoint_problems(str(folder), with_optimizer=False) == []
    assert len(checkpoint_problems(str(folder))) == 3

    # --resume_from_checkpoint true with only an incomplete checkpoint: it is set aside, and the error says so.
    output_dir = tmp_path / "run"
    shutil.copytree(tmp_path / "rng", output_dir / "checkpoint-6")
    *_, training_args = parse_args(
        ["--model_name_or_path", "m", "--dataset", "emotic", "--output_dir", str(output_dir),
         "--resume_from_checkpoint", "true"]
    )  # fmt: skip
    with pytest.raises(IncompleteCheckpointError, match="no complete checkpoint-N folder in"):
        resolve_checkpoint(training_args)
    assert [p.name.startswith("_incomplete-checkpoint-6-") for p in output_dir.iterdir()] == [True]
    training_args.resume_from_checkpoint = str(tmp_path / "nowhere")
    with pytest.raises(IncompleteCheckpointError, match="nowhere: no such folder"):
        resolve_checkpoint(training_args)


def test_caption_py_with_a_yaml_config_and_overriding_flags(tmp_path):
    folder, generation = build_llava(tmp_path / "tiny-llava")
    data_dir = tmp_path / "prepared"
    datasets.DatasetDict({"train": image_split("train", 6), "val": image_split("val", 4, seed=1)}).save_to_disk(
        data_dir
    )
    config = tmp_path / "caption.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "dataset": "emotic",
                "data_dir": str(data_dir),
                "split": "train",
                "model": folder,
                "output_dir": str(tmp_path / "descriptions"),
                "batch_size": 4,
                "max_new_tokens": 4,
                "generation_kwargs": generation,
            }
        )
    )
    result = run([sys.executable, str(REPO / "caption.py"), str(config), "--split", "val", "--limit", "3"])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["split"] == "val" and summary["total"] == 3, summary
    described = datasets.load_dataset(str(tmp_path / "descriptions"))
    assert set(described) == {"val"} and len(described["val"]) == 3


def test_config_file_errors_are_one_line_naming_the_file(setup, tmp_path, capsys):
    root, options = setup
    bad = tmp_path / "emotic.yaml"
    bad.write_text("dataset: emotic\ndata_dir: [/data/EMOTIC\nseed: 3\n")
    line = one_error_line(run(train_py(bad, "--seed", "4")), code=2)
    assert line.startswith(f"train.py: error: config file {bad} is not valid YAML:") and "line 3" in line

    missing = tmp_path / "missing.json"
    # The same code path in-process (run_main is what train.py and caption.py call with sys.argv[1:]).
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({**options, "output_dir": str(tmp_path / "o"), "learning_rat": 0.1}))
    cases = {
        (train_main, str(unknown)): f"config file {unknown}: unknown option(s) learning_rat (`--help` lists",
        (train_main, str(missing)): f"config file {missing} not found.",
        (caption_main, str(missing)): f"config file {missing} not found.",
        (caption_main, str(bad)): f"config file {bad} is not valid YAML: expected ',' or ']'",
    }
    for (main, path), expected in cases.items():
        assert run_main("x.py", main, [path, "--seed", "1"]) == 2
        line = capsys.readouterr().err
        assert line.startswith(f"x.py: error: {expected}") and line.count("\n") == 1, line
    bad.write_text("- a list\n")
    assert run_main("x.py", train_main, [str(bad)]) == 2
    assert "must hold a mapping of option names to values" in capsys.readouterr().err


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_push_to_hub_without_network_fails_at_the_start(setup, tmp_path):
    root, options = setup
    config = tmp_path / "emotic.yaml"
    cache = tmp_path / "arrow_cache"
    config.write_text(yaml.safe_dump({**options, "output_dir": str(tmp_path / "o"), "dataset_cache_dir": str(cache)}))
    result = run(
        train_py(config, "--push_to_hub", "--hub_model_id", "someone/emofusion-offline"),
        HF_ENDPOINT=f"http://127.0.0.1:{closed_port()}",
        HF_HUB_OFFLINE="0",
        HF_TOKEN="hf_not_a_real_token",
    )
    line = one_error_line(result, code=1)
    assert "--push_to_hub someone/emofusion-offline: cannot reach the Hub at http://127.0.0.1:" in line
    assert "leave out --push_to_hub" in line and "HF_HUB_OFFLINE=1" in line
    assert not cache.exists()  # it stopped before the data was built

    # With HF_HUB_OFFLINE set (as in this test session), the same check says so at once.
    *_, training_args = parse_args([str(config), "--push_to_hub", "--hub_model_id", "someone/emofusion-offline"])
    with pytest.raises(EmofusionError, match="someone/emofusion-offline needs the Hub, but HF_HUB_OFFLINE is set"):
        check_hub_access(training_args)
