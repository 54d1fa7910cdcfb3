"""Llama 3.2 presets with the sizes of the published configs."""

from typing import Any

from torchtune.models.llama3_1._component_builders import llama3_1, lora_llama3_1
from torchtune.modules import TransformerDecoder


_LLAMA3_2_1B: dict[str, Any] = dict(
    vocab_size=128_256,
    max_seq_len=131_072,
    norm_eps=1e-05,
    rope_base=500000.0,
    rope_scaling={"factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
    tie_word_embeddings=True,
    num_layers=16,
    num_heads=32,
    num_kv_heads=8,
    embed_dim=2_048,
    intermediate_dim=8_192,
)


def llama3_2_1b() -> TransformerDecoder:
    """Llama 3.2 1B (1,235,814,400 parameters; tied embeddings).

    Returns:
        TransformerDecoder: the model (random weights).
    """
    return llama3_1(**_LLAMA3_2_1B)


def lora_llama3_2_1b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = False,
) -> TransformerDecoder:
    """Llama 3.2 1B with LoRA/DoRA adapters; arguments as in :func:`lora_llama3_1`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_llama3_1(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                         lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                         quantize_base=quantize_base, **_LLAMA3_2_1B)


def qlora_llama3_2_1b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = True,
) -> TransformerDecoder:
    """Llama 3.2 1B with NF4 base weights (QLoRA) and LoRA/DoRA adapters.

    Arguments as in :func:`lora_llama3_1`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_llama3_1(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                         lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                         quantize_base=quantize_base, **_LLAMA3_2_1B)


_LLAMA3_2_3B: dict[str, Any] = dict(
    vocab_size=128_256,
    max_seq_len=131_072,
    norm_eps=1e-05,
    rope_base=500000.0,
    rope_scaling={"factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
    tie_word_embeddings=True,
    num_layers=28,
    num_heads=24,
    num_kv_heads=8,
    embed_dim=3_072,
    intermediate_dim=8_192,
)


def llama3_2_3b() -> TransformerDecoder:
    """Llama 3.2 3B (3,212,749,824 parameters; tied embeddings).

    Returns:
        TransformerDecoder: the model (random weights).
    """
    return llama3_1(**_LLAMA3_2_3B)


def lora_llama3_2_3b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = False,
) -> TransformerDecoder:
    """Llama 3.2 3B with LoRA/DoRA adapters; arguments as in :func:`lora_llama3_1`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_llama3_1(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                         lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                         quantize_base=quantize_base, **_LLAMA3_2_3B)


def qlora_llama3_2_3b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = True,
) -> TransformerDecoder:
    """Llama 3.2 3B with NF4 base weights (QLoRA) and LoRA/DoRA adapters.

    Arguments as in :func:`lora_llama3_1`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_llama3_1(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                         lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                         quantize_base=quantize_base, **_LLAMA3_2_3B)
