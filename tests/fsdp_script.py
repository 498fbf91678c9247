"""Run by tests/test_distributed_contracts.py under `torchrun --nproc_per_node 2` on CPU: a few training steps of a
tiny EmoFusion model sharded with FSDP2 (`fully_shard`) over gloo, wrapping each module whose class is in the
model's `_no_split_modules` (what transformer-based auto-wrap does), then the full state dict saved with
`save_pretrained` beside the logits the sharded model gives. Usage: fsdp_script.py INIT_DIR OUTPUT_DIR

accelerate sets FSDP up only on accelerators (its CPU path is DDP), so the sharding is torch's own here."""

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import save_file
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import FSDPModule, fully_shard

from modeling_emofusion import EmoFusionForEmotionClassification


def main(init_dir: str, output_dir: str) -> None:
    dist.init_process_group("gloo")
    mesh = init_device_mesh("cpu", (dist.get_world_size(),))
    model = EmoFusionForEmotionClassification.from_pretrained(init_dir).train()
    units = [module for module in model.modules() if type(module).__name__ in model._no_split_modules]
    for module in reversed(units):  # inner units first, as auto-wrap does
        fully_shard(module, mesh=mesh)
    fully_shard(model, mesh=mesh)
    wrapped = sorted(
        {type(module).__name__.removeprefix("FSDP") for module in units if isinstance(module, FSDPModule)}
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)

    torch.manual_seed(1234)  # the same batch on every rank
    inputs = {
        "pixel_values": torch.randn(2, 3, 32, 32),
        "input_ids": torch.randint(5, 100, (2, 8)),
        "attention_mask": torch.ones(2, 8, dtype=torch.long),
    }
    labels = (torch.rand(2, 26) > 0.5).float()
    for _ in range(3):
        loss = model(**inputs, labels=labels, vad_labels=torch.full((2, 3), 5.0)).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    model.eval()
    with torch.no_grad():
        logits = model(**inputs).logits
    state_dict = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if dist.get_rank() == 0:
        output = Path(output_dir)
        reference = EmoFusionForEmotionClassification.from_pretrained(init_dir)
        reference.load_state_dict(state_dict)
        reference.save_pretrained(output)
        save_file(inputs, output / "inputs.safetensors")
        summary = {"logits": logits.tolist(), "wrapped": wrapped, "world_size": dist.get_world_size()}
        (output / "logits.json").write_text(json.dumps(summary))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:3])
