"""Gemma 2 builders: Gemma plus post-attention/post-feed-forward norms, attention- and
output-logit soft-capping, a ``query_pre_attn_scalar`` attention scale and a sliding window on
every other layer (0, 2, 4, ... as in Hugging Face's ``layer_types``)."""

from typing import Any

from torchtune.models._decoder_builder import build_decoder
from torchtune.models._family_facts import (
    GEMMA2_ATTN_SOFTCAPPING,
    GEMMA2_FINAL_LOGIT_SOFTCAPPING,
    GEMMA2_SLIDING_WINDOW,
    GEMMA_NORM_OFFSET,
    gemma2_sliding_windows,
    gemma_activation,
    gemma_embed_scale,
)
from torchtune.models._lora_settings import LoRASettings
from torchtune.modules import TransformerDecoder
from torchtune.utils import deprecated_arguments, forwards_kwargs


@deprecated_arguments(
    positional=(
        "vocab_size", "num_layers", "num_heads", "head_dim", "num_kv_heads", "embed_dim", "intermediate_dim",
        "max_seq_len", "attn_dropout", "norm_eps", "rope_base", "hidden_capping_value", "final_capping_value",
        "sliding_window_size", "query_pre_attn_scalar", "lora",
    ),
    renamed={
        "hidden_capping_value": "attn_softcapping",
        "final_capping_value": "final_logit_softcapping",
        "sliding_window_size": "sliding_window",
    },
)  # positional arguments and the old names: deprecated in 0.2
def gemma2(
    *,
    vocab_size: int,
    num_layers: int,
    num_heads: int,
    head_dim: int,
    num_kv_heads: int,
    embed_dim: int,
    intermediate_dim: int,
    max_seq_len: int,
    attn_dropout: float = 0.0,
    norm_eps: float = 1e-6,
    rope_base: float = 10_000,
    attn_softcapping: float | None = GEMMA2_ATTN_SOFTCAPPING,
    final_logit_softcapping: float | None = GEMMA2_FINAL_LOGIT_SOFTCAPPING,
    sliding_window: int | None = GEMMA2_SLIDING_WINDOW,
    query_pre_attn_scalar: float | None = None,
    lora: LoRASettings | None = None,
) -> TransformerDecoder:
    """Build a Gemma 2 decoder.

    Args:
        vocab_size (int): vocabulary size v.
        num_layers (int): number of decoder layers.
        num_heads (int): query heads n_h.
        head_dim (int): per-head dimension h_d.
        num_kv_heads (int): key/value heads n_kv.
        embed_dim (int): model dimension d.
        intermediate_dim (int): feed-forward hidden size.
        max_seq_len (int): longest sequence.
        attn_dropout (float): attention dropout. Default: 0.0.
        norm_eps (float): RMSNorm epsilon. Default: 1e-6.
        rope_base (float): RoPE theta. Default: 10000.
        attn_softcapping (float | None): attention-logit soft cap (formerly
            ``hidden_capping_value``). Default: 50.0.
        final_logit_softcapping (float | None): output-logit soft cap (formerly
            ``final_capping_value``). Default: 30.0.
        sliding_window (int | None): window of the even layers (formerly
            ``sliding_window_size``). Default: 4096.
        query_pre_attn_scalar (float | None): attention logits are scaled by
            ``query_pre_attn_scalar ** -0.5``; None means ``head_dim``. Default: None.
        lora (LoRASettings | None): adapters to add (see :func:`lora_gemma2`). Default: None.

    Returns:
        TransformerDecoder: the model, output tied to the embeddings.

    Raises:
        ValueError: on inconsistent head counts, a non-positive ``query_pre_attn_scalar`` or
            LoRA on the (tied) output.
    """
    scalar = query_pre_attn_scalar if query_pre_attn_scalar is not None else head_dim
    if scalar <= 0:
        raise ValueError(f"query_pre_attn_scalar={query_pre_attn_scalar} must be positive")
    return build_decoder(
        vocab_size=vocab_size, num_layers=num_layers, num_heads=num_heads, num_kv_heads=num_kv_heads,
        embed_dim=embed_dim, intermediate_dim=intermediate_dim, max_seq_len=max_seq_len,
        head_dim=head_dim, attn_dropout=attn_dropout, norm_eps=norm_eps, rope_base=rope_base,
        tie_word_embeddings=True, norm_offset=GEMMA_NORM_OFFSET,
        mlp_activation=gemma_activation(), embed_scale=gemma_embed_scale(embed_dim),
        attn_scale=scalar**-0.5, attn_softcapping=attn_softcapping,
        final_logit_softcapping=final_logit_softcapping, post_norms=True,
        sliding_window=gemma2_sliding_windows(num_layers, sliding_window), lora=lora,
    )


@forwards_kwargs(gemma2, exclude=("lora",))
def lora_gemma2(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = False,
    **sizes: Any,
) -> TransformerDecoder:
    """:func:`gemma2` with LoRA/DoRA adapters (QLoRA with ``quantize_base``).

    Args:
        lora_attn_modules (list[str]): any of q_proj, k_proj, v_proj, output_proj.
        apply_lora_to_mlp (bool): adapt the feed-forward projections. Default: False.
        apply_lora_to_output (bool): adapt the output projection (not with tied embeddings).
            Default: False.
        lora_rank (int): adapter rank. Default: 8.
        lora_alpha (float): adapter alpha. Default: 16.
        lora_dropout (float): adapter dropout. Default: 0.0.
        use_dora (bool): DoRA instead of LoRA. Default: False.
        quantize_base (bool): NF4 base weights under the adapters (QLoRA; needs the ``quant``
            extra). Default: False.
        **sizes (Any): the keyword arguments of :func:`gemma2` (shown in this signature).

    Returns:
        TransformerDecoder: the model with adapters.

    Raises:
        ValueError: on bad LoRA options (LoRA on a tied output included) or sizes.
    """
    lora = LoRASettings(tuple(lora_attn_modules), apply_lora_to_mlp, apply_lora_to_output,
                        lora_rank, lora_alpha, lora_dropout, use_dora, quantize_base)
    return gemma2(**sizes, lora=lora)
