"""Gemma presets with the sizes of the published ``google/gemma-{2b,7b}`` ``config.json`` files."""

from typing import Any

from torchtune.models._lora_settings import lora_preset, qlora_preset
from torchtune.models.gemma._component_builders import gemma, lora_gemma
from torchtune.modules import TransformerDecoder


_GEMMA_2B: dict[str, Any] = dict(
    vocab_size=256_000, num_layers=18, num_heads=8, head_dim=256, num_kv_heads=1, embed_dim=2048,
    intermediate_dim=16_384, max_seq_len=8192, norm_eps=1e-6, rope_base=10_000,
)
_GEMMA_7B: dict[str, Any] = dict(
    vocab_size=256_000, num_layers=28, num_heads=16, head_dim=256, num_kv_heads=16, embed_dim=3072,
    intermediate_dim=24_576, max_seq_len=8192, norm_eps=1e-6, rope_base=10_000,
)


def gemma_2b() -> TransformerDecoder:
    """Gemma 2B (2,506,172,416 parameters).

    Returns:
        TransformerDecoder: the model.
    """
    return gemma(**_GEMMA_2B)


def gemma_7b() -> TransformerDecoder:
    """Gemma 7B (8,537,680,896 parameters).

    Returns:
        TransformerDecoder: the model.
    """
    return gemma(**_GEMMA_7B)


lora_gemma_2b = lora_preset(lora_gemma, _GEMMA_2B, "lora_gemma_2b", __name__)
qlora_gemma_2b = qlora_preset(lora_gemma, _GEMMA_2B, "qlora_gemma_2b", __name__)
lora_gemma_7b = lora_preset(lora_gemma, _GEMMA_7B, "lora_gemma_7b", __name__)
qlora_gemma_7b = qlora_preset(lora_gemma, _GEMMA_7B, "qlora_gemma_7b", __name__)
