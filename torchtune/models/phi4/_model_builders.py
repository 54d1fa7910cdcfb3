"""Phi-4 preset with the sizes of the published ``microsoft/phi-4`` ``config.json`` (Hugging Face
``model_type`` "phi3": the Phi-3 architecture with grouped-query attention, no sliding window)."""

from typing import Any

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


def lora_phi4_14b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = False,
) -> TransformerDecoder:
    """Phi-4 14B with LoRA/DoRA adapters; arguments as in :func:`lora_phi3`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_phi3(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                     lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                     quantize_base=quantize_base, **_PHI4_14B)


def qlora_phi4_14b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = True,
) -> TransformerDecoder:
    """Phi-4 14B with NF4 base weights (QLoRA) and LoRA/DoRA adapters; arguments as in :func:`lora_phi3`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_phi3(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                     lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                     quantize_base=quantize_base, **_PHI4_14B)
