"""Qwen3-MoE models (30B-A3B, 235B-A22B) on :class:`torchtune.modules.MoE`. The chat format is
Qwen3's (the model's own template, read by :class:`torchtune.modules.tokenizers.HFModelTokenizer`)."""

from torchtune.models.qwen3_moe._component_builders import lora_qwen3_moe, qwen3_moe
from torchtune.models.qwen3_moe._model_builders import (
    lora_qwen3_moe_235b_a22b,
    lora_qwen3_moe_30b_a3b,
    qwen3_moe_235b_a22b,
    qwen3_moe_30b_a3b,
)

__all__ = [
    "lora_qwen3_moe",
    "lora_qwen3_moe_235b_a22b",
    "lora_qwen3_moe_30b_a3b",
    "qwen3_moe",
    "qwen3_moe_235b_a22b",
    "qwen3_moe_30b_a3b",
]
