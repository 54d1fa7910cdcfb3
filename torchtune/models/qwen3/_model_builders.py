"""Qwen3 presets with the sizes of the published configs."""

from typing import Any

from torchtune.models.qwen3._component_builders import lora_qwen3, qwen3
from torchtune.modules import TransformerDecoder


_QWEN3_0_6B: dict[str, Any] = dict(
    vocab_size=151_936,
    max_seq_len=40_960,
    head_dim=128,
    num_layers=28,
    num_heads=16,
    num_kv_heads=8,
    embed_dim=1_024,
    intermediate_dim=3_072,
    tie_word_embeddings=True,
)


def qwen3_0_6b() -> TransformerDecoder:
    """Qwen3 0.6B (596,049,920 parameters; tied embeddings).

    Returns:
        TransformerDecoder: the model (random weights).
    """
    return qwen3(**_QWEN3_0_6B)


def lora_qwen3_0_6b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = False,
) -> TransformerDecoder:
    """Qwen3 0.6B with LoRA/DoRA adapters; arguments as in :func:`lora_qwen3`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_qwen3(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                      lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                      quantize_base=quantize_base, **_QWEN3_0_6B)


def qlora_qwen3_0_6b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = True,
) -> TransformerDecoder:
    """Qwen3 0.6B with NF4 base weights (QLoRA) and LoRA/DoRA adapters; arguments as in :func:`lora_qwen3`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_qwen3(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                      lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                      quantize_base=quantize_base, **_QWEN3_0_6B)


_QWEN3_1_7B: dict[str, Any] = dict(
    vocab_size=151_936,
    max_seq_len=40_960,
    head_dim=128,
    num_layers=28,
    num_heads=16,
    num_kv_heads=8,
    embed_dim=2_048,
    intermediate_dim=6_144,
    tie_word_embeddings=True,
)


def qwen3_1_7b() -> TransformerDecoder:
    """Qwen3 1.7B (1,720,574,976 parameters; tied embeddings).

    Returns:
        TransformerDecoder: the model (random weights).
    """
    return qwen3(**_QWEN3_1_7B)


def lora_qwen3_1_7b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = False,
) -> TransformerDecoder:
    """Qwen3 1.7B with LoRA/DoRA adapters; arguments as in :func:`lora_qwen3`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_qwen3(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                      lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                      quantize_base=quantize_base, **_QWEN3_1_7B)


def qlora_qwen3_1_7b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = True,
) -> TransformerDecoder:
    """Qwen3 1.7B with NF4 base weights (QLoRA) and LoRA/DoRA adapters; arguments as in :func:`lora_qwen3`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_qwen3(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                      lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                      quantize_base=quantize_base, **_QWEN3_1_7B)


_QWEN3_4B: dict[str, Any] = dict(
    vocab_size=151_936,
    max_seq_len=40_960,
    head_dim=128,
    num_layers=36,
    num_heads=32,
    num_kv_heads=8,
    embed_dim=2_560,
    intermediate_dim=9_728,
    tie_word_embeddings=True,
)


def qwen3_4b() -> TransformerDecoder:
    """Qwen3 4B (4,022,468,096 parameters; tied embeddings).

    Returns:
        TransformerDecoder: the model (random weights).
    """
    return qwen3(**_QWEN3_4B)


def lora_qwen3_4b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = False,
) -> TransformerDecoder:
    """Qwen3 4B with LoRA/DoRA adapters; arguments as in :func:`lora_qwen3`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_qwen3(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                      lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                      quantize_base=quantize_base, **_QWEN3_4B)


def qlora_qwen3_4b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = True,
) -> TransformerDecoder:
    """Qwen3 4B with NF4 base weights (QLoRA) and LoRA/DoRA adapters; arguments as in :func:`lora_qwen3`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_qwen3(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                      lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                      quantize_base=quantize_base, **_QWEN3_4B)


_QWEN3_8B: dict[str, Any] = dict(
    vocab_size=151_936,
    max_seq_len=40_960,
    head_dim=128,
    num_layers=36,
    num_heads=32,
    num_kv_heads=8,
    embed_dim=4_096,
    intermediate_dim=12_288,
    tie_word_embeddings=False,
)


def qwen3_8b() -> TransformerDecoder:
    """Qwen3 8B (8,190,735,360 parameters).

    Returns:
        TransformerDecoder: the model (random weights).
    """
    return qwen3(**_QWEN3_8B)


def lora_qwen3_8b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = False,
) -> TransformerDecoder:
    """Qwen3 8B with LoRA/DoRA adapters; arguments as in :func:`lora_qwen3`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_qwen3(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                      lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                      quantize_base=quantize_base, **_QWEN3_8B)


def qlora_qwen3_8b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = True,
) -> TransformerDecoder:
    """Qwen3 8B with NF4 base weights (QLoRA) and LoRA/DoRA adapters; arguments as in :func:`lora_qwen3`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_qwen3(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                      lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                      quantize_base=quantize_base, **_QWEN3_8B)


_QWEN3_14B: dict[str, Any] = dict(
    vocab_size=151_936,
    max_seq_len=40_960,
    head_dim=128,
    num_layers=40,
    num_heads=40,
    num_kv_heads=8,
    embed_dim=5_120,
    intermediate_dim=17_408,
    tie_word_embeddings=False,
)


def qwen3_14b() -> TransformerDecoder:
    """Qwen3 14B (14,768,307,200 parameters).

    Returns:
        TransformerDecoder: the model (random weights).
    """
    return qwen3(**_QWEN3_14B)


def lora_qwen3_14b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = False,
) -> TransformerDecoder:
    """Qwen3 14B with LoRA/DoRA adapters; arguments as in :func:`lora_qwen3`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_qwen3(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                      lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                      quantize_base=quantize_base, **_QWEN3_14B)


def qlora_qwen3_14b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = True,
) -> TransformerDecoder:
    """Qwen3 14B with NF4 base weights (QLoRA) and LoRA/DoRA adapters; arguments as in :func:`lora_qwen3`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_qwen3(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                      lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                      quantize_base=quantize_base, **_QWEN3_14B)


_QWEN3_32B: dict[str, Any] = dict(
    vocab_size=151_936,
    max_seq_len=40_960,
    head_dim=128,
    num_layers=64,
    num_heads=64,
    num_kv_heads=8,
    embed_dim=5_120,
    intermediate_dim=25_600,
    tie_word_embeddings=False,
)


def qwen3_32b() -> TransformerDecoder:
    """Qwen3 32B (32,762,123,264 parameters).

    Returns:
        TransformerDecoder: the model (random weights).
    """
    return qwen3(**_QWEN3_32B)


def lora_qwen3_32b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = False,
) -> TransformerDecoder:
    """Qwen3 32B with LoRA/DoRA adapters; arguments as in :func:`lora_qwen3`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_qwen3(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                      lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                      quantize_base=quantize_base, **_QWEN3_32B)


def qlora_qwen3_32b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = True,
) -> TransformerDecoder:
    """Qwen3 32B with NF4 base weights (QLoRA) and LoRA/DoRA adapters; arguments as in :func:`lora_qwen3`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_qwen3(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                      lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                      quantize_base=quantize_base, **_QWEN3_32B)
