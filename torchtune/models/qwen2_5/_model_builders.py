"""Qwen2.5 presets with the sizes of the published configs."""

from torchtune.models._family import preset
from torchtune.models._lora_settings import lora_preset, qlora_preset
from torchtune.models.qwen2_5._component_builders import qwen2_5, lora_qwen2_5


_QWEN2_5_0_5B = dict(
    vocab_size=151_936,
    max_seq_len=32_768,
    tie_word_embeddings=True,
    num_layers=24,
    num_heads=14,
    num_kv_heads=2,
    embed_dim=896,
    intermediate_dim=4_864,
)
qwen2_5_0_5b = preset(qwen2_5, _QWEN2_5_0_5B, "qwen2_5_0_5b", __name__, "Qwen2.5 0.5B (tied embeddings).")
lora_qwen2_5_0_5b = lora_preset(lora_qwen2_5, _QWEN2_5_0_5B, "lora_qwen2_5_0_5b", __name__)
qlora_qwen2_5_0_5b = qlora_preset(lora_qwen2_5, _QWEN2_5_0_5B, "qlora_qwen2_5_0_5b", __name__)

_QWEN2_5_1_5B = dict(
    vocab_size=151_936,
    max_seq_len=32_768,
    tie_word_embeddings=True,
    num_layers=28,
    num_heads=12,
    num_kv_heads=2,
    embed_dim=1_536,
    intermediate_dim=8_960,
)
qwen2_5_1_5b = preset(qwen2_5, _QWEN2_5_1_5B, "qwen2_5_1_5b", __name__, "Qwen2.5 1.5B (tied embeddings).")
lora_qwen2_5_1_5b = lora_preset(lora_qwen2_5, _QWEN2_5_1_5B, "lora_qwen2_5_1_5b", __name__)
qlora_qwen2_5_1_5b = qlora_preset(lora_qwen2_5, _QWEN2_5_1_5B, "qlora_qwen2_5_1_5b", __name__)

_QWEN2_5_3B = dict(
    vocab_size=151_936,
    max_seq_len=32_768,
    tie_word_embeddings=True,
    num_layers=36,
    num_heads=16,
    num_kv_heads=2,
    embed_dim=2_048,
    intermediate_dim=11_008,
)
qwen2_5_3b = preset(qwen2_5, _QWEN2_5_3B, "qwen2_5_3b", __name__, "Qwen2.5 3B (tied embeddings).")
lora_qwen2_5_3b = lora_preset(lora_qwen2_5, _QWEN2_5_3B, "lora_qwen2_5_3b", __name__)
qlora_qwen2_5_3b = qlora_preset(lora_qwen2_5, _QWEN2_5_3B, "qlora_qwen2_5_3b", __name__)

_QWEN2_5_7B = dict(
    vocab_size=152_064,
    max_seq_len=32_768,
    tie_word_embeddings=False,
    num_layers=28,
    num_heads=28,
    num_kv_heads=4,
    embed_dim=3_584,
    intermediate_dim=18_944,
)
qwen2_5_7b = preset(qwen2_5, _QWEN2_5_7B, "qwen2_5_7b", __name__, "Qwen2.5 7B.")
lora_qwen2_5_7b = lora_preset(lora_qwen2_5, _QWEN2_5_7B, "lora_qwen2_5_7b", __name__)
qlora_qwen2_5_7b = qlora_preset(lora_qwen2_5, _QWEN2_5_7B, "qlora_qwen2_5_7b", __name__)

_QWEN2_5_14B = dict(
    vocab_size=152_064,
    max_seq_len=32_768,
    tie_word_embeddings=False,
    num_layers=48,
    num_heads=40,
    num_kv_heads=8,
    embed_dim=5_120,
    intermediate_dim=13_824,
)
qwen2_5_14b = preset(qwen2_5, _QWEN2_5_14B, "qwen2_5_14b", __name__, "Qwen2.5 14B.")
lora_qwen2_5_14b = lora_preset(lora_qwen2_5, _QWEN2_5_14B, "lora_qwen2_5_14b", __name__)
qlora_qwen2_5_14b = qlora_preset(lora_qwen2_5, _QWEN2_5_14B, "qlora_qwen2_5_14b", __name__)

_QWEN2_5_32B = dict(
    vocab_size=152_064,
    max_seq_len=32_768,
    tie_word_embeddings=False,
    num_layers=64,
    num_heads=40,
    num_kv_heads=8,
    embed_dim=5_120,
    intermediate_dim=27_648,
)
qwen2_5_32b = preset(qwen2_5, _QWEN2_5_32B, "qwen2_5_32b", __name__, "Qwen2.5 32B.")
lora_qwen2_5_32b = lora_preset(lora_qwen2_5, _QWEN2_5_32B, "lora_qwen2_5_32b", __name__)
qlora_qwen2_5_32b = qlora_preset(lora_qwen2_5, _QWEN2_5_32B, "qlora_qwen2_5_32b", __name__)

_QWEN2_5_72B = dict(
    vocab_size=152_064,
    max_seq_len=32_768,
    tie_word_embeddings=False,
    num_layers=80,
    num_heads=64,
    num_kv_heads=8,
    embed_dim=8_192,
    intermediate_dim=29_568,
)
qwen2_5_72b = preset(qwen2_5, _QWEN2_5_72B, "qwen2_5_72b", __name__, "Qwen2.5 72B.")
lora_qwen2_5_72b = lora_preset(lora_qwen2_5, _QWEN2_5_72B, "lora_qwen2_5_72b", __name__)
qlora_qwen2_5_72b = qlora_preset(lora_qwen2_5, _QWEN2_5_72B, "qlora_qwen2_5_72b", __name__)
