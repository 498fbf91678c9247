"""Start-up time of the commands a user types first, beside `python -c "import torch"`, in one run.

Each command runs in a fresh process, the commands in turn (so that a busy machine slows them
alike), `--repeats` rounds; reported per command: the median wall time, the ratio to
`import torch`, and whether torch / transformers were imported (`-X importtime` of the same
command). `--repo` picks the checkout whose code runs (PYTHONPATH), to compare two versions.

    python benchmarks/bench_startup.py --repeats 7
    python benchmarks/bench_startup.py --repeats 7 --repo /path/to/older/checkout
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "datasets", "modeling_emofusion")


def commands() -> dict[str, list[str]]:
    # The console script is what users type; `python -m emofusion.cli` is the same entry point.
    script = Path(sys.executable).with_name("emofusion")
    emofusion = [str(script)] if script.is_file() else [sys.executable, "-m", "emofusion.cli"]
    return {
        "python -c pass": [sys.executable, "-c", "pass"],
        "emofusion --help": [*emofusion, "--help"],
        "emofusion predict --help": [*emofusion, "predict", "--help"],
        "emofusion demo --help": [*emofusion, "demo", "--help"],
        "emofusion convert --help": [*emofusion, "convert", "--help"],
        # These two may import transformers' TrainingArguments / HfArgumentParser, and no more.
        "emofusion train --help": [*emofusion, "train", "--help"],
        "emofusion caption --help": [*emofusion, "caption", "--help"],
        'python -c "import torch"': [sys.executable, "-c", "import torch"],
    }


def heavy_imports(command: list[str], env: dict) -> list[str]:
    """Which of torch / transformers / datasets / the model code the command imports (`python -X importtime`)."""
    timed = command if command[0] == sys.executable else [sys.executable, *command]  # the script is Python
    run = subprocess.run([timed[0], "-X", "importtime", *timed[1:]], env=env, capture_output=True, text=True)
    imported = {line.rsplit("|", 1)[-1].strip() for line in run.stderr.splitlines() if line.startswith("import time")}
    return [name for name in HEAVY if name in imported]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="rounds over all commands")
    parser.add_argument("--repo", default=str(REPO), help="checkout whose code runs (PYTHONPATH)")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": os.path.abspath(args.repo)}
    todo = commands()
    times: dict[str, list[float]] = {name: [] for name in todo}
    for command in todo.values():  # one warm-up each: the first run reads the files from disk
        subprocess.run(command, env=env, capture_output=True, check=True)
    for _ in range(args.repeats):
        for name, command in todo.items():
            start = time.perf_counter()
            subprocess.run(command, env=env, capture_output=True, check=True)
            times[name].append(time.perf_counter() - start)
    torch_s = statistics.median(times['python -c "import torch"'])
    print(f"code: {args.repo}; {args.repeats} rounds, median wall time per command")
    print(f"| command | median s | / import torch | imports ({', '.join(HEAVY)}) |")
    print("|---|---|---|---|")
    for name, command in todo.items():
        median = statistics.median(times[name])
        heavy = ", ".join(heavy_imports(command, env)) or "none"
        print(f"| `{name}` | {median:.3f} | {median / torch_s:.2f} | {heavy} |")


if __name__ == "__main__":
    main()
