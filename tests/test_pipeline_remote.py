"""A saved checkpoint runs through `pipeline(..., trust_remote_code=True)` in a process without emofusion."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
from PIL import Image
from transformers import pipeline

import modeling_emofusion  # noqa: F401
from emofusion.testing import tiny_classifier
from modeling_emofusion import EmoFusionProcessor
from tests.isolation import BLOCK_PROJECT_IMPORTS


SCRIPT = BLOCK_PROJECT_IMPORTS + textwrap.dedent(
    """
    import json
    from transformers import pipeline
    checkpoint, image, description = sys.argv[1:4]
    pipe = pipeline("emotion-in-context", model=checkpoint, trust_remote_code=True, device=-1)
    subjects = pipe(image, bbox=[[-8, 4, 40, 60], [50, 10, 90, 70]], description=[description, "calm"])
    print(json.dumps({"subjects": subjects, "class": type(pipe).__module__}))
    """
)


def test_remote_code_pipeline_without_emofusion(tmp_path):
    # A checkpoint saved the way training saves it: model.save_pretrained writes the pipeline code too.
    model, processor = tiny_classifier(task="emotic", seed=7)
    checkpoint = tmp_path / "checkpoint"
    model.save_pretrained(checkpoint)
    processor.save_pretrained(checkpoint)
    assert (checkpoint / "pipeline_emofusion.py").is_file()
    assert model.config.custom_pipelines["emotion-in-context"]["pt"] == ["AutoModelForImageClassification"]

    image_path = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (72, 96, 3), dtype=np.uint8)).save(image_path)
    description = "the person in the red box appears happy"

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"), PYTHONSAFEPATH="1")
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(checkpoint), str(image_path), description],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    remote = json.loads(run.stdout.strip().splitlines()[-1])
    assert remote["class"].startswith("transformers_modules.")  # the checkpoint's copy of the code ran

    local = pipeline(
        "emotion-in-context", model=model, processor=EmoFusionProcessor.from_pretrained(checkpoint), device=-1
    )(str(image_path), bbox=[[-8, 4, 40, 60], [50, 10, 90, 70]], description=[description, "calm"])
    assert [s["bbox"] for s in remote["subjects"]] == [[0.0, 4.0, 40.0, 60.0], [50.0, 10.0, 90.0, 70.0]]
    for got, want in zip(remote["subjects"], local):
        assert got["labels"] == want["labels"]
        got_scores = {e["label"]: e["score"] for e in got["scores"]}
        for entry in want["scores"]:
            assert abs(got_scores[entry["label"]] - entry["score"]) < 1e-5
        assert set(got["vad"]) == {"valence", "arousal", "dominance"}
