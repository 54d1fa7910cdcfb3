"""Llama 2 presets with the sizes of the published configs."""

from torchtune.models._family import preset
from torchtune.models._lora_settings import lora_preset, qlora_preset
from torchtune.models.llama2._component_builders import llama2, lora_llama2


_LLAMA2_7B = dict(
    vocab_size=32_000,
    max_seq_len=4_096,
    norm_eps=1e-05,
    num_layers=32,
    num_heads=32,
    num_kv_heads=32,
    embed_dim=4_096,
    intermediate_dim=11_008,
)
llama2_7b = preset(llama2, _LLAMA2_7B, "llama2_7b", __name__, "Llama 2 7B.")
lora_llama2_7b = lora_preset(lora_llama2, _LLAMA2_7B, "lora_llama2_7b", __name__)
qlora_llama2_7b = qlora_preset(lora_llama2, _LLAMA2_7B, "qlora_llama2_7b", __name__)

_LLAMA2_13B = dict(
    vocab_size=32_000,
    max_seq_len=4_096,
    norm_eps=1e-05,
    num_layers=40,
    num_heads=40,
    num_kv_heads=40,
    embed_dim=5_120,
    intermediate_dim=13_824,
)
llama2_13b = preset(llama2, _LLAMA2_13B, "llama2_13b", __name__, "Llama 2 13B.")
lora_llama2_13b = lora_preset(lora_llama2, _LLAMA2_13B, "lora_llama2_13b", __name__)
qlora_llama2_13b = qlora_preset(lora_llama2, _LLAMA2_13B, "qlora_llama2_13b", __name__)

_LLAMA2_70B = dict(
    vocab_size=32_000,
    max_seq_len=4_096,
    norm_eps=1e-05,
    num_layers=80,
    num_heads=64,
    num_kv_heads=8,
    embed_dim=8_192,
    intermediate_dim=28_672,
)
llama2_70b = preset(llama2, _LLAMA2_70B, "llama2_70b", __name__, "Llama 2 70B.")
lora_llama2_70b = lora_preset(lora_llama2, _LLAMA2_70B, "lora_llama2_70b", __name__)
qlora_llama2_70b = qlora_preset(lora_llama2, _LLAMA2_70B, "qlora_llama2_70b", __name__)
