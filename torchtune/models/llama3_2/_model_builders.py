"""Llama 3.2 presets with the sizes of the published configs."""

from torchtune.models._family import preset
from torchtune.models._lora_settings import lora_preset, qlora_preset
from torchtune.models.llama3_1._component_builders import llama3_1, lora_llama3_1


_LLAMA3_2_1B = dict(
    vocab_size=128_256,
    max_seq_len=131_072,
    norm_eps=1e-05,
    rope_base=500000.0,
    rope_scaling={'factor': 32.0, 'low_freq_factor': 1.0, 'high_freq_factor': 4.0, 'original_max_position_embeddings': 8192},
    tie_word_embeddings=True,
    num_layers=16,
    num_heads=32,
    num_kv_heads=8,
    embed_dim=2_048,
    intermediate_dim=8_192,
)
llama3_2_1b = preset(llama3_1, _LLAMA3_2_1B, "llama3_2_1b", __name__, "Llama 3.2 1B (tied embeddings).")
lora_llama3_2_1b = lora_preset(lora_llama3_1, _LLAMA3_2_1B, "lora_llama3_2_1b", __name__)
qlora_llama3_2_1b = qlora_preset(lora_llama3_1, _LLAMA3_2_1B, "qlora_llama3_2_1b", __name__)

_LLAMA3_2_3B = dict(
    vocab_size=128_256,
    max_seq_len=131_072,
    norm_eps=1e-05,
    rope_base=500000.0,
    rope_scaling={'factor': 32.0, 'low_freq_factor': 1.0, 'high_freq_factor': 4.0, 'original_max_position_embeddings': 8192},
    tie_word_embeddings=True,
    num_layers=28,
    num_heads=24,
    num_kv_heads=8,
    embed_dim=3_072,
    intermediate_dim=8_192,
)
llama3_2_3b = preset(llama3_1, _LLAMA3_2_3B, "llama3_2_3b", __name__, "Llama 3.2 3B (tied embeddings).")
lora_llama3_2_3b = lora_preset(lora_llama3_1, _LLAMA3_2_3B, "lora_llama3_2_3b", __name__)
qlora_llama3_2_3b = qlora_preset(lora_llama3_1, _LLAMA3_2_3B, "qlora_llama3_2_3b", __name__)
