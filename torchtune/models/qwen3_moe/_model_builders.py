"""Qwen3-MoE presets with the sizes of the published ``Qwen/Qwen3-30B-A3B`` and
``Qwen/Qwen3-235B-A22B`` ``config.json`` files (128 experts, 8 per token, every layer sparse)."""

from typing import Any

from torchtune.models.qwen3_moe._component_builders import lora_qwen3_moe, qwen3_moe
from torchtune.modules import TransformerDecoder

_COMMON: dict[str, Any] = dict(
    vocab_size=151_936, head_dim=128, num_kv_heads=4, num_experts=128, num_experts_per_tok=8,
    norm_topk_prob=True, max_seq_len=40_960, norm_eps=1e-6, rope_base=1_000_000.0, tie_word_embeddings=False,
)
_QWEN3_MOE_30B_A3B: dict[str, Any] = dict(
    _COMMON, num_layers=48, num_heads=32, embed_dim=2048, moe_intermediate_dim=768, intermediate_dim=6144,
)
_QWEN3_MOE_235B_A22B: dict[str, Any] = dict(
    _COMMON, num_layers=94, num_heads=64, embed_dim=4096, moe_intermediate_dim=1536, intermediate_dim=12_288,
)


def qwen3_moe_30b_a3b() -> TransformerDecoder:
    """Qwen3-30B-A3B (30,532,122,624 parameters, about 3.3B active per token).

    Returns:
        TransformerDecoder: the model (random weights).
    """
    return qwen3_moe(**_QWEN3_MOE_30B_A3B)


def qwen3_moe_235b_a22b() -> TransformerDecoder:
    """Qwen3-235B-A22B (235,093,634,560 parameters, about 22B active per token).

    Returns:
        TransformerDecoder: the model (random weights).
    """
    return qwen3_moe(**_QWEN3_MOE_235B_A22B)


def lora_qwen3_moe_30b_a3b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
) -> TransformerDecoder:
    """Qwen3-30B-A3B with LoRA/DoRA adapters; arguments as in :func:`lora_qwen3_moe`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_qwen3_moe(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                          lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora, **_QWEN3_MOE_30B_A3B)


def lora_qwen3_moe_235b_a22b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
) -> TransformerDecoder:
    """Qwen3-235B-A22B with LoRA/DoRA adapters; arguments as in :func:`lora_qwen3_moe`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_qwen3_moe(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                          lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                          **_QWEN3_MOE_235B_A22B)
