"""SmolLM2 presets with the sizes of the published ``HuggingFaceTB/SmolLM2-*`` ``config.json`` files."""

from typing import Any

from torchtune.models.smollm2._component_builders import lora_smollm2, smollm2
from torchtune.modules import TransformerDecoder


_SMOLLM2_135M: dict[str, Any] = dict(
    vocab_size=49_152,
    max_seq_len=8_192,
    num_layers=30,
    num_heads=9,
    num_kv_heads=3,
    embed_dim=576,
    intermediate_dim=1_536,
)


def smollm2_135m() -> TransformerDecoder:
    """SmolLM2 135M (134,515,008 parameters; tied embeddings).

    Returns:
        TransformerDecoder: the model (random weights).
    """
    return smollm2(**_SMOLLM2_135M)


def lora_smollm2_135m(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = False,
) -> TransformerDecoder:
    """SmolLM2 135M with LoRA/DoRA adapters; arguments as in :func:`lora_smollm2`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_smollm2(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                        lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                        quantize_base=quantize_base, **_SMOLLM2_135M)


def qlora_smollm2_135m(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = True,
) -> TransformerDecoder:
    """SmolLM2 135M with NF4 base weights (QLoRA) and LoRA/DoRA adapters.

    Arguments as in :func:`lora_smollm2`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_smollm2(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                        lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                        quantize_base=quantize_base, **_SMOLLM2_135M)


_SMOLLM2_360M: dict[str, Any] = dict(
    vocab_size=49_152,
    max_seq_len=8_192,
    num_layers=32,
    num_heads=15,
    num_kv_heads=5,
    embed_dim=960,
    intermediate_dim=2_560,
)


def smollm2_360m() -> TransformerDecoder:
    """SmolLM2 360M (361,821,120 parameters; tied embeddings).

    Returns:
        TransformerDecoder: the model (random weights).
    """
    return smollm2(**_SMOLLM2_360M)


def lora_smollm2_360m(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = False,
) -> TransformerDecoder:
    """SmolLM2 360M with LoRA/DoRA adapters; arguments as in :func:`lora_smollm2`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_smollm2(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                        lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                        quantize_base=quantize_base, **_SMOLLM2_360M)


def qlora_smollm2_360m(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = True,
) -> TransformerDecoder:
    """SmolLM2 360M with NF4 base weights (QLoRA) and LoRA/DoRA adapters.

    Arguments as in :func:`lora_smollm2`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_smollm2(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                        lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                        quantize_base=quantize_base, **_SMOLLM2_360M)


_SMOLLM2_1_7B: dict[str, Any] = dict(
    vocab_size=49_152,
    max_seq_len=8_192,
    rope_base=130000.0,
    num_layers=24,
    num_heads=32,
    num_kv_heads=32,
    embed_dim=2_048,
    intermediate_dim=8_192,
)


def smollm2_1_7b() -> TransformerDecoder:
    """SmolLM2 1.7B (1,711,376,384 parameters; tied embeddings).

    Returns:
        TransformerDecoder: the model (random weights).
    """
    return smollm2(**_SMOLLM2_1_7B)


def lora_smollm2_1_7b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = False,
) -> TransformerDecoder:
    """SmolLM2 1.7B with LoRA/DoRA adapters; arguments as in :func:`lora_smollm2`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_smollm2(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                        lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                        quantize_base=quantize_base, **_SMOLLM2_1_7B)


def qlora_smollm2_1_7b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = True,
) -> TransformerDecoder:
    """SmolLM2 1.7B with NF4 base weights (QLoRA) and LoRA/DoRA adapters.

    Arguments as in :func:`lora_smollm2`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_smollm2(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                        lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora,
                        quantize_base=quantize_base, **_SMOLLM2_1_7B)
