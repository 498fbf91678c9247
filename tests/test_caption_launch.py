"""caption.py as users run it: killed with SIGKILL mid-run, then resumed under a 2-process `accelerate launch`."""

import glob
import os
import signal
import subprocess
import sys
import time

import datasets
import pyarrow.parquet as pq
import pytest
from caption_fixtures import (
    build_llava,
    image_split,
)
from ports import free_port

from emofusion.captioning import CaptionArguments, caption_split


pytestmark = pytest.mark.usefixtures("one_torch_thread")


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("launch")
    model, generation = build_llava(root / "tiny-llava")
    data_dir = str(root / "data")
    datasets.DatasetDict({"train": image_split("train", 24)}).save_to_disk(data_dir)
    flags = dict(dataset="emotic", data_dir=data_dir, split="train", model=model, max_new_tokens=40)
    flags["generation_kwargs"] = generation
    return root, flags


def command_line(flags: dict, output_dir, batch_size: int) -> list[str]:
    args = [f"--{k}={v}" for k, v in flags.items()]
    return ["caption.py", *args, f"--output_dir={output_dir}", f"--batch_size={batch_size}", "--save_every=2"]


def test_kill_9_then_resume_on_two_processes_gives_the_uninterrupted_set(setup):
    root, flags = setup
    env = {**os.environ, "PYTHONPATH": REPO, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    output_dir = root / "killed"
    work = output_dir / "_work" / "train"

    # 1. One process, killed with SIGKILL as soon as its first shard is on disk.
    caption = [sys.executable, *command_line(flags, output_dir, 2)]
    process = subprocess.Popen(caption, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not glob.glob(str(work / "[!.]*.parquet")):
        assert process.poll() is None, process.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline, "no shard written in 120 s"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    assert not (output_dir / "data").exists()  # it never reached the merge
    before_resume = set(glob.glob(str(work / "[!.]*.parquet")))

    # 2. The same command under accelerate launch with two processes finishes the set.
    # --multi_gpu picks the torchrun launcher; without a GPU, caption.py's processes meet over gloo on the CPU.
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes=2"]
    launch += ["--num_machines=1", "--mixed_precision=no", "--dynamo_backend=no", f"--main_process_port={free_port()}"]
    launch += command_line(flags, output_dir, 2)
    done = subprocess.run(launch, cwd=REPO, env=env, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()[-4000:]
    new_shards = set(glob.glob(str(work / "[!.]*.parquet"))) - before_resume
    assert {os.path.basename(p).split("-")[1] for p in new_shards} == {"rank00000", "rank00001"}
    # No subject was described twice: the killed run's and the two processes' shards hold each id once.
    written = [
        i for path in sorted(before_resume | new_shards) for i in pq.read_table(path, columns=["id"])["id"].to_pylist()
    ]
    assert sorted(written) == sorted(datasets.load_from_disk(flags["data_dir"])["train"]["id"])

    # 3. The set equals an uninterrupted one-process run with another batch size: every id once, same text.
    reference_dir = root / "reference"
    caption_split(CaptionArguments(**flags, output_dir=str(reference_dir), batch_size=4, save_every=8))
    resumed = datasets.load_dataset(str(output_dir))["train"].to_pandas()
    reference = datasets.load_dataset(str(reference_dir))["train"].to_pandas()
    assert resumed["id"].is_unique and len(resumed) == 24
    assert resumed["id"].tolist() == list(datasets.load_from_disk(flags["data_dir"])["train"]["id"])
    assert resumed.equals(reference)
    assert set(resumed["status"]) == {"ok", "flagged", "error"}
