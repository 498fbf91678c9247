"""`emofusion demo`: the whole method, offline, on a small synthetic dataset, in a few minutes on a CPU.

    emofusion demo [--output_dir emofusion-demo] [--seed 0] [--dataset emotic|bold]

1. writes a synthetic dataset in EMOTIC's real on-disk layout (Annotations/Annotations.mat and
   emotic/<source>/images/*.jpg), whose labels are half in the picture and half in the text
   (`emofusion.synthetic`), and a description set in caption.py's format;
2. loads it through the real EMOTIC builder and joins the descriptions by id;
3. trains vision-only, text-only and fusion models with tiny random backbones through the real
   training code (`emofusion.training.run_training`: Trainer, thresholds calibrated on
   validation, test metrics);
4. reloads the fusion model with `from_pretrained`, runs the "emotion-in-context" pipeline on a
   held-out photo and saves the annotated picture;
5. prints the three test mAPs side by side with a legend, what they show, and the `emofusion predict`
   command that runs the saved model on that photo.

Each step is one line on stderr; `--verbose` shows the training log, progress bars and metric
tables as well. It checks that the machinery works end to end. The backbones are random and tiny
and the task is synthetic: the numbers say nothing about accuracy on real photos.

`--dataset bold` runs the same steps on video clips instead (`emofusion.demo_bold`): a synthetic
BoLD in its owners' layout (annotation CSVs, mp4s, joints), the BoLD builder, clip models of
`--num_frames` frames, BoLD's figures (mAP, mean AUC, R^2, ERS) and the pipeline on a test video.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shlex
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

from .dataclass_args import DataclassArgumentParser
from .errors import check_output_folder


# transformers' get_logger(__name__) is this same logger; taking it from the standard library keeps
# `emofusion demo --help` from importing transformers.
logger = logging.getLogger(__name__)

MODALITIES = ("vision", "text", "fusion")
DATASETS = ("emotic", "bold")
NOTICE = (
    "This demo checks the machinery (data layout, builder, description join, training, evaluation, saving, "
    "the pipeline) on synthetic data with tiny random models. Its numbers are not the accuracy of the method "
    "on real photos."
)


# Training defaults of each demo: the clip models see fewer examples, so they take larger steps.
TRAINING_DEFAULTS = {
    "emotic": {"num_train_epochs": 30.0, "learning_rate": 1e-3, "batch_size": 32},
    "bold": {"num_train_epochs": 30.0, "learning_rate": 3e-3, "batch_size": 16},
}


def _by_dataset(name: str) -> str:
    values = ", ".join(f"{defaults[name]:g} with --dataset {d}" for d, defaults in TRAINING_DEFAULTS.items())
    return f"(unset: {values})"


def with_defaults(args: DemoArguments) -> DemoArguments:
    """`args` with the training options left unset taken from the chosen demo's defaults."""
    unset = {k: v for k, v in TRAINING_DEFAULTS[args.dataset].items() if getattr(args, k) is None}
    return dataclasses.replace(args, **unset)


@dataclass
class DemoArguments:
    """Options of `emofusion demo` (the defaults are the documented run)."""

    output_dir: str = field(default="emofusion-demo", metadata={"help": "Where data, models and results go."})
    seed: int = field(default=0, metadata={"help": "Seed of the data and of every training run."})
    dataset: str = field(
        default="emotic",
        metadata={
            "help": "emotic: photos in EMOTIC's layout, image models; bold: clips in BoLD's layout, clip models.",
            "choices": DATASETS,
        },
    )
    train_images: int = field(default=400, metadata={"help": "Synthetic train images (1-2 subjects each)."})
    val_images: int = field(default=100, metadata={"help": "Synthetic validation images."})
    test_images: int = field(default=200, metadata={"help": "Synthetic test images."})
    train_clips: int = field(
        default=150, metadata={"help": "With --dataset bold: synthetic train clips (2 annotated people each)."}
    )
    val_clips: int = field(default=50, metadata={"help": "With --dataset bold: validation clips (the scored split)."})
    test_clips: int = field(
        default=4, metadata={"help": "With --dataset bold: test clips, without labels as BoLD's (the pipeline's)."}
    )
    num_frames: int = field(
        default=4, metadata={"help": "With --dataset bold: frames of each clip the models see (config.num_frames)."}
    )
    num_train_epochs: float | None = field(
        default=None, metadata={"help": f"Epochs per model {_by_dataset('num_train_epochs')}."}
    )
    learning_rate: float | None = field(
        default=None, metadata={"help": f"AdamW learning rate {_by_dataset('learning_rate')}."}
    )
    batch_size: int | None = field(default=None, metadata={"help": f"Train batch size {_by_dataset('batch_size')}."})
    hidden_size: int = field(default=64, metadata={"help": "Width of the tiny vision encoder and Q-Former."})
    image_size: int = field(default=32, metadata={"help": "Side of the square picture the model sees."})
    modalities: str = field(default="vision,text,fusion", metadata={"help": "Which models to train, comma separated."})
    verbose: bool = field(
        default=False,
        metadata={
            "help": "Show everything: the log of each step, the Trainer's progress bars and metric tables, "
            "library warnings. By default each step is one line."
        },
    )
    num_threads: int = field(
        default=1,
        metadata={
            "help": "CPU threads for torch. Tiny models gain nothing from more, and several threads slow down a "
            "lot when other programs share the cores."
        },
    )


# -- 1. data ---------------------------------------------------------------------------------------


def write_dataset(root: Path, args: DemoArguments) -> Path:
    """Write the synthetic EMOTIC copy under `root` (Annotations.mat + JPEGs); return `root`."""
    from emofusion.synthetic import write_synthetic_emotic

    sizes = {"train": args.train_images, "val": args.val_images, "test": args.test_images}
    write_synthetic_emotic(root, sizes, seed=args.seed)
    return root


def write_descriptions(dataset, out_dir: Path) -> tuple[Path, int]:
    """Describe every subject of the loaded dataset (by its builder id) and write a description set."""
    from dataset_scripts.writers import write_description_set
    from emofusion.synthetic import DESCRIPTION_METADATA, describe, text_group_of
    from modeling_emofusion.labels import EMOTIC_CATEGORIES

    rows = []
    for split, examples in dataset.items():
        for example_id, labels in zip(examples["id"], examples["labels"]):
            names = [name for name, on in zip(EMOTIC_CATEGORIES, labels) if on >= 0.5]
            rows.append({"id": example_id, "description": describe(text_group_of(names), example_id), "split": split})
    write_description_set(out_dir, rows, DESCRIPTION_METADATA)
    return out_dir, len(rows)


# -- 2. models -------------------------------------------------------------------------------------


def write_initial_model(folder: Path, args: DemoArguments, task: str = "emotic", num_frames: int = 1) -> None:
    """A folder with only a tiny config + the processor: the training code builds a random model from it.

    `num_frames` above 1 makes a clip model (BoLD): the config's `num_frames` is the most frames a clip has.
    """
    from emofusion.synthetic import vocabulary
    from emofusion.testing import tiny_emofusion_config, tiny_processor

    processor = tiny_processor(words=vocabulary(), image_size=args.image_size, max_text_length=64)
    width = args.hidden_size
    config = tiny_emofusion_config(
        task,
        vocab_size=len(processor.tokenizer),
        image_size=args.image_size,
        vision_config={
            "model_type": "clip_vision_model",
            "hidden_size": width,
            "intermediate_size": 2 * width,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "image_size": args.image_size,
            "patch_size": 8,
        },
        qformer_config={
            "vocab_size": len(processor.tokenizer),
            "hidden_size": width,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "intermediate_size": 2 * width,
            "max_position_embeddings": 128,
            "encoder_hidden_size": width,
            "cross_attention_frequency": 1,
            "hidden_dropout_prob": 0.0,
            "attention_probs_dropout_prob": 0.0,
        },
        num_query_tokens=8,
        num_vad=3,
        num_frames=num_frames,
    )
    folder.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(folder)
    processor.save_pretrained(folder)


def train_model(
    modality: str,
    init_dir: Path,
    data_dir: Path,
    descriptions: Path,
    out: Path,
    args: DemoArguments,
    cache_dir: str,
    dataset: str = "emotic",
    extra: tuple[str, ...] = ("--do_predict",),
) -> dict:
    """Train, calibrate and test one ablation through the real training code; return its metrics.

    `extra` are more `emofusion train` flags: by default `--do_predict` (EMOTIC's test split has labels).
    """
    from emofusion.training import parse_args, run_training

    argv = [
        "--model_name_or_path", str(init_dir),
        "--modality", modality,
        "--dataset", dataset,
        "--data_dir", str(data_dir),
        "--descriptions", str(descriptions),
        "--dataset_cache_dir", cache_dir,
        "--output_dir", str(out),
        "--do_train", "--do_eval", *extra,
        "--num_train_epochs", str(args.num_train_epochs),
        "--learning_rate", str(args.learning_rate),
        "--per_device_train_batch_size", str(args.batch_size),
        "--per_device_eval_batch_size", "64",
        "--warmup_steps", "0.05",
        "--weight_decay", "0.0",
        "--eval_strategy", "no",
        "--save_strategy", "no",
        "--logging_steps", "50",
        "--seed", str(args.seed),
        "--data_seed", str(args.seed),
        "--use_cpu",
        "--dataloader_num_workers", "0",
        "--report_to", "none",
        "--disable_tqdm", "false" if args.verbose else "true",
    ]  # fmt: skip
    # The Trainer prints its logs and metric tables. With --verbose they go to stderr with the
    # progress bars, so that stdout holds only the demo's own results; by default nowhere: the
    # demo's result table says what they would.
    sink = contextlib.nullcontext(sys.stderr) if args.verbose else open(os.devnull, "w", encoding="utf-8")
    with sink as stream, contextlib.redirect_stdout(stream):
        # The saved checkpoint carries the pipeline code (EmoFusionPreTrainedModel.save_pretrained),
        # so `pipeline(..., trust_remote_code=True)` loads it anywhere.
        return run_training(*parse_args(argv))


# -- 3. the pipeline on a held-out photo -----------------------------------------------------------


def run_pipeline(model_dir: Path, test, descriptions: Path, out_png: Path) -> dict:
    """Reload a trained model with from_pretrained, run the pipeline on every subject of one test photo."""
    from transformers import pipeline

    from dataset_scripts import load_description_set
    from emofusion.annotate import draw_predictions
    from modeling_emofusion import EmoFusionForEmotionClassification, EmoFusionProcessor

    model = EmoFusionForEmotionClassification.from_pretrained(model_dir)
    processor = EmoFusionProcessor.from_pretrained(model_dir)
    pipe = pipeline("emotion-in-context", model=model, processor=processor, device=-1)
    rows, _ = load_description_set(str(descriptions))
    text_of = dict(zip(rows["id"], rows["description"]))
    # The first test photo, with all of its annotated subjects and their descriptions.
    photo = test[0]["id"].rsplit("#", 1)[0]
    same = [i for i, example_id in enumerate(test["id"]) if example_id.rsplit("#", 1)[0] == photo]
    image = test[same[0]]["image"]
    boxes = [test[i]["bbox"] for i in same]
    subjects = pipe(image, bbox=boxes, description=[text_of[test[i]["id"]] for i in same])
    draw_predictions(image, subjects, min_size=480).save(out_png)
    names = model.config.id2label
    truth = [[names[j] for j, on in enumerate(test[i]["labels"]) if on >= 0.5] for i in same]
    return {
        "photo": photo,
        "model": str(model_dir),
        "descriptions": [text_of[test[i]["id"]] for i in same],
        "subjects": subjects,
        "true_labels": truth,
        "annotated": str(out_png),
    }


# -- results ---------------------------------------------------------------------------------------


def split_map(output_dir: Path) -> dict[str, float]:
    """Test mAP overall and over the two halves of the synthetic labels, from the run's per-class report."""
    from emofusion.synthetic import TEXT_CATEGORIES, VISUAL_CATEGORIES

    report = json.loads((output_dir / "test_per_class.json").read_text(encoding="utf-8"))
    ap = {name: float(values["AP"]) for name, values in report["per_class"].items()}

    def mean(names) -> float:
        return sum(ap[n] for n in names) / len(names)

    return {"mAP": mean(list(ap)), "mAP_visual": mean(VISUAL_CATEGORIES), "mAP_text": mean(TEXT_CATEGORIES)}


def chance_map(test) -> float:
    """The mAP of scores that know nothing: each class's AP is then its share of positives in the test split."""
    rows = test["labels"]
    return sum(sum(row[j] >= 0.5 for row in rows) / len(rows) for j in range(len(rows[0]))) / len(rows[0])


LEGEND = (
    "vision: the picture alone; text: the description alone; fusion: both, through the Q-Former.\n"
    "Picture labels are set only by the colour of the patch inside the subject's red box, text labels only by\n"
    "a word in the subject's description (13 of EMOTIC's 26 categories each). mAP: mean average precision on\n"
    "the held-out test split; 1 is perfect, {chance:.2f} is what scores that know nothing get."
)


def format_table(results: dict[str, dict], chance: float | None = None) -> str:
    """The ablations side by side (test mAP over all labels, the picture labels and the text labels), and a legend."""
    lines = [
        "| model  | mAP, all labels | mAP, picture labels | mAP, text labels |",
        "|--------|-----------------|---------------------|------------------|",
    ]
    for modality in MODALITIES:
        if modality in results:
            r = results[modality]
            lines.append(f"| {modality:<6} | {r['mAP']:<15.3f} | {r['mAP_visual']:<19.3f} | {r['mAP_text']:<16.3f} |")
    if chance is not None:
        lines += ["", LEGEND.format(chance=chance)]
    return "\n".join(lines)


def conclusion(results: dict[str, dict], visual: str = "picture") -> str:
    """What the table shows, in two or three sentences, said only where this run's numbers show it.

    A single modality "recovers its half" when it scores clearly higher there than on the other
    half; fusion "recovers both" when it is about as good as each single model on that model's half.
    `visual` names the vision half's labels ("picture", or "clip" for the BoLD demo).
    """
    margin = 0.1
    own = {"vision": ("mAP_visual", "mAP_text", visual), "text": ("mAP_text", "mAP_visual", "text")}
    sentences, single = [], [m for m in ("vision", "text") if m in results]
    separated = all(results[m][own[m][0]] > results[m][own[m][1]] + margin for m in single)
    if single and separated:
        parts = [
            f"the {m} model {results[m][own[m][0]]:.2f} on the {own[m][2]} labels but "
            f"{results[m][own[m][1]]:.2f} on the others"
            for m in single
        ]
        sentences.append(
            "Each model that sees one modality recovers only its own half of the labels: " + ", ".join(parts) + "."
        )
    elif single:
        sentences.append(
            "In this run the single-modality models do not separate the two halves of the labels clearly: "
            "train longer (--num_train_epochs) or on more images (--train_images)."
        )
    if "fusion" in results and single:
        fusion = results["fusion"]
        both = all(fusion[own[m][0]] >= results[m][own[m][0]] - margin for m in single)
        best = all(fusion["mAP"] > results[m]["mAP"] for m in single)
        if both and best:
            others = " and ".join(f"{results[m]['mAP']:.2f}" for m in single)
            sentences.append(
                f"The fusion model reads both and recovers both halves ({fusion['mAP_visual']:.2f} and "
                f"{fusion['mAP_text']:.2f}), so only it does well on all the labels ({fusion['mAP']:.2f}, against "
                f"{others})."
            )
        else:
            sentences.append(
                "In this run the fusion model does not recover both halves: train longer (--num_train_epochs)."
            )
    return " ".join(sentences)


def next_commands(summary: dict, output_dir: Path) -> list[str]:
    """Commands to try next, with real paths: predict on the saved model with the demo's held-out photo."""
    example = summary["example"]
    photo = output_dir / "data" / "emotic" / example["photo"].split("/", 1)[1]  # id: <split>/<folder>/<file>
    subject = example["subjects"][0]
    box = ",".join(f"{v:g}" for v in subject["bbox"])
    return [
        "emofusion predict "
        + " ".join(
            shlex.quote(str(part))
            for part in (
                photo, "--model", example["model"], "--bbox", box, "--description", example["descriptions"][0],
                "--save-annotated", output_dir / "predicted.png",
            )
        ),  # fmt: skip
    ]


def report(summary: dict, output_dir: Path) -> str:
    """The demo's stdout: the table with its legend, what it shows, the pipeline example, the next commands."""
    example = summary["example"]
    first = example["subjects"][0]
    commands = "\n".join(f"  {command}" for command in next_commands(summary, output_dir))
    said = [textwrap.fill(text, 104) for text in (conclusion(summary["results"]), NOTICE) if text]
    return (
        f"\nTest mAP of the models (the demo took {summary['seconds']:.0f} s):\n\n{summary['table']}\n\n"
        + "\n\n".join(said)
        + "\n\n"
        f"The pipeline on a held-out photo, {example['photo']}, subject 1:\n"
        f"  predicted {', '.join(first['labels']) or '(none)'}\n"
        f"  true      {', '.join(example['true_labels'][0])}\n"
        f"Annotated picture: {example['annotated']}. Everything is in {output_dir}.\n\n"
        f"Next, the saved {Path(example['model']).name} model on that photo, from the command line:\n{commands}\n"
    )


# -- main ------------------------------------------------------------------------------------------


def run_demo(args: DemoArguments) -> dict:
    """Run the whole demo; return (and write to `<output_dir>/demo_results.json`) its results."""
    import torch

    from dataset_scripts import load_emotion_dataset

    modalities = [m.strip() for m in args.modalities.split(",") if m.strip()]
    if not modalities or set(modalities) - set(MODALITIES):
        raise ValueError(f"--modalities takes some of {MODALITIES}, comma separated; got {args.modalities!r}.")
    if args.dataset not in DATASETS:
        raise ValueError(f"--dataset takes one of {DATASETS}; got {args.dataset!r}.")
    args = with_defaults(args)
    threads = torch.get_num_threads()
    torch.set_num_threads(args.num_threads)
    if args.dataset == "bold":
        from emofusion.demo_bold import run_bold_demo

        try:
            return run_bold_demo(args, modalities)
        finally:
            torch.set_num_threads(threads)
    start = time.perf_counter()
    out = Path(args.output_dir)
    data_dir, descriptions, models = out / "data", out / "descriptions", out / "models"
    cache_dir = str(out / "cache")  # the Arrow cache stays with the demo, not in the user's datasets cache
    steps = 3 + len(modalities)
    try:
        logger.info(f"[1/{steps}] Writing a synthetic dataset in EMOTIC's file layout to {data_dir} ...")
        write_dataset(data_dir, args)
        dataset = load_emotion_dataset("emotic", data_dir, cache_dir=cache_dir)
        sizes = {split: len(rows) for split, rows in dataset.items()}
        logger.info(
            f"[2/{steps}] Reading it with the EMOTIC builder ({sum(sizes.values())} subjects) and writing a "
            f"description of each to {descriptions} ..."
        )
        write_descriptions(dataset, descriptions)

        write_initial_model(models / "init", args)
        results = {}
        for index, modality in enumerate(modalities, start=3):
            name = "fusion" if modality == "fusion" else f"{modality}-only"
            logger.info(f"[{index}/{steps}] Training and testing the {name} model ...")
            run_dir = models / modality
            metrics = train_model(modality, models / "init", data_dir, descriptions, run_dir, args, cache_dir)
            results[modality] = {**split_map(models / modality), "test_metrics": metrics}

        final = modalities[-1]
        logger.info(f"[{steps}/{steps}] Reloading the {final} model and running the pipeline on a held-out photo ...")
        example = run_pipeline(models / final, dataset["test"], descriptions, out / "annotated.png")
        chance = chance_map(dataset["test"])
    finally:
        torch.set_num_threads(threads)
    summary = {
        "seconds": round(time.perf_counter() - start, 1),
        "sizes": sizes,
        "results": {m: {k: v for k, v in r.items() if k != "test_metrics"} for m, r in results.items()},
        "chance_mAP": chance,
        "example": example,
        "notice": NOTICE,
    }
    return save_summary(out, summary, format_table(results, chance))


def save_summary(out: Path, summary: dict, table: str) -> dict:
    """Write a demo's results to `<out>/demo_results.json`; return them with their printed `table` added."""
    (out / "demo_results.json").write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
    summary["table"] = table
    return summary


def _quiet_libraries() -> None:
    # Warnings and errors still show; progress bars and info messages do not.
    import datasets
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    datasets.logging.set_verbosity_error()
    datasets.disable_progress_bars()


def main(argv: list[str] | None = None) -> int:
    parser = DataclassArgumentParser(DemoArguments, prog="emofusion demo", description=__doc__.splitlines()[0])
    (args,) = parser.parse_args_into_dataclasses(args=argv)
    check_output_folder(args.output_dir)
    # One line per step by default: the demo's own logger at INFO, every other at WARNING.
    level = logging.INFO if args.verbose else logging.WARNING
    logging.basicConfig(format="%(message)s", level=level, stream=sys.stderr)
    logger.setLevel(logging.INFO)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here downloads; fail loudly if something tried
    if not args.verbose:
        _quiet_libraries()
    try:
        summary = run_demo(args)
    except ValueError as error:
        sys.stderr.write(f"emofusion demo: error: {error}\n")
        return 2
    if args.dataset == "bold":
        from emofusion.demo_bold import report as bold_report

        sys.stdout.write(bold_report(summary, Path(args.output_dir)))
    else:
        sys.stdout.write(report(summary, Path(args.output_dir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
