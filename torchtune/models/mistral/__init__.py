"""Mistral models."""

from torchtune.models.mistral._component_builders import mistral, lora_mistral
from torchtune.models.mistral._model_builders import (
    lora_mistral_7b,
    mistral_7b,
    qlora_mistral_7b,
)
from torchtune.models.mistral._tokenizer import MistralTokenizer, mistral_tokenizer

__all__ = [
    "MistralTokenizer",
    "lora_mistral",
    "lora_mistral_7b",
    "mistral",
    "mistral_7b",
    "mistral_tokenizer",
    "qlora_mistral_7b",
]
