"""What a user types first answers at once: `--help`, `import dataset_scripts` import neither torch nor transformers.

Each check runs in a fresh interpreter, as the user's command would, and reads `sys.modules`
after it. Start-up times are measured in benchmarks/bench_startup.py, not asserted here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from emofusion.convert import ConvertArguments
from emofusion.dataclass_args import DataclassArgumentParser
from emofusion.demo import DemoArguments


REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
HEAVY = ("torch", "transformers")

# Runs `emofusion ARGS...` the way the console script does (emofusion.cli.main), then reports.
CLI = """
import json, sys
from emofusion.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
print(json.dumps({"code": code, "heavy": [m for m in ("torch", "transformers") if m in sys.modules]}))
"""


def run_python(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], env=ENV, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    "argv",
    [
        [], ["--help"], ["--version"], ["demo", "--help"], ["predict", "--help"], ["convert", "--help"],
        ["descriptions", "--help"], ["descriptions", "compare", "--help"], ["descriptions", "stats", "--help"],
        ["app", "--help"],
    ],  # fmt: skip
    ids=lambda argv: " ".join(argv) or "no-args",
)
def test_cli_help_imports_neither_torch_nor_transformers(argv):
    run = run_python("-c", CLI, *argv)
    assert run.returncode == 0, run.stderr[-2000:]
    *shown, last = run.stdout.splitlines()
    report = json.loads(last)
    assert report == {"code": 0, "heavy": []}
    assert shown and ("usage: emofusion" in "\n".join(shown) or shown[0].startswith("emofusion "))


def test_console_script_help_imports_neither():
    # The installed `emofusion` script itself, read by -X importtime (every module it imports).
    script = Path(sys.executable).with_name("emofusion")
    if not script.is_file():
        pytest.skip("no emofusion console script next to this interpreter")
    run = run_python("-X", "importtime", str(script), "predict", "--help")
    assert run.returncode == 0 and "usage: emofusion predict" in run.stdout, run.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in run.stderr.splitlines() if line.startswith("import time")}
    assert "emofusion.cli" in imported and not imported & set(HEAVY)


CHECK_IMPORTS = """
import json, sys
{statements}
print(json.dumps([m for m in {heavy!r} if m in sys.modules]))
"""


@pytest.mark.parametrize(
    "statements",
    [
        "import dataset_scripts",
        "import emofusion",
        "from dataset_scripts.labels import EMOTIC_CATEGORIES, CAER_S_CLASSES, clip_box",
        # The builders and writers need datasets, still nothing of transformers or torch.
        "from dataset_scripts import Emotic, CaerS, Bold, load_emotion_dataset, load_description_set\n"
        "import dataset_scripts.writers",
    ],
    ids=["dataset_scripts", "emofusion", "labels", "builders"],
)
def test_light_imports(statements):
    run = run_python("-c", CHECK_IMPORTS.format(statements=statements, heavy=HEAVY))
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads(run.stdout) == []


def test_label_tables_are_the_model_packages_and_it_still_registers():
    # dataset_scripts.labels loaded first (without the model package), then the model package.
    script = """
import json
import dataset_scripts, dataset_scripts.labels as light
from dataset_scripts import Emotic, load_emotion_dataset
import modeling_emofusion
import modeling_emofusion.labels as tables, modeling_emofusion.marking as marking
from transformers import AutoConfig, AutoModelForImageClassification
same = all(getattr(light, n) == getattr(tables, n) for n in
           ("EMOTIC_CATEGORIES", "BOLD_CSV_CATEGORIES", "BOLD_TO_EMOTIC", "CAER_S_CLASSES", "TASKS", "VAD_NAMES"))
config = AutoConfig.for_model("emofusion")
print(json.dumps({
    "same": same and light.MARKING_MODES == marking.MARKING_MODES,
    "clip": light.clip_box([-5, 10, 50, 300], (40, 200)),
    "config": type(config).__name__,
    "auto": AutoModelForImageClassification._model_mapping[type(config)].__name__,
    "builder": Emotic.__name__,
    "dir": sorted(n for n in ("Emotic", "load_emotion_dataset", "make_id") if n in dir(dataset_scripts)),
    "version": modeling_emofusion.__version__,
}))
try:
    dataset_scripts.no_such_name
except AttributeError as error:
    print(error)
"""
    run = run_python("-c", script)
    assert run.returncode == 0, run.stderr[-2000:]
    report_line, error_line = run.stdout.splitlines()[-2:]
    report = json.loads(report_line)
    assert report["same"] and report["clip"] == [0.0, 10.0, 40.0, 200.0]
    assert report["config"] == "EmoFusionConfig" and report["auto"] == "EmoFusionForEmotionClassification"
    assert report["builder"] == "Emotic" and report["dir"] == ["Emotic", "load_emotion_dataset", "make_id"]
    import emofusion

    assert report["version"] == emofusion.__version__
    assert "dataset_scripts" in error_line and "no_such_name" in error_line


# The light parser reads a command line exactly as transformers' HfArgumentParser would.
SAME_AS_HF = [
    (DemoArguments, []),
    (DemoArguments, ["--output-dir", "x", "--num_train_epochs", "2", "--verbose"]),
    (DemoArguments, ["--verbose", "false", "--modalities", "vision,text", "--learning-rate", "0.01"]),
    (ConvertArguments, ["--dataset", "emotic", "--data_dir", "d", "--output_dir", "o"]),
    (ConvertArguments, ["--dataset", "caer_s", "--data-dir", "d", "--output-dir", "o", "--no_verify_images",
                        "--strict", "--validation_fraction", "0.2", "--output_format", "arrow"]),
    (ConvertArguments, ["--dataset", "bold", "--data_dir", "d", "--output_dir", "o", "--verify-images", "no",
                        "--num-frames", "4", "--overwrite_output_dir", "true"]),
]  # fmt: skip


@pytest.mark.parametrize("dtype,argv", SAME_AS_HF)
def test_light_parser_reads_like_hf_argument_parser(dtype, argv):
    from transformers import HfArgumentParser

    assert DataclassArgumentParser(dtype).parse_args_into_dataclasses(argv) == (
        HfArgumentParser(dtype).parse_args_into_dataclasses(args=argv)
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["--dataset", "emotic", "--data_dir", "d"],  # --output_dir missing
        ["--dataset", "nope", "--data_dir", "d", "--output_dir", "o"],  # not a choice
        ["--dataset", "emotic", "--data_dir", "d", "--output_dir", "o", "--strict", "maybe"],  # not a bool
    ],
)
def test_light_parser_refuses_what_hf_refuses(argv, capsys):
    with pytest.raises(SystemExit) as exit:
        DataclassArgumentParser(ConvertArguments, prog="emofusion convert").parse_args_into_dataclasses(argv)
    assert exit.value.code == 2 and "emofusion convert: error:" in capsys.readouterr().err


def test_light_parser_json_file(tmp_path):
    good = tmp_path / "convert.json"
    good.write_text(json.dumps({"dataset": "emotic", "data_dir": "d", "output_dir": "o", "strict": True}))
    (args,) = DataclassArgumentParser(ConvertArguments).parse_json_file(good)
    assert args == ConvertArguments(dataset="emotic", data_dir="d", output_dir="o", strict=True)
    bad = tmp_path / "typo.json"
    bad.write_text(json.dumps({"dataset": "emotic", "data_dir": "d", "output_dir": "o", "stirct": True}))
    with pytest.raises(ValueError, match=r"typo\.json: unknown option\(s\) \['stirct'\]"):
        DataclassArgumentParser(ConvertArguments).parse_json_file(bad)
