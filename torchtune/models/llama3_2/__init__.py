"""Llama 3.2 models."""

from torchtune.models.llama3_2._model_builders import (
    llama3_2_1b,
    llama3_2_3b,
    lora_llama3_2_1b,
    lora_llama3_2_3b,
    qlora_llama3_2_1b,
    qlora_llama3_2_3b,
)

__all__ = [
    "llama3_2_1b",
    "llama3_2_3b",
    "lora_llama3_2_1b",
    "lora_llama3_2_3b",
    "qlora_llama3_2_1b",
    "qlora_llama3_2_3b",
]
