"""Gemma 2 model builders."""

from torchtune.models.gemma2._component_builders import gemma2, lora_gemma2
from torchtune.models.gemma2._model_builders import (
    gemma2_27b,
    gemma2_2b,
    gemma2_9b,
    lora_gemma2_27b,
    lora_gemma2_2b,
    lora_gemma2_9b,
    qlora_gemma2_27b,
    qlora_gemma2_2b,
    qlora_gemma2_9b,
)

__all__ = [
    "gemma2",
    "gemma2_27b",
    "gemma2_2b",
    "gemma2_9b",
    "lora_gemma2",
    "lora_gemma2_27b",
    "lora_gemma2_2b",
    "lora_gemma2_9b",
    "qlora_gemma2_27b",
    "qlora_gemma2_2b",
    "qlora_gemma2_9b",
]
