"""Phi-3 builders (also used by Phi-4): a Llama-style decoder with SwiGLU, untied output and an
optional sliding window on every layer. Hugging Face fuses ``qkv_proj`` and ``gate_up_proj``;
here they are separate projections, split when converting checkpoints."""

from typing import Any

from torchtune.models._decoder_builder import build_decoder
from torchtune.models._lora_settings import LoRASettings
from torchtune.modules import TransformerDecoder
from torchtune.utils import deprecated_arguments, forwards_kwargs


@deprecated_arguments(positional=(
    "vocab_size", "num_layers", "num_heads", "num_kv_heads", "embed_dim", "intermediate_dim", "max_seq_len",
    "attn_dropout", "norm_eps", "rope_base", "sliding_window", "lora",
))  # positional arguments: deprecated in 0.2
def phi3(
    *,
    vocab_size: int,
    num_layers: int,
    num_heads: int,
    num_kv_heads: int,
    embed_dim: int,
    intermediate_dim: int,
    max_seq_len: int,
    attn_dropout: float = 0.0,
    norm_eps: float = 1e-5,
    rope_base: float = 10_000,
    sliding_window: int | None = None,
    lora: LoRASettings | None = None,
) -> TransformerDecoder:
    """Build a Phi-3 / Phi-4 decoder (``head_dim = embed_dim // num_heads``).

    Args:
        vocab_size (int): vocabulary size v.
        num_layers (int): number of decoder layers.
        num_heads (int): query heads n_h.
        num_kv_heads (int): key/value heads n_kv.
        embed_dim (int): model dimension d.
        intermediate_dim (int): feed-forward hidden size.
        max_seq_len (int): longest sequence.
        attn_dropout (float): attention dropout. Default: 0.0.
        norm_eps (float): RMSNorm epsilon. Default: 1e-5.
        rope_base (float): RoPE theta. Default: 10000.
        sliding_window (int | None): attention window of every layer. Default: None.
        lora (LoRASettings | None): adapters to add (see :func:`lora_phi3`). Default: None.

    Returns:
        TransformerDecoder: the model with an untied output projection.

    Raises:
        ValueError: when ``num_heads`` does not divide ``embed_dim`` or ``num_kv_heads`` does
            not divide ``num_heads``.
    """
    return build_decoder(
        vocab_size=vocab_size, num_layers=num_layers, num_heads=num_heads, num_kv_heads=num_kv_heads,
        embed_dim=embed_dim, intermediate_dim=intermediate_dim, max_seq_len=max_seq_len,
        attn_dropout=attn_dropout, norm_eps=norm_eps, rope_base=rope_base,
        sliding_window=sliding_window, lora=lora,
    )


@forwards_kwargs(phi3, exclude=("lora",))
def lora_phi3(
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
    """:func:`phi3` with LoRA/DoRA adapters (QLoRA with ``quantize_base``).

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
        **sizes (Any): the keyword arguments of :func:`phi3` (shown in this signature).

    Returns:
        TransformerDecoder: the model with adapters.

    Raises:
        ValueError: on bad LoRA options (LoRA on a tied output included) or sizes.
    """
    lora = LoRASettings(tuple(lora_attn_modules), apply_lora_to_mlp, apply_lora_to_output,
                        lora_rank, lora_alpha, lora_dropout, use_dora, quantize_base)
    return phi3(**sizes, lora=lora)
