"""SmolLM2 builder: sizes -> modules (the Llama architecture with tied embeddings)."""

from typing import Any

from torch import nn

from torchtune.models._decoder_builder import build_decoder
from torchtune.models._lora_settings import LoRASettings, MoESettings
from torchtune.modules import TransformerDecoder


def smollm2(
    *,
    vocab_size: int,
    num_layers: int,
    num_heads: int,
    num_kv_heads: int,
    embed_dim: int,
    intermediate_dim: int,
    max_seq_len: int,
    head_dim: int | None = None,
    attn_dropout: float = 0.0,
    norm_eps: float = 1e-05,
    rope_base: float = 100000.0,
    rope_scaling: dict[str, Any] | None = None,
    rotary_dim: int | None = None,
    qkv_bias: bool = False,
    output_proj_bias: bool = False,
    mlp_bias: bool = False,
    qk_norm: bool = False,
    tie_word_embeddings: bool = True,
    sliding_window: int | list[int | None] | None = None,
    rope_layers: list[bool] | None = None,
    local_rope_base: float | None = None,
    norm_offset: float = 0.0,
    mlp_activation: nn.Module | None = None,
    embed_scale: float | None = None,
    attn_scale: float | None = None,
    attn_softcapping: float | None = None,
    final_logit_softcapping: float | None = None,
    post_norms: bool = False,
    attention_sinks: bool = False,
    moe: MoESettings | None = None,
    lora: LoRASettings | None = None,
) -> TransformerDecoder:
    """Build a SmolLM2 decoder: Llama layers (GQA, SwiGLU, RoPE theta 1e5) with tied input and output embeddings.

    :func:`~torchtune.models.build_decoder` with SmolLM2's defaults (``norm_eps=1e-05``,
    ``rope_base=100000.0``, ``tie_word_embeddings=True``); the other arguments select features other families
    use.

    Args:
        vocab_size (int): vocabulary size v.
        num_layers (int): number of layers.
        num_heads (int): query heads n_h.
        num_kv_heads (int): key/value heads n_kv; must divide ``num_heads``.
        embed_dim (int): model dim d.
        intermediate_dim (int): feed-forward hidden dim.
        max_seq_len (int): longest sequence (and RoPE cache length).
        head_dim (int | None): per-head dim h_d; None means ``embed_dim // num_heads``. Default: None.
        attn_dropout (float): attention dropout. Default: 0.0.
        norm_eps (float): RMSNorm epsilon. Default: 1e-05.
        rope_base (float): RoPE theta. Default: 100000.0.
        rope_scaling (dict[str, Any] | None): Llama 3.1 RoPE frequency scaling (``factor``,
            ``low_freq_factor``, ``high_freq_factor``, ``original_max_position_embeddings``). Default: None.
        rotary_dim (int | None): rotated features per head; None means ``head_dim``. Default: None.
        qkv_bias (bool): biases on the q/k/v projections. Default: False.
        output_proj_bias (bool): bias on the attention output projection. Default: False.
        mlp_bias (bool): biases in the feed-forward projections. Default: False.
        qk_norm (bool): per-head RMSNorm of q and k. Default: False.
        tie_word_embeddings (bool): output reuses the embedding matrix. Default: True.
        sliding_window (int | list[int | None] | None): attention window of every layer, or one entry per
            layer. Default: None.
        rope_layers (list[bool] | None): one entry per layer, False for a layer without RoPE; None means RoPE
            on every layer. Default: None.
        local_rope_base (float | None): RoPE theta of the sliding-window layers; None means ``rope_base``.
            Default: None.
        norm_offset (float): RMSNorm offset. Default: 0.0.
        mlp_activation (nn.Module | None): gate activation; None means SiLU. Default: None.
        embed_scale (float | None): embedding multiplier. Default: None.
        attn_scale (float | None): attention logit scale; None means ``head_dim ** -0.5``. Default: None.
        attn_softcapping (float | None): attention-logit soft cap. Default: None.
        final_logit_softcapping (float | None): output-logit soft cap. Default: None.
        post_norms (bool): post-attention and post-feed-forward norms. Default: False.
        attention_sinks (bool): a learned sink logit per head in every attention. Default: False.
        moe (MoESettings | None): mixture-of-experts feed-forward layers. Default: None.
        lora (LoRASettings | None): adapters to add (see :func:`lora_smollm2`). Default: None.

    Returns:
        TransformerDecoder: the model.

    Raises:
        ValueError: as :func:`~torchtune.models.build_decoder` (head counts that do not divide, per-layer
            lists of the wrong length, LoRA on a tied output).
    """
    return build_decoder(
        vocab_size=vocab_size, num_layers=num_layers, num_heads=num_heads, num_kv_heads=num_kv_heads,
        embed_dim=embed_dim, intermediate_dim=intermediate_dim, max_seq_len=max_seq_len,
        head_dim=head_dim, attn_dropout=attn_dropout, norm_eps=norm_eps, rope_base=rope_base,
        rope_scaling=rope_scaling, rotary_dim=rotary_dim, qkv_bias=qkv_bias,
        output_proj_bias=output_proj_bias, mlp_bias=mlp_bias, qk_norm=qk_norm,
        tie_word_embeddings=tie_word_embeddings, sliding_window=sliding_window, rope_layers=rope_layers,
        local_rope_base=local_rope_base, norm_offset=norm_offset, mlp_activation=mlp_activation,
        embed_scale=embed_scale, attn_scale=attn_scale, attn_softcapping=attn_softcapping,
        final_logit_softcapping=final_logit_softcapping, post_norms=post_norms,
        attention_sinks=attention_sinks, moe=moe, lora=lora,
    )


def lora_smollm2(
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
    """:func:`smollm2` with LoRA/DoRA adapters (QLoRA with ``quantize_base``).

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
        **sizes (Any): the keyword arguments of :func:`smollm2`.

    Returns:
        TransformerDecoder: the model with adapters.

    Raises:
        ValueError: on bad LoRA options (LoRA on a tied output included) or sizes.
    """
    lora = LoRASettings(tuple(lora_attn_modules), apply_lora_to_mlp, apply_lora_to_output,
                        lora_rank, lora_alpha, lora_dropout, use_dora, quantize_base)
    return smollm2(**sizes, lora=lora)
