"""SmolLM2 models (Llama architecture, tied embeddings). Its chat format is the model's own
template (ChatML), read by :class:`torchtune.modules.tokenizers.HFModelTokenizer`."""

from torchtune.models.smollm2._component_builders import lora_smollm2, smollm2
from torchtune.models.smollm2._model_builders import (
    lora_smollm2_135m,
    lora_smollm2_1_7b,
    lora_smollm2_360m,
    qlora_smollm2_135m,
    qlora_smollm2_1_7b,
    qlora_smollm2_360m,
    smollm2_135m,
    smollm2_1_7b,
    smollm2_360m,
)

__all__ = [
    "lora_smollm2",
    "lora_smollm2_135m",
    "lora_smollm2_1_7b",
    "lora_smollm2_360m",
    "qlora_smollm2_135m",
    "qlora_smollm2_1_7b",
    "qlora_smollm2_360m",
    "smollm2",
    "smollm2_135m",
    "smollm2_1_7b",
    "smollm2_360m",
]
