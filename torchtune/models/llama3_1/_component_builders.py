"""Llama 3.1 (also 3.2, 3.3) builder: sizes -> modules."""

from torchtune.models._family import decoder_family
from torchtune.models._lora_settings import lora_builder


llama3_1 = decoder_family(
    "llama3_1",
    __name__,
    "Llama 3.1 (also 3.2, 3.3): Llama 3 with RoPE frequency scaling (factor 8 by default).",
    norm_eps=1e-5,
    rope_base=500000.0,
    rope_scaling={"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
)
lora_llama3_1 = lora_builder(llama3_1, "lora_llama3_1", __name__)
