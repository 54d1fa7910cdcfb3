"""Qwen3 builders: sizes -> modules."""

import logging

from torchtune.models._decoder_builder import build_decoder
from torchtune.models._lora_settings import LoRASettings, lora_builder
from torchtune.modules import TransformerDecoder

logger = logging.getLogger(__name__)


def qwen3(
    *,
    vocab_size: int,
    num_layers: int,
    num_heads: int,
    num_kv_heads: int,
    embed_dim: int,
    head_dim: int,
    max_seq_len: int,
    intermediate_dim: int,
    attn_dropout: float = 0.0,
    norm_eps: float = 1e-6,
    rope_base: float = 1000000.0,
    tie_word_embeddings: bool = False,
    lora: LoRASettings | None = None,
) -> TransformerDecoder:
    """Qwen3: GQA with per-head q/k RMSNorm, explicit head dim, SwiGLU, RoPE theta 1e6.

    Args:
        vocab_size (int): vocabulary size.
        num_layers (int): number of layers.
        num_heads (int): query heads.
        num_kv_heads (int): key/value heads (must divide ``num_heads``).
        embed_dim (int): model dim.
        head_dim (int): per-head dim (need not equal ``embed_dim // num_heads``).
        max_seq_len (int): longest sequence.
        intermediate_dim (int): feed-forward hidden dim.
        attn_dropout (float): attention dropout. Default: 0.0.
        norm_eps (float): RMSNorm epsilon. Default: 1e-6.
        rope_base (float): RoPE theta. Default: 1e6.
        tie_word_embeddings (bool): share embedding and output. Default: False.
        lora (LoRASettings | None): adapters. Default: None.

    Returns:
        TransformerDecoder: the model.
    """
    return build_decoder(
        vocab_size=vocab_size, num_layers=num_layers, num_heads=num_heads, num_kv_heads=num_kv_heads,
        embed_dim=embed_dim, head_dim=head_dim, intermediate_dim=intermediate_dim, max_seq_len=max_seq_len,
        attn_dropout=attn_dropout, norm_eps=norm_eps, rope_base=rope_base, qk_norm=True,
        tie_word_embeddings=tie_word_embeddings, lora=lora,
    )


lora_qwen3 = lora_builder(qwen3, "lora_qwen3", __name__)
