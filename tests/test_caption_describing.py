"""TransformersDescriber with a tiny random LLaVA: prompts, marking, left-padded batched greedy generation."""

import numpy as np
import pytest
import torch
from PIL import Image

from emofusion.testing_llava import tiny_llava
from modeling_emofusion.describing import (
    DEFAULT_PROMPT_TEMPLATE,
    NO_BOX_PROMPT_TEMPLATE,
    TransformersDescriber,
    fill_prompt,
    prompt_for,
)
from modeling_emofusion.labels import CAER_S_CLASSES, EMOTIC_CATEGORIES
from modeling_emofusion.marking import mark_subject


pytestmark = pytest.mark.usefixtures("one_torch_thread")

PAPER_PROMPT = (
    "Given the following list of emotions: <class_names> explain in detail which emotions are more suitable for "
    "describing how the person in the red box feels based on the image context"
)


@pytest.fixture(scope="module")
def llava(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-llava")
    model, processor = tiny_llava(folder)
    return model, processor, folder


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (30 + 7 * i, 44, 3), dtype=np.uint8)) for i in range(6)]


def test_default_prompt_is_the_papers_and_no_box_variant():
    assert DEFAULT_PROMPT_TEMPLATE == PAPER_PROMPT
    assert NO_BOX_PROMPT_TEMPLATE == PAPER_PROMPT.replace("the person in the red box", "the person in the image")
    filled = fill_prompt(DEFAULT_PROMPT_TEMPLATE, CAER_S_CLASSES)
    assert "emotions: Anger, Disgust, Fear, Happy, Neutral, Sad, Surprise explain" in filled
    assert prompt_for(None, CAER_S_CLASSES, boxed=False) == fill_prompt(NO_BOX_PROMPT_TEMPLATE, CAER_S_CLASSES)
    # A template of one's own is kept as it is, box or not.
    assert prompt_for("Who is in the box? <class_names>", ["A", "B"], boxed=False) == "Who is in the box? A, B"
    with pytest.raises(ValueError, match="no class_names"):
        prompt_for(None, None, boxed=True)
    with pytest.raises(TypeError, match="list of label names"):
        fill_prompt(DEFAULT_PROMPT_TEMPLATE, "Anger")


def test_batched_left_padded_greedy_equals_one_at_a_time(llava, images):
    model, processor, _ = llava
    describer = TransformersDescriber(model, processor, max_new_tokens=10)
    bboxes = [[2, 3, 30, 25], None, [5, 5, 20, 28], None]
    # EMOTIC's 26 names and CAER-S's 7, box and no box: four prompts of different lengths.
    names = [EMOTIC_CATEGORIES, EMOTIC_CATEGORIES, CAER_S_CLASSES, CAER_S_CLASSES]
    prompts = [prompt_for(None, n, b is not None) for b, n in zip(bboxes, names)]
    inputs = describer.build_inputs([describer.mark(i, b) for i, b in zip(images[:4], bboxes)], prompts)
    lengths = inputs["attention_mask"].sum(1)
    assert len(set(lengths.tolist())) == 4
    # Left padding: every row's real tokens end at the last position.
    assert inputs["attention_mask"][:, -1].all() and not inputs["attention_mask"][lengths.argmin(), 0]

    batch = describer.describe(images[:4], bboxes, prompts)
    single = [describer.describe([image], [bbox], prompt)[0] for image, bbox, prompt in zip(images, bboxes, prompts)]
    assert [d.text for d in batch] == [d.text for d in single]
    assert [d.num_tokens for d in batch] == [d.num_tokens for d in single] == [10] * 4
    assert all(d.text and not d.finished for d in batch)  # random weights never reach </s> within 10 tokens
    assert [d.prompt for d in batch] == prompts


def test_the_model_is_shown_the_image_with_the_red_box(llava):
    model, processor, _ = llava
    describer = TransformersDescriber(model, processor, max_new_tokens=2)
    # 32x32 is the tiny model's input size, so the processor does not resample the pixels.
    image = Image.new("RGB", (32, 32), (0, 90, 200))
    bbox = [6, 4, 26, 28]
    seen = {}

    def capture(module, args, kwargs):
        seen["pixel_values"] = kwargs["pixel_values"] if "pixel_values" in kwargs else args[0]

    hook = model.model.vision_tower.register_forward_pre_hook(capture, with_kwargs=True)
    try:
        describer.describe([image], [bbox], class_names=EMOTIC_CATEGORIES)
    finally:
        hook.remove()
    ip = processor.image_processor
    mean, std = torch.tensor(ip.image_mean).view(3, 1, 1), torch.tensor(ip.image_std).view(3, 1, 1)
    pixels = (
        ((seen["pixel_values"][0].float() * std + mean) * 255).round().clamp(0, 255).byte().permute(1, 2, 0).numpy()
    )
    assert np.array_equal(pixels, np.asarray(mark_subject(image, bbox)))
    red = (pixels == [255, 0, 0]).all(-1)
    assert red[4:28, 6].all() and red[4, 6:26].all() and red[27, 6:26].all() and red[4:28, 25].all()
    assert not red[10:20, 10:20].any() and not red[:, :5].any()


def test_from_pretrained_loads_the_saved_tiny_llava(llava, images):
    model, processor, folder = llava
    eos = [processor.tokenizer.eos_token_id, processor.tokenizer.convert_tokens_to_ids("list")]
    loaded = TransformersDescriber.from_pretrained(str(folder), device="cpu", max_new_tokens=8, eos_token_id=eos)
    in_memory = TransformersDescriber(model, processor, max_new_tokens=8, eos_token_id=eos)
    assert loaded.dtype == torch.float32 and loaded.revision is None and loaded.model_id == str(folder)
    bboxes = [[1, 1, 20, 20]] * 6
    got = loaded.describe(images, bboxes, class_names=EMOTIC_CATEGORIES)
    assert [d.text for d in got] == [d.text for d in in_memory.describe(images, bboxes, class_names=EMOTIC_CATEGORIES)]
    # A stop token ends some descriptions (finished, the stop token not counted) and not others.
    assert {d.finished for d in got} == {True, False}
    for d in got:
        assert d.num_tokens == len(d.text.split()) and (d.num_tokens < 8) == d.finished
    assert loaded.generation_settings == {"do_sample": False, "num_beams": 1, "max_new_tokens": 8, "eos_token_id": eos}


def test_describer_errors_are_clear(llava, images):
    model, processor, _ = llava
    describer = TransformersDescriber(model, processor)
    with pytest.raises(ValueError, match="2 boxes for 1 images"):
        describer.describe(images[:1], [None, None])
    with pytest.raises(ValueError, match="Unknown marking mode"):
        TransformersDescriber(model, processor, marking="blur")
    assert describer.describe([], []) == []
