"""Qwen2.5 models."""

from torchtune.models.qwen2_5._component_builders import qwen2_5, lora_qwen2_5
from torchtune.models.qwen2_5._model_builders import (
    lora_qwen2_5_0_5b,
    lora_qwen2_5_14b,
    lora_qwen2_5_1_5b,
    lora_qwen2_5_32b,
    lora_qwen2_5_3b,
    lora_qwen2_5_72b,
    lora_qwen2_5_7b,
    qwen2_5_0_5b,
    qwen2_5_14b,
    qwen2_5_1_5b,
    qwen2_5_32b,
    qwen2_5_3b,
    qwen2_5_72b,
    qwen2_5_7b,
)
from torchtune.models.qwen2_5._tokenizer import Qwen2_5Tokenizer, qwen2_5_tokenizer

__all__ = [
    "Qwen2_5Tokenizer",
    "lora_qwen2_5",
    "lora_qwen2_5_0_5b",
    "lora_qwen2_5_14b",
    "lora_qwen2_5_1_5b",
    "lora_qwen2_5_32b",
    "lora_qwen2_5_3b",
    "lora_qwen2_5_72b",
    "lora_qwen2_5_7b",
    "qwen2_5",
    "qwen2_5_0_5b",
    "qwen2_5_14b",
    "qwen2_5_1_5b",
    "qwen2_5_32b",
    "qwen2_5_3b",
    "qwen2_5_72b",
    "qwen2_5_7b",
    "qwen2_5_tokenizer",
]
