"""gpt-oss models (20B, 120B) on :class:`torchtune.modules.MoE`. The chat format is the model's own
(harmony) template, read by :class:`torchtune.modules.tokenizers.HFModelTokenizer`."""

from torchtune.models.gpt_oss._component_builders import gpt_oss, lora_gpt_oss
from torchtune.models.gpt_oss._model_builders import gpt_oss_120b, gpt_oss_20b, lora_gpt_oss_120b, lora_gpt_oss_20b

__all__ = [
    "gpt_oss",
    "gpt_oss_120b",
    "gpt_oss_20b",
    "lora_gpt_oss",
    "lora_gpt_oss_120b",
    "lora_gpt_oss_20b",
]
