"""Phi-3 model builders (the architecture Phi-4 shares)."""

from torchtune.models.phi3._component_builders import lora_phi3, phi3
from torchtune.models.phi3._model_builders import (
    lora_phi3_mini,
    phi3_mini,
    qlora_phi3_mini,
)
from torchtune.models.phi3._tokenizer import Phi3Tokenizer, phi3_tokenizer
from torchtune.utils import deprecated_aliases

__all__ = [
    "Phi3Tokenizer",
    "lora_phi3",
    "lora_phi3_mini",
    "phi3",
    "phi3_mini",
    "phi3_tokenizer",
    "qlora_phi3_mini",
]

# Moved in 0.2 to the Phi-4 package.
__getattr__ = deprecated_aliases(__name__, {
    "Phi4Tokenizer": "torchtune.models.phi4.Phi4Tokenizer",
    "phi4_tokenizer": "torchtune.models.phi4.phi4_tokenizer",
})
