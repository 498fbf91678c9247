"""Stage 2 end to end on fake EMOTIC / CAER-S written in their real formats, with a description set."""

import json
import logging
import math

import datasets
import pytest
import torch
from safetensors.torch import load_file
from training_data import WORDS, write_caer_s, write_emotic
from transformers import TrainerCallback

from emofusion.testing import tiny_classifier
from emofusion.training import main, parse_args, run_training


RUNTIME_KEYS = ("runtime", "per_second", "preparation_time")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def emotic(tmp_path_factory):
    root = tmp_path_factory.mktemp("emotic")
    data_dir, descriptions = write_emotic(root, {"train": 32, "val": 16, "test": 16})
    return root, data_dir, descriptions


def save_initial(path, task="emotic", **overrides):
    model, processor = tiny_classifier(task, words=WORDS, seed=0, **overrides)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def initial(tmp_path_factory):
    return save_initial(tmp_path_factory.mktemp("init") / "emofusion-tiny")


def args_for(emotic, model, output_dir, *extra):
    root, data_dir, descriptions = emotic
    argv = [
        "--model_name_or_path", str(model),
        "--dataset", "emotic",
        "--data_dir", str(data_dir),
        "--descriptions", str(descriptions),
        "--dataset_cache_dir", str(root / "arrow_cache"),
        "--output_dir", str(output_dir),
        "--per_device_train_batch_size", "8",
        "--per_device_eval_batch_size", "8",
        "--learning_rate", "3e-3",
        "--vad_loss_weight", "0.1",  # VAD targets on 1..10 would dominate 20 tiny steps
        "--logging_steps", "1",
        "--save_strategy", "no",
        "--report_to", "none",
        "--use_cpu",
        "--seed", "7",
        "--disable_tqdm", "true",
    ]  # fmt: skip
    return parse_args(argv + list(extra))


def figures(metrics: dict, prefix: str) -> dict:
    return {k: v for k, v in metrics.items() if k.startswith(prefix) and not any(r in k for r in RUNTIME_KEYS)}


@pytest.fixture(scope="module")
def trained(emotic, initial, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("run") / "emofusion-emotic"
    metrics = run_training(
        *args_for(emotic, initial, output_dir, "--do_train", "--do_eval", "--do_predict", "--num_train_epochs", "5")
    )
    return output_dir, metrics


def test_training_learns_and_writes_everything(trained, emotic):
    output_dir, metrics = trained
    losses = [entry["loss"] for entry in json.loads((output_dir / "trainer_state.json").read_text())["log_history"]
              if "loss" in entry]  # fmt: skip
    assert len(losses) == 20 and sum(losses[-4:]) < 0.8 * sum(losses[:4])
    for key in ("test_mAP", "test_mAP_voc11", "test_mean_AUC", "test_VAD_MAE", "eval_mAP", "train_loss"):
        assert math.isfinite(metrics[key]), key
    assert metrics["test_mAP"] > 0.75  # Happiness, Peace and Sadness are learnable from picture + text

    all_results = json.loads((output_dir / "all_results.json").read_text())
    assert all_results["test_mAP"] == metrics["test_mAP"]
    assert json.loads((output_dir / "test_results.json").read_text())["test_mAP"] == metrics["test_mAP"]
    per_class = json.loads((output_dir / "test_per_class.json").read_text())
    assert per_class["scalars"]["mAP"] == pytest.approx(metrics["test_mAP"])
    assert per_class["per_class"]["Affection"]["AP"] is None and "Affection" in per_class["undefined"]["AP"]
    assert (output_dir / "test_per_class.png").stat().st_size > 1000
    assert len((output_dir / "test_predictions.jsonl").read_text().splitlines()) == 16

    config = json.loads((output_dir / "config.json").read_text())
    assert len(config["decision_thresholds"]) == 26
    assert config["description_model"] == "tiny-llava" and config["description_revision"] == "0123abc"
    assert config["prompt_template"].startswith("Given the following list of emotions")
    assert config["description_generation"] == {"do_sample": False, "max_new_tokens": 64}
    assert config["marking"] == "box" and config["description_dataset"] == str(emotic[2])
    assert (output_dir / "processor_config.json").is_file() and (output_dir / "model.safetensors").is_file()
    assert not (output_dir / "training_args.bin").exists() and (output_dir / "training_args.json").is_file()

    card = (output_dir / "README.md").read_text()
    assert card.startswith("---\n") and "model-index:" in card
    assert f"| mAP (sklearn AP) | {100 * metrics['test_mAP']:.2f} | {100 * metrics['eval_mAP']:.2f} |" in card
    assert "![per-class figure (test)](test_per_class.png)" in card
    assert "VLLM: `tiny-llava` (revision `0123abc`" in card and "<class_names>" in card
    assert '"learning_rate": 0.003' in card and '"on_missing_description": "warn"' in card


def test_evaluation_alone_reproduces_test_figures(trained, emotic, tmp_path):
    output_dir, metrics = trained
    root, data_dir, descriptions = emotic
    config_file = tmp_path / "eval.json"
    config_file.write_text(
        json.dumps(
            {
                "model_name_or_path": str(output_dir),
                "dataset": "emotic",
                "data_dir": str(data_dir),
                "descriptions": str(descriptions),
                "dataset_cache_dir": str(root / "arrow_cache"),
                "output_dir": str(tmp_path / "eval"),
                "do_predict": True,
                "per_device_eval_batch_size": 8,
                "use_cpu": True,
                "report_to": "none",
            }
        )
    )
    assert main([str(config_file)]) == 0  # the train.py entry, arguments from a JSON file
    again = json.loads((tmp_path / "eval" / "all_results.json").read_text())
    assert figures(again, "test_") == figures(metrics, "test_")
    assert json.loads((tmp_path / "eval" / "test_per_class.json").read_text()) == json.loads(
        (output_dir / "test_per_class.json").read_text()
    )
    assert (tmp_path / "eval" / "test_per_class.png").is_file()
    assert not (tmp_path / "eval" / "README.md").exists()  # no model saved there, so no model card


class StopAt(TrainerCallback):
    """Simulates a crash: raises when step `step` is about to start."""

    def __init__(self, step: int):
        self.step = step

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt(f"stopped at step {self.step}")


def test_resume_after_interruption_gives_the_same_result(emotic, initial, tmp_path):
    extra = ("--do_train", "--do_predict", "--max_steps", "6", "--save_strategy", "steps", "--save_steps", "3")
    whole = run_training(*args_for(emotic, initial, tmp_path / "whole", *extra))

    resumed_dir = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        run_training(*args_for(emotic, initial, resumed_dir, *extra), callbacks=[StopAt(4)])
    assert (resumed_dir / "checkpoint-3").is_dir() and not (resumed_dir / "checkpoint-6").exists()
    resumed = run_training(*args_for(emotic, initial, resumed_dir, *extra))  # picks up checkpoint-3
    assert figures(resumed, "test_") == figures(whole, "test_")
    # The final weights are the same too. (train_loss differs by design: after a resume the
    # Trainer averages only the steps it ran.)
    final, reference = (
        load_file(resumed_dir / "model.safetensors"),
        load_file(tmp_path / "whole" / "model.safetensors"),
    )
    assert final.keys() == reference.keys()
    for name, tensor in reference.items():
        torch.testing.assert_close(final[name], tensor, rtol=1e-6, atol=1e-7, msg=name)


def test_cached_vision_features_give_the_same_metrics(emotic, initial, tmp_path):
    extra = ("--do_train", "--do_eval", "--do_predict", "--max_steps", "4", "--freeze_vision")
    plain = run_training(*args_for(emotic, initial, tmp_path / "plain", *extra))
    cache_dir = tmp_path / "features"
    cached_args = (*extra, "--cache_vision_features", "--vision_cache_dir", str(cache_dir))
    cached = run_training(*args_for(emotic, initial, tmp_path / "cached", *cached_args))
    for key, value in figures(plain, "test_").items():
        assert cached[key] == pytest.approx(value, rel=1e-4, abs=1e-6), key
    built = sorted(p.parent.name for p in cache_dir.glob("*/index.json"))
    assert len(built) == 3  # train, validation, test
    # A second run reuses the cache: no new folder, the same shards.
    stamps = {p: p.stat().st_mtime_ns for p in cache_dir.glob("*/shard-*.safetensors")}
    run_training(*args_for(emotic, initial, tmp_path / "cached2", *cached_args))
    assert sorted(p.parent.name for p in cache_dir.glob("*/index.json")) == built
    assert {p: p.stat().st_mtime_ns for p in cache_dir.glob("*/shard-*.safetensors")} == stamps


def test_single_label_head_on_caer_s(tmp_path):
    data_dir = write_caer_s(tmp_path, per_class=10)  # the builder holds out 10% of train: 1 a class
    model = save_initial(tmp_path / "init", task="caer_s")
    argv = [
        "--model_name_or_path", model, "--dataset", "caer_s", "--data_dir", str(data_dir),
        "--modality", "vision", "--dataset_cache_dir", str(tmp_path / "arrow_cache"),
        "--output_dir", str(tmp_path / "out"), "--do_train", "--do_eval", "--do_predict",
        "--num_train_epochs", "3", "--per_device_train_batch_size", "7", "--learning_rate", "5e-3",
        "--save_strategy", "no", "--report_to", "none", "--use_cpu", "--disable_tqdm", "true",
    ]  # fmt: skip
    metrics = run_training(*parse_args(argv))
    assert 0.0 <= metrics["test_accuracy"] <= 1.0 and "test_macro_F1" in metrics and "test_mAP" not in metrics
    report = json.loads((tmp_path / "out" / "test_per_class.json").read_text())
    assert len(report["confusion_matrix"]) == 7 and sum(map(sum, report["confusion_matrix"])) == 70
    assert (tmp_path / "out" / "test_per_class.png").is_file()
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["problem_type"] == "single_label_classification" and config["decision_thresholds"] is None
    assert config["modality"] == "vision"


def test_clear_errors(emotic, initial, tmp_path):
    with pytest.raises(ValueError, match="differs from the description set's marking 'box'"):
        run_training(*args_for(emotic, initial, tmp_path / "a", "--do_eval", "--marking", "crop"))
    with pytest.raises(ValueError, match="needs a frozen vision encoder"):
        run_training(*args_for(emotic, initial, tmp_path / "b", "--do_eval", "--cache_vision_features"))
    with pytest.raises(ValueError, match="Pass --ignore_mismatched_sizes"):
        run_training(*args_for(emotic, save_initial(tmp_path / "caer", "caer_s"), tmp_path / "c", "--do_eval"))
    with pytest.raises(ValueError, match="Give a model"):
        parse_args(["--dataset", "emotic", "--output_dir", str(tmp_path)])
    with pytest.raises(ValueError, match="--dataset_options is not a JSON object"):
        parse_args(["--model_name_or_path", "m", "--dataset", "bold", "--dataset_options", "{x", "--output_dir", "o"])
    root, data_dir, _ = emotic
    no_text = ["--model_name_or_path", initial, "--dataset", "emotic", "--data_dir", str(data_dir),
               "--dataset_cache_dir", str(root / "arrow_cache"), "--output_dir", str(tmp_path / "d"), "--do_eval",
               "--use_cpu", "--report_to", "none"]  # fmt: skip
    with pytest.raises(ValueError, match="lacks column\\(s\\): description"):
        run_training(*parse_args(no_text))


def test_arguments_from_a_yaml_file(tmp_path):
    config = tmp_path / "emotic.yaml"
    config.write_text(
        "dataset: emotic\ndata_dir: /data/EMOTIC\nvision_model_name_or_path: clip\nqformer_name_or_path: bert\n"
        "freeze_vision: true\ncache_vision_features: true\ndataset_options: {num_frames: 8}\n"
        f"output_dir: {tmp_path / 'out'}\ndo_train: true\nlearning_rate: 1.0e-4\n"
    )
    model_args, data_args, training_args = parse_args([str(config)])
    assert model_args.freeze_vision and model_args.cache_vision_features and model_args.modality is None
    assert data_args.builder_options == {"num_frames": 8}
    assert training_args.do_train and training_args.learning_rate == 1e-4


def bold_like(sizes: dict[str, int]):
    """BoLD-schema splits in memory: clips of 2-3 frames with per-frame boxes, soft labels, VAD."""
    import datasets
    from PIL import Image
    from training_data import HAPPY, SAD

    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "frames": datasets.List(datasets.Image()),
            "frame_bboxes": datasets.List(datasets.List(datasets.Value("float32"), length=4)),
            "frame_indices": datasets.List(datasets.Value("int32")),
            "bbox": datasets.List(datasets.Value("float32"), length=4),
            "labels": datasets.List(datasets.Value("float32"), length=26),
            "vad": datasets.List(datasets.Value("float32"), length=3),
            "description": datasets.Value("string"),
        }
    )
    splits = {}
    for split, size in sizes.items():
        rows = {key: [] for key in features}
        for i in range(size):
            frames = 2 + i % 2
            happy, sad = i % 2 == 0, (i // 2) % 2 == 0
            labels = [0.0] * 26
            labels[HAPPY], labels[SAD] = 0.7 if happy else 0.2, 0.6 if sad else 0.1
            rows["id"].append(f"{split}/003/clip{i}.mp4/0001.mp4#{i}")
            rows["frames"].append(
                [Image.new("RGB", (40, 32), (40, 180 if happy else 40, 90 + t)) for t in range(frames)]
            )
            rows["frame_bboxes"].append([[2.0 + t, 2.0, 20.0 + t, 30.0] for t in range(frames)])
            rows["frame_indices"].append(list(range(frames)))
            rows["bbox"].append([2.0, 2.0, 20.0 + frames - 1, 30.0])
            unlabelled = split == "test"  # as BoLD's test_meta.csv: no public labels
            rows["labels"].append(None if unlabelled else labels)
            rows["vad"].append(None if unlabelled else [5.0 + happy, 4.0 + i % 3, 3.0 + i % 4])
            rows["description"].append("the person looks sad and tired" if sad else "the person seems calm relaxed")
        splits[split] = datasets.Dataset.from_dict(rows, features=features)
    return datasets.DatasetDict(splits)


def test_clips_bold_metrics_and_cache(tmp_path):
    data = bold_like({"train": 12, "validation": 8, "test": 8})
    initial = save_initial(tmp_path / "init", task="bold", num_frames=4)
    base = [
        "--model_name_or_path", initial, "--dataset", "bold", "--do_train", "--do_eval", "--do_predict",
        "--max_steps", "3",
        "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "3", "--freeze_vision",
        "--learning_rate", "3e-3", "--save_strategy", "no", "--report_to", "none", "--use_cpu",
        "--disable_tqdm", "true",
    ]  # fmt: skip
    meta = {"model": "tiny-llava", "marking": "box", "prompt_template": "p", "generation": {}}
    plain = run_training(*parse_args([*base, "--output_dir", str(tmp_path / "plain")]), dataset=data,
                         description_metadata=meta)  # fmt: skip
    data.save_to_disk(tmp_path / "prepared")  # the cached run reads a saved DatasetDict through --data_dir
    cached = run_training(
        *parse_args([*base, "--output_dir", str(tmp_path / "cached"), "--data_dir", str(tmp_path / "prepared"),
                     "--cache_vision_features", "--vision_cache_dir", str(tmp_path / "features")])
    )  # fmt: skip
    for key in ("eval_mAP", "eval_mean_AUC", "eval_mean_R2", "eval_ERS", "eval_loss"):
        assert math.isfinite(plain[key]) and cached[key] == pytest.approx(plain[key], rel=1e-4, abs=1e-6), key
    assert plain["eval_ERS"] == pytest.approx(
        0.5 * (plain["eval_mean_R2"] + 0.5 * (plain["eval_mAP"] + plain["eval_mean_AUC"]))
    )
    # The unlabelled test split: predictions only, no figures.
    assert "test_mAP" not in plain and not (tmp_path / "plain" / "test_per_class.json").exists()
    rows = [json.loads(line) for line in (tmp_path / "plain" / "test_predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and len(rows[0]["scores"]) == 26 and len(rows[0]["vad"]) == 3
    index = json.loads(next((tmp_path / "features").glob("*/index.json")).read_text())
    assert index["clips"] is True and index["row_shape"][1:] == [17, 32]  # frames x (16 patches + CLS) x width


@pytest.mark.parametrize(
    "modality, extra", [("vision", ()), ("text", ("--activation_checkpointing", "--gradient_accumulation_steps", "2"))]
)
def test_ablations(emotic, initial, tmp_path, modality, extra):
    metrics = run_training(
        *args_for(emotic, initial, tmp_path / modality, "--do_train", "--do_eval", "--max_steps", "2",
                  "--modality", modality, *extra)
    )  # fmt: skip
    assert math.isfinite(metrics["eval_mAP"]) and math.isfinite(metrics["train_loss"])
    config = json.loads((tmp_path / modality / "config.json").read_text())
    assert config["modality"] == modality
    card = (tmp_path / modality / "README.md").read_text()
    assert {"vision": "the picture alone", "text": "a VLLM's description alone"}[modality] in card


def test_cache_key_changes_with_what_the_features_depend_on():
    import datasets
    from PIL import Image

    from emofusion.testing import tiny_processor
    from emofusion.training.feature_cache import cache_key

    features = datasets.Features(
        {"id": datasets.Value("string"), "image": datasets.Image(),
         "bbox": datasets.List(datasets.Value("float32"), length=4)}
    )  # fmt: skip

    def data(colour=10, x1=4.0):
        pictures = [Image.new("RGB", (16, 16), (colour, 20 * i, 0)) for i in range(3)]
        return datasets.Dataset.from_dict(
            {"id": ["a", "b", "c"], "image": pictures, "bbox": [[x1, 0, 12, 12]] * 3}, features=features
        )

    model, processor = tiny_classifier("emotic")
    key = cache_key(model, processor, data(), "float32", None)[0]
    assert cache_key(model, processor, data(), "float32", None)[0] == key  # same inputs, same key
    changed = {
        "picture": cache_key(model, processor, data(colour=11), "float32", None)[0],
        "box": cache_key(model, processor, data(x1=3.0), "float32", None)[0],
        "rows": cache_key(model, processor, data().select([1, 0, 2]), "float32", None)[0],
        "marking": cache_key(model, tiny_processor(marking="crop"), data(), "float32", None)[0],
        "image size": cache_key(model, tiny_processor(image_size=24), data(), "float32", None)[0],
        "dtype": cache_key(model, processor, data(), "float16", None)[0],
        "autocast": cache_key(model, processor, data(), "float32", "bfloat16")[0],
    }
    with torch.no_grad():
        model.emofusion.vision_model.embeddings.patch_embedding.weight[0, 0, 0, 0] += 1e-3
    changed["encoder weights"] = cache_key(model, processor, data(), "float32", None)[0]
    assert key not in changed.values() and len(set(changed.values())) == len(changed)


def test_a_split_whose_descriptions_are_all_empty_is_reported(emotic, initial, tmp_path, caplog):
    from training_data import METADATA

    from dataset_scripts.writers import write_description_set

    root, data_dir, descriptions = emotic
    rows = datasets.load_dataset(str(descriptions))
    empty = [{"id": r["id"], "description": "", "split": split} for split in rows for r in rows[split]]
    blank = write_description_set(tmp_path / "blank", empty, METADATA)
    args = args_for(emotic, initial, tmp_path / "out", "--do_eval", "--calibrate_thresholds", "never")
    args[1].descriptions = str(blank)
    with caplog.at_level(logging.WARNING, logger="emofusion"):
        run_training(*args)
    [message] = [r.getMessage() for r in caplog.records if "Every description" in r.getMessage()]
    assert message.startswith(
        f"Every description of the validation split (16 examples) is empty (descriptions from {blank})"
    )


def _own_descriptions(descriptions, folder, kind: str) -> str:
    """The fixture's descriptions as a bare table of id, description in `kind`, as a user brings them."""
    rows = datasets.concatenate_datasets(list(datasets.load_dataset(str(descriptions)).values()))
    table = rows.select_columns(["id", "description"])
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "csv":
        table.to_csv(str(folder / "descriptions.csv"), index=False)
        return str(folder / "descriptions.csv")
    if kind == "jsonl":
        table.to_json(str(folder / "descriptions.jsonl"))
        return str(folder / "descriptions.jsonl")
    if kind == "parquet":
        table.to_parquet(str(folder / "descriptions.parquet"))
        return str(folder / "descriptions.parquet")
    if kind == "save_to_disk":
        table.save_to_disk(str(folder / "saved"))
        return str(folder / "saved")
    if kind == "hub_layout":  # a folder datasets.load_dataset reads the way it reads a Hub dataset repo
        (folder / "hub" / "data").mkdir(parents=True)
        for index in range(2):
            table.shard(2, index, contiguous=True).to_parquet(str(folder / "hub" / "data" / f"train-{index}.parquet"))
        return str(folder / "hub")
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["jsonl", "parquet", "save_to_disk", "hub_layout"])
def test_own_descriptions_join_like_the_description_set(emotic, tmp_path, kind):
    """What --descriptions reads from each format is what training gets: the same text for every id."""
    from emofusion.training.data import load_data

    root, data_dir, descriptions = emotic
    _, data_args, _ = args_for(emotic, "unused", tmp_path / "out")
    reference = load_data(data_args, 7, True, True, True)
    data_args.descriptions = _own_descriptions(descriptions, tmp_path, kind)
    own = load_data(data_args, 7, True, True, True)
    assert own.description_metadata == {} and own.description_source == data_args.descriptions
    for role in ("train", "validation", "test"):
        expected = dict(zip(getattr(reference, role)["id"], getattr(reference, role)["description"]))
        assert dict(zip(getattr(own, role)["id"], getattr(own, role)["description"])) == expected


def test_training_on_own_descriptions_records_unknown_provenance(trained, emotic, tmp_path):
    """Fine-tuning the model trained on tiny-llava's descriptions on a CSV of id, description: the config
    forgets tiny-llava, says where the text came from, and the pipeline asks for a description."""
    from PIL import Image
    from transformers import pipeline

    output_dir, _ = trained
    csv = _own_descriptions(emotic[2], tmp_path, "csv")
    args = args_for(emotic, output_dir, tmp_path / "own", "--do_train", "--do_predict", "--max_steps", "2")
    args[1].descriptions = csv
    metrics = run_training(*args)
    assert math.isfinite(metrics["test_mAP"])
    config = json.loads((tmp_path / "own" / "config.json").read_text())
    assert config["description_provenance"] == "user-provided, provenance unknown"
    assert config["description_dataset"] == csv
    assert config["description_model"] is None and config["prompt_template"] is None
    card = (tmp_path / "own" / "README.md").read_text()
    assert f"- Descriptions: user-provided, provenance unknown (`{csv}`" in card and "tiny-llava" not in card
    assert f"--descriptions {csv}" in card

    classifier = pipeline("emotion-in-context", model=str(tmp_path / "own"), trust_remote_code=True)
    picture = Image.new("RGB", (48, 40), (40, 190, 60))
    with pytest.raises(ValueError, match=r"user-provided, provenance unknown.*--description TEXT"):
        classifier(picture, bbox=[4, 2, 30, 38])
    assert len(classifier(picture, bbox=[4, 2, 30, 38], description="the person looks sad and tired")) > 0
