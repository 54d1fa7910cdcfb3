"""Llama 2 builders: sizes -> modules."""

import logging

from torchtune.models._decoder_builder import build_decoder
from torchtune.models._lora_settings import LoRASettings, lora_builder
from torchtune.modules import TransformerDecoder

logger = logging.getLogger(__name__)


def llama2(
    *,
    vocab_size: int,
    num_layers: int,
    num_heads: int,
    num_kv_heads: int,
    embed_dim: int,
    max_seq_len: int,
    intermediate_dim: int,
    attn_dropout: float = 0.0,
    norm_eps: float = 1e-5,
    rope_base: float = 10000.0,
    lora: LoRASettings | None = None,
) -> TransformerDecoder:
    """Llama 2: RMSNorm, RoPE (theta 1e4), GQA/MHA, SwiGLU, untied output.

    Args:
        vocab_size (int): vocabulary size.
        num_layers (int): number of layers.
        num_heads (int): query heads (must divide ``embed_dim``).
        num_kv_heads (int): key/value heads (must divide ``num_heads``).
        embed_dim (int): model dim.
        max_seq_len (int): longest sequence.
        intermediate_dim (int): feed-forward hidden dim.
        attn_dropout (float): attention dropout. Default: 0.0.
        norm_eps (float): RMSNorm epsilon. Default: 1e-5.
        rope_base (float): RoPE theta. Default: 10000.
        lora (LoRASettings | None): adapters. Default: None.

    Returns:
        TransformerDecoder: the model.
    """
    return build_decoder(
        vocab_size=vocab_size, num_layers=num_layers, num_heads=num_heads, num_kv_heads=num_kv_heads,
        embed_dim=embed_dim, intermediate_dim=intermediate_dim, max_seq_len=max_seq_len,
        attn_dropout=attn_dropout, norm_eps=norm_eps, rope_base=rope_base, lora=lora,
    )


lora_llama2 = lora_builder(llama2, "lora_llama2", __name__)
