"""Llama 2 models."""

from torchtune.models.llama2._component_builders import llama2, lora_llama2
from torchtune.models.llama2._model_builders import (
    llama2_13b,
    llama2_70b,
    llama2_7b,
    lora_llama2_13b,
    lora_llama2_70b,
    lora_llama2_7b,
    qlora_llama2_13b,
    qlora_llama2_70b,
    qlora_llama2_7b,
)
from torchtune.models.llama2._tokenizer import Llama2Tokenizer, llama2_tokenizer

__all__ = [
    "Llama2Tokenizer",
    "llama2",
    "llama2_13b",
    "llama2_70b",
    "llama2_7b",
    "llama2_tokenizer",
    "lora_llama2",
    "lora_llama2_13b",
    "lora_llama2_70b",
    "lora_llama2_7b",
    "qlora_llama2_13b",
    "qlora_llama2_70b",
    "qlora_llama2_7b",
]
