"""Stage 1 with every VLLM family it supports, on tiny random builds of each (tests/tiny_vllms.py).

Per family: a batch of 3 pictures of different sizes, boxes and prompt lengths gives the same greedy
descriptions as one subject at a time; the red box reaches the pixels the model is given; caption.py
describes a small split with it; and the vLLM backend's requests tokenise to the transformers
backend's inputs. Then: no doubled BOS where the template and the tokenizer both write one, Llama 4
refused on this transformers, and a processor that did not load is a clear error.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import datasets
import numpy as np
import pytest
import torch
from caption_fixtures import image_split
from PIL import Image
from tiny_vllms import BUILDERS, build_gemma3, llama4_config
from transformers import AutoConfig, AutoProcessor, GenerationConfig, Llama4ForConditionalGeneration

from emofusion.captioning import main
from emofusion.captioning.vllm_backend import VLLMDescriber
from emofusion.testing_llava import tiny_llava_processor
from modeling_emofusion.describing import TransformersDescriber, prompt_for
from modeling_emofusion.labels import EMOTIC_CATEGORIES
from modeling_emofusion.vllm_families import eos_ids_of, family_of, images_argument


pytestmark = pytest.mark.usefixtures("one_torch_thread")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAMILIES = list(BUILDERS)
MAX_NEW_TOKENS = 6
NAMES = ["Anger", "Fear", "Happiness"]
# Three prompts of different lengths, so that a batch is padded whatever the family's image token count.
PROMPTS = [
    "Given the following list of emotions: <class_names> explain",
    "Anger <class_names> explain in detail which emotions are more suitable for the person in the red box",
    "happy",
]
BOXES = [[2, 3, 30, 40], [5, 10, 35, 80], [60, 20, 110, 90]]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Each family's tiny build, saved once per module on first use: family -> folder."""
    built = {}

    def folder(family: str) -> str:
        if family not in built:
            path = tmp_path_factory.mktemp(family)
            BUILDERS[family](path)
            built[family] = str(path)
        return built[family]

    return folder


@pytest.fixture(scope="module")
def describers(folders):
    """Each family's `TransformersDescriber`, loaded from its saved folder once per module."""
    loaded = {}

    def describer(family: str) -> TransformersDescriber:
        if family not in loaded:
            loaded[family] = TransformersDescriber.from_pretrained(
                folders(family), device="cpu", max_new_tokens=MAX_NEW_TOKENS
            )
        return loaded[family]

    return describer


@pytest.fixture(scope="module")
def pictures():
    rng = np.random.default_rng(0)
    sizes = [(64, 48), (40, 90), (120, 100)]  # (width, height)
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in sizes]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A prepared EMOTIC-like split of 4 subjects (the fourth without a box)."""
    folder = str(tmp_path_factory.mktemp("emotic-prepared"))
    datasets.DatasetDict({"train": image_split("train", 4)}).save_to_disk(folder)
    return folder


@pytest.mark.parametrize("family", FAMILIES)
def test_batched_greedy_descriptions_equal_one_at_a_time(family, describers, pictures):
    describer = describers(family)
    batch = describer.describe(pictures, BOXES, PROMPTS, class_names=NAMES)
    single = [describer.describe([p], [b], q, class_names=NAMES)[0] for p, b, q in zip(pictures, BOXES, PROMPTS)]
    assert [(d.text, d.num_tokens, d.finished) for d in batch] == [(d.text, d.num_tokens, d.finished) for d in single]
    assert any(d.text for d in batch) and all(0 < d.num_tokens <= MAX_NEW_TOKENS for d in batch)
    assert [d.prompt for d in batch] == [prompt_for(q, NAMES, boxed=True) for q in PROMPTS]

    # The batch is padded, on the side that keeps each row's positions: right for the encoder-decoder.
    marked, prompts = describer.prepare(pictures, BOXES, PROMPTS, class_names=NAMES)
    mask = describer.build_inputs(marked, prompts)["attention_mask"]
    assert len(set(mask.sum(1).tolist())) > 1
    kept = 0 if family_of(describer.model_type).encoder_decoder else -1
    assert mask[:, kept].all() and not mask[:, -1 - kept].all()
    # Equal texts could hide a padding fault that moves the numbers but not yet the argmax (Florence-2's encoder
    # padded on the left moves its first-step logits by ~1e-3): the logits match too, and differ between rows.
    batched = first_step_logits(describer, marked, prompts)
    singles = torch.cat([first_step_logits(describer, [m], [p]) for m, p in zip(marked, prompts)])
    assert torch.allclose(batched, singles, rtol=0, atol=1e-5)
    assert min((batched[i] - batched[j]).abs().max() for i, j in [(0, 1), (0, 2), (1, 2)]) > 1e-4


def first_step_logits(describer, marked, prompts) -> torch.Tensor:
    """The model's logits for the first new token of each row, as the describer batches them."""
    inputs = describer.build_inputs(marked, prompts)
    tokenizer = describer.processor.tokenizer
    with torch.no_grad():
        output = describer.model.generate(
            **inputs, max_new_tokens=1, do_sample=False, output_logits=True, return_dict_in_generate=True,
            pad_token_id=tokenizer.pad_token_id,
        )  # fmt: skip
    return output.logits[0].float()


def redness(pixel_values: torch.Tensor, image_processor, family: str) -> torch.Tensor:
    """R - max(G, B) of every pixel the model is given, in 0..1 after undoing the processor's normalisation."""
    if family in ("qwen2_vl", "qwen2_5_vl"):  # flattened patches: (patches, channel * time * patch * patch)
        channels = pixel_values.reshape(pixel_values.shape[0], 3, -1).transpose(0, 1).reshape(3, -1)
    else:  # (..., channel, height, width)
        channels = pixel_values.movedim(-3, 0).reshape(3, -1)
    mean = torch.tensor(image_processor.image_mean).view(3, 1)
    std = torch.tensor(image_processor.image_std).view(3, 1)
    rgb = channels.float() * std + mean
    return rgb[0] - rgb[1:].max(0).values


@pytest.mark.parametrize("family", FAMILIES)
def test_the_red_box_reaches_the_pixels_the_model_sees(family, describers):
    describer = describers(family)
    picture = Image.new("RGB", (64, 48), (10, 10, 10))
    seen = []
    build_inputs = describer.build_inputs

    def capture(marked, prompts):
        inputs = build_inputs(marked, prompts)
        seen.append(inputs["pixel_values"].cpu())
        return inputs

    describer.build_inputs = capture
    try:
        described = describer.describe([picture, picture], [[8, 6, 56, 42], None], class_names=NAMES)
        for box in ([8, 6, 56, 42], None):
            describer.describe([picture], [box], class_names=NAMES)
    finally:
        del describer.build_inputs
    assert len(described) == 2
    image_processor = describer.processor.image_processor
    boxed, unboxed = (redness(pixels, image_processor, family) for pixels in seen[1:])
    # Resizing blends the 2 px outline with the dark picture, but it stays clearly red; nothing is red without it.
    assert boxed.max() > 0.4 and unboxed.max() < 0.1
    assert (boxed > 0.4).sum() >= 8


def described_set(output_dir) -> list[dict]:
    rows = datasets.load_dataset(str(output_dir))["train"]
    return [{k: row[k] for k in ("id", "description", "status", "num_tokens")} for row in rows]


def expected_rows(describer, data_dir) -> list[dict]:
    """What the describer gives the split's subjects itself, as description set rows."""
    split = datasets.load_from_disk(data_dir)["train"]
    descriptions = describer.describe(split["image"], split["bbox"], class_names=EMOTIC_CATEGORIES)
    return [
        {"id": i, "description": d.text, "num_tokens": d.num_tokens,
         "status": "ok" if d.text and d.finished else "flagged"}
        for i, d in zip(split["id"], descriptions)
    ]  # fmt: skip


def caption_flags(folder, data_dir, output_dir) -> list[str]:
    return [
        "--dataset=emotic", f"--data_dir={data_dir}", "--split=train", f"--model={folder}",
        f"--output_dir={output_dir}", "--batch_size=3", f"--max_new_tokens={MAX_NEW_TOKENS}", "--dtype=float32",
    ]  # fmt: skip


# Florence-2 is run through caption.py in a subprocess below.
@pytest.mark.parametrize("family", [family for family in FAMILIES if family != "florence2"])
def test_caption_describes_a_split_with_the_family(family, folders, describers, data_dir, tmp_path, capsys):
    output_dir = tmp_path / "set"
    assert main(caption_flags(folders(family), data_dir, output_dir)) == 0
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert summary["total"] == 4 and summary["error"] == 0 and summary["missing"] == 0
    # Batches of 3 then 1 give what the describer gives the 4 subjects in one batch.
    assert described_set(output_dir) == expected_rows(describers(family), data_dir)


def test_caption_py_in_a_subprocess_with_the_encoder_decoder_family(folders, describers, data_dir, tmp_path):
    """caption.py as users run it, with Florence-2 (it loads in a fresh process: its stock processor needs no
    registration): the prompt without a chat template, right padding and decoder-only output."""
    env = {**os.environ, "PYTHONPATH": REPO, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    output_dir = tmp_path / "set"
    command = [sys.executable, "caption.py", *caption_flags(folders("florence2"), data_dir, output_dir)]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.splitlines()[-1])["error"] == 0
    assert described_set(output_dir) == expected_rows(describers("florence2"), data_dir)


@pytest.mark.parametrize("family", FAMILIES)
def test_vllm_requests_tokenise_to_the_transformers_inputs(family, folders, describers, pictures):
    folder = folders(family)
    processor = AutoProcessor.from_pretrained(folder)
    model_type = AutoConfig.from_pretrained(folder).model_type
    eos = eos_ids_of(GenerationConfig.from_pretrained(folder), processor.tokenizer)
    vllm = VLLMDescriber(None, processor, model_type=model_type, eos_token_ids=eos, max_new_tokens=MAX_NEW_TOKENS)
    marked, prompts = vllm.prepare(pictures, BOXES, PROMPTS, class_names=NAMES)
    requests = vllm.build_requests(marked, prompts)
    family_conventions = family_of(model_type)
    if family_conventions.encoder_decoder:  # vLLM's explicit encoder/decoder prompt
        assert [sorted(r) for r in requests] == [["decoder_prompt", "encoder_prompt"]] * 3
        assert {r["decoder_prompt"] for r in requests} == {""}
        requests = [r["encoder_prompt"] for r in requests]
    assert [sorted(r) for r in requests] == [["multi_modal_data", "prompt"]] * 3
    for request, image in zip(requests, marked):
        assert np.array_equal(np.asarray(request["multi_modal_data"]["image"]), np.asarray(image))
    if family == "paligemma":  # vLLM's PaliGemma processing writes the image tokens itself
        assert [r["prompt"] for r in requests] == prompts

    # vLLM tokenises the text with the model's processor, special tokens added: the transformers backend's ids.
    transformers_backend = describers(family)
    for request, image, prompt in zip(requests, marked, prompts):
        from_vllm = processor(images=images_argument(family_conventions, [image]), text=[request["prompt"]])
        expected = transformers_backend.build_inputs([image], [prompt])["input_ids"][0].tolist()
        assert from_vllm["input_ids"][0] == expected
    assert vllm.sampling_kwargs["stop_token_ids"] == eos
    assert vllm.sampling_kwargs["max_tokens"] == MAX_NEW_TOKENS and vllm.sampling_kwargs["temperature"] == 0.0


def test_a_template_bos_is_not_doubled_by_a_tokenizer_that_adds_one(tmp_path, pictures):
    """Gemma 3's template writes `<bos>` and its tokenizer adds one too: every prompt must start with one."""
    build_gemma3(tmp_path, bos_on_tokenize=True)
    describer = TransformersDescriber.from_pretrained(str(tmp_path), device="cpu", max_new_tokens=4)
    tokenizer, bos = describer.processor.tokenizer, describer.processor.tokenizer.bos_token_id
    marked, prompts = describer.prepare(pictures, BOXES, PROMPTS, class_names=NAMES)
    # What rendering to text and tokenising gives without the fix: two BOS.
    rendered = describer.processor.apply_chat_template(
        [[{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompts[0]}]}]],
        add_generation_prompt=True, tokenize=False,
    )  # fmt: skip
    assert describer.processor(images=[[marked[0]]], text=rendered)["input_ids"][0][:2] == [bos, bos]

    inputs = describer.build_inputs(marked, prompts)
    for ids, mask in zip(inputs["input_ids"].tolist(), inputs["attention_mask"].tolist()):
        real = [token for token, kept in zip(ids, mask) if kept]
        assert real[0] == bos and real.count(bos) == 1
    batch = describer.describe(pictures, BOXES, PROMPTS, class_names=NAMES)
    assert [d.text for d in batch] == [describer.describe([p], [b], q, class_names=NAMES)[0].text
                                       for p, b, q in zip(pictures, BOXES, PROMPTS)]  # fmt: skip

    # vLLM tokenises its text prompt with special tokens: the request leaves the BOS to the tokenizer.
    vllm = VLLMDescriber(None, describer.processor, model_type="gemma3")
    for request in vllm.build_requests(marked, prompts):
        assert request["prompt"].startswith("<start_of_turn>user\n")
        assert tokenizer(request["prompt"])["input_ids"][:2] == [
            bos,
            tokenizer.convert_tokens_to_ids("<start_of_turn>"),
        ]


def test_llama4_is_refused_naming_the_transformers_version(tmp_path):
    config = llama4_config()
    config.save_pretrained(tmp_path)  # a config alone: the refusal comes before any weights or processor load
    with pytest.raises(ValueError, match=r"Llama 4 model .*transformers 5\.24\.0: Llama4ForConditionalGeneration"):
        TransformersDescriber.from_pretrained(str(tmp_path), device="cpu")
    torch.manual_seed(0)
    model = Llama4ForConditionalGeneration(config).eval()
    with pytest.raises(ValueError, match=r"cannot run with transformers 5\.24\.0.*--backend vllm"):
        TransformersDescriber(model, tiny_llava_processor())
    # Why: this transformers cannot run the model's forward at all, text only included.
    with pytest.raises(AttributeError, match="image_outputs"), torch.no_grad():
        model(input_ids=torch.tensor([[1, 2, 3]]))


def test_a_processor_that_did_not_load_is_a_clear_error(folders, tmp_path):
    """AutoProcessor returns the bare tokenizer when the processor class a folder names is not available (here:
    a registered test stand-in renamed; for users: a processor needing torchvision)."""
    folder = tmp_path / "qwen2-vl"
    for name in os.listdir(folders("qwen2_vl")):
        (folder / name).parent.mkdir(exist_ok=True)
        (folder / name).write_bytes(open(os.path.join(folders("qwen2_vl"), name), "rb").read())
    settings = json.loads((folder / "processor_config.json").read_text())
    (folder / "processor_config.json").write_text(json.dumps({**settings, "processor_class": "NotHereProcessor"}))
    with pytest.raises(ValueError, match=r"loaded only a tokenizer .* need torchvision"):
        TransformersDescriber.from_pretrained(str(folder), device="cpu")
