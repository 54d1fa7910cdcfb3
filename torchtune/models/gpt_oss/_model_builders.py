"""gpt-oss presets with the sizes of the published ``openai/gpt-oss-20b`` and
``openai/gpt-oss-120b`` ``config.json`` files (4 experts per token, every layer sparse)."""

from typing import Any

from torchtune.models.gpt_oss._component_builders import gpt_oss, lora_gpt_oss
from torchtune.modules import TransformerDecoder

_COMMON: dict[str, Any] = dict(
    vocab_size=201_088, num_heads=64, num_kv_heads=8, head_dim=64, embed_dim=2880, intermediate_dim=2880,
    num_experts_per_tok=4, max_seq_len=131_072, sliding_window=128, norm_eps=1e-5, rope_base=150_000.0,
)
_GPT_OSS_20B: dict[str, Any] = dict(_COMMON, num_layers=24, num_experts=32)
_GPT_OSS_120B: dict[str, Any] = dict(_COMMON, num_layers=36, num_experts=128)


def gpt_oss_20b() -> TransformerDecoder:
    """gpt-oss-20b (20,914,757,184 parameters, about 3.6B active per token).

    Returns:
        TransformerDecoder: the model (random weights).
    """
    return gpt_oss(**_GPT_OSS_20B)


def gpt_oss_120b() -> TransformerDecoder:
    """gpt-oss-120b (116,829,156,672 parameters, about 5.1B active per token).

    Returns:
        TransformerDecoder: the model (random weights).
    """
    return gpt_oss(**_GPT_OSS_120B)


def lora_gpt_oss_20b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
) -> TransformerDecoder:
    """gpt-oss-20b with LoRA/DoRA adapters; arguments as in :func:`lora_gpt_oss`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_gpt_oss(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                        lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora, **_GPT_OSS_20B)


def lora_gpt_oss_120b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
) -> TransformerDecoder:
    """gpt-oss-120b with LoRA/DoRA adapters; arguments as in :func:`lora_gpt_oss`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_gpt_oss(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                        lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora, **_GPT_OSS_120B)
