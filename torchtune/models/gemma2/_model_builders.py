"""Gemma 2 presets with the sizes of the published ``google/gemma-2-{2b,9b,27b}`` ``config.json``
files (attention soft cap 50, final soft cap 30, sliding window 4096 on even layers)."""

from typing import Any

from torchtune.models.gemma2._component_builders import gemma2, lora_gemma2
from torchtune.modules import TransformerDecoder


_COMMON: dict[str, Any] = dict(
    vocab_size=256_000, max_seq_len=8192, norm_eps=1e-6, rope_base=10_000,
    attn_softcapping=50.0, final_logit_softcapping=30.0, sliding_window=4096,
)
_GEMMA2_2B: dict[str, Any] = dict(
    _COMMON, num_layers=26, num_heads=8, head_dim=256, num_kv_heads=4, embed_dim=2304,
    intermediate_dim=9216, query_pre_attn_scalar=256,
)
_GEMMA2_9B: dict[str, Any] = dict(
    _COMMON, num_layers=42, num_heads=16, head_dim=256, num_kv_heads=8, embed_dim=3584,
    intermediate_dim=14_336, query_pre_attn_scalar=256,
)
_GEMMA2_27B: dict[str, Any] = dict(
    _COMMON, num_layers=46, num_heads=32, head_dim=128, num_kv_heads=16, embed_dim=4608,
    intermediate_dim=36_864, query_pre_attn_scalar=144,
)


def gemma2_2b() -> TransformerDecoder:
    """Gemma 2 2B (2,614,341,888 parameters).

    Returns:
        TransformerDecoder: the model.
    """
    return gemma2(**_GEMMA2_2B)


def gemma2_9b() -> TransformerDecoder:
    """Gemma 2 9B (9,241,705,984 parameters).

    Returns:
        TransformerDecoder: the model.
    """
    return gemma2(**_GEMMA2_9B)


def gemma2_27b() -> TransformerDecoder:
    """Gemma 2 27B (27,227,128,320 parameters).

    Returns:
        TransformerDecoder: the model.
    """
    return gemma2(**_GEMMA2_27B)


def lora_gemma2_2b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = False,
) -> TransformerDecoder:
    """Gemma 2 2B with LoRA/DoRA adapters; arguments as in :func:`lora_gemma2`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_gemma2(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                       lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                       quantize_base=quantize_base, **_GEMMA2_2B)


def qlora_gemma2_2b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = True,
) -> TransformerDecoder:
    """Gemma 2 2B with NF4 base weights (QLoRA) and LoRA/DoRA adapters; arguments as in :func:`lora_gemma2`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_gemma2(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                       lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                       quantize_base=quantize_base, **_GEMMA2_2B)


def lora_gemma2_9b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = False,
) -> TransformerDecoder:
    """Gemma 2 9B with LoRA/DoRA adapters; arguments as in :func:`lora_gemma2`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_gemma2(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                       lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                       quantize_base=quantize_base, **_GEMMA2_9B)


def qlora_gemma2_9b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = True,
) -> TransformerDecoder:
    """Gemma 2 9B with NF4 base weights (QLoRA) and LoRA/DoRA adapters; arguments as in :func:`lora_gemma2`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_gemma2(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                       lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                       quantize_base=quantize_base, **_GEMMA2_9B)


def lora_gemma2_27b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = False,
) -> TransformerDecoder:
    """Gemma 2 27B with LoRA/DoRA adapters; arguments as in :func:`lora_gemma2`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_gemma2(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                       lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                       quantize_base=quantize_base, **_GEMMA2_27B)


def qlora_gemma2_27b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = True,
) -> TransformerDecoder:
    """Gemma 2 27B with NF4 base weights (QLoRA) and LoRA/DoRA adapters; arguments as in :func:`lora_gemma2`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_gemma2(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                       lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                       quantize_base=quantize_base, **_GEMMA2_27B)
