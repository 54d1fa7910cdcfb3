"""Llama 3 presets with the sizes of the published configs."""

from torchtune.models._family import preset
from torchtune.models._lora_settings import lora_preset, qlora_preset
from torchtune.models.llama3._component_builders import llama3, lora_llama3


_LLAMA3_8B = dict(
    vocab_size=128_256,
    max_seq_len=8_192,
    norm_eps=1e-05,
    rope_base=500000.0,
    num_layers=32,
    num_heads=32,
    num_kv_heads=8,
    embed_dim=4_096,
    intermediate_dim=14_336,
)
llama3_8b = preset(llama3, _LLAMA3_8B, "llama3_8b", __name__, "Llama 3 8B.")
lora_llama3_8b = lora_preset(lora_llama3, _LLAMA3_8B, "lora_llama3_8b", __name__)
qlora_llama3_8b = qlora_preset(lora_llama3, _LLAMA3_8B, "qlora_llama3_8b", __name__)

_LLAMA3_70B = dict(
    vocab_size=128_256,
    max_seq_len=8_192,
    norm_eps=1e-05,
    rope_base=500000.0,
    num_layers=80,
    num_heads=64,
    num_kv_heads=8,
    embed_dim=8_192,
    intermediate_dim=28_672,
)
llama3_70b = preset(llama3, _LLAMA3_70B, "llama3_70b", __name__, "Llama 3 70B.")
lora_llama3_70b = lora_preset(lora_llama3, _LLAMA3_70B, "lora_llama3_70b", __name__)
qlora_llama3_70b = qlora_preset(lora_llama3, _LLAMA3_70B, "qlora_llama3_70b", __name__)
