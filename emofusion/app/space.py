"""`emofusion app --export-space DIR --model HUB_ID`: a ready Hugging Face Space running this app against a Hub model.

The folder holds `app.py` (what a Gradio Space runs), `requirements.txt`, `README.md` with the
Space's YAML header (sdk gradio, the model, the licence, the paper), and a copy of emofusion's
code (`emofusion/`, `modeling_emofusion/`, `dataset_scripts/`), so the Space runs exactly this
version of the app with no package to publish. `EMOFUSION_MODEL` in the environment overrides the
model (e.g. a local folder, to try the Space before uploading it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from importlib import metadata
from pathlib import Path

from emofusion.errors import UsageError


PACKAGES = ("emofusion", "modeling_emofusion", "dataset_scripts")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

APP_PY = '''"""Hugging Face Space: emofusion's web app for {model} (written by `emofusion app --export-space`).

Runs `python app.py`; EMOFUSION_MODEL (a Hub id or a local folder) overrides the model, and gradio's
GRADIO_SERVER_NAME / GRADIO_SERVER_PORT (set by Spaces) say where to serve.
"""

import os


os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from emofusion.app.page import build_app, launch_app  # noqa: E402


MODEL = os.environ.get("EMOFUSION_MODEL", {model!r})
REVISION = os.environ.get("EMOFUSION_REVISION", {revision!r}) or None

demo = build_app(MODEL, revision=REVISION)

if __name__ == "__main__":
    launch_app(demo)
'''

README = """---
title: {title_yaml}
emoji: 🎭
colorFrom: red
colorTo: indigo
sdk: gradio
sdk_version: {gradio_version}
python_version: "3.11"
app_file: app.py
pinned: false
license: apache-2.0
models:
  - {model}
short_description: Emotions of the people in a photo, read in context
tags:
  - emotion-recognition
  - emofusion
---

# {title}

Upload a photo, give each person a box (click two corners, or let the detector find them) and a
description of them in context, and [`{model}`](https://huggingface.co/{model}) recognises their
emotions: per person the labels over the model's calibrated thresholds, every label's score, and
valence/arousal/dominance where the model predicts them. Descriptions left empty are written by
the vision-and-language model the checkpoint records, when it records one.

The method: Xenos et al., *VLLMs Provide Better Context for Emotion Understanding Through Common
Sense Reasoning*, <https://arxiv.org/abs/2404.07078>. Written by `emofusion app --export-space`
(emofusion {version}); the code in this Space is emofusion's, Apache-2.0.
"""


def requirements() -> list[str]:
    """emofusion's own runtime requirements (without extras), gradio, matplotlib for the charts, and PyAV and
    trackers for the video tab."""
    import gradio

    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    try:
        import tomllib  # Python 3.11+

        required = list(tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"])
    except (ImportError, OSError, KeyError):  # an installed copy: its metadata says the same
        try:
            required = [r for r in metadata.requires("emofusion") or [] if "extra ==" not in r]
        except metadata.PackageNotFoundError:
            required = []
    names = {re.split(r"[<>=!~ ;\[]", r, maxsplit=1)[0].lower() for r in required}
    extra = [f"gradio=={gradio.__version__}", "matplotlib>=3.7", "av>=12", "trackers>=2.6"]
    return required + [r for r in extra if re.split(r"[<>=]", r, maxsplit=1)[0] not in names]


def export_space(folder: str | os.PathLike, model: str, revision: str | None = None) -> Path:
    """Write the Space for Hub model `model` into `folder` (created; it must be absent or empty). Returns it."""
    import gradio

    from emofusion import __version__

    if os.path.isdir(model) or not HUB_ID.match(model):
        raise UsageError(
            f"--model {model!r}: a Space downloads its model from the Hub, so --export-space needs a Hub model id "
            "(user/name). Upload a local checkpoint first (e.g. `hf upload user/name FOLDER`)."
        )
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise UsageError(f"--export-space {folder}: expected a new or empty folder; it has files in it.")
    folder.mkdir(parents=True, exist_ok=True)
    root = Path(__file__).resolve().parents[2]
    for package in PACKAGES:
        shutil.copytree(root / package, folder / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (folder / "app.py").write_text(APP_PY.format(model=model, revision=revision), encoding="utf-8")
    (folder / "requirements.txt").write_text("\n".join(requirements()) + "\n", encoding="utf-8")
    title = f"emofusion: {model.split('/')[-1]}"
    readme = README.format(
        title=title, title_yaml=json.dumps(title), model=model, gradio_version=gradio.__version__, version=__version__
    )
    (folder / "README.md").write_text(readme, encoding="utf-8")
    return folder
