"""Phi-3 mini preset with the sizes of the published ``microsoft/Phi-3-mini-4k-instruct``
``config.json`` (sliding window 2047 on every layer, as Hugging Face applies it)."""

from typing import Any

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


def lora_phi3_mini(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = False,
) -> TransformerDecoder:
    """Phi-3-mini-4k with LoRA/DoRA adapters; arguments as in :func:`lora_phi3`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_phi3(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                     lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                     quantize_base=quantize_base, **_PHI3_MINI)


def qlora_phi3_mini(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = True,
) -> TransformerDecoder:
    """Phi-3-mini-4k with NF4 base weights (QLoRA) and LoRA/DoRA adapters; arguments as in :func:`lora_phi3`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_phi3(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                     lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                     quantize_base=quantize_base, **_PHI3_MINI)
