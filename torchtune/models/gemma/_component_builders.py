"""Gemma (v1) builders: GeGLU (tanh GELU) feed-forward, ``(1 + scale)`` RMSNorm, output tied to
the embeddings and embeddings scaled by ``sqrt(embed_dim)``."""

from typing import Any

from torchtune.models._decoder_builder import build_decoder
from torchtune.models._family_facts import GEMMA_NORM_OFFSET, gemma_activation, gemma_embed_scale
from torchtune.models._lora_settings import LoRASettings
from torchtune.modules import TransformerDecoder
from torchtune.utils import deprecated_arguments, forwards_kwargs


@deprecated_arguments(positional=(
    "vocab_size", "num_layers", "num_heads", "head_dim", "num_kv_heads", "embed_dim", "intermediate_dim",
    "max_seq_len", "attn_dropout", "norm_eps", "rope_base", "lora",
))  # positional arguments: deprecated in 0.2
def gemma(
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
    lora: LoRASettings | None = None,
) -> TransformerDecoder:
    """Build a Gemma decoder.

    Args:
        vocab_size (int): vocabulary size v.
        num_layers (int): number of decoder layers.
        num_heads (int): query heads n_h.
        head_dim (int): per-head dimension h_d (Gemma sets it explicitly: 256).
        num_kv_heads (int): key/value heads n_kv.
        embed_dim (int): model dimension d.
        intermediate_dim (int): feed-forward hidden size.
        max_seq_len (int): longest sequence.
        attn_dropout (float): attention dropout. Default: 0.0.
        norm_eps (float): RMSNorm epsilon. Default: 1e-6.
        rope_base (float): RoPE theta. Default: 10000.
        lora (LoRASettings | None): adapters to add (see :func:`lora_gemma`). Default: None.

    Returns:
        TransformerDecoder: the model, output tied to the embeddings.

    Raises:
        ValueError: on inconsistent head counts or LoRA on the (tied) output.
    """
    return build_decoder(
        vocab_size=vocab_size, num_layers=num_layers, num_heads=num_heads, num_kv_heads=num_kv_heads,
        embed_dim=embed_dim, intermediate_dim=intermediate_dim, max_seq_len=max_seq_len,
        head_dim=head_dim, attn_dropout=attn_dropout, norm_eps=norm_eps, rope_base=rope_base,
        tie_word_embeddings=True, norm_offset=GEMMA_NORM_OFFSET,
        mlp_activation=gemma_activation(), embed_scale=gemma_embed_scale(embed_dim), lora=lora,
    )


@forwards_kwargs(gemma, exclude=("lora",))
def lora_gemma(
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
    """:func:`gemma` with LoRA/DoRA adapters (QLoRA with ``quantize_base``).

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
        **sizes (Any): the keyword arguments of :func:`gemma` (shown in this signature).

    Returns:
        TransformerDecoder: the model with adapters.

    Raises:
        ValueError: on bad LoRA options (LoRA on a tied output included) or sizes.
    """
    lora = LoRASettings(tuple(lora_attn_modules), apply_lora_to_mlp, apply_lora_to_output,
                        lora_rank, lora_alpha, lora_dropout, use_dora, quantize_base)
    return gemma(**sizes, lora=lora)
