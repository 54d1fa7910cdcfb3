"""Qwen3 builder: sizes -> modules."""

from torchtune.models._family import decoder_family
from torchtune.models._lora_settings import lora_builder


qwen3 = decoder_family(
    "qwen3",
    __name__,
    "Qwen3: GQA with per-head q/k RMSNorm, explicit head_dim, SwiGLU, RoPE theta 1e6.",
    norm_eps=1e-6, rope_base=1000000.0, qk_norm=True,
)
lora_qwen3 = lora_builder(qwen3, "lora_qwen3", __name__)
