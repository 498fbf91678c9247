"""Expected failures of `emofusion predict`, `demo` and `convert`: one stderr line, exit 2 for a wrong command
line and 1 for the rest, naming the file, URL, device or repo id.

The main cases run the real entry point in a subprocess; their siblings call the same entry
function (`emofusion.cli.main`) in this process, since each subprocess costs seconds of imports.
"""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from emofusion.cli import main as cli_main
from emofusion.testing import tiny_classifier
from modeling_emofusion import EmotionInContextPipeline


REPO = str(Path(__file__).resolve().parents[1])
CLOSED_PORT = "http://127.0.0.1:9"  # the discard port: nothing listens on loopback, connections are refused


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_errors")
    model, processor = tiny_classifier(task="emotic", seed=3)
    EmotionInContextPipeline(model=model, processor=processor).save_pretrained(root / "fusion")
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)).save(root / "photo.png")
    # 20000x20000 is over PIL's decompression-bomb limit (2 x 89.5 M pixels); as a 1-bit PNG it is a 50 KB file.
    Image.new("1", (20000, 20000)).save(root / "huge.png")
    (root / "not_a_model").mkdir()
    (root / "a_file").write_text("not a folder")
    return root


def emofusion(*args, cwd, env_update=None, drop=()):
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update({"PYTHONPATH": REPO, "OMP_NUM_THREADS": "1"}, **(env_update or {}))
    command = [sys.executable, "-m", "emofusion.cli", *map(str, args)]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def in_process(capsys, *args):
    """`emofusion ARGS` through the CLI's entry function in this process: (exit code, stderr)."""
    capsys.readouterr()
    code = cli_main(list(map(str, args)))
    return subprocess.CompletedProcess(args, code, "", capsys.readouterr().err)


def error_line(result, exit_code: int, command: str = "emofusion predict") -> str:
    """The one stderr line of an expected failure (progress bars and log lines aside), checked."""
    assert result.returncode == exit_code, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(f"{command}: error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    return errors[0]


def test_picture_over_the_decompression_bomb_limit(files):
    result = emofusion("predict", "huge.png", "--model", "fusion", "--description", "x", cwd=files)
    line = error_line(result, 1)
    assert result.stderr.strip() == line  # refused before any model loads: nothing else on stderr
    assert "huge.png" in line and "400,000,000 pixels" in line and "--max-image-pixels 0" in line


def test_max_image_pixels_sets_the_limit(files, capsys, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)  # the flag sets PIL's global
    base = ["predict", files / "photo.png", "--model", files / "fusion", "--description", "x"]
    line = error_line(in_process(capsys, *base, "--max-image-pixels", "10000"), 1)
    assert "photo.png" in line and "19,200 pixels" in line and "limit of 10,000" in line
    assert in_process(capsys, *base, "--max-image-pixels", "0").returncode == 0


def test_unreachable_picture_url(files):
    url = f"{CLOSED_PORT}/photo.jpg"
    line = error_line(emofusion("predict", url, "--model", "fusion", "--description", "x", cwd=files), 1)
    assert url in line and "cannot download" in line


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_device_that_is_not_there(files, capsys):
    base = ["predict", "photo.png", "--model", "fusion", "--description", "x"]
    line = error_line(emofusion(*base, "--device", "cuda", cwd=files), 1)
    assert "--device cuda" in line and "without CUDA" in line and "available here: cpu" in line
    wrong = ["predict", files / "photo.png", "--model", files / "fusion", "--device", "gpu0"]
    line = error_line(in_process(capsys, *wrong), 2)
    assert "'gpu0': not a device name" in line


def test_model_that_is_no_checkpoint(files, capsys):
    base = ["predict", "photo.png", "--description", "x", "--model"]
    line = error_line(emofusion(*base, files / "no" / "such" / "folder", cwd=files), 1)
    assert "folder'" in line and "no such folder, and not a Hub id" in line
    line = error_line(in_process(capsys, "predict", files / "photo.png", "--model", files / "not_a_model"), 1)
    assert "not_a_model'" in line and "no config.json" in line


def test_annotated_picture_that_cannot_be_written(files, capsys):
    base = ["predict", files / "photo.png", "--model", files / "fusion", "--description", "x", "--save-annotated"]
    line = error_line(in_process(capsys, *base, files), 2)
    assert "--save-annotated" in line and "annotated.png" in line


def test_without_network_fails_fast_naming_the_repo(files, tmp_path):
    """No network and HF_HUB_OFFLINE unset: one probe, then the cache; no 25 s of retries, the repo id named."""
    drop = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")
    env = {"HF_ENDPOINT": CLOSED_PORT, "HF_HOME": str(tmp_path / "empty-cache")}
    # (With a description: without one, this model, which records no VLLM, is refused before the detector loads.)
    args = ["predict", "photo.png", "--model", "fusion", "--detect", "--description", "x"]
    result = emofusion(*args, cwd=files, env_update=env, drop=drop)
    line = error_line(result, 1)
    assert "'hustvl/yolos-tiny'" in line and "not in the local cache" in line and CLOSED_PORT in line
    assert "HF_HUB_OFFLINE=1" in line and "local folder" in line
    assert "Retrying" not in result.stderr


class _NoSuchRepoHub(http.server.BaseHTTPRequestHandler):
    """A loopback Hub that knows no repo: 200 at the root (reachable), 404 RepoNotFound for every file."""

    def do_HEAD(self):
        self.send_response(200 if self.path == "/" else 404)
        if self.path != "/":
            self.send_header("X-Error-Code", "RepoNotFound")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD

    def log_message(self, *args):
        pass


def test_model_id_the_hub_does_not_know(files, tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NoSuchRepoHub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = {"HF_ENDPOINT": f"http://127.0.0.1:{server.server_address[1]}", "HF_HOME": str(tmp_path / "cache")}
        drop = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")
        args = ["predict", "photo.png", "--model", "someone/missing", "--description", "x"]
        line = error_line(emofusion(*args, cwd=files, env_update=env, drop=drop), 1)
    finally:
        server.shutdown()
    assert "--model 'someone/missing'" in line and "no such repo on the Hub" in line and "hf auth login" in line


def test_hub_probe_answers_within_seconds(monkeypatch):
    """The time part of the offline case, without the subprocess's imports: well under the ~10 s asked for."""
    from huggingface_hub import constants
    from transformers.utils import cached_file

    from emofusion.errors import EmofusionError
    from emofusion.hub_errors import hub_errors
    from modeling_emofusion import hub_access

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", CLOSED_PORT)
    monkeypatch.setattr(hub_access, "_PROBED", {})
    start = time.perf_counter()
    with pytest.raises(hub_access.HubAccessError, match="'someone/missing-detector'.*HF_HUB_OFFLINE=1"):
        with hub_access.hub_access("someone/missing-detector", what="person detector"):
            cached_file("someone/missing-detector", "config.json")
    assert time.perf_counter() - start < 10
    # The commands' form of it (what `--model someone/missing` gives).
    with pytest.raises(EmofusionError, match="--model 'someone/missing': not a local folder, not in the local cache"):
        with hub_errors("someone/missing", what="--model"):
            cached_file("someone/missing", "config.json")


def test_from_pretrained_parts_without_network_names_the_checkpoint(monkeypatch):
    from huggingface_hub import constants

    from modeling_emofusion import EmoFusionForEmotionClassification, hub_access

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", CLOSED_PORT)
    monkeypatch.setattr(hub_access, "_PROBED", {})
    start = time.perf_counter()
    with pytest.raises(OSError, match="vision model 'someone/vision': not a local folder, not in the local cache"):
        EmoFusionForEmotionClassification.from_pretrained_parts("someone/vision", "someone/bert")
    assert time.perf_counter() - start < 10


@pytest.mark.parametrize("command", ["demo", "convert"])
def test_output_dir_that_is_a_file(files, command, capsys):
    args = ["--output_dir", files / "a_file" / "run"]
    if command == "convert":
        args += ["--dataset", "emotic", "--data_dir", files]
    line = error_line(in_process(capsys, command, *args), 2, command=f"emofusion {command}")
    assert "--output_dir" in line and "a_file, which is a file" in line
