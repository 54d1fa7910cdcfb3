"""Qwen2.5 builder: sizes -> modules."""

from typing import Any

from torchtune.models._decoder_builder import build_decoder
from torchtune.models._lora_settings import LoRASettings
from torchtune.modules import TransformerDecoder
from torchtune.utils import forwards_kwargs


@forwards_kwargs(build_decoder)
def qwen2_5(
    *,
    vocab_size: int,
    num_layers: int,
    num_heads: int,
    num_kv_heads: int,
    embed_dim: int,
    intermediate_dim: int,
    max_seq_len: int,
    norm_eps: float = 1e-06,
    rope_base: float = 1000000.0,
    qkv_bias: bool = True,
    **options: Any,
) -> TransformerDecoder:
    """Build a Qwen2.5 decoder: GQA with q/k/v biases, SwiGLU, RoPE theta 1e6.

    :func:`~torchtune.models.build_decoder` with Qwen2.5's defaults (``norm_eps=1e-06``,
    ``rope_base=1000000.0``, ``qkv_bias=True``). Every other argument of ``build_decoder`` is taken as a
    keyword and passed on.

    Args:
        vocab_size (int): vocabulary size v.
        num_layers (int): number of layers.
        num_heads (int): query heads n_h.
        num_kv_heads (int): key/value heads n_kv; must divide ``num_heads``.
        embed_dim (int): model dim d.
        intermediate_dim (int): feed-forward hidden dim.
        max_seq_len (int): longest sequence (and RoPE cache length).
        norm_eps (float): RMSNorm epsilon. Default: 1e-06.
        rope_base (float): RoPE theta. Default: 1000000.0.
        qkv_bias (bool): biases on the q/k/v projections. Default: True.
        **options (Any): any other keyword argument of :func:`~torchtune.models.build_decoder`
            (``head_dim``, ``sliding_window``, ``tie_word_embeddings``, ``moe``, ``lora``, ...), with its
            defaults; this function's signature lists them all.

    Returns:
        TransformerDecoder: the model.

    Raises:
        ValueError: as :func:`~torchtune.models.build_decoder` (head counts that do not divide, per-layer
            lists of the wrong length, LoRA on a tied output).
        TypeError: on a keyword argument ``build_decoder`` does not take.
    """
    return build_decoder(
        vocab_size=vocab_size, num_layers=num_layers, num_heads=num_heads, num_kv_heads=num_kv_heads,
        embed_dim=embed_dim, intermediate_dim=intermediate_dim, max_seq_len=max_seq_len, norm_eps=norm_eps,
        rope_base=rope_base, qkv_bias=qkv_bias,
        **options,
    )


@forwards_kwargs(qwen2_5, exclude=("lora",))
def lora_qwen2_5(
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
    """:func:`qwen2_5` with LoRA/DoRA adapters (QLoRA with ``quantize_base``).

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
        **sizes (Any): the keyword arguments of :func:`qwen2_5` (shown in this signature).

    Returns:
        TransformerDecoder: the model with adapters.

    Raises:
        ValueError: on bad LoRA options (LoRA on a tied output included) or sizes.
    """
    lora = LoRASettings(tuple(lora_attn_modules), apply_lora_to_mlp, apply_lora_to_output,
                        lora_rank, lora_alpha, lora_dropout, use_dora, quantize_base)
    return qwen2_5(**sizes, lora=lora)
