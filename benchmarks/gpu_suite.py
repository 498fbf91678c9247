"""The project's GPU figures in one bounded run: stage 1 decoding, stage 2 training, inference, against the card.

One command for a short GPU slot: within 8 minutes on one H100/H200 (a 420 s budget, imports included,
enforced here: a part's remaining batch sizes or modes are skipped when its share of the time is near
its end). Random weights at the real shapes, nothing downloaded. Parts, each guarded so that one
failing leaves the others' results:

0. calibration: memory bandwidth from a device-to-device copy, and the bf16 matmul rate (random data);
1. stage1: the LLaVA-1.5-7B architecture in bf16, `TransformersDescriber` (caption.py's path) at batch
   1, 8, 32, 64: decode tokens/s, samples/s, peak memory and the fraction of the bandwidth bound
   (weights + KV cache read per step); SDPA against eager attention at batch 8;
2. stage2: the paper's model (CLIP ViT-L/14 at 336 px, BERT-base-sized Q-Former, 32 queries, 256
   description tokens, 26 labels), bf16 autocast training steps with the encoder frozen, with cached
   features, and trainable with activation checkpointing, against the FLOP bound; the cached/uncached
   speed-up against its FLOP-predicted value;
3. inference: the pipeline's photos/s at batch 1, 8, 32 on that model (descriptions given).

Writes gpu_suite.json and gpu_suite.md to --out after every part (a run cut short keeps what it finished).

    python benchmarks/gpu_suite.py --out outputs/gpu_suite                       # on the GPU (BENCHMARKS.md)
    python benchmarks/gpu_suite.py --preset tiny --device cpu --out /tmp/suite   # the CPU check (seconds)
    python benchmarks/gpu_suite.py --from_json outputs/gpu_suite/gpu_suite.json --append-benchmarks
"""

from __future__ import annotations

import time


START = time.monotonic()  # the budget counts the imports too

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import shlex  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402


REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

# torch and the measurements are imported where a run needs them: --from_json renders without them.


@dataclasses.dataclass
class Settings:
    """What the suite runs; a preset gives every field, the command line may override any."""

    budget_s: float = 420.0  # 7 minutes: within 8 on an H100/H200, start-up included, with room for the writing
    dtype: str = "bfloat16"
    copy_mib: int = 2048
    copy_repeats: int = 20
    matmul_size: int = 8192
    matmul_repeats: int = 10
    llava: str = "llava-1.5-7b"  # a gpu_caption.PRESETS name
    decode_batch_sizes: list[int] = dataclasses.field(default_factory=lambda: [1, 8, 32, 64])
    new_tokens: int = 64
    decode_repeats: int = 2  # best of this many timings of each generate
    attention_batch_size: int = 8
    fusion: str = "paper"  # a bench_pipeline.SIZES name
    train_batch_size: int = 32
    train_warmup: int = 3
    train_steps: int = 10
    pipeline_batch_sizes: list[int] = dataclasses.field(default_factory=lambda: [1, 8, 32])
    pipeline_photos: int = 64
    pipeline_rounds: int = 2


PRESETS = {
    "full": Settings(),
    # Every part on tiny shapes, in seconds on a CPU: it checks the suite, its figures mean nothing.
    "tiny": Settings(
        budget_s=120.0,
        dtype="float32",  # CPUs without bf16 matrix units emulate it slowly
        copy_mib=16,
        copy_repeats=5,
        matmul_size=256,
        matmul_repeats=3,
        llava="tiny",
        decode_batch_sizes=[1, 2],
        new_tokens=32,  # enough decode steps that a busy machine cannot hide their time
        attention_batch_size=2,
        fusion="tiny",
        train_batch_size=2,
        train_warmup=1,
        train_steps=2,
        pipeline_batch_sizes=[1, 2],
        pipeline_photos=4,
        pipeline_rounds=1,
    ),
}
# Each part's share of the time left when it starts (what a part leaves unused goes to the later ones).
PART_WEIGHTS = {"calibration": 1, "stage1": 10, "stage2": 5, "inference": 4}
RESERVE_S = 5.0  # kept back for writing the results
CHECKED_TRANSFORMERS = "5.24.0"  # the version the project's code needs (5.17 lacks SubConfigSpec)
TARGETS = {"stage1_batch32_frac_of_bandwidth_bound": 0.6, "stage2_frac_of_predicted_cached_speedup": 0.9}


def machine_info(device: str) -> dict:
    import torch
    import transformers

    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cuda": torch.version.cuda,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": None,
    }
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(device)
        info.update(
            gpu=props.name,
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            multiprocessors=props.multi_processor_count,
            compute_capability=f"{props.major}.{props.minor}",
        )
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
        info["commit"] = commit.stdout.strip() or None
    except OSError:
        info["commit"] = None
    return info


def run_part(name: str, settings: Settings, device: str, budget, calibration: dict | None) -> dict:
    from gpu_measure import SKIPPED, run_calibration, run_inference, run_stage1, run_stage2

    if budget.remaining() <= 0:
        return {"status": SKIPPED}
    runners = {
        "calibration": lambda: run_calibration(settings, device, budget),
        "stage1": lambda: run_stage1(settings, device, budget, calibration),
        "stage2": lambda: run_stage2(settings, device, budget, calibration),
        "inference": lambda: run_inference(settings, device, budget),
    }
    try:
        return {"status": "ok", **runners[name]()}
    except Exception as error:  # one part's failure must leave the others' results
        result = {"status": "error", "error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()}
        if isinstance(error, ImportError):
            import transformers

            result["hint"] = (
                f"transformers {transformers.__version__} here; the suite was checked with {CHECKED_TRANSFORMERS}: "
                "carry that wheel (BENCHMARKS.md, GPU suite)"
            )
        return result


def targets(parts: dict) -> dict:
    """The two targets, measured: HF decode at batch 32 against the bandwidth bound (>= 60%), and the cached
    speed-up against its FLOP prediction (>= 90%)."""
    decode = next((r for r in parts.get("stage1", {}).get("rows", []) if r["batch_size"] == 32), {})
    frac = decode.get("frac_of_bandwidth_bound")
    cached = parts.get("stage2", {}).get("frac_of_predicted_speedup")
    values = {"stage1_batch32_frac_of_bandwidth_bound": frac, "stage2_frac_of_predicted_cached_speedup": cached}
    return {
        key: {"value": value, "target": TARGETS[key], "met": None if value is None else value >= TARGETS[key]}
        for key, value in values.items()
    }


def run_suite(
    settings: Settings, device: str, parts: list[str], command: str, out: Path | None, started_at: float | None = None
) -> dict:
    """Run `parts` within `settings.budget_s` counted from `started_at` (time.monotonic(); default: now)."""
    from gpu_measure import Budget, release

    started_at = time.monotonic() if started_at is None else started_at

    report = {
        "suite": "gpu_suite",
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command,
        "device": device,
        "settings": dataclasses.asdict(settings),
        "machine": machine_info(device),
        "budget_s": settings.budget_s,
        "parts": {},
    }
    budget = Budget(settings.budget_s - (time.monotonic() - started_at))
    weight_left = sum(PART_WEIGHTS[p] for p in parts)
    for name in parts:
        part_budget = budget.share(PART_WEIGHTS[name], weight_left, reserve_s=RESERVE_S)
        weight_left -= PART_WEIGHTS[name]
        calibration = report["parts"].get("calibration")
        calibration = calibration if calibration and calibration["status"] == "ok" else None
        started = time.monotonic()
        print(f"{name}: {part_budget.remaining():.0f} s of budget", flush=True)
        result = run_part(name, settings, device, part_budget, calibration)
        release(device)  # the part's model is gone with its frame (the traceback is text)
        result["seconds"] = round(time.monotonic() - started, 1)
        report["parts"][name] = result
        report["elapsed_s"] = round(time.monotonic() - started_at, 1)
        report["targets"] = targets(report["parts"])
        error = f": {result['error']}" if "error" in result else ""
        print(f"{name}: {result['status']} in {result['seconds']} s{error}", flush=True)
        if out is not None:
            write_outputs(report, out)
    return report


# -- Writing the results ---------------------------------------------------------------------------------


def cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return f"{value:,}" if isinstance(value, int) else str(value)


def table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]


def render_markdown(report: dict) -> str:
    """The run as a dated BENCHMARKS.md section: machine, command, one table per part."""
    machine, parts = report["machine"], report["parts"]
    where = machine["gpu"] or f"{machine['cpu']} CPU ({machine['cpu_count']} cores), no GPU"
    lines = [
        f"### GPU suite run of {report['date']}: {where}",
        "",
        f"`{report['command']}` (commit {cell(machine.get('commit'))}; Python {machine['python']}, torch "
        f"{machine['torch']}, CUDA {cell(machine['cuda'])}, transformers {machine['transformers']}; "
        f"{report.get('elapsed_s', '-')} s of a {report['budget_s']:g} s budget).",
        "",
    ]

    def failed(name: str) -> bool:
        part = parts.get(name)
        if part is None:
            return True
        if part["status"] != "ok":
            message = " ".join(part.get(key, "") for key in ("error", "hint")).strip()
            lines.extend([f"**{name}: {part['status']}** {message}".rstrip(), ""])
            return True
        return False

    if not failed("calibration"):
        c = parts["calibration"]
        lines += [
            f"Ceilings measured at the start: device-to-device copy **{c['copy_gb_s']} GB/s** (bytes read + "
            f"written, {c['copy_bytes'] / 2**20:,.0f} MiB, median of {c['copy_repeats']}); {c['matmul_dtype']} matmul "
            f"**{c['matmul_tflop_s']} TFLOP/s** ({c['matmul_size']}^3, random data, mean of {c['matmul_repeats']}).",
            "",
        ]
    if not failed("stage1"):
        s = parts["stage1"]
        lines += [
            f"Stage 1: {s['model']} ({s['parameters_b']} B parameters, random, {s['dtype']}) through "
            f"`TransformersDescriber`, {s['prompt_tokens']} prompt tokens ({s['image_tokens']} of them image tokens), "
            f"{s['new_tokens']} new tokens, best of {s['decode_repeats']} timings; a step reads "
            f"{s['weight_gb_per_step']} GB of weights + the KV cache; bound = those bytes over the measured copy "
            "bandwidth.",
            "",
        ]
        header = ["batch", "first token s", "decode step ms", "decode tok/s", "samples/s", "KV GB/step"]
        header += ["bound ms", "frac of bound", "weights-only frac", "peak GB"]
        rows = []
        for r in s["rows"]:
            if r["status"] != "ok":
                rows.append([r["batch_size"], r["status"]] + [None] * (len(header) - 2))
                continue
            keys = ["first_token_s", "decode_step_ms", "decode_tokens_per_s", "samples_per_s", "kv_gb_per_step"]
            keys += ["bound_ms_per_step", "frac_of_bandwidth_bound", "frac_of_weights_only_bound", "peak_memory_gb"]
            rows.append([r["batch_size"]] + [r.get(k) for k in keys])
        lines += table(header, rows) + [""]
        a = s["attention"]
        if a["status"] == "ok":
            lines += [
                f"Attention at batch {a['batch_size']}: decode step {a['default_step_ms']} ms with "
                f"{a['default_implementation']}, {a['eager_step_ms']} ms eager ({a['eager_over_default']}x).",
                "",
            ]
        else:
            lines += [f"Attention comparison at batch {a['batch_size']}: {a['status']}.", ""]
    if not failed("stage2"):
        s = parts["stage2"]
        precision = "float32" if s["autocast"] == "float32" else f"{s['autocast']} autocast"
        lines += [
            f"Stage 2: {s['model']} model ({s['parameters_m']} M parameters, encoder {s['vision_parameters_m']} M, "
            f"{s['image_size']} px, {s['num_query_tokens']} queries, {s['text_tokens']} description tokens, "
            f"{s['num_labels']} labels), batch {s['batch_size']}, {precision}, AdamW, mean of "
            f"{s['steps_timed']} steps run back to back; FLOPs counted by torch's FLOP counter, bound = FLOPs "
            "over the measured matmul rate.",
            "",
        ]
        header = ["mode", "train.py flags", "step ms", "samples/s", "TFLOP/step", "TFLOP/s", "bound ms"]
        header += ["frac of bound", "host-to-device MB", "peak GB"]
        rows = []
        for name, m in s["modes"].items():
            if m["status"] != "ok":
                rows.append([name, f"`{m['flags']}`", m["status"]] + [None] * (len(header) - 3))
                continue
            keys = ["step_ms", "samples_per_s", "tflop_per_step", "achieved_tflop_s", "flop_bound_ms"]
            keys += ["frac_of_flop_bound", "host_to_device_mb", "peak_memory_gb"]
            rows.append([name, f"`{m['flags']}`"] + [m.get(k) for k in keys])
        lines += table(header, rows) + [""]
        lines += [
            f"Cached over uncached: **{cell(s['cached_speedup'])}x** measured, {cell(s['predicted_cached_speedup'])}x "
            f"predicted from the FLOPs: {cell(s['frac_of_predicted_speedup'])} of the prediction.",
            "",
        ]
    if not failed("inference"):
        s = parts["inference"]
        lines += [
            f"Inference: the pipeline on the {s['model']} model in {s['dtype']}, {s['photos']} photos with "
            f"descriptions, best of {s['rounds']} interleaved rounds, peak {cell(s['peak_memory_gb'])} GB.",
            "",
        ]
        rows = [
            [r["batch_size"], r.get("photos_per_s", r["status"]), r.get("speedup_vs_first_batch_size")]
            for r in s["rows"]
        ]
        lines += table(["batch", "photos/s", "speed-up"], rows) + [""]
    met = report.get("targets", {})
    if met:
        measured = [
            f"{k} = {cell(t['value'])} (target >= {t['target']}, met: {cell(t['met'])})" for k, t in met.items()
        ]
        lines.append("Targets: " + "; ".join(measured) + ".")
    return "\n".join(lines).rstrip() + "\n"


def write_outputs(report: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_suite.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "gpu_suite.md").write_text(render_markdown(report))


def append_benchmarks(report: dict, path: Path) -> None:
    """Append the run as a dated section at the end of BENCHMARKS.md (under its GPU suite section)."""
    text = path.read_text() if path.exists() else ""
    with path.open("a") as handle:
        handle.write(("\n" if text and not text.endswith("\n\n") else "") + render_markdown(report))


def int_list(text: str) -> list[int]:
    return [int(value) for value in text.split(",")]


# Settings' annotations (strings, under `from __future__ import annotations`) -> command-line types.
FIELD_TYPES = {"float": float, "int": int, "str": str, "list[int]": int_list}


def parse_args(argv: list[str] | None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="full")
    parser.add_argument("--device", default=None, help="cuda (default where there is one) or cpu")
    parser.add_argument("--parts", default=",".join(PART_WEIGHTS), help=f"comma-separated, of {list(PART_WEIGHTS)}")
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "gpu_suite", help="folder for JSON + Markdown")
    parser.add_argument(
        "--append-benchmarks", "--append_benchmarks", dest="append_benchmarks", nargs="?", type=Path,
        const=REPO / "BENCHMARKS.md", default=None, help="append a dated section to BENCHMARKS.md (or this file)",
    )  # fmt: skip
    parser.add_argument("--from_json", "--from-json", type=Path, default=None, help="render a saved run; run nothing")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    for field in dataclasses.fields(Settings):
        kind = FIELD_TYPES[str(field.type)]
        parser.add_argument(f"--{field.name}", type=kind, default=None, help=f"override the preset's {field.name}")
    args = parser.parse_args(argv)
    args.parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(args.parts) - set(PART_WEIGHTS))
    if unknown:
        parser.error(f"--parts: unknown part(s) {unknown}; expected some of {list(PART_WEIGHTS)}")
    return parser, args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser, args = parse_args(argv)
    if args.from_json is not None:
        report = json.loads(args.from_json.read_text())
        print(render_markdown(report))
        if args.append_benchmarks:
            append_benchmarks(report, args.append_benchmarks)
        return 0

    settings = dataclasses.replace(
        PRESETS[args.preset],
        **{f.name: getattr(args, f.name) for f in dataclasses.fields(Settings) if getattr(args, f.name) is not None},
    )
    if settings.new_tokens < 2:
        parser.error("--new_tokens: at least 2 (a decode step is the time of N tokens less that of 1, over N - 1)")
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {device}: torch sees no GPU here (torch {torch.__version__})")
    if args.threads:
        torch.set_num_threads(args.threads)
    from transformers.utils import logging

    logging.set_verbosity_error()  # random weights: generation and loading warnings say nothing here
    command = shlex.join(["python", "benchmarks/gpu_suite.py", *argv])
    report = run_suite(settings, device, args.parts, command, args.out, started_at=START)
    markdown = render_markdown(report)
    print("\n" + markdown)
    if args.append_benchmarks:
        append_benchmarks(report, args.append_benchmarks)
    return 1 if any(p["status"] == "error" for p in report["parts"].values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
