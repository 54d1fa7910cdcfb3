"""Mistral presets with the sizes of the published configs."""

from torchtune.models._family import preset
from torchtune.models._lora_settings import lora_preset, qlora_preset
from torchtune.models.mistral._component_builders import mistral, lora_mistral


_MISTRAL_7B = dict(
    vocab_size=32_000,
    num_layers=32,
    num_heads=32,
    num_kv_heads=8,
    embed_dim=4_096,
    intermediate_dim=14_336,
    max_seq_len=32_768,
    norm_eps=1e-05,
    rope_base=10000.0,
    sliding_window=4_096,
)
mistral_7b = preset(mistral, _MISTRAL_7B, "mistral_7b", __name__, "Mistral 7B (v0.1: 4096-token sliding window).")
lora_mistral_7b = lora_preset(lora_mistral, _MISTRAL_7B, "lora_mistral_7b", __name__)
qlora_mistral_7b = qlora_preset(lora_mistral, _MISTRAL_7B, "qlora_mistral_7b", __name__)
