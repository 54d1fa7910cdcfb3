"""Model builders and Hugging Face interop."""

from torchtune.models._convert_weights import (
    EXPERT_PARAMS,
    EXPERTS_MODULE,
    FusedPart,
    expert_adapter_from_peft,
    expert_adapter_to_peft,
    fused_part_of,
    hf_to_tune,
    hf_to_tune_module_name,
    per_expert_module_names,
    tune_to_hf,
    tune_to_hf_module_name,
)
from torchtune.models._decoder_builder import build_decoder
from torchtune.models._hf_config import model_from_hf_config
from torchtune.models._lora_settings import LORA_ATTN_MODULES, LoRASettings, MoESettings

__all__ = [
    "EXPERTS_MODULE",
    "EXPERT_PARAMS",
    "FusedPart",
    "LORA_ATTN_MODULES",
    "LoRASettings",
    "MoESettings",
    "build_decoder",
    "expert_adapter_from_peft",
    "expert_adapter_to_peft",
    "fused_part_of",
    "hf_to_tune",
    "hf_to_tune_module_name",
    "model_from_hf_config",
    "per_expert_module_names",
    "tune_to_hf",
    "tune_to_hf_module_name",
]
