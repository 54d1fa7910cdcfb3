"""Phi-3 mini preset with the sizes of the published ``microsoft/Phi-3-mini-4k-instruct``
``config.json`` (sliding window 2047 on every layer, as Hugging Face applies it)."""

from typing import Any

from torchtune.models._lora_settings import lora_preset, qlora_preset
from torchtune.models.phi3._component_builders import lora_phi3, phi3
from torchtune.modules import TransformerDecoder


_PHI3_MINI: dict[str, Any] = dict(
    vocab_size=32_064, num_layers=32, num_heads=32, num_kv_heads=32, embed_dim=3072,
    intermediate_dim=8192, max_seq_len=4096, norm_eps=1e-5, rope_base=10_000, sliding_window=2047,
)


def phi3_mini() -> TransformerDecoder:
    """Phi-3-mini-4k (3,821,079,552 parameters).

    Returns:
        TransformerDecoder: the model.
    """
    return phi3(**_PHI3_MINI)


lora_phi3_mini = lora_preset(lora_phi3, _PHI3_MINI, "lora_phi3_mini", __name__)
qlora_phi3_mini = qlora_preset(lora_phi3, _PHI3_MINI, "qlora_phi3_mini", __name__)
