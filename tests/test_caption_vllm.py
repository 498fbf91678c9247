"""The vLLM backend's request building and output reading, on vLLM's documented input shape.

vLLM itself is CUDA only and is not installed here: these tests do not run it. They check the
requests handed to `LLM.generate`, the `SamplingParams` arguments, how a `RequestOutput` is read,
and that a missing vLLM is a clear error.
"""

import importlib.util
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from emofusion.captioning.vllm_backend import VLLMDescriber, sampling_params_kwargs
from emofusion.testing_llava import tiny_llava_processor
from modeling_emofusion.describing import DEFAULT_PROMPT_TEMPLATE, NO_BOX_PROMPT_TEMPLATE, fill_prompt
from modeling_emofusion.labels import CAER_S_CLASSES


@pytest.fixture(scope="module")
def describer():
    return VLLMDescriber(None, tiny_llava_processor(), model_id="llava-hf/llava-1.5-13b-hf", max_new_tokens=300)


def test_requests_have_vllms_offline_multimodal_shape(describer):
    images = [Image.new("RGB", (64, 48), (0, 80, 0)), Image.new("L", (40, 40), 9)]
    marked, prompts = describer.prepare(images, [[8, 8, 40, 40], None], class_names=CAER_S_CLASSES)
    requests = describer.build_requests(marked, prompts)
    assert [sorted(r) for r in requests] == [["multi_modal_data", "prompt"]] * 2
    assert [sorted(r["multi_modal_data"]) for r in requests] == [["image"], ["image"]]
    # LLaVA-1.5's conversation format, the image placeholder that vLLM expands, the filled prompt.
    filled = fill_prompt(DEFAULT_PROMPT_TEMPLATE, CAER_S_CLASSES)
    assert requests[0]["prompt"] == f"USER: <image>\n{filled} ASSISTANT:"
    assert requests[1]["prompt"] == f"USER: <image>\n{fill_prompt(NO_BOX_PROMPT_TEMPLATE, CAER_S_CLASSES)} ASSISTANT:"
    boxed = requests[0]["multi_modal_data"]["image"]
    assert isinstance(boxed, Image.Image) and boxed.mode == "RGB" and boxed.getpixel((8, 20)) == (255, 0, 0)
    assert np.asarray(images[0]).max() == 80  # the caller's image is not drawn on
    assert requests[1]["multi_modal_data"]["image"].mode == "RGB"


def test_generation_settings_become_sampling_params(describer):
    assert describer.sampling_kwargs == {"temperature": 0.0, "max_tokens": 300, "skip_special_tokens": True}
    sampled = sampling_params_kwargs({"do_sample": True, "temperature": 0.7, "top_p": 0.9, "max_new_tokens": 64})
    assert sampled == {"temperature": 0.7, "top_p": 0.9, "max_tokens": 64, "skip_special_tokens": True}
    assert sampling_params_kwargs({"eos_token_id": 2})["stop_token_ids"] == [2]
    with pytest.raises(ValueError, match="not beam search"):
        sampling_params_kwargs({"num_beams": 4})
    with pytest.raises(ValueError, match=r"cannot apply the generation settings \['length_penalty'\]"):
        sampling_params_kwargs({"length_penalty": 2.0})


def test_request_outputs_are_read_into_descriptions(describer):
    eos = describer.processor.tokenizer.eos_token_id

    # The attributes of vllm.RequestOutput / CompletionOutput that the backend reads.
    def output(text, token_ids, finish_reason):
        return SimpleNamespace(outputs=[SimpleNamespace(text=text, token_ids=token_ids, finish_reason=finish_reason)])

    stopped = describer.parse_output(output(" The person seems calm. ", [5, 6, 7, 8, eos], "stop"), "p")
    assert (stopped.text, stopped.num_tokens, stopped.finished) == ("The person seems calm.", 4, True)
    cut = describer.parse_output(output("The person", [5, 6], "length"), "p")
    assert (cut.num_tokens, cut.finished) == (2, False)
    with pytest.raises(ValueError, match="has no engine"):
        describer.describe([Image.new("RGB", (8, 8))])


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_a_missing_vllm_is_a_clear_error():
    with pytest.raises(ImportError, match=r'pip install "emofusion\[vllm\]"'):
        VLLMDescriber.from_pretrained("llava-hf/llava-1.5-7b-hf")
