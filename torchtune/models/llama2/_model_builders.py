"""Llama 2 presets with the sizes of the published configs."""

from typing import Any

from torchtune.models.llama2._component_builders import llama2, lora_llama2
from torchtune.modules import TransformerDecoder


_LLAMA2_7B: dict[str, Any] = dict(
    vocab_size=32_000,
    max_seq_len=4_096,
    norm_eps=1e-05,
    num_layers=32,
    num_heads=32,
    num_kv_heads=32,
    embed_dim=4_096,
    intermediate_dim=11_008,
)


def llama2_7b() -> TransformerDecoder:
    """Llama 2 7B (6,738,415,616 parameters).

    Returns:
        TransformerDecoder: the model (random weights).
    """
    return llama2(**_LLAMA2_7B)


def lora_llama2_7b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = False,
) -> TransformerDecoder:
    """Llama 2 7B with LoRA/DoRA adapters; arguments as in :func:`lora_llama2`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_llama2(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                       lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                       quantize_base=quantize_base, **_LLAMA2_7B)


def qlora_llama2_7b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = True,
) -> TransformerDecoder:
    """Llama 2 7B with NF4 base weights (QLoRA) and LoRA/DoRA adapters; arguments as in :func:`lora_llama2`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_llama2(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                       lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                       quantize_base=quantize_base, **_LLAMA2_7B)


_LLAMA2_13B: dict[str, Any] = dict(
    vocab_size=32_000,
    max_seq_len=4_096,
    norm_eps=1e-05,
    num_layers=40,
    num_heads=40,
    num_kv_heads=40,
    embed_dim=5_120,
    intermediate_dim=13_824,
)


def llama2_13b() -> TransformerDecoder:
    """Llama 2 13B (13,015,864,320 parameters).

    Returns:
        TransformerDecoder: the model (random weights).
    """
    return llama2(**_LLAMA2_13B)


def lora_llama2_13b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = False,
) -> TransformerDecoder:
    """Llama 2 13B with LoRA/DoRA adapters; arguments as in :func:`lora_llama2`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_llama2(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                       lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                       quantize_base=quantize_base, **_LLAMA2_13B)


def qlora_llama2_13b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = True,
) -> TransformerDecoder:
    """Llama 2 13B with NF4 base weights (QLoRA) and LoRA/DoRA adapters; arguments as in :func:`lora_llama2`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_llama2(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                       lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                       quantize_base=quantize_base, **_LLAMA2_13B)


_LLAMA2_70B: dict[str, Any] = dict(
    vocab_size=32_000,
    max_seq_len=4_096,
    norm_eps=1e-05,
    num_layers=80,
    num_heads=64,
    num_kv_heads=8,
    embed_dim=8_192,
    intermediate_dim=28_672,
)


def llama2_70b() -> TransformerDecoder:
    """Llama 2 70B (68,976,648,192 parameters).

    Returns:
        TransformerDecoder: the model (random weights).
    """
    return llama2(**_LLAMA2_70B)


def lora_llama2_70b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = False,
) -> TransformerDecoder:
    """Llama 2 70B with LoRA/DoRA adapters; arguments as in :func:`lora_llama2`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_llama2(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                       lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                       quantize_base=quantize_base, **_LLAMA2_70B)


def qlora_llama2_70b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = True,
) -> TransformerDecoder:
    """Llama 2 70B with NF4 base weights (QLoRA) and LoRA/DoRA adapters; arguments as in :func:`lora_llama2`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_llama2(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                       lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                       quantize_base=quantize_base, **_LLAMA2_70B)
