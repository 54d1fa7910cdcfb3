"""Gemma 3 (text) builders: Gemma 2's four ``(1 + w)`` norms per layer, GeGLU and scaled, tied
embeddings, plus per-head q/k RMSNorm, five sliding-window (local) layers for each global one,
and a separate RoPE theta for the local layers (global layers of the 4B-27B models also stretch
positions by a linear factor of 8). There is no attention-logit soft-cap."""

from torchtune.models._decoder_builder import build_decoder
from torchtune.models._family_facts import (
    GEMMA3_SLIDING_WINDOW_PATTERN,
    GEMMA_NORM_OFFSET,
    gemma3_sliding_windows,
    gemma_activation,
    gemma_embed_scale,
)
from torchtune.models._lora_settings import LoRASettings
from torchtune.modules import TransformerDecoder
from torchtune.utils import forwards_kwargs


def gemma3(
    *,
    vocab_size: int,
    num_layers: int,
    num_heads: int,
    head_dim: int,
    num_kv_heads: int,
    embed_dim: int,
    intermediate_dim: int,
    max_seq_len: int,
    sliding_window: int | None,
    sliding_window_pattern: int = GEMMA3_SLIDING_WINDOW_PATTERN,
    norm_eps: float = 1e-6,
    rope_base: float = 1_000_000.0,
    local_rope_base: float = 10_000.0,
    rope_scaling_factor: float | None = None,
    query_pre_attn_scalar: float | None = None,
    final_logit_softcapping: float | None = None,
    attn_dropout: float = 0.0,
    lora: LoRASettings | None = None,
) -> TransformerDecoder:
    """Build a Gemma 3 text decoder.

    Args:
        vocab_size (int): vocabulary size v.
        num_layers (int): number of layers.
        num_heads (int): query heads n_h.
        head_dim (int): per-head dim h_d.
        num_kv_heads (int): key/value heads n_kv.
        embed_dim (int): model dim d.
        intermediate_dim (int): feed-forward hidden dim.
        max_seq_len (int): longest sequence.
        sliding_window (int | None): window of the local layers.
        sliding_window_pattern (int): one global layer in this many. Default: 6.
        norm_eps (float): RMSNorm epsilon. Default: 1e-6.
        rope_base (float): RoPE theta of the global layers. Default: 1e6.
        local_rope_base (float): RoPE theta of the local layers. Default: 1e4.
        rope_scaling_factor (float | None): linear RoPE scaling of the global layers (8 for
            the 4B, 12B and 27B models); None for none. Default: None.
        query_pre_attn_scalar (float | None): attention logits are scaled by
            ``query_pre_attn_scalar ** -0.5``; None means ``head_dim``. Default: None.
        final_logit_softcapping (float | None): output-logit soft cap. Default: None.
        attn_dropout (float): attention dropout. Default: 0.0.
        lora (LoRASettings | None): adapters to add (see :func:`lora_gemma3`). Default: None.

    Returns:
        TransformerDecoder: the model, output tied to the embeddings.

    Raises:
        ValueError: on inconsistent head counts, a non-positive ``query_pre_attn_scalar`` or
            ``sliding_window_pattern``, or LoRA on the (tied) output.
    """
    scalar = query_pre_attn_scalar if query_pre_attn_scalar is not None else head_dim
    if scalar <= 0:
        raise ValueError(f"query_pre_attn_scalar={query_pre_attn_scalar} must be positive")
    scaling = {"rope_type": "linear", "factor": float(rope_scaling_factor)} if rope_scaling_factor else None
    return build_decoder(
        vocab_size=vocab_size, num_layers=num_layers, num_heads=num_heads, num_kv_heads=num_kv_heads,
        embed_dim=embed_dim, intermediate_dim=intermediate_dim, max_seq_len=max_seq_len, head_dim=head_dim,
        attn_dropout=attn_dropout, norm_eps=norm_eps, rope_base=rope_base, rope_scaling=scaling,
        local_rope_base=local_rope_base, qk_norm=True, tie_word_embeddings=True, norm_offset=GEMMA_NORM_OFFSET,
        mlp_activation=gemma_activation(), embed_scale=gemma_embed_scale(embed_dim), attn_scale=scalar**-0.5,
        final_logit_softcapping=final_logit_softcapping, post_norms=True,
        sliding_window=gemma3_sliding_windows(num_layers, sliding_window, sliding_window_pattern), lora=lora,
    )


@forwards_kwargs(gemma3, exclude=("lora",))
def lora_gemma3(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    **sizes: int | float | None,
) -> TransformerDecoder:
    """:func:`gemma3` with LoRA/DoRA adapters.

    Args:
        lora_attn_modules (list[str]): any of q_proj, k_proj, v_proj, output_proj.
        apply_lora_to_mlp (bool): adapt the feed-forward projections. Default: False.
        apply_lora_to_output (bool): must stay False (the output is tied). Default: False.
        lora_rank (int): adapter rank. Default: 8.
        lora_alpha (float): adapter alpha. Default: 16.
        lora_dropout (float): adapter dropout. Default: 0.0.
        use_dora (bool): DoRA instead of LoRA. Default: False.
        **sizes (int | float | None): the keyword arguments of :func:`gemma3` (shown in this signature).

    Returns:
        TransformerDecoder: the model with adapters.

    Raises:
        ValueError: on bad LoRA options (LoRA on the tied output included) or sizes.
    """
    lora = LoRASettings(tuple(lora_attn_modules), apply_lora_to_mlp, apply_lora_to_output,
                        lora_rank, lora_alpha, lora_dropout, use_dora)
    return gemma3(**sizes, lora=lora)
