"""Llama 2 models."""

from torchtune.models.llama2._component_builders import llama2, lora_llama2
from torchtune.models.llama2._model_builders import (
    llama2_13b,
    llama2_70b,
    llama2_7b,
    lora_llama2_13b,
    lora_llama2_70b,
    lora_llama2_7b,
)

__all__ = [
    "llama2",
    "llama2_13b",
    "llama2_70b",
    "llama2_7b",
    "lora_llama2",
    "lora_llama2_13b",
    "lora_llama2_70b",
    "lora_llama2_7b",
]
