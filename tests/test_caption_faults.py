"""caption.py as users run it, on damaged or busy output folders, huge pictures and no network.

Every case runs `python caption.py ...` in a subprocess: a malformed description_set.json or
settings.json is refused before any model loads, naming the file and field; a shard damaged inside
its data pages is set aside, named and described again; a second run on a busy folder is refused
naming the holder; a lock left by a killed run is taken over; a missing Hub model fails fast
without network, naming the repo id.
"""

import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import zlib

import datasets
import pyarrow.parquet as pq
import pytest
from caption_fixtures import CORRUPT, build_llava, image_split

from dataset_scripts import DescriptionSetError, load_description_set
from emofusion.captioning import CaptionArguments, caption_split
from emofusion.captioning.lock import OutputLock, lock_path
from emofusion.captioning.store import validate_output_dir
from emofusion.errors import EmofusionError
from emofusion.hub_errors import HubUnreachableError, NoSuchModelFolderError, check_hub_access


pytestmark = pytest.mark.usefixtures("one_torch_thread")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOMB = 6  # position of the picture over PIL's decompression-bomb limit
N = 8


def bomb_png(width: int = 20000, height: int = 20000) -> bytes:
    """A PNG that declares width x height pixels: PIL reads the size from its header and refuses it before decoding,
    so the test needs no 1.2 GB picture."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def caption_env(**extra) -> dict:
    return {**os.environ, "PYTHONPATH": REPO, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", **extra}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    model, generation = build_llava(root / "tiny-llava")
    split = image_split("train", N).to_list()
    split[BOMB]["image"] = {"bytes": bomb_png(), "path": None}
    data_dir = str(root / "data")
    datasets.DatasetDict(
        {"train": datasets.Dataset.from_list(split, features=image_split("train", 1).features)}
    ).save_to_disk(data_dir)
    flags = dict(dataset="emotic", data_dir=data_dir, split="train", model=model, max_new_tokens=8)
    flags["generation_kwargs"] = generation
    # The uninterrupted run every resumed one must equal (in-process, another batch size).
    reference = root / "reference"
    caption_split(CaptionArguments(**flags, output_dir=str(reference), batch_size=4, save_every=8))
    return root, flags, reference


def caption(flags: dict, output_dir, *extra, env=None, timeout=240) -> subprocess.CompletedProcess:
    args = [f"--{k}={v}" for k, v in flags.items()] + [f"--output_dir={output_dir}", "--batch_size=2", *extra]
    return subprocess.run(
        [sys.executable, "caption.py", *args],
        cwd=REPO,
        env=env or caption_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def final_rows(output_dir):
    return datasets.load_dataset(str(output_dir))["train"].to_pandas()


def folder_bytes(folder) -> dict:
    return {
        os.path.relpath(os.path.join(d, f), folder): open(os.path.join(d, f), "rb").read()
        for d, _, files in os.walk(folder)
        for f in files
    }


# --- 1. Malformed metadata: refused before any model loads, naming the file and the field.

# (file, content, what the one-line error must say)
MALFORMED = {
    "splits_a_list": ("description_set.json", lambda meta: {**meta, "splits": ["train"]}, "field 'splits'"),
    "not_json": ("description_set.json", "{ this is not json", "cannot be read as JSON"),
    "list_at_top": ("description_set.json", lambda meta: [meta], "expected a JSON object"),
    "model_a_number": ("description_set.json", lambda meta: {**meta, "model": 13}, "field 'model' is 13"),
    "count_a_string": (
        "description_set.json",
        lambda meta: {**meta, "splits": {"train": {"ok": "3", "error": 0, "flagged": 0}}},
        "field 'splits.train.ok' is '3'",
    ),
    "settings_a_list": ("_work/settings.json", lambda settings: list(settings), "expected a JSON object"),
    "settings_generation_a_string": (
        "_work/settings.json",
        lambda settings: {**settings, "generation": "greedy"},
        "field 'generation' is 'greedy'",
    ),
}


def write_malformed(folder, name: str) -> str:
    relative, content, _ = MALFORMED[name]
    path = os.path.join(folder, relative)
    if callable(content):
        with open(path, encoding="utf-8") as handle:
            content = json.dumps(content(json.load(handle)))
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(content)
    return path


# Through caption.py: three malformed metadata forms and a settings field of the wrong type; the other forms
# are checked in-process below (every caption.py run costs the package's imports).
THROUGH_CAPTION = ("splits_a_list", "not_json", "list_at_top", "settings_generation_a_string")


@pytest.mark.parametrize("name", THROUGH_CAPTION)
def test_malformed_metadata_is_refused_before_any_model_loads(setup, name):
    root, flags, reference = setup
    folder = root / f"malformed-{name}"
    shutil.copytree(reference, folder)
    path = write_malformed(folder, name)
    # An empty model folder: had caption.py loaded a model (or described anything), it would fail on that instead.
    no_model = root / "no-model"
    no_model.mkdir(exist_ok=True)
    done = caption({**flags, "model": str(no_model)}, folder)
    assert done.returncode == 1, done.stderr[-3000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr[-3000:]  # one line, no traceback
    assert lines[0].startswith(f"caption.py: error: {path}: ") and MALFORMED[name][2] in lines[0]
    assert "--overwrite_settings" in lines[0] and done.stdout == ""


@pytest.mark.parametrize("name", sorted(set(MALFORMED) - set(THROUGH_CAPTION)))
def test_every_malformed_form_is_named_before_a_run_starts(setup, tmp_path, name):
    _, _, reference = setup
    folder = tmp_path / "set"
    shutil.copytree(reference, folder)
    path = write_malformed(folder, name)
    with pytest.raises(DescriptionSetError) as caught:
        validate_output_dir(str(folder))
    assert str(caught.value).startswith(f"{path}: ") and MALFORMED[name][2] in str(caught.value)


@pytest.mark.parametrize("name", [n for n in sorted(MALFORMED) if MALFORMED[n][0] == "description_set.json"])
def test_load_description_set_names_the_file_and_field(setup, tmp_path, name):
    _, _, reference = setup
    folder = tmp_path / "set"
    shutil.copytree(reference, folder)
    path = write_malformed(folder, name)
    with pytest.raises(DescriptionSetError) as caught:
        load_description_set(folder)
    assert str(caught.value).startswith(f"{path}: ") and MALFORMED[name][2] in str(caught.value)


def test_overwrite_settings_replaces_a_malformed_set(setup, tmp_path):
    root, flags, reference = setup
    folder = tmp_path / "set"
    shutil.copytree(reference, folder)
    write_malformed(folder, "splits_a_list")
    summary = caption_split(CaptionArguments(**flags, output_dir=str(folder), limit=2, overwrite_settings=True))
    assert summary["total"] == 2 and load_description_set(folder)[1]["splits"]["train"]["ok"] >= 0


# --- 2. A shard damaged inside its data pages, a lock left by a killed run, another run's temporary file.


def damage_pages(path: str) -> None:
    """Overwrite bytes in the middle of the `id` column's pages; the footer stays intact and readable."""
    column = pq.ParquetFile(path).metadata.row_group(0).column(0)
    assert column.path_in_schema == "id"
    start = column.dictionary_page_offset or column.data_page_offset
    middle = start + column.total_compressed_size // 2
    with open(path, "r+b") as handle:
        handle.seek(middle - 8)
        handle.write(b"\xff" * 16)
    pq.read_metadata(path)  # the footer check alone still passes


@pytest.fixture(scope="module")
def resumed(setup):
    root, flags, reference = setup
    output_dir = root / "resumed"
    caption_split(CaptionArguments(**flags, output_dir=str(output_dir), batch_size=2, save_every=2, limit=4))
    work = output_dir / "_work" / "train"
    shards = sorted(str(p) for p in work.glob("[!.]*.parquet"))
    assert len(shards) == 2
    damaged = shards[0]
    damage_pages(damaged)
    # A run killed with SIGKILL leaves its holder record behind (its OS lock died with it).
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    record = {"host": socket.gethostname(), "pid": dead.pid, "started": "2026-01-01T00:00:00+00:00", "command": []}
    with open(lock_path(str(output_dir), 0) + ".json", "w") as handle:
        json.dump(record, handle)
    # A temporary shard another process (rank 3 of another run) is writing: not this run's to delete.
    foreign = work / ".tmp-0badc0de-rank00003-00000000000000000001-rank00003-0badc0de.parquet"
    foreign.write_bytes(b"PAR1 half written")
    done = caption(flags, output_dir, "--save_every=2")
    return done, output_dir, damaged, dead.pid, foreign, reference


def test_a_shard_damaged_inside_is_set_aside_named_and_described_again(resumed):
    done, output_dir, damaged, _, _, reference = resumed
    assert done.returncode == 0, done.stderr[-4000:]
    assert f"Setting aside the damaged shard {damaged}" in done.stderr
    assert os.path.isfile(damaged + ".unreadable") and not os.path.exists(damaged)  # renamed, not deleted
    assert json.loads(done.stdout)["described"] == N - 2  # the damaged shard's 2 subjects, and the 4 never done
    assert final_rows(output_dir).equals(final_rows(reference))


def test_a_lock_left_by_a_killed_run_is_taken_over_and_cleanup_spares_other_runs_files(resumed):
    done, output_dir, _, dead_pid, foreign, _ = resumed
    assert done.returncode == 0, done.stderr[-4000:]
    assert f"Taking over the lock of {output_dir} (rank 0) left by host {socket.gethostname()}, pid {dead_pid}" in (
        done.stderr
    )
    assert not os.path.exists(lock_path(str(output_dir), 0) + ".json")  # released at the end
    assert foreign.read_bytes() == b"PAR1 half written"


def test_a_picture_over_the_decompression_bomb_limit_is_a_counted_skip(resumed):
    done, output_dir, *_ = resumed
    rows = final_rows(output_dir)
    bomb = rows.iloc[BOMB]
    assert bomb.status == "error" and bomb.reason.startswith("picture too large: Image size (400000000 pixels)")
    assert "--max_image_pixels" in bomb.reason
    assert rows.iloc[CORRUPT].reason.startswith("unreadable image")
    assert json.loads(done.stdout)["error"] == 2


# --- 3. One writer per output folder.


def test_a_second_run_on_a_busy_folder_is_refused_naming_the_holder(setup):
    root, flags, reference = setup
    before = folder_bytes(reference)
    with OutputLock(str(reference), rank=0):
        refused = caption(flags, reference)
    assert refused.returncode == 1
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1, refused.stderr[-3000:]
    assert (
        f"{reference} is being written by another caption.py run (rank 0): host {socket.gethostname()}, " in lines[0]
    )
    assert f"pid {os.getpid()}, started " in lines[0]
    assert folder_bytes(reference) == before  # the first run's set is untouched


# --- 4. No network.


def offline_env(tmp_path, **extra) -> dict:
    """No network: the Hub endpoint is a closed loopback port, and no offline switch is set."""
    env = caption_env(HF_ENDPOINT="http://127.0.0.1:9", HF_HOME=str(tmp_path / "hf_home"), **extra)
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        env.pop(name, None)
    return env


def test_a_hub_model_without_network_fails_fast_naming_the_repo_id(setup, tmp_path):
    root, flags, _ = setup
    done = caption(
        {**flags, "model": "llava-hf/llava-1.5-7b-hf"}, tmp_path / "out", env=offline_env(tmp_path), timeout=60
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr[-3000:]
    assert (
        "Cannot reach the Hugging Face Hub at http://127.0.0.1:9 for the model 'llava-hf/llava-1.5-7b-hf'" in lines[0]
    )
    assert "pass a local folder" in lines[0] and "HF_HOME" in lines[0] and "HF_HUB_OFFLINE=1" in lines[0]


def test_a_cached_hub_model_without_network_loads_from_the_cache(setup, tmp_path):
    root, flags, _ = setup
    # The layout huggingface_hub gives a downloaded model: refs/main names a snapshot folder holding its files.
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hf_home" / "hub" / "models--emofusion-tests--tiny-llava"
    shutil.copytree(flags["model"], repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    done = caption(
        {**flags, "model": "emofusion-tests/tiny-llava"},
        tmp_path / "out",
        "--limit=2",
        env=offline_env(tmp_path),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "The Hugging Face Hub cannot be reached; loading emofusion-tests/tiny-llava from the cache" in done.stderr
    assert json.loads(done.stdout)["total"] == 2


def test_a_model_path_that_is_no_folder_is_named():
    with pytest.raises(NoSuchModelFolderError, match="'./models/llava' is not a folder"):
        check_hub_access("./models/llava")


def test_a_push_that_cannot_work_fails_before_anything_is_described(setup, tmp_path, monkeypatch):
    _, flags, _ = setup
    args = CaptionArguments(**flags, output_dir=str(tmp_path / "out"), push_to_hub="me/descriptions")
    with pytest.raises(HubUnreachableError, match="--push_to_hub me/descriptions needs the Hub, but HF_HUB_OFFLINE"):
        caption_split(args)
    assert not (tmp_path / "out" / "_work").exists()

    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")
    with pytest.raises(HubUnreachableError, match="me/descriptions: cannot reach the Hub at http://127.0.0.1:9"):
        caption_split(args)
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "no-token"))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token" / "token"))
    with pytest.raises(EmofusionError, match="not logged in to the Hugging Face Hub"):
        caption_split(args)
