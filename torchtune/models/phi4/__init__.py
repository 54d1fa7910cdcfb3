"""Phi-4 model builders (Phi-3 architecture) and the Phi-4 tokenizer."""

from torchtune.models.phi4._tokenizer import Phi4Tokenizer, phi4_tokenizer
from torchtune.models.phi4._model_builders import (
    lora_phi4_14b,
    phi4_14b,
    qlora_phi4_14b,
)

__all__ = [
    "Phi4Tokenizer",
    "lora_phi4_14b",
    "phi4_14b",
    "phi4_tokenizer",
    "qlora_phi4_14b",
]
