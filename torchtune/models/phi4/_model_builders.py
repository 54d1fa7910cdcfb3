"""Phi-4 preset with the sizes of the published ``microsoft/phi-4`` ``config.json`` (Hugging Face
``model_type`` "phi3": the Phi-3 architecture with grouped-query attention, no sliding window)."""

from typing import Any

from torchtune.models._lora_settings import lora_preset, qlora_preset
from torchtune.models.phi3 import lora_phi3, phi3
from torchtune.modules import TransformerDecoder


_PHI4_14B: dict[str, Any] = dict(
    vocab_size=100_352, num_layers=40, num_heads=40, num_kv_heads=10, embed_dim=5120,
    intermediate_dim=17_920, max_seq_len=16_384, norm_eps=1e-5, rope_base=250_000, sliding_window=None,
)


def phi4_14b() -> TransformerDecoder:
    """Phi-4 14B (14,659,507,200 parameters).

    Returns:
        TransformerDecoder: the model.
    """
    return phi3(**_PHI4_14B)


lora_phi4_14b = lora_preset(lora_phi3, _PHI4_14B, "lora_phi4_14b", __name__)
qlora_phi4_14b = qlora_preset(lora_phi3, _PHI4_14B, "qlora_phi4_14b", __name__)
