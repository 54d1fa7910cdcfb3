"""Phi-4 model builders (Phi-3 architecture)."""

from torchtune.models.phi4._model_builders import lora_phi4_14b, phi4_14b

__all__ = ["lora_phi4_14b", "phi4_14b"]
