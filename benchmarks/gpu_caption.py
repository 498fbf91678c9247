"""Stage 1 on a GPU: decode throughput of a LLaVA-1.5-7B-sized model against the memory-bandwidth bound.

The model is built from its configuration with RANDOM weights (nothing is downloaded): CLIP
ViT-L/14-336 vision tower, projector, and a Llama-2-7B-sized language model (Vicuna-1.5-7B's
shape), in bfloat16. Inputs have LLaVA-1.5's shape: 576 image tokens plus a text prompt. For each
batch size it times `generate` (greedy, the transformers backend caption.py uses) for 1 and for
N new tokens; the difference gives the time of one decode step.

A decode step must read every language-model weight from HBM once, so
    bound = weight bytes / HBM bandwidth
is the fastest a step can be; `frac_of_bound = bound / measured step` says how close generation
gets (1.0 = bandwidth bound). At batch 1 decoding is memory bound; larger batches share each
weight read among more sequences, which is why caption.py batches. The KV cache read per step is
reported too (it grows with the batch).

    python benchmarks/gpu_caption.py                       # H100 SXM figures (3350 GB/s) unless the GPU says otherwise
    python benchmarks/gpu_caption.py --hbm_gb_s 2000       # e.g. an H100 PCIe
    python benchmarks/gpu_caption.py --preset tiny --device cpu   # a quick check of the script itself
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch
from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration


PRESETS = {
    # llava-hf/llava-1.5-7b-hf's configuration.
    "llava-1.5-7b": {
        "vision": dict(
            hidden_size=1024,
            intermediate_size=4096,
            num_hidden_layers=24,
            num_attention_heads=16,
            image_size=336,
            patch_size=14,
            projection_dim=768,
            hidden_act="quick_gelu",
        ),
        "text": dict(
            vocab_size=32064,
            hidden_size=4096,
            intermediate_size=11008,
            num_hidden_layers=32,
            num_attention_heads=32,
            num_key_value_heads=32,
            max_position_embeddings=4096,
            rms_norm_eps=1e-5,
        ),
        "image_token_id": 32000,
    },
    "tiny": {
        "vision": dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
            projection_dim=32,
        ),
        "text": dict(
            vocab_size=512,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=4,
            max_position_embeddings=1024,
        ),
        "image_token_id": 500,
    },
}
# GB/s of HBM by GPU name; the H100 SXM's is the default.
HBM_GB_S = {"H200": 4800.0, "H100 PCIe": 2000.0, "H100": 3350.0, "A100-SXM4-80GB": 2039.0, "A100": 1555.0}
DEFAULT_HBM_GB_S = 3350.0


def build_model(
    preset: str, dtype: torch.dtype, device: str, image_token_id: int | None = None
) -> LlavaForConditionalGeneration:
    """The preset's LLaVA with random weights; `image_token_id` overrides the preset's (to match a processor)."""
    spec = PRESETS[preset]
    vision = CLIPVisionConfig(**spec["vision"])
    text = LlamaConfig(**spec["text"], bos_token_id=1, eos_token_id=2, pad_token_id=0)
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=spec["image_token_id"] if image_token_id is None else image_token_id,
        image_seq_length=(vision.image_size // vision.patch_size) ** 2,
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
    )
    # Initialise straight on the device in the target dtype: a 7B model never exists in float32.
    with torch.device(device):
        model = LlavaForConditionalGeneration._from_config(config, dtype=dtype)
    return model.eval()


def decode_weight_bytes(model: LlavaForConditionalGeneration) -> int:
    """Bytes a decode step reads: the language model and its head (the vision tower runs only at prefill;
    the input embedding table is only gathered, one row a sequence)."""
    language = model.model.language_model
    embed = language.get_input_embeddings().weight
    total = sum(p.numel() * p.element_size() for p in language.parameters())
    total -= embed.numel() * embed.element_size()
    head = model.lm_head.weight
    if head.data_ptr() != embed.data_ptr():
        total += head.numel() * head.element_size()
    return total


def kv_bytes_per_step(model, batch_size: int, mean_length: float) -> float:
    text = model.config.text_config
    head_dim = text.hidden_size // text.num_attention_heads
    per_token = 2 * text.num_hidden_layers * text.num_key_value_heads * head_dim * model.dtype.itemsize
    return per_token * batch_size * mean_length


def make_inputs(model, batch_size: int, prompt_tokens: int, device: str, seed: int = 0) -> dict:
    config = model.config
    generator = torch.Generator(device="cpu").manual_seed(seed)
    size = config.vision_config.image_size
    text = torch.randint(3, config.image_token_id, (batch_size, prompt_tokens), generator=generator)
    image = torch.full((batch_size, config.image_seq_length), config.image_token_id)
    bos = torch.ones(batch_size, 1, dtype=torch.long)
    input_ids = torch.cat([bos, image, text], dim=1)
    pixel_values = torch.randn(batch_size, 3, size, size, generator=generator)
    return {
        "input_ids": input_ids.to(device),
        "attention_mask": torch.ones_like(input_ids).to(device),
        "pixel_values": pixel_values.to(device, model.dtype),
    }


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


@torch.inference_mode()
def timed_generate(model, inputs: dict, new_tokens: int, device: str) -> float:
    synchronize(device)
    start = time.perf_counter()
    model.generate(**inputs, do_sample=False, max_new_tokens=new_tokens, min_new_tokens=new_tokens, pad_token_id=0)
    synchronize(device)
    return time.perf_counter() - start


def hbm_bandwidth(device: str, given: float | None) -> tuple[float, str]:
    if given is not None:
        return given, "given"
    name = torch.cuda.get_device_name() if device.startswith("cuda") else platform.processor()
    for key, value in HBM_GB_S.items():
        if key in name:
            return value, f"{name} spec"
    return DEFAULT_HBM_GB_S, "H100 SXM default"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="llava-1.5-7b")
    parser.add_argument("--batch_sizes", default="1,2,4,8,16,32,64")
    parser.add_argument("--prompt_tokens", type=int, default=64, help="text tokens after the 576 image tokens")
    parser.add_argument("--new_tokens", type=int, default=64)
    parser.add_argument("--hbm_gb_s", type=float, default=None, help="HBM bandwidth in GB/s (default: H100 SXM, 3350)")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--output", default=None, help="also write the results as JSON here")
    args = parser.parse_args(argv)

    dtype = getattr(torch, args.dtype)
    started = time.perf_counter()
    model = build_model(args.preset, dtype, args.device)
    weight_bytes = decode_weight_bytes(model)
    bandwidth, source = hbm_bandwidth(args.device, args.hbm_gb_s)
    bound_s = weight_bytes / (bandwidth * 1e9)
    gpu = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "cpu"
    print(
        f"{args.preset}: {model.num_parameters() / 1e9:.2f} B parameters ({args.dtype}), built in "
        f"{time.perf_counter() - started:.1f} s on {gpu}; decode reads {weight_bytes / 1e9:.2f} GB of weights a step, "
        f"bound {bound_s * 1e3:.2f} ms at {bandwidth:.0f} GB/s ({source})",
        flush=True,
    )
    prompt_length = 1 + model.config.image_seq_length + args.prompt_tokens
    timed_generate(model, make_inputs(model, 1, args.prompt_tokens, args.device), 2, args.device)  # warm-up

    results = []
    for batch_size in [int(b) for b in args.batch_sizes.split(",")]:
        inputs = make_inputs(model, batch_size, args.prompt_tokens, args.device, seed=batch_size)
        if args.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        try:
            timed_generate(model, inputs, 2, args.device)  # warm-up at this shape
            first = timed_generate(model, inputs, 1, args.device)  # vision + prefill + 1 token
            full = timed_generate(model, inputs, args.new_tokens, args.device)
        except torch.cuda.OutOfMemoryError:
            results.append({"batch_size": batch_size, "error": "out of memory"})
            print(f"batch {batch_size}: out of memory", flush=True)
            torch.cuda.empty_cache()
            break
        step = (full - first) / (args.new_tokens - 1)
        kv = kv_bytes_per_step(model, batch_size, prompt_length + args.new_tokens / 2)
        row = {
            "batch_size": batch_size,
            "prefill_s": round(first, 4),
            "decode_step_ms": round(step * 1e3, 3),
            "decode_tokens_per_s": round(batch_size / step, 1),
            "end_to_end_tokens_per_s": round(batch_size * args.new_tokens / full, 1),
            "samples_per_s": round(batch_size / full, 3),
            "frac_of_bound": round(bound_s / step, 3),
            "frac_of_bound_with_kv": round((weight_bytes + kv) / (bandwidth * 1e9) / step, 3),
            "kv_gb_per_step": round(kv / 1e9, 3),
        }
        if args.device.startswith("cuda"):
            row["peak_memory_gb"] = round(torch.cuda.max_memory_allocated() / 1e9, 2)
        results.append(row)
        print(json.dumps(row), flush=True)

    print(f"\n{args.preset}, {gpu}, {args.dtype}, prompt {prompt_length} tokens, {args.new_tokens} new tokens")
    print("| batch | decode step ms | decode tok/s | end-to-end tok/s | samples/s | frac of bound | with KV |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        if "error" in r:
            print(f"| {r['batch_size']} | {r['error']} | | | | | |")
            continue
        print(
            f"| {r['batch_size']} | {r['decode_step_ms']} | {r['decode_tokens_per_s']} "
            f"| {r['end_to_end_tokens_per_s']} | {r['samples_per_s']} | {r['frac_of_bound']} "
            f"| {r['frac_of_bound_with_kv']} |"
        )
    summary = {
        "preset": args.preset,
        "device": gpu,
        "dtype": args.dtype,
        "hbm_gb_s": bandwidth,
        "weight_gb_per_step": round(weight_bytes / 1e9, 3),
        "bound_ms_per_step": round(bound_s * 1e3, 3),
        "prompt_tokens": prompt_length,
        "new_tokens": args.new_tokens,
        "seconds": round(time.perf_counter() - started, 1),
        "results": results,
    }
    print(json.dumps(summary))
    if args.output:
        with open(args.output, "w") as handle:
            json.dump(summary, handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
