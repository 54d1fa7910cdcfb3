"""Phi-3 model builders (the architecture Phi-4 shares)."""

from torchtune.models.phi3._component_builders import lora_phi3, phi3
from torchtune.models.phi3._model_builders import lora_phi3_mini, phi3_mini
from torchtune.models.phi3._tokenizer import Phi3Tokenizer, Phi4Tokenizer, phi3_tokenizer, phi4_tokenizer

__all__ = [
    "Phi3Tokenizer",
    "Phi4Tokenizer",
    "lora_phi3",
    "lora_phi3_mini",
    "phi3",
    "phi3_mini",
    "phi3_tokenizer",
    "phi4_tokenizer",
]
