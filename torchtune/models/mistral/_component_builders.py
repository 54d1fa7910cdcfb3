"""Mistral builder: sizes -> modules."""

from torchtune.models._family import decoder_family
from torchtune.models._lora_settings import lora_builder


mistral = decoder_family(
    "mistral",
    __name__,
    "Mistral: GQA, SwiGLU, RoPE, optional sliding-window attention.",
    norm_eps=1e-5, rope_base=10000.0,
)
lora_mistral = lora_builder(mistral, "lora_mistral", __name__)
