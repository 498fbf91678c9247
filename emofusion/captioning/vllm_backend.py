"""vLLM as the describing engine: offline batched generation with image inputs, tensor parallel.

vLLM is an optional extra (`pip install "emofusion[vllm]"`, CUDA only) and imported only here,
when this backend is built. Each subject becomes one vLLM request in its documented offline
shape, `{"prompt": <chat-formatted text with the model's image placeholder>, "multi_modal_data":
{"image": <marked PIL image>}}` (an encoder-decoder such as Florence-2: `{"encoder_prompt": {...},
"decoder_prompt": ""}`); the chat text comes from the model's own processor and the family
conventions of `modeling_emofusion.vllm_families` (a documented prompt format where the checkpoints
ship no chat template, no BOS that vLLM's tokenising would add again), so it tokenises to the prompt
the transformers backend feeds the same model. Generation settings are written with transformers'
names (recorded with the set) and translated to `SamplingParams`; the stop ids are the model's
generation config's eos ids.
"""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image
from transformers import AutoConfig, AutoProcessor, GenerationConfig

from modeling_emofusion.describing import Describer, Description, eos_id_set
from modeling_emofusion.vllm_families import check_is_processor, eos_ids_of, render_prompts


VLLM_MISSING = (
    'The vllm backend needs vLLM, which runs on CUDA GPUs: `pip install "emofusion[vllm]"` in an environment '
    "with a CUDA torch (vLLM pins its own torch and transformers versions), or use --backend transformers."
)

# transformers generation name -> SamplingParams name.
SAMPLING_NAMES = {
    "max_new_tokens": "max_tokens",
    "min_new_tokens": "min_tokens",
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "repetition_penalty": "repetition_penalty",
    "seed": "seed",
    "eos_token_id": "stop_token_ids",
}


def sampling_params_kwargs(generation: dict) -> dict:
    """`SamplingParams(**kwargs)` for transformers-style generation settings; greedy unless `do_sample`.

    >>> sampling_params_kwargs({"do_sample": False, "num_beams": 1, "max_new_tokens": 384})
    {'temperature': 0.0, 'max_tokens': 384, 'skip_special_tokens': True}
    """
    generation = dict(generation)
    do_sample = generation.pop("do_sample", False)
    num_beams = generation.pop("num_beams", 1)
    if num_beams != 1:
        raise ValueError("The vllm backend does greedy or sampled decoding, not beam search: set num_beams=1.")
    kwargs = {"temperature": 0.0}
    if do_sample:
        kwargs["temperature"] = 1.0
    unknown = sorted(set(generation) - set(SAMPLING_NAMES))
    if unknown:
        raise ValueError(
            f"The vllm backend cannot apply the generation settings {unknown}; it knows {sorted(SAMPLING_NAMES)}."
        )
    for name, value in generation.items():
        if name == "temperature" and not do_sample:
            continue  # greedy ignores temperature, as transformers does
        if name == "eos_token_id":
            value = list(value) if isinstance(value, (list, tuple)) else [value]
        kwargs[SAMPLING_NAMES[name]] = value
    kwargs["skip_special_tokens"] = True
    return kwargs


class VLLMDescriber(Describer):
    """Describe marked subjects with a vLLM `LLM` engine.

    Args:
        llm: a `vllm.LLM` (or None to only build requests, e.g. to inspect them).
        processor: the model's transformers processor; only its chat template and tokenizer are used.
        marking, model_id, revision, **generation_kwargs: as for `TransformersDescriber`.
        model_type: the model config's, which picks the family's prompt conventions.
        eos_token_ids: the model's end-of-answer ids (its generation config's), given to vLLM as stop ids;
            by default the tokenizer's eos.

    >>> describer = VLLMDescriber.from_pretrained("llava-hf/llava-1.5-13b-hf", tensor_parallel_size=2)
    >>> describer.describe([image], [[10, 20, 110, 220]], class_names=EMOTIC_CATEGORIES)[0].text
    """

    def __init__(
        self,
        llm,
        processor,
        marking: str = "box",
        model_id: str | None = None,
        revision: str | None = None,
        model_type: str | None = None,
        eos_token_ids: Sequence[int] | None = None,
        **generation_kwargs,
    ):
        super().__init__(
            processor, marking=marking, model_id=model_id, revision=revision, model_type=model_type,
            **generation_kwargs,
        )  # fmt: skip
        self.llm = llm
        self.sampling_kwargs = sampling_params_kwargs(self.generation_kwargs)
        tokenizer = getattr(processor, "tokenizer", processor)
        eos = self.generation_kwargs.get("eos_token_id")
        if eos is None and eos_token_ids is not None:
            eos = list(eos_token_ids)
            self.sampling_kwargs["stop_token_ids"] = eos
        self._eos_ids = eos_id_set(eos if eos is not None else tokenizer.eos_token_id)

    @classmethod
    def from_pretrained(
        cls,
        model_id_or_path: str,
        revision: str | None = None,
        dtype: str = "auto",
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.9,
        max_model_len: int | None = None,
        marking: str = "box",
        seed: int = 0,
        **generation_kwargs,
    ) -> VLLMDescriber:
        """Start a vLLM engine for the model (one image a prompt) and load its processor's chat template."""
        try:
            from vllm import LLM
        except ImportError as error:
            raise ImportError(f"{VLLM_MISSING} ({error})") from None
        processor = AutoProcessor.from_pretrained(model_id_or_path, revision=revision)
        check_is_processor(processor, model_id_or_path)
        model_type = getattr(AutoConfig.from_pretrained(model_id_or_path, revision=revision), "model_type", None)
        try:
            generation_config = GenerationConfig.from_pretrained(model_id_or_path, revision=revision)
        except OSError:  # no generation_config.json: the tokenizer's eos
            generation_config = None
        eos_token_ids = eos_ids_of(generation_config, getattr(processor, "tokenizer", processor))
        engine_kwargs = {"max_model_len": max_model_len} if max_model_len is not None else {}
        llm = LLM(
            model=model_id_or_path,
            revision=revision,
            dtype=dtype,
            tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization,
            limit_mm_per_prompt={"image": 1},
            seed=seed,
            **engine_kwargs,
        )
        return cls(
            llm, processor, marking=marking, model_id=model_id_or_path, revision=revision, model_type=model_type,
            eos_token_ids=eos_token_ids or None, **generation_kwargs,
        )  # fmt: skip

    def chat_texts(self, prompts: Sequence[str]) -> list[str]:
        """The prompts as vLLM is given them: the family's vLLM prompt format where it has one."""
        return render_prompts(self.processor, self.family, prompts, for_vllm=True)

    def build_requests(self, marked_images: Sequence[Image.Image], prompts: Sequence[str]) -> list[dict]:
        """vLLM offline requests: `{"prompt": chat text, "multi_modal_data": {"image": marked image}}` each; for
        an encoder-decoder, the image and text go to the encoder and the decoder starts empty."""
        requests = []
        for text, image in zip(self.chat_texts(prompts), marked_images):
            request = {"prompt": text, "multi_modal_data": {"image": image}}
            if self.family.encoder_decoder:
                request = {"encoder_prompt": request, "decoder_prompt": ""}
            requests.append(request)
        return requests

    def sampling_params(self):
        from vllm import SamplingParams

        return SamplingParams(**self.sampling_kwargs)

    def describe(self, *args, **kwargs) -> list[Description]:
        """`Describer.describe`; refused before any marking when there is no engine."""
        if self.llm is None:
            raise ValueError("This VLLMDescriber has no engine: build it with VLLMDescriber.from_pretrained(...).")
        return super().describe(*args, **kwargs)

    def generate(self, marked_images: list[Image.Image], prompts: list[str]) -> list[Description]:
        """One request per marked image; vLLM schedules them itself."""
        requests = self.build_requests(marked_images, prompts)
        outputs = self.llm.generate(requests, self.sampling_params(), use_tqdm=False)
        return [self.parse_output(output, prompt) for output, prompt in zip(outputs, prompts)]

    def parse_output(self, request_output, prompt: str) -> Description:
        """A `Description` from a vLLM `RequestOutput` (its first completion)."""
        completion = request_output.outputs[0]
        token_ids = list(completion.token_ids)
        finished = completion.finish_reason == "stop"
        # vLLM keeps the end-of-sequence / stop token in token_ids; it is not part of the description.
        if finished and token_ids and token_ids[-1] in self._eos_ids:
            token_ids = token_ids[:-1]
        return Description(text=completion.text.strip(), num_tokens=len(token_ids), finished=finished, prompt=prompt)
