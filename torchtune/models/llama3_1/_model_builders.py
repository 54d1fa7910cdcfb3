"""Llama 3.1 presets with the sizes of the published configs."""

from typing import Any

from torchtune.models.llama3_1._component_builders import llama3_1, lora_llama3_1
from torchtune.modules import TransformerDecoder


_LLAMA3_1_8B: dict[str, Any] = dict(
    vocab_size=128_256,
    max_seq_len=131_072,
    norm_eps=1e-05,
    rope_base=500000.0,
    rope_scaling={"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
    num_layers=32,
    num_heads=32,
    num_kv_heads=8,
    embed_dim=4_096,
    intermediate_dim=14_336,
)


def llama3_1_8b() -> TransformerDecoder:
    """Llama 3.1 8B (8,030,261,248 parameters).

    Returns:
        TransformerDecoder: the model (random weights).
    """
    return llama3_1(**_LLAMA3_1_8B)


def lora_llama3_1_8b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = False,
) -> TransformerDecoder:
    """Llama 3.1 8B with LoRA/DoRA adapters; arguments as in :func:`lora_llama3_1`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_llama3_1(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                         lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                         quantize_base=quantize_base, **_LLAMA3_1_8B)


def qlora_llama3_1_8b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = True,
) -> TransformerDecoder:
    """Llama 3.1 8B with NF4 base weights (QLoRA) and LoRA/DoRA adapters.

    Arguments as in :func:`lora_llama3_1`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_llama3_1(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                         lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                         quantize_base=quantize_base, **_LLAMA3_1_8B)


_LLAMA3_1_70B: dict[str, Any] = dict(
    vocab_size=128_256,
    max_seq_len=131_072,
    norm_eps=1e-05,
    rope_base=500000.0,
    rope_scaling={"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
    num_layers=80,
    num_heads=64,
    num_kv_heads=8,
    embed_dim=8_192,
    intermediate_dim=28_672,
)


def llama3_1_70b() -> TransformerDecoder:
    """Llama 3.1 70B (70,553,706,496 parameters).

    Returns:
        TransformerDecoder: the model (random weights).
    """
    return llama3_1(**_LLAMA3_1_70B)


def lora_llama3_1_70b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = False,
) -> TransformerDecoder:
    """Llama 3.1 70B with LoRA/DoRA adapters; arguments as in :func:`lora_llama3_1`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_llama3_1(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                         lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                         quantize_base=quantize_base, **_LLAMA3_1_70B)


def qlora_llama3_1_70b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = True,
) -> TransformerDecoder:
    """Llama 3.1 70B with NF4 base weights (QLoRA) and LoRA/DoRA adapters.

    Arguments as in :func:`lora_llama3_1`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_llama3_1(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                         lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                         quantize_base=quantize_base, **_LLAMA3_1_70B)


_LLAMA3_1_405B: dict[str, Any] = dict(
    vocab_size=128_256,
    max_seq_len=131_072,
    norm_eps=1e-05,
    rope_base=500000.0,
    rope_scaling={"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
    num_layers=126,
    num_heads=128,
    num_kv_heads=8,
    embed_dim=16_384,
    intermediate_dim=53_248,
)


def llama3_1_405b() -> TransformerDecoder:
    """Llama 3.1 405B (405,853,388,800 parameters).

    Returns:
        TransformerDecoder: the model (random weights).
    """
    return llama3_1(**_LLAMA3_1_405B)


def lora_llama3_1_405b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = False,
) -> TransformerDecoder:
    """Llama 3.1 405B with LoRA/DoRA adapters; arguments as in :func:`lora_llama3_1`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_llama3_1(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                         lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                         quantize_base=quantize_base, **_LLAMA3_1_405B)


def qlora_llama3_1_405b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = True,
) -> TransformerDecoder:
    """Llama 3.1 405B with NF4 base weights (QLoRA) and LoRA/DoRA adapters.

    Arguments as in :func:`lora_llama3_1`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_llama3_1(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                         lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                         quantize_base=quantize_base, **_LLAMA3_1_405B)
