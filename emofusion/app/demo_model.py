"""The app's embedded default model: `emofusion demo`'s fusion model, trained with the demo's own code when absent.

It needs no download and runs anywhere, which makes `emofusion app` work out of the box; but it
is tiny, random-initialised and trained on synthetic pictures and descriptions, so the page says
so every time it is used (`DEMO_NOTICE`).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path


logger = logging.getLogger(__name__)

DEMO_NOTICE = (
    "This is emofusion's demo model: tiny random backbones trained briefly on synthetic pictures and "
    "descriptions (emofusion demo). Its answers on real photos mean nothing. For real predictions, start the app "
    "with --model and a checkpoint trained on EMOTIC, CAER-S or BoLD."
)
MODEL_FOLDER = "fusion"


def default_demo_dir() -> Path:
    """Where the demo model is kept between runs: `$HF_HOME/emofusion/app-demo-model`."""
    from huggingface_hub import constants

    return Path(constants.HF_HOME) / "emofusion" / "app-demo-model"


def demo_model_path(folder: str | os.PathLike) -> Path:
    return Path(folder) / MODEL_FOLDER


def has_demo_model(folder: str | os.PathLike) -> bool:
    model = demo_model_path(folder)
    return (model / "config.json").is_file() and (model / "model.safetensors").is_file()


def ensure_demo_model(folder: str | os.PathLike | None = None, demo_args=None) -> Path:
    """The demo's fusion model under `folder` (default `default_demo_dir()`), trained first when it is absent.

    Training runs `emofusion.demo`'s steps (synthetic EMOTIC-format data, the real builder, the
    description join, the real training code) for the fusion model only, with `demo_args`
    (`emofusion.demo.DemoArguments`; the demo's documented defaults when None), under a tqdm
    progress bar. The synthetic data and descriptions stay in `folder` (the model's config names
    them); the model is trained in a scratch folder renamed into place at the end, so an
    interrupted run leaves no half model that a later start would take for a finished one.
    """
    folder = Path(folder) if folder is not None else default_demo_dir()
    model = demo_model_path(folder)
    if has_demo_model(folder):
        return model

    import torch
    from tqdm.auto import tqdm

    from dataset_scripts import load_emotion_dataset
    from emofusion import demo

    args = demo.with_defaults(demo_args if demo_args is not None else demo.DemoArguments())
    folder.mkdir(parents=True, exist_ok=True)
    logger.warning(
        f"No demo model in {folder}: training one with `emofusion demo`'s code on synthetic data "
        "(a minute or more on a CPU; it is kept for the next start)."
    )
    # The data and descriptions stay (the model's config names them); the model is trained in a scratch
    # folder and renamed into place at the end.
    data_dir, descriptions, init = folder / "data", folder / "descriptions", folder / "init"
    cache_dir = folder / "cache"
    scratch = Path(tempfile.mkdtemp(prefix=".training-", dir=folder))
    threads = torch.get_num_threads()
    torch.set_num_threads(args.num_threads)
    steps = ["writing synthetic data", "reading it, writing descriptions", "training the fusion model"]
    try:
        with tqdm(total=len(steps), desc="Demo model", unit="step", dynamic_ncols=True) as progress:
            progress.set_postfix_str(steps[0])
            demo.write_dataset(data_dir, args)
            progress.update()
            progress.set_postfix_str(steps[1])
            dataset = load_emotion_dataset("emotic", data_dir, cache_dir=str(cache_dir))
            demo.write_descriptions(dataset, descriptions)
            demo.write_initial_model(init, args)
            progress.update()
            progress.set_postfix_str(steps[2])
            demo.train_model("fusion", init, data_dir, descriptions, scratch / MODEL_FOLDER, args, str(cache_dir))
            progress.update()
        try:
            os.replace(scratch / MODEL_FOLDER, model)
        except OSError:
            if not has_demo_model(folder):  # another app trained one at the same time: keep that one
                raise
    finally:
        torch.set_num_threads(threads)
        for temporary in (scratch, cache_dir, init):
            shutil.rmtree(temporary, ignore_errors=True)
    logger.warning(f"Demo model saved to {model}.")
    return model
