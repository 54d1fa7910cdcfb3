"""Gemma 3 text decoders (1B, 4B, 12B, 27B). Its chat format is the model's own template, read by
:class:`torchtune.modules.tokenizers.HFModelTokenizer`."""

from torchtune.models.gemma3._component_builders import gemma3, gemma3_sliding_windows, lora_gemma3
from torchtune.models.gemma3._model_builders import (
    gemma3_12b,
    gemma3_1b,
    gemma3_27b,
    gemma3_4b,
    lora_gemma3_12b,
    lora_gemma3_1b,
    lora_gemma3_27b,
    lora_gemma3_4b,
)

__all__ = [
    "gemma3",
    "gemma3_12b",
    "gemma3_1b",
    "gemma3_27b",
    "gemma3_4b",
    "gemma3_sliding_windows",
    "lora_gemma3",
    "lora_gemma3_12b",
    "lora_gemma3_1b",
    "lora_gemma3_27b",
    "lora_gemma3_4b",
]
