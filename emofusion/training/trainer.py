"""The Trainer of stage 2: transformers' Trainer with emofusion's model card and no pickled arguments.

Two hooks change:
- `create_model_card` renders emofusion's card (metrics table, per-class figure, description
  set, training arguments) instead of the generic one, so `trainer.push_to_hub()` uploads it;
- `_save` writes the training arguments as `training_args.json` instead of the pickled
  `training_args.bin`, so a saved model or checkpoint holds no pickle besides the optimizer and
  RNG states that resuming needs (those stay in `checkpoint-*` folders and are never uploaded).
"""

from __future__ import annotations

import json
import os

from transformers import Trainer

from .model_card import ModelCardInfo, write_model_card


TRAINING_ARGS_JSON = "training_args.json"


class EmoFusionTrainer(Trainer):
    """`Trainer` plus `card_info`, the content of the model card written by `create_model_card`.

    >>> card = ModelCardInfo("emotic", "emofusion-emotic", "user/emofusion-emotic")
    >>> trainer = EmoFusionTrainer(model=model, args=args, card_info=card)  # doctest: +SKIP
    """

    def __init__(self, *args, card_info: ModelCardInfo | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.card_info = card_info

    def create_model_card(self, *args, **kwargs) -> None:
        if not self.is_world_process_zero() or self.card_info is None:
            return
        write_model_card(self.card_info, self.model.config, self.args.output_dir)

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        super()._save(output_dir, state_dict)
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        pickled = os.path.join(output_dir, "training_args.bin")
        if os.path.isfile(pickled):
            os.remove(pickled)
        with open(os.path.join(output_dir, TRAINING_ARGS_JSON), "w", encoding="utf-8") as handle:
            json.dump(self.args.to_dict(), handle, indent=2, sort_keys=True, default=str)
