"""Gemma (v1) model builders."""

from torchtune.models.gemma._component_builders import gemma, lora_gemma
from torchtune.models.gemma._model_builders import gemma_2b, gemma_7b, lora_gemma_2b, lora_gemma_7b

__all__ = ["gemma", "gemma_2b", "gemma_7b", "lora_gemma", "lora_gemma_2b", "lora_gemma_7b"]
