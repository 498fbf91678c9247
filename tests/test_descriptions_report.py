"""`emofusion descriptions stats|compare`: the figures of description sets, and the same model trained on each.

Two sets of the demo's synthetic data: the demo's own (the cue word of each subject names its text labels) and
a degraded copy in which every other subject's cue word is swapped for one of another family. The report must
rank the demo's first on mention precision and, trained through the real training code, on downstream mAP.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from description_sets import write_degraded_copy, write_lexicon
from PIL import Image

from dataset_scripts import load_emotion_dataset
from dataset_scripts.writers import write_description_set
from emofusion.cli import main as cli_main
from emofusion.demo import DemoArguments, write_descriptions, write_initial_model
from emofusion.descriptions.figures import MentionMatcher, jaccard_matrix, label_terms, length_summary, mention_figures
from emofusion.synthetic import write_synthetic_emotic
from emofusion.testing import build_word_tokenizer


REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
# Small enough for the suite; the seed is fixed, so the figures are reproducible.
SIZES = {"train": 40, "val": 20, "test": 40}
# About 250 steps: enough for the text-only model to learn the cue words (test mAP about 0.41 on the demo's set,
# 0.32 on the degraded one, with seed 0 and with seed 1; 100 steps at a larger learning rate learn them with some
# seeds only). The fusion model of this size learns the picture first and needs several hundred steps more
# before the text shows (tests/test_demo.py trains it that long), too long for this file.
TRAINING = {
    "num_train_epochs": 30,
    "learning_rate": 3.0e-3,
    "per_device_train_batch_size": 8,
    "per_device_eval_batch_size": 64,
    "warmup_steps": 0.05,
    "weight_decay": 0.0,
    "eval_strategy": "no",
    "save_strategy": "no",
    "seed": 0,
    "data_seed": 0,
    "use_cpu": True,
    "dataloader_num_workers": 0,
    "report_to": "none",
    "disable_tqdm": True,
    "do_eval": True,
}


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    """The demo's data and description set, the degraded copy, the cue-word lexicon and a tiny train config."""
    root = tmp_path_factory.mktemp("descriptions")
    data_dir, cache = root / "data", str(root / "cache")
    write_synthetic_emotic(data_dir, SIZES, seed=0)
    dataset = load_emotion_dataset("emotic", data_dir, cache_dir=cache)
    demo, _ = write_descriptions(dataset, root / "demo")
    degraded = write_degraded_copy(demo, root / "degraded")
    args = DemoArguments(hidden_size=32, image_size=32)
    write_initial_model(root / "init", args)
    config = root / "train.yaml"
    settings = {"model_name_or_path": str(root / "init"), "dataset": "emotic", "data_dir": str(data_dir)}
    settings.update(dataset_cache_dir=cache, output_dir=str(root / "unused"), **TRAINING)
    config.write_text(yaml.safe_dump(settings), encoding="utf-8")
    ids = {split: list(rows["id"]) for split, rows in dataset.items()}
    return {
        "root": root, "data_dir": data_dir, "cache": cache, "demo": demo, "degraded": degraded,
        "lexicon": write_lexicon(root / "lexicon.json"), "config": config, "ids": ids,
    }  # fmt: skip


def run_cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "emofusion.cli", "descriptions", *map(str, argv)],
        env=ENV, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def by_name(report: dict) -> dict:
    return {s["name"]: s for s in report["sets"]}


def test_compare_with_training_ranks_the_demo_set_first(sets, tmp_path):
    out = tmp_path / "report"
    run = run_cli(
        "compare", sets["demo"], sets["degraded"], "--dataset", "emotic", "--data_dir", sets["data_dir"],
        "--dataset_cache_dir", sets["cache"], "--label_words", sets["lexicon"], "--train", sets["config"],
        "--modalities", "text", "--output_dir", out,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    ranks = {key: [r["set"] for r in ranked] for key, ranked in report["rankings"].items()}
    print(json.dumps(report["rankings"], indent=1))
    # The cue words name the true labels in every demo description and a false one in half the degraded ones.
    assert ranks["lexicon_mentions_precision"] == ["demo", "degraded"]
    demo, degraded = (by_name(report)[n]["lexicon_mentions"]["against_truth"] for n in ("demo", "degraded"))
    assert demo["precision"] == 1.0 and demo["false_mentions"] == 0
    assert 0.35 < degraded["precision"] < 0.65 and degraded["recall"] < demo["recall"]
    # Downstream: the same model, seed and examples on each set; the demo's descriptions carry more.
    downstream = report["downstream"]
    assert downstream["same_examples"] and [(r["set"], r["modality"]) for r in downstream["runs"]] == [
        ("demo", "text"), ("degraded", "text")
    ]  # fmt: skip
    assert ranks["test_mAP_text"] == ["demo", "degraded"]
    demo_map, degraded_map = (r["test"]["mAP"] for r in downstream["runs"])
    assert demo_map > degraded_map + 0.05
    for run_ in downstream["runs"]:
        config = json.loads((Path(run_["output_dir"]) / "config.json").read_text())
        assert config["modality"] == run_["modality"] and run_["seed"] == 0
    # The Markdown report holds the same figures, the figures are real PNGs, stdout is the short summary.
    markdown = (out / "report.md").read_text(encoding="utf-8")
    for heading in ("## Provenance", "## Rows", "## Length", "## Label mentions", "## Vocabulary overlap",
                    "## Coverage of the dataset's ids", "## Downstream", "## Rankings"):  # fmt: skip
        assert heading in markdown
    assert "- test_mAP_text: demo (" in markdown
    for name in ("lengths", "mentions", "overlap", "downstream"):
        assert report["figures"][name] == f"{name}.png" and f"({name}.png)" in markdown
        with Image.open(out / f"{name}.png") as image:
            assert image.format == "PNG" and image.size[0] > 200
    assert run.stdout.startswith("demo: ") and "text test mAP" in run.stdout and len(run.stdout.splitlines()) == 3


def test_stats_of_one_set(sets, tmp_path, capsys):
    out = tmp_path / "stats"
    code = cli_main(
        ["descriptions", "stats", str(sets["demo"]), "--dataset", "emotic", "--data_dir", str(sets["data_dir"]),
         "--dataset_cache_dir", sets["cache"], "--output_dir", str(out)]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    (figures,) = report["sets"]
    total = sum(len(ids) for ids in sets["ids"].values())
    assert figures["provenance"] == {
        "model": None, "revision": None, "backend": "synthetic", "prompt_template": "", "marking": "box",
        "generation": {"writer": "emofusion.synthetic.describe"}, "dataset": "emotic", "distinct_prompts": 0,
    }  # fmt: skip
    assert figures["counts"]["ok"] == total and figures["counts"]["flagged"] == figures["counts"]["error"] == 0
    assert figures["length"]["tokenizer"] == "words (regex \\w+)" and 25 < figures["length"]["median"] < 50
    # The synthetic descriptions never name a label verbatim (their cues are words like "smiling").
    assert figures["label_mentions"]["naming_a_label"] == 0 and "lexicon_mentions" not in figures
    assert figures["coverage"]["total"] == {
        "examples": total, "described": total, "error": 0, "missing": 0, "rate": 1.0
    }  # fmt: skip
    assert "overlap" not in report and "downstream" not in report and not (out / "overlap.png").exists()
    assert (out / "lengths.png").is_file() and "Vocabulary: " in (out / "report.md").read_text()


def test_mentions_are_whole_words_in_any_case():
    matcher = MentionMatcher(label_terms(["Anger", "Doubt/Confusion", "Fear"]))
    assert matcher("ANGER and some confusion.") == {"Anger", "Doubt/Confusion"}
    assert matcher("angered, fearful, doubtless") == set()  # verbatim words only, not their derivatives
    multi = MentionMatcher({"Peace": ["at  ease"], "Fear": []})
    assert multi("Quite at\nease here") == {"Peace"}
    truth = {"a": {"Anger"}, "b": {"Fear"}, "c": {"Anger", "Fear"}}
    figures = mention_figures(matcher, ["a", "b", "c", "x"], ["anger", "anger", "fear", "fear"], truth)
    against = figures["against_truth"]
    assert figures["rate"] == 1.0 and against["examples"] == 3  # "x" is not in the dataset
    assert (against["mentions"], against["true_mentions"], against["false_mentions"]) == (3, 2, 1)
    assert against["per_class"]["Anger"] == {
        "support": 2, "mentioned": 2, "true_mentions": 1, "precision": 0.5, "recall": 0.5
    }  # fmt: skip
    assert against["per_class"]["Doubt/Confusion"]["precision"] is None  # never named: undefined, not 0
    assert length_summary([1, 2, 3, 4])["median"] == 2.5 and length_summary([])["count"] == 0
    assert jaccard_matrix([{"a", "b"}, {"b", "c"}, set()]) == [[1.0, 1 / 3, 0.0], [1 / 3, 1.0, 0.0], [0.0, 0.0, None]]


def test_lengths_in_the_recorded_models_tokens(tmp_path, capsys):
    tokenizer = tmp_path / "tokenizer"
    build_word_tokenizer(["glum"]).save_pretrained(tokenizer)
    rows = [
        {"id": "train/a.jpg#p0", "description": "glum, tired.", "split": "train"},
        {"id": "train/b.jpg#p0", "description": "", "status": "error", "reason": "timeout", "split": "train"},
        {"id": "test/c.jpg#p0", "description": "calm", "status": "flagged", "split": "test"},
    ]
    for name, model in (("cached", str(tokenizer)), ("absent", "nobody/no-such-vllm")):
        write_description_set(tmp_path / name, rows, {"model": model, "revision": None, "dataset": "caer_s"})
    out = tmp_path / "out"
    code = cli_main(
        ["descriptions", "compare", str(tmp_path / "cached"), str(tmp_path / "absent"), "--tokenizer", "model",
         "--output_dir", str(out), "--no_use_flagged"]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    cached, absent = json.loads((out / "report.json").read_text())["sets"]
    assert cached["length"]["tokenizer"] == str(tokenizer) and cached["length"]["count"] == 1
    assert cached["length"]["max"] == 4  # glum , tired . in the word-level tokenizer, no special tokens
    assert absent["length"]["tokenizer"] == "words (regex \\w+)" and "not on this machine" in absent["length"]["note"]
    assert cached["counts"] == {
        "total": 3, "ok": 1, "flagged": 1, "error": 1, "used_as_descriptions": 1,
        "by_split": {"test": {"ok": 0, "flagged": 1, "error": 0}, "train": {"ok": 1, "flagged": 0, "error": 1}},
    }  # fmt: skip
    # One tokenizer for every set, whatever model each records.
    code = cli_main(
        ["descriptions", "stats", str(tmp_path / "absent"), "--tokenizer", str(tokenizer), "--output_dir", str(out)]
    )
    assert code == 0, capsys.readouterr().err
    (shared,) = json.loads((out / "report.json").read_text())["sets"]
    assert shared["length"]["tokenizer"] == str(tokenizer) and shared["length"]["max"] == 4
    assert set(cached["label_mentions"]["per_label"]) == {
        "Anger",
        "Disgust",
        "Fear",
        "Happy",
        "Neutral",
        "Sad",
        "Surprise",
    }


@pytest.mark.parametrize(
    "argv,expected",
    [
        (["stats", "{root}/nowhere"], "{root}/nowhere"),
        (["stats", "{root}/not_a_set"], "{root}/not_a_set: missing column(s) ['id', 'description']"),
        (["stats", "{root}/bad_meta"], "{root}/bad_meta/description_set.json: field 'version' is 7"),
        (["stats", "{root}/other_dataset"], "{root}/other_dataset/description_set.json: field 'dataset' is 'mnist'"),
        (["stats", "{demo}", "--dataset", "caer_s"], "{demo}/description_set.json: field 'dataset' is 'emotic', but"),
        (["compare", "{demo}", "--dataset", "imagenet"], "argument --dataset: invalid choice: 'imagenet'"),
        (["stats", "{demo}", "--data_dir", "{root}"], "--data_dir needs --dataset"),
        (["stats", "{demo}", "--label_words", "{root}/bad_words.json"], "label 'Joy' is not one of the dataset's"),
        (["compare", "{demo}", "--train", "{root}/missing.yaml"], "--train {root}/missing.yaml: no such file"),
        (["compare", "{demo}", "--modalities", "audio"], "--modalities 'audio'"),
        (["compare", "{demo}", "--train", "{root}/typo.yaml"], "config file {root}/typo.yaml: unknown option"),
        (
            ["compare", "{demo}", "--train", "{root}/caer.yaml"],
            "--train {root}/caer.yaml: field 'dataset' is 'caer_s'",
        ),
        (["tally", "{demo}"], "unknown command 'tally'"),
    ],
    ids=[
        "missing",
        "not-a-set",
        "bad-metadata",
        "unknown-dataset-field",
        "other-dataset",
        "unknown-dataset",
        "data-dir-alone",
        "bad-label-words",
        "missing-config",
        "bad-modality",
        "config-typo",
        "config-of-another-dataset",
        "unknown-command",
    ],
)
def test_bad_input_is_one_line_naming_the_file_or_field(sets, tmp_path, capsys, argv, expected):
    root = tmp_path
    (root / "not_a_set").mkdir()
    (root / "not_a_set" / "notes.txt").write_text("hello")
    row = [{"id": "train/a.jpg#p0", "description": "calm", "split": "train"}]
    write_description_set(root / "bad_meta", row, {"version": 7})
    write_description_set(root / "other_dataset", row, {"dataset": "mnist"})
    (root / "bad_words.json").write_text(json.dumps({"Joy": ["smiling"]}))
    (root / "typo.yaml").write_text("dataset: emotic\nmodel_name_or_path: m\nlerning_rate: 0.1\n")
    (root / "caer.yaml").write_text("dataset: caer_s\nmodel_name_or_path: m\n")
    names = {"root": root, "demo": sets["demo"]}
    try:
        code = cli_main(
            ["descriptions", *(a.format(**names) for a in argv), "--output_dir", str(tmp_path / "out"),
             "--dataset_cache_dir", str(tmp_path / "cache")]
        )  # fmt: skip
    except SystemExit as exit:  # argparse's own refusals (an unknown choice) exit with 2 after one error line
        code = exit.code
    err = capsys.readouterr().err
    assert code in (1, 2) and "Traceback" not in err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and expected.format(**names) in errors[0], err
