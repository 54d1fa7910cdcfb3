"""Llama 3 presets with the sizes of the published configs."""

from typing import Any

from torchtune.models.llama3._component_builders import llama3, lora_llama3
from torchtune.modules import TransformerDecoder


_LLAMA3_8B: dict[str, Any] = dict(
    vocab_size=128_256,
    max_seq_len=8_192,
    norm_eps=1e-05,
    rope_base=500000.0,
    num_layers=32,
    num_heads=32,
    num_kv_heads=8,
    embed_dim=4_096,
    intermediate_dim=14_336,
)


def llama3_8b() -> TransformerDecoder:
    """Llama 3 8B (8,030,261,248 parameters).

    Returns:
        TransformerDecoder: the model (random weights).
    """
    return llama3(**_LLAMA3_8B)


def lora_llama3_8b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = False,
) -> TransformerDecoder:
    """Llama 3 8B with LoRA/DoRA adapters; arguments as in :func:`lora_llama3`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_llama3(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                       lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                       quantize_base=quantize_base, **_LLAMA3_8B)


def qlora_llama3_8b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = True,
) -> TransformerDecoder:
    """Llama 3 8B with NF4 base weights (QLoRA) and LoRA/DoRA adapters; arguments as in :func:`lora_llama3`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_llama3(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                       lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                       quantize_base=quantize_base, **_LLAMA3_8B)


_LLAMA3_70B: dict[str, Any] = dict(
    vocab_size=128_256,
    max_seq_len=8_192,
    norm_eps=1e-05,
    rope_base=500000.0,
    num_layers=80,
    num_heads=64,
    num_kv_heads=8,
    embed_dim=8_192,
    intermediate_dim=28_672,
)


def llama3_70b() -> TransformerDecoder:
    """Llama 3 70B (70,553,706,496 parameters).

    Returns:
        TransformerDecoder: the model (random weights).
    """
    return llama3(**_LLAMA3_70B)


def lora_llama3_70b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = False,
) -> TransformerDecoder:
    """Llama 3 70B with LoRA/DoRA adapters; arguments as in :func:`lora_llama3`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_llama3(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                       lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                       quantize_base=quantize_base, **_LLAMA3_70B)


def qlora_llama3_70b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = True,
) -> TransformerDecoder:
    """Llama 3 70B with NF4 base weights (QLoRA) and LoRA/DoRA adapters; arguments as in :func:`lora_llama3`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_llama3(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                       lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                       quantize_base=quantize_base, **_LLAMA3_70B)
