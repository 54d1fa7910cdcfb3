"""Llama 3.3 models."""

from torchtune.models.llama3_3._model_builders import (
    llama3_3_70b,
    lora_llama3_3_70b,
    qlora_llama3_3_70b,
)

__all__ = [
    "llama3_3_70b",
    "lora_llama3_3_70b",
    "qlora_llama3_3_70b",
]
