"""Llama 3 builders: sizes -> modules."""

import logging

from torchtune.models._decoder_builder import build_decoder
from torchtune.models._lora_settings import LoRASettings, lora_builder
from torchtune.modules import TransformerDecoder

logger = logging.getLogger(__name__)


def llama3(
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
    rope_base: float = 500000.0,
    scale_factor: float | None = None,
    low_freq_factor: float = 1.0,
    high_freq_factor: float = 4.0,
    original_max_seq_len: int = 8192,
    tie_word_embeddings: bool = False,
    lora: LoRASettings | None = None,
) -> TransformerDecoder:
    """Llama 3 / 3.1 / 3.2 / 3.3: GQA, SwiGLU, RoPE theta 5e5 with optional 3.1 scaling.

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
        rope_base (float): RoPE theta. Default: 500000.
        scale_factor (float | None): Llama 3.1 RoPE scaling factor; None = no scaling.
        low_freq_factor (float): RoPE scaling low-frequency factor. Default: 1.0.
        high_freq_factor (float): RoPE scaling high-frequency factor. Default: 4.0.
        original_max_seq_len (int): context length before scaling. Default: 8192.
        tie_word_embeddings (bool): share embedding and output (Llama 3.2). Default: False.
        lora (LoRASettings | None): adapters. Default: None.

    Returns:
        TransformerDecoder: the model.
    """
    scaling = None
    if scale_factor is not None:
        scaling = {
            "factor": scale_factor, "low_freq_factor": low_freq_factor,
            "high_freq_factor": high_freq_factor, "original_max_position_embeddings": original_max_seq_len,
        }
    return build_decoder(
        vocab_size=vocab_size, num_layers=num_layers, num_heads=num_heads, num_kv_heads=num_kv_heads,
        embed_dim=embed_dim, intermediate_dim=intermediate_dim, max_seq_len=max_seq_len,
        attn_dropout=attn_dropout, norm_eps=norm_eps, rope_base=rope_base, rope_scaling=scaling,
        tie_word_embeddings=tie_word_embeddings, lora=lora,
    )


lora_llama3 = lora_builder(llama3, "lora_llama3", __name__)
