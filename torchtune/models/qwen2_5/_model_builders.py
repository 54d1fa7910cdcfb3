"""Qwen2.5 presets with the sizes of the published configs."""

from typing import Any

from torchtune.models.qwen2_5._component_builders import lora_qwen2_5, qwen2_5
from torchtune.modules import TransformerDecoder


_QWEN2_5_0_5B: dict[str, Any] = dict(
    vocab_size=151_936,
    max_seq_len=32_768,
    tie_word_embeddings=True,
    num_layers=24,
    num_heads=14,
    num_kv_heads=2,
    embed_dim=896,
    intermediate_dim=4_864,
)


def qwen2_5_0_5b() -> TransformerDecoder:
    """Qwen2.5 0.5B (494,032,768 parameters; tied embeddings).

    Returns:
        TransformerDecoder: the model (random weights).
    """
    return qwen2_5(**_QWEN2_5_0_5B)


def lora_qwen2_5_0_5b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = False,
) -> TransformerDecoder:
    """Qwen2.5 0.5B with LoRA/DoRA adapters; arguments as in :func:`lora_qwen2_5`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_qwen2_5(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                        lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                        quantize_base=quantize_base, **_QWEN2_5_0_5B)


def qlora_qwen2_5_0_5b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = True,
) -> TransformerDecoder:
    """Qwen2.5 0.5B with NF4 base weights (QLoRA) and LoRA/DoRA adapters.

    Arguments as in :func:`lora_qwen2_5`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_qwen2_5(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                        lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                        quantize_base=quantize_base, **_QWEN2_5_0_5B)


_QWEN2_5_1_5B: dict[str, Any] = dict(
    vocab_size=151_936,
    max_seq_len=32_768,
    tie_word_embeddings=True,
    num_layers=28,
    num_heads=12,
    num_kv_heads=2,
    embed_dim=1_536,
    intermediate_dim=8_960,
)


def qwen2_5_1_5b() -> TransformerDecoder:
    """Qwen2.5 1.5B (1,543,714,304 parameters; tied embeddings).

    Returns:
        TransformerDecoder: the model (random weights).
    """
    return qwen2_5(**_QWEN2_5_1_5B)


def lora_qwen2_5_1_5b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = False,
) -> TransformerDecoder:
    """Qwen2.5 1.5B with LoRA/DoRA adapters; arguments as in :func:`lora_qwen2_5`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_qwen2_5(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                        lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                        quantize_base=quantize_base, **_QWEN2_5_1_5B)


def qlora_qwen2_5_1_5b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = True,
) -> TransformerDecoder:
    """Qwen2.5 1.5B with NF4 base weights (QLoRA) and LoRA/DoRA adapters.

    Arguments as in :func:`lora_qwen2_5`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_qwen2_5(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                        lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                        quantize_base=quantize_base, **_QWEN2_5_1_5B)


_QWEN2_5_3B: dict[str, Any] = dict(
    vocab_size=151_936,
    max_seq_len=32_768,
    tie_word_embeddings=True,
    num_layers=36,
    num_heads=16,
    num_kv_heads=2,
    embed_dim=2_048,
    intermediate_dim=11_008,
)


def qwen2_5_3b() -> TransformerDecoder:
    """Qwen2.5 3B (3,085,938,688 parameters; tied embeddings).

    Returns:
        TransformerDecoder: the model (random weights).
    """
    return qwen2_5(**_QWEN2_5_3B)


def lora_qwen2_5_3b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = False,
) -> TransformerDecoder:
    """Qwen2.5 3B with LoRA/DoRA adapters; arguments as in :func:`lora_qwen2_5`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_qwen2_5(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                        lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                        quantize_base=quantize_base, **_QWEN2_5_3B)


def qlora_qwen2_5_3b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = True,
) -> TransformerDecoder:
    """Qwen2.5 3B with NF4 base weights (QLoRA) and LoRA/DoRA adapters; arguments as in :func:`lora_qwen2_5`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_qwen2_5(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                        lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                        quantize_base=quantize_base, **_QWEN2_5_3B)


_QWEN2_5_7B: dict[str, Any] = dict(
    vocab_size=152_064,
    max_seq_len=32_768,
    tie_word_embeddings=False,
    num_layers=28,
    num_heads=28,
    num_kv_heads=4,
    embed_dim=3_584,
    intermediate_dim=18_944,
)


def qwen2_5_7b() -> TransformerDecoder:
    """Qwen2.5 7B (7,615,616,512 parameters).

    Returns:
        TransformerDecoder: the model (random weights).
    """
    return qwen2_5(**_QWEN2_5_7B)


def lora_qwen2_5_7b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = False,
) -> TransformerDecoder:
    """Qwen2.5 7B with LoRA/DoRA adapters; arguments as in :func:`lora_qwen2_5`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_qwen2_5(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                        lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                        quantize_base=quantize_base, **_QWEN2_5_7B)


def qlora_qwen2_5_7b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = True,
) -> TransformerDecoder:
    """Qwen2.5 7B with NF4 base weights (QLoRA) and LoRA/DoRA adapters; arguments as in :func:`lora_qwen2_5`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_qwen2_5(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                        lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                        quantize_base=quantize_base, **_QWEN2_5_7B)


_QWEN2_5_14B: dict[str, Any] = dict(
    vocab_size=152_064,
    max_seq_len=32_768,
    tie_word_embeddings=False,
    num_layers=48,
    num_heads=40,
    num_kv_heads=8,
    embed_dim=5_120,
    intermediate_dim=13_824,
)


def qwen2_5_14b() -> TransformerDecoder:
    """Qwen2.5 14B (14,770,033,664 parameters).

    Returns:
        TransformerDecoder: the model (random weights).
    """
    return qwen2_5(**_QWEN2_5_14B)


def lora_qwen2_5_14b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = False,
) -> TransformerDecoder:
    """Qwen2.5 14B with LoRA/DoRA adapters; arguments as in :func:`lora_qwen2_5`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_qwen2_5(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                        lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                        quantize_base=quantize_base, **_QWEN2_5_14B)


def qlora_qwen2_5_14b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = True,
) -> TransformerDecoder:
    """Qwen2.5 14B with NF4 base weights (QLoRA) and LoRA/DoRA adapters; arguments as in :func:`lora_qwen2_5`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_qwen2_5(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                        lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                        quantize_base=quantize_base, **_QWEN2_5_14B)


_QWEN2_5_32B: dict[str, Any] = dict(
    vocab_size=152_064,
    max_seq_len=32_768,
    tie_word_embeddings=False,
    num_layers=64,
    num_heads=40,
    num_kv_heads=8,
    embed_dim=5_120,
    intermediate_dim=27_648,
)


def qwen2_5_32b() -> TransformerDecoder:
    """Qwen2.5 32B (32,763,876,352 parameters).

    Returns:
        TransformerDecoder: the model (random weights).
    """
    return qwen2_5(**_QWEN2_5_32B)


def lora_qwen2_5_32b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = False,
) -> TransformerDecoder:
    """Qwen2.5 32B with LoRA/DoRA adapters; arguments as in :func:`lora_qwen2_5`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_qwen2_5(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                        lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                        quantize_base=quantize_base, **_QWEN2_5_32B)


def qlora_qwen2_5_32b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = True,
) -> TransformerDecoder:
    """Qwen2.5 32B with NF4 base weights (QLoRA) and LoRA/DoRA adapters; arguments as in :func:`lora_qwen2_5`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_qwen2_5(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                        lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                        quantize_base=quantize_base, **_QWEN2_5_32B)


_QWEN2_5_72B: dict[str, Any] = dict(
    vocab_size=152_064,
    max_seq_len=32_768,
    tie_word_embeddings=False,
    num_layers=80,
    num_heads=64,
    num_kv_heads=8,
    embed_dim=8_192,
    intermediate_dim=29_568,
)


def qwen2_5_72b() -> TransformerDecoder:
    """Qwen2.5 72B (72,706,203,648 parameters).

    Returns:
        TransformerDecoder: the model (random weights).
    """
    return qwen2_5(**_QWEN2_5_72B)


def lora_qwen2_5_72b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = False,
) -> TransformerDecoder:
    """Qwen2.5 72B with LoRA/DoRA adapters; arguments as in :func:`lora_qwen2_5`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_qwen2_5(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                        lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                        quantize_base=quantize_base, **_QWEN2_5_72B)


def qlora_qwen2_5_72b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = True,
) -> TransformerDecoder:
    """Qwen2.5 72B with NF4 base weights (QLoRA) and LoRA/DoRA adapters; arguments as in :func:`lora_qwen2_5`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_qwen2_5(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                        lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                        quantize_base=quantize_base, **_QWEN2_5_72B)
