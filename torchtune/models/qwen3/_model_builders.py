"""Qwen3 presets with the sizes of the published configs."""

from torchtune.models._family import preset
from torchtune.models._lora_settings import lora_preset, qlora_preset
from torchtune.models.qwen3._component_builders import qwen3, lora_qwen3


_QWEN3_0_6B = dict(
    vocab_size=151_936,
    max_seq_len=40_960,
    head_dim=128,
    num_layers=28,
    num_heads=16,
    num_kv_heads=8,
    embed_dim=1_024,
    intermediate_dim=3_072,
    tie_word_embeddings=True,
)
qwen3_0_6b = preset(qwen3, _QWEN3_0_6B, "qwen3_0_6b", __name__, "Qwen3 0.6B (tied embeddings).")
lora_qwen3_0_6b = lora_preset(lora_qwen3, _QWEN3_0_6B, "lora_qwen3_0_6b", __name__)
qlora_qwen3_0_6b = qlora_preset(lora_qwen3, _QWEN3_0_6B, "qlora_qwen3_0_6b", __name__)

_QWEN3_1_7B = dict(
    vocab_size=151_936,
    max_seq_len=40_960,
    head_dim=128,
    num_layers=28,
    num_heads=16,
    num_kv_heads=8,
    embed_dim=2_048,
    intermediate_dim=6_144,
    tie_word_embeddings=True,
)
qwen3_1_7b = preset(qwen3, _QWEN3_1_7B, "qwen3_1_7b", __name__, "Qwen3 1.7B (tied embeddings).")
lora_qwen3_1_7b = lora_preset(lora_qwen3, _QWEN3_1_7B, "lora_qwen3_1_7b", __name__)
qlora_qwen3_1_7b = qlora_preset(lora_qwen3, _QWEN3_1_7B, "qlora_qwen3_1_7b", __name__)

_QWEN3_4B = dict(
    vocab_size=151_936,
    max_seq_len=40_960,
    head_dim=128,
    num_layers=36,
    num_heads=32,
    num_kv_heads=8,
    embed_dim=2_560,
    intermediate_dim=9_728,
    tie_word_embeddings=True,
)
qwen3_4b = preset(qwen3, _QWEN3_4B, "qwen3_4b", __name__, "Qwen3 4B (tied embeddings).")
lora_qwen3_4b = lora_preset(lora_qwen3, _QWEN3_4B, "lora_qwen3_4b", __name__)
qlora_qwen3_4b = qlora_preset(lora_qwen3, _QWEN3_4B, "qlora_qwen3_4b", __name__)

_QWEN3_8B = dict(
    vocab_size=151_936,
    max_seq_len=40_960,
    head_dim=128,
    num_layers=36,
    num_heads=32,
    num_kv_heads=8,
    embed_dim=4_096,
    intermediate_dim=12_288,
    tie_word_embeddings=False,
)
qwen3_8b = preset(qwen3, _QWEN3_8B, "qwen3_8b", __name__, "Qwen3 8B.")
lora_qwen3_8b = lora_preset(lora_qwen3, _QWEN3_8B, "lora_qwen3_8b", __name__)
qlora_qwen3_8b = qlora_preset(lora_qwen3, _QWEN3_8B, "qlora_qwen3_8b", __name__)

_QWEN3_14B = dict(
    vocab_size=151_936,
    max_seq_len=40_960,
    head_dim=128,
    num_layers=40,
    num_heads=40,
    num_kv_heads=8,
    embed_dim=5_120,
    intermediate_dim=17_408,
    tie_word_embeddings=False,
)
qwen3_14b = preset(qwen3, _QWEN3_14B, "qwen3_14b", __name__, "Qwen3 14B.")
lora_qwen3_14b = lora_preset(lora_qwen3, _QWEN3_14B, "lora_qwen3_14b", __name__)
qlora_qwen3_14b = qlora_preset(lora_qwen3, _QWEN3_14B, "qlora_qwen3_14b", __name__)

_QWEN3_32B = dict(
    vocab_size=151_936,
    max_seq_len=40_960,
    head_dim=128,
    num_layers=64,
    num_heads=64,
    num_kv_heads=8,
    embed_dim=5_120,
    intermediate_dim=25_600,
    tie_word_embeddings=False,
)
qwen3_32b = preset(qwen3, _QWEN3_32B, "qwen3_32b", __name__, "Qwen3 32B.")
lora_qwen3_32b = lora_preset(lora_qwen3, _QWEN3_32B, "lora_qwen3_32b", __name__)
qlora_qwen3_32b = qlora_preset(lora_qwen3, _QWEN3_32B, "qlora_qwen3_32b", __name__)
