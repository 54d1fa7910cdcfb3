"""Llama 2 builder: sizes -> modules."""

from torchtune.models._family import decoder_family
from torchtune.models._lora_settings import lora_builder


llama2 = decoder_family(
    "llama2",
    __name__,
    "Llama 2: RMSNorm, RoPE (theta 1e4), MHA/GQA, SwiGLU, untied output.",
    norm_eps=1e-5, rope_base=10000.0,
)
lora_llama2 = lora_builder(llama2, "lora_llama2", __name__)
