"""SmolLM2 builder: sizes -> modules (the Llama architecture with tied embeddings)."""

from torchtune.models._family import decoder_family
from torchtune.models._lora_settings import lora_builder


smollm2 = decoder_family(
    "smollm2",
    __name__,
    "SmolLM2: Llama layers (GQA, SwiGLU, RoPE theta 1e5) with tied input and output embeddings.",
    norm_eps=1e-5, rope_base=100000.0, tie_word_embeddings=True,
)
lora_smollm2 = lora_builder(smollm2, "lora_smollm2", __name__)
