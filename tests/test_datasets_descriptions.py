"""Description sets: reading the caption.py format, and the join by id (never by row order)."""

import json
import logging
import random

import datasets
import pytest

from dataset_scripts import DescriptionSetError, join_descriptions, load_description_set, load_emotion_dataset
from dataset_scripts.writers import write_description_set
from tests.fake_datasets import make_fake_emotic


@pytest.fixture(scope="module")
def emotic(tmp_path_factory):
    root = tmp_path_factory.mktemp("emotic")
    make_fake_emotic(root, csv=False)
    cache = tmp_path_factory.mktemp("cache")
    return root, cache, load_emotion_dataset("emotic", root, cache_dir=str(cache))


def _rows_for(dataset, skip=(), status=None):
    """One description per example naming its own id, so any misalignment shows."""
    rows = []
    for split, ds in dataset.items():
        for example_id in ds["id"]:
            if example_id in skip:
                continue
            rows.append(
                {
                    "id": example_id,
                    "description": f"the person of {example_id} looks calm",
                    "split": split,
                    "status": (status or {}).get(example_id, "ok"),
                }
            )
    random.Random(0).shuffle(rows)  # row order must not matter
    return rows


def test_round_trip_and_metadata(emotic, tmp_path):
    _, _, dataset = emotic
    out = write_description_set(
        tmp_path / "set", _rows_for(dataset), {"model": "tiny-llava", "dataset": "emotic", "marking": "box"}
    )
    rows, meta = load_description_set(out)
    assert meta["format"] == "emofusion-descriptions" and meta["model"] == "tiny-llava"
    assert meta["splits"]["train"] == {"ok": 3, "error": 0, "flagged": 0}
    assert len(rows) == sum(len(ds) for ds in dataset.values())
    assert {"id", "description", "status", "reason", "split", "prompt", "num_tokens"} <= set(rows.column_names)
    # The README's YAML configs let datasets read the folder directly.
    direct = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "hf_cache"))
    assert set(direct) == set(dataset)
    # One shard alone, metadata from the folder above.
    shard = next((out / "data").glob("validation-*.parquet"))
    rows_val, meta_val = load_description_set(shard)
    assert meta_val["model"] == "tiny-llava" and set(rows_val["split"]) == {"validation"}


def test_join_is_by_id_whatever_the_row_order(emotic, tmp_path):
    _, _, dataset = emotic
    rows, _ = load_description_set(write_description_set(tmp_path / "set", _rows_for(dataset)))
    joined = join_descriptions(dataset, rows, on_missing="error")
    for split, ds in joined.items():
        assert len(ds) == len(dataset[split])
        for example in ds:
            assert example["description"] == f"the person of {example['id']} looks calm"
    assert joined["train"].features["description"] == datasets.Value("string")


def test_missing_ids_are_reported_and_handled(emotic, tmp_path, caplog):
    _, _, dataset = emotic
    missing = sorted(dataset["train"]["id"])[0]
    errored = sorted(dataset["test"]["id"])[0]
    rows = _rows_for(dataset, skip={missing}, status={errored: "error"})
    rows = load_description_set(write_description_set(tmp_path / "set", rows))[0]

    with caplog.at_level(logging.WARNING, logger="dataset_scripts"):
        warned = join_descriptions(dataset, rows)
    assert missing not in warned["train"]["id"] and errored not in warned["test"]["id"]
    assert len(warned["train"]) == len(dataset["train"]) - 1 and len(warned["validation"]) == len(
        dataset["validation"]
    )
    assert f"train: 1 of 3 examples have no description (e.g. ['{missing}'])" in caplog.text
    assert f"test: 1 of 1 examples have no description (e.g. ['{errored}'])" in caplog.text
    for example in warned["train"]:
        assert example["description"].endswith(f"{example['id']} looks calm")

    with pytest.raises(ValueError, match=r"train: 1 of 3 examples have no description"):
        join_descriptions(dataset, rows, on_missing="error")

    kept = join_descriptions(dataset, rows, on_missing="keep")
    descriptions = dict(zip(kept["train"]["id"], kept["train"]["description"]))
    assert descriptions[missing] == "" and len(kept["train"]) == len(dataset["train"])


def test_flagged_rows_count_unless_excluded(emotic, tmp_path):
    _, _, dataset = emotic
    flagged = sorted(dataset["validation"]["id"])[0]
    rows = load_description_set(
        write_description_set(tmp_path / "set", _rows_for(dataset, status={flagged: "flagged"}))
    )[0]
    assert flagged in join_descriptions(dataset, rows)["validation"]["id"]
    assert flagged not in join_descriptions(dataset, rows, use_flagged=False)["validation"]["id"]


def test_load_emotion_dataset_joins_a_description_set(emotic, tmp_path):
    root, cache, dataset = emotic
    out = write_description_set(tmp_path / "set", _rows_for(dataset), {"dataset": "emotic"})
    joined = load_emotion_dataset("emotic", root, descriptions=out, cache_dir=str(cache))
    assert joined["test"][0]["description"] == f"the person of {joined['test'][0]['id']} looks calm"


def test_malformed_sets_are_clear_errors(emotic, tmp_path):
    _, _, dataset = emotic
    rows = _rows_for(dataset)
    out = write_description_set(tmp_path / "dup", rows + [dict(rows[0], split="extra")])
    with pytest.raises(DescriptionSetError, match="1 id\\(s\\) appear more than once"):
        load_description_set(out)
    out = write_description_set(tmp_path / "fmt", rows)
    meta = json.loads((out / "description_set.json").read_text())
    (out / "description_set.json").write_text(json.dumps(dict(meta, format="something-else")))
    with pytest.raises(DescriptionSetError, match="field 'format' is 'something-else'"):
        load_description_set(out)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DescriptionSetError, match="expected .*description_set.json"):
        load_description_set(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="no such folder or file, nor a Hub repo id"):
        load_description_set(tmp_path / "nowhere" / "at" / "all")


def _write_table(rows: list[dict], path, kind: str):
    """Descriptions as a user might bring them: one table in the format `kind`; returns what to pass."""
    table = datasets.Dataset.from_list(rows)
    if kind == "csv":
        table.to_csv(str(path) + ".csv", index=False)
        return str(path) + ".csv"
    if kind == "tsv":
        table.to_csv(str(path) + ".tsv", index=False, sep="\t")
        return str(path) + ".tsv"
    if kind == "jsonl":
        table.to_json(str(path) + ".jsonl")
        return str(path) + ".jsonl"
    if kind == "parquet":
        table.to_parquet(str(path) + ".parquet")
        return str(path) + ".parquet"
    if kind == "saved_dataset":
        table.save_to_disk(str(path))
        return str(path)
    if kind == "saved_dataset_dict":  # one split per dataset split, as someone's published set may be
        splits = {split: table.filter(lambda row, s=split: row["split"] == s) for split in set(table["split"])}
        datasets.DatasetDict(splits).save_to_disk(str(path))
        return str(path)
    if kind == "parquet_folder":  # read by datasets.load_dataset(folder), the way it reads a Hub repo
        path.mkdir()
        for index in range(2):
            table.shard(2, index, contiguous=True).to_parquet(str(path / f"part-{index}.parquet"))
        return str(path)
    raise AssertionError(kind)


FORMATS = ("csv", "tsv", "jsonl", "parquet", "saved_dataset", "saved_dataset_dict", "parquet_folder")


@pytest.mark.parametrize("kind", FORMATS)
def test_a_table_of_id_and_description_in_any_format(emotic, tmp_path, kind):
    _, _, dataset = emotic
    rows = [{"id": r["id"], "description": r["description"], "split": r["split"]} for r in _rows_for(dataset)]
    source = _write_table(rows, tmp_path / "mine", kind)
    loaded, meta = load_description_set(source, cache_dir=str(tmp_path / "hf"))
    assert meta == {}  # no description_set.json: provenance unknown
    assert sorted(loaded["id"]) == sorted(r["id"] for r in rows) and set(loaded["status"]) == {"ok"}
    assert loaded.features["id"] == datasets.Value("string") and "split" in loaded.column_names  # other columns kept
    joined = join_descriptions(dataset, loaded, on_missing="error")
    for split in dataset:
        for example in joined[split]:
            assert example["description"] == f"the person of {example['id']} looks calm"


def test_status_is_optional_and_empty_descriptions_are_missing(emotic, tmp_path, caplog):
    _, _, dataset = emotic
    ids = sorted(dataset["train"]["id"])
    with_status = tmp_path / "with_status.csv"
    with_status.write_text(f"id,description,status\n{ids[0]},a smile,\n{ids[1]},,error\n{ids[2]},frowning,flagged\n")
    rows, _ = load_description_set(with_status, cache_dir=str(tmp_path / "hf"))
    assert dict(zip(rows["id"], rows["status"])) == {ids[0]: "ok", ids[1]: "error", ids[2]: "flagged"}
    assert dict(zip(rows["id"], rows["description"]))[ids[1]] == ""
    # Without a status column, a row with no text is no description: the join drops that example.
    no_status = tmp_path / "no_status.jsonl"
    no_status.write_text(
        "\n".join(json.dumps({"id": i, "description": d}) for i, d in zip(ids, ["a smile", None, "  "])) + "\n"
    )
    rows, _ = load_description_set(no_status, cache_dir=str(tmp_path / "hf"))
    assert dict(zip(rows["id"], rows["status"])) == {ids[0]: "ok", ids[1]: "error", ids[2]: "error"}
    with caplog.at_level(logging.WARNING, logger="dataset_scripts"):
        joined = join_descriptions(datasets.DatasetDict({"train": dataset["train"]}), rows)
    assert joined["train"]["id"] == [ids[0]] and "2 of 3 examples have no description" in caplog.text


def test_bad_tables_name_the_file_the_column_and_what_was_expected(emotic, tmp_path):
    _, _, dataset = emotic
    first = sorted(dataset["train"]["id"])[0]
    cases = {
        "no_description.csv": ("id,text\na,b\n", r"no_description\.csv: missing column\(s\) \['description'\]; "
                               r"expected a table with columns 'id' .* It has \['id', 'text'\]"),
        "numbers.csv": ("id,description\n1,calm\n2,sad\n", r"numbers\.csv: column 'id' holds int64 values "
                        r"\(e\.g\. 1\); expected strings, the dataset's example ids"),
        "twice.jsonl": (json.dumps({"id": first, "description": "x"}) + "\n" + json.dumps({"id": first,
                        "description": "y"}) + "\n", r"twice\.jsonl: 1 id\(s\) appear more than once"),
        "status.csv": (f"id,description,status\n{first},calm,done\n", r"status\.csv: column 'status' holds "
                       r"\['done'\]; expected one of \('ok', 'error', 'flagged'\)"),
        "numbers_as_text.jsonl": (json.dumps({"id": first, "description": 3}) + "\n",
                                  r"column 'description' holds int64 values \(e\.g\. 3\); expected strings\."),
        "notes.txt": ("id description\n", r"notes\.txt: expected a description table \(\.csv, \.tsv, \.json"),
        "broken.parquet": ("not parquet", r"broken\.parquet: cannot be read as parquet"),
    }  # fmt: skip
    for name, (content, message) in cases.items():
        (tmp_path / name).write_text(content)
        with pytest.raises(DescriptionSetError, match=message):
            load_description_set(tmp_path / name, cache_dir=str(tmp_path / "hf"))
    # Rows given directly are checked the same way.
    with pytest.raises(DescriptionSetError, match=r"the description rows: missing column\(s\) \['id'\]"):
        join_descriptions(dataset, datasets.Dataset.from_dict({"example": ["a"], "description": ["b"]}))


def test_a_missing_local_set_that_looks_like_a_repo_id_says_both_were_tried(tmp_path, monkeypatch):
    # `outputs/emotic-llava` is a relative path and a well-formed Hub id; offline, neither can be read.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DescriptionSetError, match=r"'outputs/emotic-llava': no such file or folder under .*Hub"):
        load_description_set("outputs/emotic-llava")
