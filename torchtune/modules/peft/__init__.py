"""Parameter-efficient fine-tuning: LoRA, DoRA and adapter utilities."""

from torchtune.modules.peft._expert_lora import ExpertLoRA
from torchtune.modules.peft._lora import DoRALinear, LoRALinear
from torchtune.modules.peft._utils import (
    AdapterSpec,
    disable_adapter,
    get_adapter_params,
    get_adapter_specs,
    get_adapter_state_dict,
    get_merged_lora_ckpt,
    initialize_dora_magnitudes,
    is_adapter_key,
    set_adapter_dtype,
    set_trainable_params,
    validate_missing_and_unexpected_for_lora,
)

__all__ = [
    "AdapterSpec",
    "DoRALinear",
    "ExpertLoRA",
    "LoRALinear",
    "disable_adapter",
    "get_adapter_params",
    "get_adapter_specs",
    "get_adapter_state_dict",
    "get_merged_lora_ckpt",
    "initialize_dora_magnitudes",
    "is_adapter_key",
    "set_adapter_dtype",
    "set_trainable_params",
    "validate_missing_and_unexpected_for_lora",
]
