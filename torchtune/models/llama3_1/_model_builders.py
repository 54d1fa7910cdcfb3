"""Llama 3.1 presets with the sizes of the published configs."""

from torchtune.models._family import preset
from torchtune.models._lora_settings import lora_preset, qlora_preset
from torchtune.models.llama3_1._component_builders import llama3_1, lora_llama3_1


_LLAMA3_1_8B = dict(
    vocab_size=128_256,
    max_seq_len=131_072,
    norm_eps=1e-05,
    rope_base=500000.0,
    rope_scaling={'factor': 8.0, 'low_freq_factor': 1.0, 'high_freq_factor': 4.0, 'original_max_position_embeddings': 8192},
    num_layers=32,
    num_heads=32,
    num_kv_heads=8,
    embed_dim=4_096,
    intermediate_dim=14_336,
)
llama3_1_8b = preset(llama3_1, _LLAMA3_1_8B, "llama3_1_8b", __name__, "Llama 3.1 8B.")
lora_llama3_1_8b = lora_preset(lora_llama3_1, _LLAMA3_1_8B, "lora_llama3_1_8b", __name__)
qlora_llama3_1_8b = qlora_preset(lora_llama3_1, _LLAMA3_1_8B, "qlora_llama3_1_8b", __name__)

_LLAMA3_1_70B = dict(
    vocab_size=128_256,
    max_seq_len=131_072,
    norm_eps=1e-05,
    rope_base=500000.0,
    rope_scaling={'factor': 8.0, 'low_freq_factor': 1.0, 'high_freq_factor': 4.0, 'original_max_position_embeddings': 8192},
    num_layers=80,
    num_heads=64,
    num_kv_heads=8,
    embed_dim=8_192,
    intermediate_dim=28_672,
)
llama3_1_70b = preset(llama3_1, _LLAMA3_1_70B, "llama3_1_70b", __name__, "Llama 3.1 70B.")
lora_llama3_1_70b = lora_preset(lora_llama3_1, _LLAMA3_1_70B, "lora_llama3_1_70b", __name__)
qlora_llama3_1_70b = qlora_preset(lora_llama3_1, _LLAMA3_1_70B, "qlora_llama3_1_70b", __name__)

_LLAMA3_1_405B = dict(
    vocab_size=128_256,
    max_seq_len=131_072,
    norm_eps=1e-05,
    rope_base=500000.0,
    rope_scaling={'factor': 8.0, 'low_freq_factor': 1.0, 'high_freq_factor': 4.0, 'original_max_position_embeddings': 8192},
    num_layers=126,
    num_heads=128,
    num_kv_heads=8,
    embed_dim=16_384,
    intermediate_dim=53_248,
)
llama3_1_405b = preset(llama3_1, _LLAMA3_1_405B, "llama3_1_405b", __name__, "Llama 3.1 405B.")
lora_llama3_1_405b = lora_preset(lora_llama3_1, _LLAMA3_1_405B, "lora_llama3_1_405b", __name__)
qlora_llama3_1_405b = qlora_preset(lora_llama3_1, _LLAMA3_1_405B, "qlora_llama3_1_405b", __name__)
