"""Gemma presets with the sizes of the published ``google/gemma-{2b,7b}`` ``config.json`` files."""

from typing import Any

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


def lora_gemma_2b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = False,
) -> TransformerDecoder:
    """Gemma 2B with LoRA/DoRA adapters; arguments as in :func:`lora_gemma`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_gemma(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                      lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                      quantize_base=quantize_base, **_GEMMA_2B)


def qlora_gemma_2b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = True,
) -> TransformerDecoder:
    """Gemma 2B with NF4 base weights (QLoRA) and LoRA/DoRA adapters; arguments as in :func:`lora_gemma`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_gemma(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                      lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                      quantize_base=quantize_base, **_GEMMA_2B)


def lora_gemma_7b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = False,
) -> TransformerDecoder:
    """Gemma 7B with LoRA/DoRA adapters; arguments as in :func:`lora_gemma`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_gemma(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                      lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                      quantize_base=quantize_base, **_GEMMA_7B)


def qlora_gemma_7b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = True,
) -> TransformerDecoder:
    """Gemma 7B with NF4 base weights (QLoRA) and LoRA/DoRA adapters; arguments as in :func:`lora_gemma`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_gemma(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                      lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                      quantize_base=quantize_base, **_GEMMA_7B)
