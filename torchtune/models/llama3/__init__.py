"""Llama 3 models."""

from torchtune.models.llama3._component_builders import llama3, lora_llama3
from torchtune.models.llama3._model_builders import (
    llama3_70b,
    llama3_8b,
    lora_llama3_70b,
    lora_llama3_8b,
    qlora_llama3_70b,
    qlora_llama3_8b,
)
from torchtune.models.llama3._tokenizer import Llama3Tokenizer, llama3_tokenizer, llama3_special_tokens

__all__ = [
    "Llama3Tokenizer",
    "llama3",
    "llama3_70b",
    "llama3_8b",
    "llama3_special_tokens",
    "llama3_tokenizer",
    "lora_llama3",
    "lora_llama3_70b",
    "lora_llama3_8b",
    "qlora_llama3_70b",
    "qlora_llama3_8b",
]
