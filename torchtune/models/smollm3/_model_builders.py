"""SmolLM3 presets with the sizes of the published ``HuggingFaceTB/SmolLM3-3B`` ``config.json``."""

from typing import Any

from torchtune.models.smollm3._component_builders import lora_smollm3, smollm3
from torchtune.modules import TransformerDecoder

_SMOLLM3_3B: dict[str, Any] = dict(
    vocab_size=128_256, num_layers=36, num_heads=16, num_kv_heads=4, embed_dim=2048,
    intermediate_dim=11_008, max_seq_len=65_536, norm_eps=1e-6, rope_base=5_000_000.0,
    no_rope_layer_interval=4, tie_word_embeddings=True,
)


def smollm3_3b() -> TransformerDecoder:
    """SmolLM3 3B (3,075,098,624 parameters; tied embeddings, NoPE on layers 3, 7, ..., 35).

    Returns:
        TransformerDecoder: the model (random weights).
    """
    return smollm3(**_SMOLLM3_3B)


def lora_smollm3_3b(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
) -> TransformerDecoder:
    """SmolLM3 3B with LoRA/DoRA adapters; arguments as in :func:`lora_smollm3`.

    Returns:
        TransformerDecoder: the model with adapters (random weights).
    """
    return lora_smollm3(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
                        lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora, **_SMOLLM3_3B)
