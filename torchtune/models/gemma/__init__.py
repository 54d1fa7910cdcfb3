"""Gemma (v1) model builders."""

from torchtune.models.gemma._component_builders import gemma, lora_gemma
from torchtune.models.gemma._model_builders import (
    gemma_2b,
    gemma_7b,
    lora_gemma_2b,
    lora_gemma_7b,
    qlora_gemma_2b,
    qlora_gemma_7b,
)
from torchtune.models.gemma._tokenizer import GemmaTokenizer, gemma_tokenizer

__all__ = [
    "GemmaTokenizer",
    "gemma",
    "gemma_2b",
    "gemma_7b",
    "gemma_tokenizer",
    "lora_gemma",
    "lora_gemma_2b",
    "lora_gemma_7b",
    "qlora_gemma_2b",
    "qlora_gemma_7b",
]
