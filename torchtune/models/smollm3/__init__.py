"""SmolLM3 models (Llama-style with NoPE layers). Its chat format is the model's own template,
read by :class:`torchtune.modules.tokenizers.HFModelTokenizer` (``template_kwargs={"enable_thinking":
False}`` or ``/no_think`` in the system message switch reasoning off)."""

from torchtune.models.smollm3._component_builders import lora_smollm3, smollm3, smollm3_rope_layers
from torchtune.models.smollm3._model_builders import lora_smollm3_3b, smollm3_3b

__all__ = [
    "lora_smollm3",
    "lora_smollm3_3b",
    "smollm3",
    "smollm3_3b",
    "smollm3_rope_layers",
]
