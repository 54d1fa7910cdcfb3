"""Mistral presets with the sizes of the published configs."""

from typing import Any

from torchtune.models.mistral._component_builders import lora_mistral, mistral
from torchtune.modules import TransformerDecoder


_MISTRAL_7B: dict[str, Any] = dict(
    vocab_size=32_000,
    num_layers=32,
    num_heads=32,
    num_kv_heads=8,
    embed_dim=4_096,
    intermediate_dim=14_336,
    max_seq_len=32_768,
    norm_eps=1e-05,
    rope_base=10000.0,
    sliding_window=4_096,
)


def mistral_7b() -> TransformerDecoder:
    """Mistral 7B (7,241,732,096 parameters; v0.1: 4096-token sliding window).

    Returns:
        TransformerDecoder: the model (random weights).
    """
    return mistral(**_MISTRAL_7B)


def lora_mistral_7b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = False,
) -> TransformerDecoder:
    """Mistral 7B with LoRA/DoRA adapters; arguments as in :func:`lora_mistral`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_mistral(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                        lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                        quantize_base=quantize_base, **_MISTRAL_7B)


def qlora_mistral_7b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = True,
) -> TransformerDecoder:
    """Mistral 7B with NF4 base weights (QLoRA) and LoRA/DoRA adapters; arguments as in :func:`lora_mistral`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_mistral(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                        lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                        quantize_base=quantize_base, **_MISTRAL_7B)
