"""Gemma 3 text-decoder presets with the sizes of the published ``google/gemma-3-{1b,4b,12b,27b}-it``
``config.json`` files (for 4B-27B, the ``text_config`` of the multimodal checkpoint; the vision tower
is not built)."""

from typing import Any

from torchtune.models.gemma3._component_builders import gemma3, lora_gemma3
from torchtune.modules import TransformerDecoder

_GEMMA3_1B: dict[str, Any] = dict(
    vocab_size=262_144, num_layers=26, num_heads=4, head_dim=256, num_kv_heads=1, embed_dim=1152,
    intermediate_dim=6912, max_seq_len=32_768, sliding_window=512, rope_scaling_factor=None,
    query_pre_attn_scalar=256,
)
_GEMMA3_4B: dict[str, Any] = dict(
    vocab_size=262_208, num_layers=34, num_heads=8, head_dim=256, num_kv_heads=4, embed_dim=2560,
    intermediate_dim=10_240, max_seq_len=131_072, sliding_window=1024, rope_scaling_factor=8.0,
    query_pre_attn_scalar=256,
)
_GEMMA3_12B: dict[str, Any] = dict(
    vocab_size=262_208, num_layers=48, num_heads=16, head_dim=256, num_kv_heads=8, embed_dim=3840,
    intermediate_dim=15_360, max_seq_len=131_072, sliding_window=1024, rope_scaling_factor=8.0,
    query_pre_attn_scalar=256,
)
_GEMMA3_27B: dict[str, Any] = dict(
    vocab_size=262_208, num_layers=62, num_heads=32, head_dim=128, num_kv_heads=16, embed_dim=5376,
    intermediate_dim=21_504, max_seq_len=131_072, sliding_window=1024, rope_scaling_factor=8.0,
    query_pre_attn_scalar=168,
)


def gemma3_1b() -> TransformerDecoder:
    """Gemma 3 1B (999,885,952 parameters).

    Returns:
        TransformerDecoder: the model (random weights).
    """
    return gemma3(**_GEMMA3_1B)


def lora_gemma3_1b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
) -> TransformerDecoder:
    """Gemma 3 1B with LoRA/DoRA adapters; arguments as in :func:`lora_gemma3`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_gemma3(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                       lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora, **_GEMMA3_1B)


def gemma3_4b() -> TransformerDecoder:
    """Gemma 3 4B (text decoder).

    Returns:
        TransformerDecoder: the model (random weights).
    """
    return gemma3(**_GEMMA3_4B)


def lora_gemma3_4b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
) -> TransformerDecoder:
    """Gemma 3 4B with LoRA/DoRA adapters; arguments as in :func:`lora_gemma3`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_gemma3(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                       lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora, **_GEMMA3_4B)


def gemma3_12b() -> TransformerDecoder:
    """Gemma 3 12B (text decoder).

    Returns:
        TransformerDecoder: the model (random weights).
    """
    return gemma3(**_GEMMA3_12B)


def lora_gemma3_12b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
) -> TransformerDecoder:
    """Gemma 3 12B with LoRA/DoRA adapters; arguments as in :func:`lora_gemma3`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_gemma3(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                       lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora, **_GEMMA3_12B)


def gemma3_27b() -> TransformerDecoder:
    """Gemma 3 27B (text decoder).

    Returns:
        TransformerDecoder: the model (random weights).
    """
    return gemma3(**_GEMMA3_27B)


def lora_gemma3_27b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
) -> TransformerDecoder:
    """Gemma 3 27B with LoRA/DoRA adapters; arguments as in :func:`lora_gemma3`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_gemma3(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                       lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora, **_GEMMA3_27B)
