"""transformers' own common test suites (ModelTesterMixin, ConfigTester, ProcessorTesterMixin of the installed
5.24.0, vendored under tests/transformers_common/) run against EmoFusion, with a tiny model tester written the way
transformers' InstructBLIP tests write theirs (tests/models/instructblip/test_modeling_instructblip.py).

Every test of the mixins runs. The mixins skip by themselves what needs what this machine lacks (an accelerator,
flash-attention, DeepSpeed, torchcodec, librosa, a chat template, a video processor or feature extractor, RoPE,
experts) and their `@slow` tests; this file skips only `test_inputs_embeds`, as InstructBLIP's own tests do, and
runs `test_model_input_names` / `test_flat_kwarg_applied_when_modality_dict_lacks_it` on pictures and on clips in
turn (EmoFusion takes one or the other in a call, not both), with the mixin's checks.
"""

import inspect
import tempfile
import unittest
from unittest import mock

import pytest
import torch
from transformers import CLIPVisionConfig, InstructBlipQFormerConfig
from transformers.models.auto import modeling_auto
from transformers.testing_utils import torch_device
from transformers_common.test_configuration_common import ConfigTester
from transformers_common.test_modeling_common import (
    ModelTesterMixin,
    floats_tensor,
    ids_tensor,
    random_attention_mask,
)
from transformers_common.test_processing_common import ProcessorTesterMixin

from emofusion.testing import build_word_tokenizer, tiny_image_processor
from modeling_emofusion import (
    EmoFusionConfig,
    EmoFusionForEmotionClassification,
    EmoFusionModel,
    EmoFusionProcessor,
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")

# An in-tree model is listed in transformers' Auto name tables, which the mixins read to tell a base model from one
# with a head (and which labels a head takes). EmoFusion registers with the Auto classes instead (not the name
# tables), so the tests list it there, for their own duration only.
AUTO_NAME_TABLES = [
    (modeling_auto.MODEL_MAPPING_NAMES, "EmoFusionModel"),
    (modeling_auto.MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES, "EmoFusionForEmotionClassification"),
]


def _list_in_auto_name_tables(test_case):
    for table, class_name in AUTO_NAME_TABLES:
        patcher = mock.patch.dict(table, {"emofusion": class_name})
        patcher.start()
        test_case.addCleanup(patcher.stop)


class EmoFusionVisionModelTester:
    """The vision encoder's part of the tiny config: a CLIP vision tower, as in InstructBlipVisionModelTester."""

    def __init__(
        self,
        parent,
        batch_size=4,
        image_size=16,
        patch_size=4,
        num_channels=3,
        hidden_size=24,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        dropout=0.1,
        attention_dropout=0.1,
    ):
        self.parent = parent
        self.batch_size = batch_size
        self.image_size = image_size
        self.patch_size = patch_size
        self.num_channels = num_channels
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        # a ViT's sequence: the patches + 1 ([CLS])
        self.seq_length = (image_size // patch_size) ** 2 + 1

    def prepare_config_and_inputs(self):
        pixel_values = floats_tensor([self.batch_size, self.num_channels, self.image_size, self.image_size])
        return self.get_config(), pixel_values

    def get_config(self):
        return CLIPVisionConfig(
            image_size=self.image_size,
            patch_size=self.patch_size,
            num_channels=self.num_channels,
            hidden_size=self.hidden_size,
            projection_dim=self.hidden_size,
            num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
            intermediate_size=self.intermediate_size,
            dropout=self.dropout,
            attention_dropout=self.attention_dropout,
        )


class EmoFusionQFormerModelTester:
    """The Q-Former's part, as in InstructBlipQFormerModelTester: it reads the description."""

    def __init__(
        self,
        parent,
        batch_size=4,
        seq_length=7,
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        dropout=0.1,
        attention_dropout=0.1,
        max_position_embeddings=64,
        initializer_range=0.02,
    ):
        self.parent = parent
        self.batch_size = batch_size
        self.seq_length = seq_length
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.max_position_embeddings = max_position_embeddings
        self.initializer_range = initializer_range

    def prepare_config_and_inputs(self):
        input_ids = ids_tensor([self.batch_size, self.seq_length], self.vocab_size)
        attention_mask = random_attention_mask([self.batch_size, self.seq_length])
        return self.get_config(), input_ids, attention_mask

    def get_config(self):
        return InstructBlipQFormerConfig(
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
            intermediate_size=self.intermediate_size,
            hidden_dropout_prob=self.dropout,
            attention_probs_dropout_prob=self.attention_dropout,
            max_position_embeddings=self.max_position_embeddings,
            initializer_range=self.initializer_range,
            # a cross-attention in every layer, so that each layer's cross_attentions can be checked
            cross_attention_frequency=1,
            # the vision width differs from the Q-Former's: the projection between them is exercised too
            encoder_hidden_size=self.hidden_size,
        )


class EmoFusionModelTester:
    """The composite tester, as InstructBlipForConditionalGenerationDecoderOnlyModelTester composes its parts.

    The common tests read the Q-Former's sizes: `hidden_states` and `attentions` are the Q-Former's, over the
    queries and the description tokens (`seq_length`); the vision encoder's are in `vision_outputs`.
    """

    def __init__(self, parent, vision_kwargs=None, qformer_kwargs=None, is_training=True, num_query_tokens=4):
        self.parent = parent
        self.vision_model_tester = EmoFusionVisionModelTester(parent, **(vision_kwargs or {}))
        self.qformer_model_tester = EmoFusionQFormerModelTester(parent, **(qformer_kwargs or {}))
        self.batch_size = self.qformer_model_tester.batch_size
        self.text_seq_length = self.qformer_model_tester.seq_length
        self.seq_length = num_query_tokens + self.text_seq_length
        self.hidden_size = self.qformer_model_tester.hidden_size
        self.num_hidden_layers = self.qformer_model_tester.num_hidden_layers
        self.num_attention_heads = self.qformer_model_tester.num_attention_heads
        self.vocab_size = self.qformer_model_tester.vocab_size
        self.num_query_tokens = num_query_tokens
        self.num_labels = 3
        self.is_training = is_training

    def prepare_config_and_inputs(self):
        _, pixel_values = self.vision_model_tester.prepare_config_and_inputs()
        _, input_ids, attention_mask = self.qformer_model_tester.prepare_config_and_inputs()
        return self.get_config(), pixel_values, input_ids, attention_mask

    def get_config(self):
        return EmoFusionConfig(
            vision_config=self.vision_model_tester.get_config(),
            qformer_config=self.qformer_model_tester.get_config(),
            num_query_tokens=self.num_query_tokens,
            max_text_length=32,
            id2label={i: f"emotion_{i}" for i in range(self.num_labels)},
            # the labels the mixin gives an image classifier (class indices); test_problem_types runs all three
            problem_type="single_label_classification",
        )

    def create_and_check_model(self, config, pixel_values, input_ids, attention_mask):
        model = EmoFusionModel(config).to(torch_device).eval()
        with torch.no_grad():
            result = model(pixel_values, input_ids=input_ids, attention_mask=attention_mask)
        self.parent.assertEqual(
            result.last_hidden_state.shape, (self.batch_size, self.num_query_tokens, self.hidden_size)
        )
        self.parent.assertEqual(
            result.text_hidden_states.shape, (self.batch_size, self.text_seq_length, self.hidden_size)
        )
        self.parent.assertEqual(
            result.vision_hidden_states.shape,
            (self.batch_size, self.vision_model_tester.seq_length, self.vision_model_tester.hidden_size),
        )

    def create_and_check_for_emotion_classification(self, config, pixel_values, input_ids, attention_mask):
        model = EmoFusionForEmotionClassification(config).to(torch_device).eval()
        with torch.no_grad():
            result = model(pixel_values, input_ids=input_ids, attention_mask=attention_mask)
        self.parent.assertEqual(result.logits.shape, (self.batch_size, self.num_labels))

    def prepare_config_and_inputs_for_common(self):
        config, pixel_values, input_ids, attention_mask = self.prepare_config_and_inputs()
        inputs_dict = {"pixel_values": pixel_values, "input_ids": input_ids, "attention_mask": attention_mask}
        return config, inputs_dict


class EmoFusionModelTest(ModelTesterMixin, unittest.TestCase):
    all_model_classes = (EmoFusionModel, EmoFusionForEmotionClassification)
    # The vision tower and the Q-Former are sub-models with their own configs, as in InstructBLIP.
    _is_composite = True
    # inputs the attention-equivalence tests pass beside the main input (InstructBLIP lists its text inputs too)
    additional_model_inputs = ["input_ids"]
    # EmoFusion's config file has no copyright year for the mixin to date it by: its init is checked like a new model's
    test_can_init_all_missing_weights_before_2023 = True

    def setUp(self):
        _list_in_auto_name_tables(self)
        self.model_tester = EmoFusionModelTester(self)
        self.config_tester = ConfigTester(
            self, config_class=EmoFusionConfig, has_text_modality=False, common_properties=["num_query_tokens"]
        )

    def test_config(self):
        self.config_tester.run_common_tests()

    def test_model(self):
        config_and_inputs = self.model_tester.prepare_config_and_inputs()
        self.model_tester.create_and_check_model(*config_and_inputs)

    def test_for_emotion_classification(self):
        config_and_inputs = self.model_tester.prepare_config_and_inputs()
        self.model_tester.create_and_check_for_emotion_classification(*config_and_inputs)

    def test_forward_signature(self):
        # as InstructBLIP's: pixel values come first
        config, _ = self.model_tester.prepare_config_and_inputs_for_common()
        for model_class in self.all_model_classes:
            model = model_class(config)
            arg_names = [*inspect.signature(model.forward).parameters.keys()]
            self.assertListEqual(arg_names[:1], ["pixel_values"])

    def test_load_vision_qformer_config(self):
        # as InstructBLIP's test_load_vision_qformer_text_config: each sub-config loads from the saved composite
        config, _ = self.model_tester.prepare_config_and_inputs_for_common()
        with tempfile.TemporaryDirectory() as tmp_dir_name:
            config.save_pretrained(tmp_dir_name)
            vision_config = CLIPVisionConfig.from_pretrained(tmp_dir_name)
            qformer_config = InstructBlipQFormerConfig.from_pretrained(tmp_dir_name)
        self.assertDictEqual(config.vision_config.to_dict(), vision_config.to_dict())
        self.assertDictEqual(config.qformer_config.to_dict(), qformer_config.to_dict())

    @unittest.skip(reason="InstructBlipForConditionalGeneration doesn't support inputs_embeds")
    def test_inputs_embeds(self):
        pass


class EmoFusionProcessorTest(ProcessorTesterMixin, unittest.TestCase):
    processor_class = EmoFusionProcessor

    @classmethod
    def _setup_image_processor(cls):
        return tiny_image_processor(image_size=16)

    @classmethod
    def _setup_tokenizer(cls):
        return build_word_tokenizer(["lower newer upper older longer string"])

    @staticmethod
    def prepare_processor_dict():
        return {"marking": "box", "max_text_length": 256}

    def prepare_videos_inputs(self, batch_size=None):
        # EmoFusion's clips are lists of frames in the pictures' own layout (the mixin's is a channels-first array)
        clip = self.prepare_images_inputs(batch_size=3)
        return clip if batch_size is None else [clip] * batch_size

    # The two tests below pass pictures and clips in one call, which EmoFusion refuses (a sample is a picture or a
    # clip, each with its description); they are run here on each input kind, with the mixin's checks.
    def test_model_input_names(self):
        processor = self.get_processor()
        text = self.prepare_text_inputs()
        inputs = processor(text=text, videos=self.prepare_videos_inputs(), return_tensors="pt")
        self.assertSetEqual(set(inputs.keys()), set(processor.model_input_names))
        inputs = processor(text=text, images=self.prepare_images_inputs(), return_tensors="pt")
        self.assertSetEqual(set(inputs.keys()), set(processor.model_input_names) - {"frame_mask"})

    def test_flat_kwarg_applied_when_modality_dict_lacks_it(self):
        processor = self.get_processor()
        text = self.prepare_text_inputs()
        for visual in ({"images": self.prepare_images_inputs()}, {"videos": self.prepare_videos_inputs()}):
            inputs = processor(text=text, **visual, text_kwargs={}, return_tensors="pt")
            for k, v in inputs.items():
                self.assertIsInstance(v, torch.Tensor, msg=f"{k} should be a torch.Tensor")
