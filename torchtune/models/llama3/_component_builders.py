"""Llama 3 builder: sizes -> modules."""

from torchtune.models._family import decoder_family
from torchtune.models._lora_settings import lora_builder


llama3 = decoder_family(
    "llama3",
    __name__,
    "Llama 3: GQA, SwiGLU, RoPE theta 5e5 without scaling.",
    norm_eps=1e-5, rope_base=500000.0,
)
lora_llama3 = lora_builder(llama3, "lora_llama3", __name__)
