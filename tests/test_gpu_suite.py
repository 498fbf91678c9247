"""benchmarks/gpu_suite.py, the CPU check that keeps the GPU run from rotting.

The suite is run as a user runs it (`python benchmarks/gpu_suite.py --preset tiny --device cpu`), with
`datasets` and `evaluate` made unimportable as on the GPU machine, and its JSON is checked part by part;
a saved run is rendered and appended to a BENCHMARKS file. The guard around each part and the budget's
skipping are checked in-process on the same functions.
"""

import dataclasses
import json
import os
import subprocess
import sys
import textwrap

import pytest


pytestmark = pytest.mark.usefixtures("one_torch_thread")


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "benchmarks", "gpu_suite.py")
sys.path.insert(0, os.path.join(REPO, "benchmarks"))

import gpu_measure  # noqa: E402
import gpu_suite  # noqa: E402


# The GPU machine has neither: the suite must not need them.
WITHOUT_DATASETS = textwrap.dedent(
    """
    import runpy, sys
    sys.modules["datasets"] = None
    sys.modules["evaluate"] = None
    sys.argv = [sys.argv[1], *sys.argv[2:]]
    runpy.run_path(sys.argv[0], run_name="__main__")
    """
)

CALIBRATION_FIELDS = ["copy_bytes", "copy_gb_s", "matmul_size", "matmul_tflop_s"]
STAGE1_FIELDS = ["model", "parameters_b", "weight_gb_per_step", "prompt_tokens", "image_tokens", "new_tokens"]
STAGE1_ROW_FIELDS = [
    "first_token_s", "decode_step_ms", "decode_tokens_per_s", "samples_per_s", "tokens_generated",
    "kv_gb_per_step", "bound_ms_per_step", "frac_of_bandwidth_bound", "frac_of_weights_only_bound", "peak_memory_gb",
]  # fmt: skip
STAGE2_FIELDS = ["parameters_m", "vision_parameters_m", "image_size", "num_query_tokens", "text_tokens", "batch_size"]
STAGE2_SPEEDUP_FIELDS = ["cached_speedup", "predicted_cached_speedup", "frac_of_predicted_speedup"]
STAGE2_MODE_FIELDS = [
    "flags", "step_ms", "samples_per_s", "tflop_per_step", "achieved_tflop_s", "flop_bound_ms",
    "frac_of_flop_bound", "host_to_device_mb", "peak_memory_gb",
]  # fmt: skip


def run_script(*args, prelude: str | None = None, timeout: int = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": REPO, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-c", prelude, SCRIPT] if prelude else [sys.executable, SCRIPT]
    return subprocess.run([*command, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def positive(value) -> bool:
    return isinstance(value, (int, float)) and value > 0


def fraction(value) -> bool:
    return isinstance(value, float) and 0 < value < 1.5


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("suite")
    benchmarks = out / "BENCHMARKS.md"
    benchmarks.write_text("# Benchmarks\n\n## GPU suite\n\nHow to run it.\n")
    flags = ["--preset", "tiny", "--device", "cpu", "--threads", "1", "--out", str(out / "run")]
    done = run_script(*flags, "--append-benchmarks", str(benchmarks), prelude=WITHOUT_DATASETS)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out, json.loads((out / "run" / "gpu_suite.json").read_text()), done.stdout


def test_every_part_runs_on_tiny_shapes_and_reports_its_figures(tiny_run):
    _, report, _ = tiny_run
    parts = report["parts"]
    assert list(parts) == ["calibration", "stage1", "stage2", "inference"]
    assert all(part["status"] == "ok" for part in parts.values()), {k: p.get("error") for k, p in parts.items()}
    assert report["machine"]["torch"] and report["command"].startswith("python benchmarks/gpu_suite.py --preset tiny")
    assert 0 < report["elapsed_s"] < report["budget_s"]

    calibration = parts["calibration"]
    assert all(calibration[k] is not None for k in CALIBRATION_FIELDS)
    assert positive(calibration["copy_gb_s"]) and positive(calibration["matmul_tflop_s"])

    stage1 = parts["stage1"]
    assert all(stage1[k] is not None for k in STAGE1_FIELDS)
    assert [row["batch_size"] for row in stage1["rows"]] == [1, 2]
    for row in stage1["rows"]:
        assert row["status"] == "ok" and set(STAGE1_ROW_FIELDS) <= set(row)
        assert row["tokens_generated"] == row["batch_size"] * stage1["new_tokens"]  # forced length, every row
        assert positive(row["decode_tokens_per_s"]) and positive(row["samples_per_s"])
        assert fraction(row["frac_of_bandwidth_bound"]) and fraction(row["frac_of_weights_only_bound"])
        assert row["frac_of_weights_only_bound"] < row["frac_of_bandwidth_bound"]  # the KV cache adds bytes
    attention = stage1["attention"]
    assert attention["status"] == "ok" and attention["default_implementation"] == "sdpa"
    assert positive(attention["default_step_ms"]) and positive(attention["eager_step_ms"])

    stage2 = parts["stage2"]
    assert all(stage2[k] is not None for k in STAGE2_FIELDS + STAGE2_SPEEDUP_FIELDS)
    assert stage2["num_labels"] == 26
    modes = stage2["modes"]
    assert list(modes) == ["frozen_uncached", "cached", "trainable_checkpointed"]
    for mode in modes.values():
        assert mode["status"] == "ok" and set(STAGE2_MODE_FIELDS) <= set(mode)
        assert positive(mode["samples_per_s"]) and positive(mode["tflop_per_step"])
        assert fraction(mode["frac_of_flop_bound"])
    # Caching removes the encoder's forward; training it adds its backward and a recomputed forward.
    assert modes["cached"]["tflop_per_step"] < modes["frozen_uncached"]["tflop_per_step"]
    assert modes["trainable_checkpointed"]["tflop_per_step"] > modes["frozen_uncached"]["tflop_per_step"]
    assert modes["cached"]["host_to_device_mb"] < modes["frozen_uncached"]["host_to_device_mb"]
    assert stage2["predicted_cached_speedup"] > 1 and positive(stage2["frac_of_predicted_speedup"])

    inference = parts["inference"]
    assert [row["batch_size"] for row in inference["rows"]] == [1, 2] and inference["rounds"] == 1
    assert all(row["status"] == "ok" and positive(row["photos_per_s"]) for row in inference["rows"])

    targets = report["targets"]
    assert targets["stage1_batch32_frac_of_bandwidth_bound"]["value"] is None  # no batch 32 in the tiny preset
    assert targets["stage2_frac_of_predicted_cached_speedup"]["value"] == stage2["frac_of_predicted_speedup"]


def test_markdown_tables_are_written_printed_and_appended(tiny_run):
    out, report, stdout = tiny_run
    markdown = (out / "run" / "gpu_suite.md").read_text()
    assert markdown.startswith(f"### GPU suite run of {report['date']}")
    for line in ("| batch | first token s |", "| frozen_uncached | `--freeze_vision` |", "| batch | photos/s |"):
        assert line in markdown
    assert markdown in stdout
    benchmarks = (out / "BENCHMARKS.md").read_text()
    assert benchmarks.startswith("# Benchmarks\n\n## GPU suite\n\nHow to run it.\n\n### GPU suite run of")
    assert benchmarks.endswith(markdown)

    # A run fetched from the GPU machine is appended here from its JSON.
    done = run_script("--from_json", str(out / "run" / "gpu_suite.json"), "--append-benchmarks", str(out / "B2.md"))
    assert done.returncode == 0, done.stderr
    assert (out / "B2.md").read_text() == markdown and markdown in done.stdout


def test_a_failing_part_leaves_the_others_results(tmp_path, monkeypatch):
    def broken(*args):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(gpu_measure, "run_stage2", broken)
    parts = ["stage2", "calibration"]
    report = gpu_suite.run_suite(gpu_suite.PRESETS["tiny"], "cpu", parts, "python benchmarks/gpu_suite.py", tmp_path)
    saved = json.loads((tmp_path / "gpu_suite.json").read_text())
    assert saved == report
    assert saved["parts"]["stage2"]["status"] == "error"
    assert saved["parts"]["stage2"]["error"] == "RuntimeError: CUDA error: an illegal memory access was encountered"
    assert "broken" in saved["parts"]["stage2"]["traceback"]
    assert saved["parts"]["calibration"]["status"] == "ok" and positive(saved["parts"]["calibration"]["copy_gb_s"])
    assert "**stage2: error** RuntimeError: CUDA error" in (tmp_path / "gpu_suite.md").read_text()


class FirstChecksOnly(gpu_measure.Budget):
    """A budget that allows its first `n` checks and no more: time runs out after the first batch size."""

    def __init__(self, n: int):
        super().__init__(600.0)
        self.left = n

    def allows(self, estimate_s: float) -> bool:
        self.left -= 1
        return self.left >= 0


def test_the_budget_skips_the_remaining_batch_sizes():
    settings = gpu_suite.PRESETS["tiny"]
    result = gpu_measure.run_stage1(settings, "cpu", FirstChecksOnly(1), {"copy_gb_s": 10.0})
    assert [row["status"] for row in result["rows"]] == ["ok", gpu_measure.SKIPPED]
    assert result["attention"]["status"] == gpu_measure.SKIPPED

    run = gpu_measure.Budget(100.0)
    assert 24 < run.share(weight=5, weight_left=20).remaining() <= 25
    assert not gpu_measure.Budget(-1.0).allows(0.0)


def test_an_exhausted_budget_skips_whole_parts(tmp_path):
    settings = dataclasses.replace(gpu_suite.PRESETS["tiny"], budget_s=0.0)
    report = gpu_suite.run_suite(settings, "cpu", ["calibration", "inference"], "cmd", None)
    assert {name: part["status"] for name, part in report["parts"].items()} == {
        "calibration": gpu_measure.SKIPPED,
        "inference": gpu_measure.SKIPPED,
    }


def test_bad_arguments_are_usage_errors():
    done = run_script("--parts", "stage1,stage3")
    assert done.returncode == 2 and "--parts: unknown part(s) ['stage3']" in done.stderr
    done = run_script("--preset", "tiny", "--new_tokens", "1")
    assert done.returncode == 2 and "--new_tokens: at least 2" in done.stderr
