"""What the GPU suite measures, part by part: the card's ceilings, stage 1 decoding, stage 2 training, inference.

Each `run_*` function takes the suite's settings, the device and a `Budget`, and returns a dict of
figures (JSON-ready). They import the project lazily, so a part whose imports fail on the GPU
machine fails alone, and none of them needs `datasets` or `evaluate` (absent there): the training
step is the model's own loss (what the Trainer calls) with the Trainer's defaults (AdamW, gradient
clipping at 1.0, bf16 autocast), fed tensors the way the collator would.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable

import torch
from gpu_caption import build_model, decode_weight_bytes, kv_bytes_per_step, synchronize


def figure(value: float | None, digits: int = 4) -> float | None:
    """`value` to `digits` significant figures (a fraction of 1e-4 must not round to 0)."""
    return None if value is None else float(f"{value:.{digits}g}")


class Budget:
    """A deadline on the monotonic clock; parts get a share of what is left of the run's.

    >>> run = Budget(480)
    >>> part = run.share(weight=5, weight_left=20)  # a quarter of the remaining time
    >>> part.allows(estimate_s=30)
    True
    """

    def __init__(self, seconds: float, deadline: float | None = None):
        self.deadline = time.monotonic() + seconds if deadline is None else deadline

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def allows(self, estimate_s: float) -> bool:
        """Whether something expected to take `estimate_s` seconds still ends before the deadline."""
        return self.remaining() > estimate_s

    def share(self, weight: float, weight_left: float, reserve_s: float = 0.0) -> Budget:
        """A part's budget: `weight / weight_left` of the time left (less `reserve_s`), so that time a part
        leaves unused goes to the parts after it."""
        left = max(0.0, self.remaining() - reserve_s)
        return Budget(0.0, deadline=time.monotonic() + left * weight / weight_left)


SKIPPED = "skipped: time budget"


def peak_memory_gb(device: str) -> float | None:
    return figure(torch.cuda.max_memory_allocated() / 1e9) if device.startswith("cuda") else None


def reset_peak_memory(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()


def release(device: str) -> None:
    """Give the memory of the previous part back, so that the next one starts from an empty card (on a CPU,
    reference counting has done it: a full collection there only costs time)."""
    if device.startswith("cuda"):
        gc.collect()
        torch.cuda.empty_cache()


def device_times(fn: Callable[[], object], device: str, repeats: int, warmup: int) -> list[float]:
    """Seconds of each of `repeats` calls of `fn` after `warmup` calls: CUDA events on a GPU, else a host clock."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return times


def wall_time(fn: Callable[[], object], device: str) -> float:
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


# -- 0. The card's two ceilings ---------------------------------------------------------------------


def copy_bandwidth(nbytes: int, device: str, repeats: int) -> float:
    """Bytes/s of a device-to-device copy of `nbytes` (random bytes), counting the bytes read and written."""
    source = torch.randint(0, 256, (nbytes,), dtype=torch.uint8, device=device)
    target = torch.empty_like(source)
    seconds = statistics.median(device_times(lambda: target.copy_(source), device, repeats=repeats, warmup=3))
    return 2 * nbytes / seconds


def matmul_rate(n: int, dtype: torch.dtype, device: str, repeats: int) -> float:
    """FLOP/s of an n x n x n product on random data (zeros run faster than real data)."""
    generator = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, dtype=dtype, device=device, generator=generator)
    b = torch.randn(n, n, dtype=dtype, device=device, generator=generator)
    seconds = statistics.mean(device_times(lambda: a @ b, device, repeats=repeats, warmup=3))
    return 2 * n**3 / seconds


def run_calibration(settings, device: str, budget: Budget) -> dict:
    """Memory bandwidth from a device-to-device copy and the matmul rate in the suite's dtype: the ceilings
    every fraction below is taken against."""
    nbytes = settings.copy_mib * 2**20
    bandwidth = copy_bandwidth(nbytes, device, settings.copy_repeats)
    release(device)
    rate = matmul_rate(settings.matmul_size, getattr(torch, settings.dtype), device, settings.matmul_repeats)
    release(device)
    return {
        "copy_bytes": nbytes,
        "copy_repeats": settings.copy_repeats,
        "copy_gb_s": figure(bandwidth / 1e9),
        "matmul_size": settings.matmul_size,
        "matmul_dtype": settings.dtype,
        "matmul_repeats": settings.matmul_repeats,
        "matmul_tflop_s": figure(rate / 1e12),
    }


# -- 1. Stage 1: describing with a LLaVA-1.5-7B-sized model ---------------------------------------------


def compare_attention(model, measure: Callable[[], dict], device: str) -> dict:
    """Decode step time with the model's default attention (SDPA) and with eager attention, one after the other."""
    default = model.config._attn_implementation
    steps = {}
    try:
        for implementation in (default, "eager"):
            model.set_attn_implementation(implementation)
            steps[implementation] = measure()["decode_step_ms"]
    except torch.OutOfMemoryError:  # eager attention materialises every score matrix
        release(device)
        return {"status": "out of memory", "default_implementation": default}
    finally:
        model.set_attn_implementation(default)
    return {
        "status": "ok",
        "default_implementation": default,
        "default_step_ms": steps[default],
        "eager_step_ms": steps["eager"],
        "eager_over_default": figure(steps["eager"] / steps[default]),
    }


def run_stage1(settings, device: str, budget: Budget, calibration: dict | None) -> dict:
    """`TransformersDescriber.describe` (what caption.py runs) at each batch size: the time for 1 new token
    and for N, whose difference over N - 1 is one decode step, against the bandwidth bound of a step
    (weights + KV cache read once over the measured copy bandwidth); then SDPA against eager attention."""
    from bench_pipeline import inputs_for
    from gpu_caption import PRESETS as LLAVA_PRESETS

    from emofusion.testing_llava import tiny_llava_processor
    from modeling_emofusion.describing import TransformersDescriber
    from modeling_emofusion.labels import EMOTIC_CATEGORIES

    vision = LLAVA_PRESETS[settings.llava]["vision"]
    # A word-level tokenizer with LLaVA's chat template and image-token expansion; the prompt's length in
    # tokens differs a little from Llama's tokenizer (reported below), the cost of a step does not.
    processor = tiny_llava_processor(vision["image_size"], vision["patch_size"])
    tokenizer = processor.tokenizer
    started = time.perf_counter()
    image_token_id = tokenizer.convert_tokens_to_ids("<image>")
    model = build_model(settings.llava, getattr(torch, settings.dtype), device, image_token_id=image_token_id)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    build_s = time.perf_counter() - started
    parameters = model.num_parameters()
    weight_bytes = decode_weight_bytes(model)
    bandwidth = calibration["copy_gb_s"] * 1e9 if calibration else None
    new_tokens = settings.new_tokens

    def describer(tokens: int) -> TransformersDescriber:
        return TransformersDescriber(model, processor, max_new_tokens=tokens, min_new_tokens=tokens)

    first_token, full = describer(1), describer(new_tokens)
    photos = inputs_for(max(settings.decode_batch_sizes + [settings.attention_batch_size]))
    images, boxes = [p["image"] for p in photos], [p["bbox"] for p in photos]
    names = EMOTIC_CATEGORIES
    marked, prompts = full.prepare(images[:1], boxes[:1], class_names=names)
    prompt_tokens = int(full.build_inputs(marked, prompts)["input_ids"].shape[1])
    mean_length = prompt_tokens + new_tokens / 2

    def describe(which: TransformersDescriber, batch_size: int) -> tuple[float, int]:
        """Best of `decode_repeats` timings of one batch, and the tokens generated."""
        seconds, result = [], []

        def run() -> None:
            result[:] = which.describe(images[:batch_size], boxes[:batch_size], class_names=names)

        for _ in range(settings.decode_repeats):
            seconds.append(wall_time(run, device))
        return min(seconds), sum(d.num_tokens for d in result)

    def measure(batch_size: int) -> dict:
        which = describer(2)
        which.describe(images[:batch_size], boxes[:batch_size], class_names=names)  # warm-up at this shape
        first, _ = describe(first_token, batch_size)  # image processing, vision tower, prefill, 1 token
        total, tokens = describe(full, batch_size)
        step = (total - first) / (new_tokens - 1)
        kv = kv_bytes_per_step(model, batch_size, mean_length)
        bound = (weight_bytes + kv) / bandwidth if bandwidth else None
        return {
            "batch_size": batch_size,
            "status": "ok",
            "first_token_s": figure(first),
            "decode_step_ms": figure(step * 1e3),
            "decode_tokens_per_s": figure(batch_size / step),
            "samples_per_s": figure(batch_size / total),
            "tokens_generated": tokens,
            "kv_gb_per_step": figure(kv / 1e9),
            "bound_ms_per_step": figure(bound * 1e3) if bound else None,
            "frac_of_bandwidth_bound": figure(bound / step) if bound else None,
            "frac_of_weights_only_bound": figure(weight_bytes / bandwidth / step) if bandwidth else None,
        }

    rows, last = [], None  # last: (batch size, seconds) of the previous measurement, for the next estimate
    for batch_size in settings.decode_batch_sizes:
        # Prefill grows with the batch, decoding less: scaling the last batch's time is a safe overestimate.
        estimate = last[1] * batch_size / last[0] if last else 0.0
        if not budget.allows(estimate):
            rows.append({"batch_size": batch_size, "status": SKIPPED})
            continue
        reset_peak_memory(device)
        started = time.perf_counter()
        try:
            row = measure(batch_size)
        except torch.OutOfMemoryError:
            release(device)
            rows.append({"batch_size": batch_size, "status": "out of memory"})
            break  # larger batches will not fit either
        row["peak_memory_gb"] = peak_memory_gb(device)
        last = (batch_size, time.perf_counter() - started)
        rows.append(row)
        print(f"stage 1, batch {batch_size}: {row}", flush=True)

    attention = {"batch_size": settings.attention_batch_size, "status": SKIPPED}
    estimate = 3 * last[1] * settings.attention_batch_size / last[0] if last else 0.0
    if budget.allows(estimate):
        attention = compare_attention(model, lambda: measure(settings.attention_batch_size), device)
        attention["batch_size"] = settings.attention_batch_size
    return {
        "model": settings.llava,
        "dtype": settings.dtype,
        "parameters_b": figure(parameters / 1e9),
        "build_s": figure(build_s),
        "weight_gb_per_step": figure(weight_bytes / 1e9),
        "prompt_tokens": prompt_tokens,
        "image_tokens": model.config.image_seq_length,
        "new_tokens": new_tokens,
        "decode_repeats": settings.decode_repeats,
        "copy_gb_s": calibration["copy_gb_s"] if calibration else None,
        "rows": rows,
        "attention": attention,
    }


# -- 2. Stage 2: training the paper-sized fusion model ----------------------------------------------------

# The three ways stage 2 can train: train.py's flags, and what the step is fed.
TRAINING_MODES = {
    "frozen_uncached": ("--freeze_vision", "pixel_values"),
    "cached": ("--freeze_vision --cache_vision_features", "vision_hidden_states"),
    "trainable_checkpointed": ("--activation_checkpointing", "pixel_values"),
}


def training_batch(model, batch_size: int, device: str, dtype: torch.dtype, seed: int = 0) -> dict[str, torch.Tensor]:
    """One batch as the collator hands it over: host tensors (pinned on a GPU machine), full-length
    descriptions, multi-hot labels and VAD targets; the cached features are the encoder's output in the
    cache's storage type (float32)."""
    config = model.config
    generator = torch.Generator().manual_seed(seed)
    size = config.vision_config.image_size
    batch = {
        "pixel_values": torch.randn(batch_size, 3, size, size, generator=generator),
        "input_ids": torch.randint(
            5, config.qformer_config.vocab_size, (batch_size, config.max_text_length), generator=generator
        ),
        "attention_mask": torch.ones(batch_size, config.max_text_length, dtype=torch.long),
        "labels": (torch.rand(batch_size, config.num_labels, generator=generator) < 0.15).float(),
        "vad_labels": 1 + 9 * torch.rand(batch_size, config.num_vad, generator=generator),
    }
    with torch.no_grad(), autocast(device, dtype):
        features = model.get_vision_features(batch["pixel_values"].to(device))
    batch["vision_hidden_states"] = features.float().cpu()
    if device.startswith("cuda"):
        batch = {key: value.pin_memory() for key, value in batch.items()}
    return batch


def autocast(device: str, dtype: torch.dtype):
    """Mixed precision as the Trainer's `--bf16` runs it; float32 (the CPU check) runs without autocast."""
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype, enabled=dtype != torch.float32)


def fed(batch: dict, feed: str) -> dict:
    """The batch without the image input this mode does not read (pixels or cached features)."""
    dropped = "vision_hidden_states" if feed == "pixel_values" else "pixel_values"
    return {key: value for key, value in batch.items() if key != dropped}


def make_training_step(model, device: str, dtype: torch.dtype, feed: str) -> Callable[[dict], None]:
    """The Trainer's step for this model: inputs to the device, forward + loss under bf16 autocast (`--bf16`),
    backward, gradient clipping at 1.0, fused AdamW (`adamw_torch_fused`), zero the gradients."""
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=1e-5, fused=torch.device(device).type == "cuda")

    def step(batch: dict) -> None:
        inputs = {k: v.to(device, non_blocking=True) for k, v in fed(batch, feed).items()}
        with autocast(device, dtype):
            loss = model(**inputs).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def counted_flops(step: Callable[[dict], None], batch: dict) -> int:
    """Matrix FLOPs of one step (forward, backward and any recomputation), as torch's FLOP counter sees them.

    It knows the CUDA attention kernels (flash, memory-efficient, cuDNN) but not the CPU's fused SDPA, so on a
    CPU the attention products are left out of the count."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        step(batch)
    return counter.get_total_flops()


def enable_checkpointing(model) -> None:
    """Activation checkpointing as `--activation_checkpointing` turns it on (non-reentrant), on either side of
    transformers' rename of `gradient_checkpointing_enable`."""
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable()
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def time_steps(step: Callable[[dict], None], batch: dict, device: str, steps: int, warmup: int) -> float:
    """Mean seconds a step over `steps` steps run back to back (no synchronisation between them, as in a
    training loop, so that the host queues the next step while the device finishes this one)."""

    def run() -> None:
        for _ in range(steps):
            step(batch)

    for _ in range(warmup):
        step(batch)
    return device_times(run, device, repeats=1, warmup=0)[0] / steps


def set_vision_trainable(model, trainable: bool) -> None:
    model.config.freeze_vision = not trainable
    model.emofusion.vision_model.requires_grad_(trainable)


def run_stage2(settings, device: str, budget: Budget, calibration: dict | None) -> dict:
    """Training samples/s of the paper-sized model in each mode of `TRAINING_MODES`, against the FLOP bound
    (counted FLOPs over the measured matmul rate), and the cached/uncached speed-up against its FLOP-predicted
    value (the encoder's forward is what caching removes)."""
    from bench_pipeline import build

    dtype = getattr(torch, settings.dtype)
    model, _ = build(settings.fusion, device)
    parameters = model.num_parameters()
    vision_parameters = model.emofusion.vision_model.num_parameters()
    rate = calibration["matmul_tflop_s"] * 1e12 if calibration else None
    set_vision_trainable(model, False)
    model.train()
    batch = training_batch(model, settings.train_batch_size, device, dtype)

    modes, first_s = {}, None
    for name, (flags, feed) in TRAINING_MODES.items():
        # Against the first mode: caching only removes work; training the encoder costs about 3x its
        # frozen forward, plus the forward recomputed by checkpointing.
        estimate = (4.0 if name == "trainable_checkpointed" else 1.0) * first_s if first_s else 0.0
        if not budget.allows(estimate):
            modes[name] = {"status": SKIPPED, "flags": flags}
            continue
        if name == "trainable_checkpointed":
            set_vision_trainable(model, True)
            enable_checkpointing(model)
        step = make_training_step(model, device, dtype, feed)
        reset_peak_memory(device)
        started = time.perf_counter()
        try:
            flops = counted_flops(step, batch)  # also the first warm-up step
            seconds = time_steps(step, batch, device, settings.train_steps, settings.train_warmup)
        except torch.OutOfMemoryError:
            release(device)
            modes[name] = {"status": "out of memory", "flags": flags}
            continue
        first_s = first_s or time.perf_counter() - started
        bound = flops / rate if rate else None
        modes[name] = {
            "status": "ok",
            "flags": flags,
            "step_ms": figure(seconds * 1e3),
            "samples_per_s": figure(settings.train_batch_size / seconds),
            "tflop_per_step": figure(flops / 1e12),
            "achieved_tflop_s": figure(flops / seconds / 1e12),
            "flop_bound_ms": figure(bound * 1e3) if bound else None,
            "frac_of_flop_bound": figure(bound / seconds) if bound else None,
            "host_to_device_mb": figure(sum(v.nbytes for v in fed(batch, feed).values()) / 1e6),
            "peak_memory_gb": peak_memory_gb(device),
        }
        print(f"stage 2, {name}: {modes[name]}", flush=True)

    report = {
        "model": settings.fusion,
        "parameters_m": figure(parameters / 1e6),
        "vision_parameters_m": figure(vision_parameters / 1e6),
        "image_size": model.config.vision_config.image_size,
        "num_query_tokens": model.config.num_query_tokens,
        "text_tokens": model.config.max_text_length,
        "num_labels": model.config.num_labels,
        "batch_size": settings.train_batch_size,
        "autocast": settings.dtype,
        "steps_timed": settings.train_steps,
        "matmul_tflop_s": calibration["matmul_tflop_s"] if calibration else None,
        "modes": modes,
        "cached_speedup": None,
        "predicted_cached_speedup": None,
        "frac_of_predicted_speedup": None,
    }
    plain, cached = modes["frozen_uncached"], modes["cached"]
    if plain["status"] == "ok" and cached["status"] == "ok":
        measured = plain["step_ms"] / cached["step_ms"]
        predicted = plain["tflop_per_step"] / cached["tflop_per_step"]
        report.update(
            cached_speedup=figure(measured),
            predicted_cached_speedup=figure(predicted),
            frac_of_predicted_speedup=figure(measured / predicted),
        )
    return report


# -- 3. Inference: the pipeline on the same model ------------------------------------------------------------


def run_inference(settings, device: str, budget: Budget) -> dict:
    """Photos/s of the "emotion-in-context" pipeline (descriptions given) at each batch size, the same photos
    for every batch size, the batch sizes interleaved in rounds (`bench_pipeline.interleaved`), best round."""
    from bench_pipeline import build, inputs_for, interleaved

    from modeling_emofusion import EmotionInContextPipeline

    dtype = getattr(torch, settings.dtype)
    model, processor = build(settings.fusion, device)
    model.to(dtype)
    pipe = EmotionInContextPipeline(model=model, processor=processor, device=torch.device(device))
    # Descriptions longer than the 256 tokens kept, as LLaVA's are.
    words = model.config.max_text_length + 40
    photos = inputs_for(settings.pipeline_photos, words_per_description=(words, words + 40))
    modes = {b: (lambda b=b: pipe(photos, batch_size=b)) for b in settings.pipeline_batch_sizes}
    reset_peak_memory(device)
    for batch_size in settings.pipeline_batch_sizes:
        pipe(photos[:batch_size], batch_size=batch_size)  # warm-up at this shape

    best, rounds, round_s = {b: float("inf") for b in modes}, 0, 0.0
    while rounds < settings.pipeline_rounds and budget.allows(round_s):
        started = time.perf_counter()
        for batch_size, seconds in interleaved(modes, 1).items():
            best[batch_size] = min(best[batch_size], seconds)
        round_s, rounds = time.perf_counter() - started, rounds + 1
    rows = []
    for batch_size, seconds in best.items():
        if rounds == 0:
            rows.append({"batch_size": batch_size, "status": SKIPPED})
            continue
        rows.append(
            {
                "batch_size": batch_size,
                "status": "ok",
                "seconds": figure(seconds),
                "photos_per_s": figure(settings.pipeline_photos / seconds),
                "speedup_vs_first_batch_size": figure(best[settings.pipeline_batch_sizes[0]] / seconds),
            }
        )
    return {
        "model": settings.fusion,
        "dtype": settings.dtype,
        "photos": settings.pipeline_photos,
        "rounds": rounds,
        "peak_memory_gb": peak_memory_gb(device),
        "rows": rows,
    }
