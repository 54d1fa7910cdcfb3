"""Phi-3 builders (also used by Phi-4): a Llama-style decoder with SwiGLU, untied output and an
optional sliding window on every layer. Hugging Face fuses ``qkv_proj`` and ``gate_up_proj``;
here they are separate projections, split when converting checkpoints."""

from torchtune.models._decoder_builder import build_decoder
from torchtune.models._lora_settings import LoRASettings, lora_builder
from torchtune.modules import TransformerDecoder


def phi3(
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


lora_phi3 = lora_builder(phi3, "lora_phi3", __name__)
