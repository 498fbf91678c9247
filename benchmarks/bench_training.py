"""Stage 2 training speed with and without the vision-feature cache, side by side in one run (CPU).

A frozen vision encoder and a Q-Former are sized so that their forward costs stand in the same
ratio as CLIP ViT-L/14 at 224 px (257 tokens, 24 layers, width 1024) to a BERT-base Q-Former
(32 queries + ~200 description tokens, 12 layers, width 768): about 3.6 to 1 in forward FLOPs.
The same synthetic EMOTIC-schema data (JPEG pictures, boxes, descriptions) is trained for the
same number of epochs through `run_training`, once reading pixels every step and once reading
the cached features; the script prints epoch times, their ratio, training samples/s, the cache
build time, the measured encoder/Q-Former forward-time ratio and whether the metrics agree.

    python benchmarks/bench_training.py                      # defaults used for BENCHMARKS.md
    python benchmarks/bench_training.py --examples 256 --epochs 3
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import datasets  # noqa: E402
import torch  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402
from transformers import TrainerCallback  # noqa: E402

from emofusion.testing import build_word_tokenizer, tiny_image_processor  # noqa: E402
from emofusion.training import parse_args, run_training  # noqa: E402
from modeling_emofusion import EmoFusionConfig, EmoFusionForEmotionClassification, EmoFusionProcessor  # noqa: E402
from modeling_emofusion.labels import id2label_for  # noqa: E402


WORDS = "the person in the red box looks happy sad tired calm excited and seems relaxed worried".split()


class EpochTimer(TrainerCallback):
    """Wall time of each training epoch (data loading included)."""

    def __init__(self):
        self.times: list[float] = []

    def on_epoch_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_epoch_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter() - self._start)


def synthetic_emotic(n: int, seed: int = 0) -> datasets.DatasetDict:
    """EMOTIC-schema splits: JPEG pictures (encoded bytes, decoded every time), boxes, labels, VAD, descriptions."""
    rng = random.Random(seed)
    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "image": datasets.Image(),
            "bbox": datasets.List(datasets.Value("float32"), length=4),
            "labels": datasets.List(datasets.Value("float32"), length=26),
            "vad": datasets.List(datasets.Value("float32"), length=3),
            "description": datasets.Value("string"),
        }
    )

    def split(name: str, size: int) -> datasets.Dataset:
        rows = {key: [] for key in features}
        for i in range(size):
            image = Image.new("RGB", (320, 240), tuple(rng.randrange(256) for _ in range(3)))
            box = [rng.randrange(0, 150), rng.randrange(0, 100)]
            box += [box[0] + rng.randrange(40, 160), box[1] + rng.randrange(40, 130)]
            ImageDraw.Draw(image).rectangle(box, fill=tuple(rng.randrange(256) for _ in range(3)))
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=90)
            labels = [0.0] * 26
            for j in rng.sample(range(26), 3):
                labels[j] = 1.0
            words = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(60, 120)))
            rows["id"].append(f"{name}/synthetic/{i:06d}.jpg#p0")
            rows["image"].append({"bytes": buffer.getvalue(), "path": None})
            rows["bbox"].append([float(v) for v in box])
            rows["labels"].append(labels)
            rows["vad"].append([rng.uniform(1, 10) for _ in range(3)])
            rows["description"].append(words)
        return datasets.Dataset.from_dict(rows, features=features)

    return datasets.DatasetDict({"train": split("train", n), "validation": split("val", n // 4)})


def build_checkpoint(path: Path, image_size: int) -> dict:
    """Encoder and Q-Former at 1/8 of ViT-L/14 and BERT-base's cost, in the same ratio."""
    tokenizer = build_word_tokenizer(WORDS)
    config = EmoFusionConfig(
        vision_config={
            "model_type": "clip_vision_model",
            "hidden_size": 384,
            "intermediate_size": 1536,
            "num_hidden_layers": 12,
            "num_attention_heads": 6,
            "image_size": image_size,
            "patch_size": 14,
        },
        qformer_config={
            "hidden_size": 256,
            "intermediate_size": 1024,
            "num_hidden_layers": 6,
            "num_attention_heads": 4,
            "vocab_size": len(tokenizer),
            "encoder_hidden_size": 384,
        },
        num_query_tokens=8,
        max_text_length=64,
        id2label=id2label_for("emotic"),
        num_vad=3,
        freeze_vision=True,
    )
    model = EmoFusionForEmotionClassification(config)
    processor = EmoFusionProcessor(tiny_image_processor(image_size), tokenizer, max_text_length=64)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    vision = sum(p.numel() for p in model.emofusion.vision_model.parameters())
    rest = sum(p.numel() for p in model.parameters()) - vision
    return {"vision_params": vision, "qformer_and_head_params": rest, "model": model, "processor": processor}


def forward_ratio(model, processor, data: datasets.Dataset, batch_size: int) -> float:
    """Measured forward time of the vision encoder over that of the Q-Former (+ heads) on one batch."""
    rows = data.select(range(batch_size))
    batch = processor(images=rows["image"], bbox=rows["bbox"], text=rows["description"])
    model.eval()
    with torch.no_grad():
        model(**batch)  # warm-up
        start = time.perf_counter()
        features = model.get_vision_features(batch["pixel_values"])
        vision = time.perf_counter() - start
        start = time.perf_counter()
        model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], vision_hidden_states=features)
        fusion = time.perf_counter() - start
    return vision / fusion


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=96, help="training examples")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--image_size", type=int, default=112)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1 keeps timings steady on a shared machine)"
    )
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    data = synthetic_emotic(args.examples)
    work = Path(tempfile.mkdtemp(prefix="bench_training_"))
    built = build_checkpoint(work / "init", args.image_size)
    ratio = forward_ratio(built["model"], built["processor"], data["train"], args.batch_size)
    meta = {"model": "synthetic", "marking": "box", "prompt_template": "synthetic", "generation": {}}

    def run(name: str, *extra: str) -> tuple[dict, EpochTimer, float]:
        timer = EpochTimer()
        argv = [
            "--model_name_or_path", str(work / "init"), "--dataset", "emotic",
            "--output_dir", str(work / name), "--do_train", "--do_eval",
            "--num_train_epochs", str(args.epochs), "--per_device_train_batch_size", str(args.batch_size),
            "--per_device_eval_batch_size", str(args.batch_size), "--freeze_vision",
            "--save_strategy", "no", "--eval_strategy", "no", "--report_to", "none", "--use_cpu",
            "--disable_tqdm", "true", "--seed", "0", "--log_level", "error",
        ]  # fmt: skip
        start = time.perf_counter()
        metrics = run_training(*parse_args(argv + list(extra)), dataset=data, description_metadata=meta,
                               callbacks=[timer])  # fmt: skip
        return metrics, timer, time.perf_counter() - start

    plain, plain_timer, plain_total = run("plain")
    cache_dir = work / "features"
    cached, cached_timer, cached_total = run("cached", "--cache_vision_features", "--vision_cache_dir", str(cache_dir))
    # Build time = the cached run's wall time not spent in training, evaluation or model loading,
    # measured directly as a second run that finds the cache ready.
    _, _, reuse_total = run("cached_again", "--cache_vision_features", "--vision_cache_dir", str(cache_dir))

    plain_epoch = sum(plain_timer.times) / len(plain_timer.times)
    cached_epoch = sum(cached_timer.times) / len(cached_timer.times)
    agree = all(
        abs(plain[k] - cached[k]) <= 1e-4 * max(1.0, abs(plain[k]))
        for k in plain
        if k.startswith("eval_") and "runtime" not in k and "per_second" not in k
    )
    report = {
        "machine": f"{os.cpu_count()} CPU cores, torch {torch.__version__}, {torch.get_num_threads()} threads",
        "examples": args.examples,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "image_size": args.image_size,
        "vision_params_M": round(built["vision_params"] / 1e6, 2),
        "qformer_and_heads_params_M": round(built["qformer_and_head_params"] / 1e6, 2),
        "encoder_over_qformer_forward_time": round(ratio, 2),
        "epoch_s_uncached": round(plain_epoch, 2),
        "epoch_s_cached": round(cached_epoch, 2),
        "epoch_speedup_cached": round(plain_epoch / cached_epoch, 2),
        "train_samples_per_s_uncached": plain["train_samples_per_second"],
        "train_samples_per_s_cached": cached["train_samples_per_second"],
        "cache_build_s_approx": round(cached_total - reuse_total, 2),
        "total_s_uncached": round(plain_total, 2),
        "total_s_cached_first_run": round(cached_total, 2),
        "total_s_cached_reused": round(reuse_total, 2),
        "eval_metrics_agree": agree,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
