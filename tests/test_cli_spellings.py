"""Every command reads alike: `--a-b` and `--a_b`, `--no_*` helps that say what they turn off, a named
program, the project's options first; predict's `-o`, `--top-k`, `--describer` and its messages; the
installed pipeline code runs, not the checkpoint's copy, without `trust_remote_code`."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from transformers import pipeline

from emofusion.app.command import AppArguments
from emofusion.captioning import build_parser as caption_parser
from emofusion.captioning.arguments import DEFAULT_MAX_NEW_TOKENS
from emofusion.convert import ConvertArguments
from emofusion.dataclass_args import DataclassArgumentParser
from emofusion.demo import DemoArguments
from emofusion.errors import run_main
from emofusion.predict import build_parser as predict_parser
from emofusion.predict import format_report, main
from emofusion.testing import tiny_classifier
from emofusion.testing_llava import tiny_llava
from emofusion.training.arguments import build_parser as train_parser
from modeling_emofusion import EmoFusionForEmotionClassification, EmotionInContextPipeline, load_pipeline
from modeling_emofusion.describing import DEFAULT_GENERATION, TransformersDescriber


REPO = str(Path(__file__).resolve().parents[1])
ENV = {**os.environ, "PYTHONPATH": REPO}

PARSERS = {
    "demo": lambda: DataclassArgumentParser(DemoArguments, prog="emofusion demo"),
    "convert": lambda: DataclassArgumentParser(ConvertArguments, prog="emofusion convert"),
    "predict": predict_parser,
    "caption": caption_parser,
    "train": train_parser,
    "app": lambda: DataclassArgumentParser(AppArguments, prog="emofusion app"),
}
# One option of each command, given in both spellings: (argv before it, option, value, destination, parsed).
SAMPLES = {
    "demo": ([], "output_dir", "out", "output_dir", "out"),
    "convert": (["--dataset", "emotic", "--data_dir", "d", "--output_dir", "o"], "validation_seed", "3", None, 3),
    "predict": (["photo.jpg", "--model", "m"], "save_annotated", "a.png", "save_annotated", "a.png"),
    "caption": (["--dataset", "emotic"], "max_new_tokens", "17", "max_new_tokens", 17),
    "train": (["--dataset", "emotic", "--model_name_or_path", "m"], "per_device_train_batch_size", "4", None, 4),
    "app": ([], "export_space", "space", "export_space", "space"),
}


def long_options(parser: argparse.ArgumentParser) -> list[list[str]]:
    return [[o for o in a.option_strings if o.startswith("--")] for a in parser._actions if a.option_strings]


@pytest.mark.parametrize("command", sorted(PARSERS))
def test_every_option_takes_both_spellings(command):
    parser = PARSERS[command]()
    for names in long_options(parser):
        for name in names:
            words = name[2:]
            if "_" in words or "-" in words:
                assert {"--" + words.replace("-", "_"), "--" + words.replace("_", "-")} <= set(names), names


@pytest.mark.parametrize("command", sorted(PARSERS))
def test_an_option_parses_the_same_in_both_spellings(command):
    before, option, value, dest, parsed = SAMPLES[command]
    results = []
    for spelling in (f"--{option}", f"--{option.replace('_', '-')}"):
        namespace = PARSERS[command]().parse_known_args([*before, spelling, value])[0]
        results.append(getattr(namespace, dest or option))
    assert results == [parsed, parsed]


@pytest.mark.parametrize("command", sorted(PARSERS))
def test_no_flags_say_what_they_turn_off(command):
    parser = PARSERS[command]()
    if hasattr(parser, "show_all_options"):
        parser.show_all_options()  # the Trainer's, hidden from --help
    turned_off = [a for a in parser._actions if a.option_strings and a.option_strings[0].startswith("--no_")]
    for action in turned_off:
        assert action.help.startswith(f"Turn off --{action.dest}"), (action.option_strings, action.help)
    if command == "caption":
        (hub_private,) = [a for a in turned_off if a.dest == "hub_private"]
        help_text = parser.format_help()
        assert "Turn off --hub_private, which is on by default" in " ".join(help_text.split())
        assert not hub_private.help.startswith("Create")


def test_caption_defaults_are_the_describers():
    assert DEFAULT_MAX_NEW_TOKENS == DEFAULT_GENERATION["max_new_tokens"]


# Runs a command's --help as the console script would, then reports which heavy packages it imported.
HELP = """
import json, runpy, sys
try:
    if sys.argv[1] == "script":
        sys.argv = sys.argv[2:]
        runpy.run_path(sys.argv[0], run_name="__main__")
    else:
        from emofusion.cli import main
        main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps([m for m in ("torch", "transformers", "datasets", "modeling_emofusion", "emofusion.training.run")
                  if m in sys.modules]))
"""


@pytest.mark.parametrize(
    "argv, usage",
    [
        (["train", "--help"], "usage: emofusion train [CONFIG.json|CONFIG.yaml]"),
        (["script", "train.py", "--help"], "usage: train.py [CONFIG.json|CONFIG.yaml]"),
        (["caption", "--help"], "usage: emofusion caption [CONFIG.json|CONFIG.yaml]"),
    ],
    ids=["emofusion train", "train.py", "emofusion caption"],
)
def test_script_help_names_the_program_and_puts_the_projects_options_first(argv, usage):
    run = subprocess.run(
        [sys.executable, "-c", HELP, *argv], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr[-2000:]
    *lines, last = run.stdout.splitlines()
    text = "\n".join(lines)
    assert lines[0] == usage + " [--option VALUE ...]"
    imported = json.loads(last)
    # At most transformers' TrainingArguments (and the torch it imports); no model code, no datasets.
    assert not {"datasets", "modeling_emofusion", "emofusion.training.run"} & set(imported)
    if "caption" in argv:
        assert "torch" not in imported and text.index("Caption options:") < text.index("--dataset")
        return
    model, data, trainer = (text.index(h) for h in ("Model options:", "Data options:", "Trainer options"))
    assert model < data < trainer
    assert text.index("--model_name_or_path") < model + 200 and text.index("--learning_rate") > trainer
    assert "--help-all" in text and "--adam_beta1" not in text  # a rarely set Trainer option: --help-all shows it
    assert len(lines) < 320


def test_help_all_lists_every_trainer_option(capsys):
    parser = train_parser("emofusion train")
    with pytest.raises(SystemExit):
        parser.parse_args(["--help_all"])
    text = capsys.readouterr().out
    assert "--adam_beta1" in text and "--no_dataloader_pin_memory" in text and "All 114 of them" in text
    # Hidden from --help, an option still parses.
    assert train_parser().parse_args(["--dataset", "emotic", "--adam_beta1", "0.8"]).adam_beta1 == 0.8


def test_format_report_puts_a_score_on_one_line():
    scores = [{"label": "Joy", "score": 0.9}, {"label": "Fear", "score": 0.1}]
    subject = {"bbox": [1.0, 2.0, 3.0, 4.0], "labels": ["Joy"], "scores": scores, "description": 'a \u0000 "odd" text'}
    report = {"image": "p.jpg", "subjects": [subject]}
    text = format_report(report)
    assert json.loads(text) == report
    assert '        {"label": "Joy", "score": 0.9},' in text.splitlines()
    assert '      "bbox": [1.0, 2.0, 3.0, 4.0],' in text.splitlines()
    assert len(text.splitlines()) == 14


# -- predict, the pipeline and the installed code -------------------------------------------------------


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("spellings")
    tiny_llava(root / "tiny-llava")
    model, processor = tiny_classifier(task="emotic", seed=31)
    model.config.prompt_template = "Given the following list of emotions: <class_names> which fit the person"
    model.config.description_generation = {"do_sample": False, "num_beams": 1, "max_new_tokens": 6}
    EmotionInContextPipeline(model=model, processor=processor).save_pretrained(root / "checkpoint")
    # The checkpoint's saved copies of the code must not run where emofusion is installed.
    for name in (
        "pipeline_emofusion.py",
        "modeling_emofusion.py",
        "configuration_emofusion.py",
        "processing_emofusion.py",
    ):
        saved = root / "checkpoint" / name
        saved.write_text('raise RuntimeError("the checkpoint\'s saved copy ran")\n' + saved.read_text())
    photo = root / "photo.png"
    Image.fromarray(np.random.default_rng(5).integers(0, 256, (72, 96, 3), dtype=np.uint8)).save(photo)
    return root, photo


def test_installed_pipeline_loads_without_trust_remote_code(files):
    root, photo = files
    checkpoint = str(root / "checkpoint")
    for pipe in (
        load_pipeline(checkpoint, device=-1),
        pipeline("emotion-in-context", model=checkpoint, pipeline_class=EmotionInContextPipeline, device=-1),
    ):
        assert (
            type(pipe) is EmotionInContextPipeline and type(pipe).__module__ == "modeling_emofusion.pipeline_emofusion"
        )
        assert type(pipe.model) is EmoFusionForEmotionClassification
        (subject,) = pipe(str(photo), bbox=[5, 5, 60, 70], description="calm")
        assert len(subject["scores"]) == 26
    # Without the class, transformers asks for the checkpoint's code (which would be the tampered copy here).
    with pytest.raises(ValueError, match="trust_remote_code"):
        pipeline("emotion-in-context", model=checkpoint, device=-1)
    with pytest.raises(ValueError, match="installed emofusion code"):
        load_pipeline(checkpoint, trust_remote_code=True)


def test_predict_output_file_and_top_k_through_the_command(files, tmp_path):
    root, photo = files
    out = tmp_path / "predictions.json"
    argv = [str(photo), "--model", str(root / "checkpoint"), "--bbox", "5,5,60,70", "--bbox", "40,10,90,70"]
    argv += ["--description", "she laughs", "--description", "he frowns", "--top_k", "2", "-o", str(out)]
    run = subprocess.run(
        [sys.executable, "-m", "emofusion.cli", "predict", *argv],
        cwd=tmp_path,
        env={**ENV, "HF_MODULES_CACHE": str(tmp_path / "modules")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout == ""  # the JSON went to the file
    text = out.read_text()
    subjects = json.loads(text)["subjects"]
    assert [s["description"] for s in subjects] == ["she laughs", "he frowns"]
    assert [len(s["scores"]) for s in subjects] == [2, 2]
    assert all(s["scores"][0]["score"] >= s["scores"][1]["score"] for s in subjects)
    score_lines = [line for line in text.splitlines() if '"label": ' in line]
    assert len(score_lines) == 4 and all(line.strip().startswith('{"label": "') for line in score_lines)
    assert not (tmp_path / "modules").exists()  # no remote code was even fetched


def test_predict_prints_every_score_one_line_each_by_default(files, capsys):
    root, photo = files
    assert main([str(photo), "--model", str(root / "checkpoint"), "--description", "calm"]) == 0
    out = capsys.readouterr().out
    (subject,) = json.loads(out)["subjects"]
    assert len(subject["scores"]) == 26 and subject["bbox"] is None
    assert len(out.splitlines()) == 26 + 15  # a line a score, 15 for the rest (26 x 4 + 15 before)


def test_predict_describer_uses_the_recorded_prompt(files, tmp_path, capsys):
    root, photo = files
    llava = str(root / "tiny-llava")
    out = tmp_path / "described.json"
    argv = [str(photo), "--model", str(root / "checkpoint"), "--bbox", "5,5,60,70", "--describer", llava]
    assert main([*argv, "-o", str(out)]) == 0
    (subject,) = json.loads(out.read_text())["subjects"]
    assert subject["description_source"] == "generated"
    config = EmoFusionForEmotionClassification.config_class.from_pretrained(root / "checkpoint")
    reference = TransformersDescriber.from_pretrained(
        llava, device="cpu", marking="box", **config.description_generation
    )
    expected = reference.describe(
        [Image.open(photo).convert("RGB")], [[5.0, 5.0, 60.0, 70.0]],
        prompt=config.prompt_template, class_names=list(config.id2label.values()),
    )[0].text  # fmt: skip
    assert subject["description"] == expected
    # In Python the same: the pipeline's `describer` takes a model id or folder.
    pipe = load_pipeline(str(root / "checkpoint"), device=-1)
    (same,) = pipe(str(photo), bbox=[5, 5, 60, 70], describer=llava)
    assert same["description"] == expected and same["scores"] == subject["scores"]
    # A --describer that cannot be loaded is one line naming the flag.
    code = run_main("emofusion predict", main, [*argv[:-1], str(tmp_path / "no-such-vllm")])
    assert code == 1
    err = capsys.readouterr().err.splitlines()[-1]  # after the checkpoint's loading progress bar
    assert err.startswith("emofusion predict: error: --describer ") and "no-such-vllm" in err, err


def test_predict_without_description_names_the_flags(files, capsys):
    root, photo = files
    code = run_main(
        "emofusion predict", main, [str(photo), "--model", str(root / "checkpoint"), "--bbox", "5,5,60,70"]
    )
    assert code == 2
    err = capsys.readouterr().err.splitlines()[-1]  # after the checkpoint's loading progress bar
    assert err.startswith("emofusion predict: error: no --description given")
    assert "--description TEXT" in err and "--describer MODEL_ID" in err
    assert "description='" not in err and "describer=" not in err


@pytest.mark.parametrize(
    "argv, message",
    [(["--top-k", "0"], "--top-k 0"), (["-o", "."], "is a folder"), (["-o", "no/such/dir/x.json"], "does not exist")],
)
def test_predict_refuses_bad_output_options_before_loading(files, capsys, argv, message):
    root, photo = files
    code = run_main("emofusion predict", main, [str(photo), "--model", str(root / "nowhere"), *argv])
    assert code == 2 and message in capsys.readouterr().err


def test_no_flags_still_parse_as_before(tmp_path):
    from emofusion.captioning import parse_args as parse_caption
    from emofusion.training import parse_args as parse_train

    config = tmp_path / "caption.yaml"
    config.write_text("dataset: emotic\nhub_private: false\n")
    cases = [["--dataset", "emotic"], ["--dataset", "emotic", "--no_hub_private"]]
    cases += [["--dataset", "emotic", "--no-hub-private"], [str(config)], [str(config), "--hub_private"]]
    got = [parse_caption(argv).hub_private for argv in cases]
    assert got == [True, False, False, False, True]
    base = ["--dataset", "emotic", "--model_name_or_path", "m", "--output_dir", str(tmp_path / "out")]
    assert parse_train(base)[2].dataloader_pin_memory is True
    assert parse_train([*base, "--no-dataloader-pin-memory"])[2].dataloader_pin_memory is False
