"""Qwen2.5 builder: sizes -> modules."""

from torchtune.models._family import decoder_family
from torchtune.models._lora_settings import lora_builder


qwen2_5 = decoder_family(
    "qwen2_5",
    __name__,
    "Qwen2.5: GQA with q/k/v biases, SwiGLU, RoPE theta 1e6.",
    norm_eps=1e-6, rope_base=1000000.0, qkv_bias=True,
)
lora_qwen2_5 = lora_builder(qwen2_5, "lora_qwen2_5", __name__)
