"""SmolLM3 builders: a Llama decoder (GQA, SwiGLU, tied embeddings) without RoPE on every
``no_rope_layer_interval``-th layer (layers 3, 7, 11, ... for the published interval of 4)."""

from torchtune.models._decoder_builder import build_decoder
from torchtune.models._lora_settings import LoRASettings
from torchtune.modules import TransformerDecoder
from torchtune.utils import forwards_kwargs


def smollm3_rope_layers(num_layers: int, no_rope_layer_interval: int = 4) -> list[bool]:
    """Which layers use RoPE: all but every ``no_rope_layer_interval``-th (1-based) layer.

    Args:
        num_layers (int): number of layers.
        no_rope_layer_interval (int): a NoPE layer every this many layers. Default: 4.

    Returns:
        list[bool]: one entry per layer, False for a NoPE layer.

    Raises:
        ValueError: when ``no_rope_layer_interval`` is not a positive integer.
    """
    if no_rope_layer_interval <= 0:
        raise ValueError(f"no_rope_layer_interval={no_rope_layer_interval} must be a positive integer")
    return [(i + 1) % no_rope_layer_interval != 0 for i in range(num_layers)]


def smollm3(
    *,
    vocab_size: int,
    num_layers: int,
    num_heads: int,
    num_kv_heads: int,
    embed_dim: int,
    intermediate_dim: int,
    max_seq_len: int,
    norm_eps: float = 1e-6,
    rope_base: float = 5_000_000.0,
    no_rope_layer_interval: int = 4,
    tie_word_embeddings: bool = True,
    attn_dropout: float = 0.0,
    lora: LoRASettings | None = None,
) -> TransformerDecoder:
    """Build a SmolLM3 decoder.

    Args:
        vocab_size (int): vocabulary size v.
        num_layers (int): number of layers.
        num_heads (int): query heads n_h.
        num_kv_heads (int): key/value heads n_kv; must divide ``num_heads``.
        embed_dim (int): model dim d (head dim ``d // n_h``).
        intermediate_dim (int): feed-forward hidden dim.
        max_seq_len (int): longest sequence (and RoPE cache length).
        norm_eps (float): RMSNorm epsilon. Default: 1e-6.
        rope_base (float): RoPE theta of the RoPE layers. Default: 5e6.
        no_rope_layer_interval (int): every this many layers one has no positional
            embeddings. Default: 4.
        tie_word_embeddings (bool): output reuses the embedding matrix. Default: True.
        attn_dropout (float): attention dropout. Default: 0.0.
        lora (LoRASettings | None): adapters to add (see :func:`lora_smollm3`). Default: None.

    Returns:
        TransformerDecoder: the model.

    Raises:
        ValueError: on inconsistent head counts or a non-positive ``no_rope_layer_interval``.
    """
    return build_decoder(
        vocab_size=vocab_size, num_layers=num_layers, num_heads=num_heads, num_kv_heads=num_kv_heads,
        embed_dim=embed_dim, intermediate_dim=intermediate_dim, max_seq_len=max_seq_len, norm_eps=norm_eps,
        rope_base=rope_base, attn_dropout=attn_dropout, tie_word_embeddings=tie_word_embeddings,
        rope_layers=smollm3_rope_layers(num_layers, no_rope_layer_interval), lora=lora,
    )


@forwards_kwargs(smollm3, exclude=("lora",))
def lora_smollm3(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    **sizes: int | float | bool,
) -> TransformerDecoder:
    """:func:`smollm3` with LoRA/DoRA adapters.

    Args:
        lora_attn_modules (list[str]): any of q_proj, k_proj, v_proj, output_proj.
        apply_lora_to_mlp (bool): adapt the feed-forward projections. Default: False.
        apply_lora_to_output (bool): adapt the output projection (not with tied embeddings).
            Default: False.
        lora_rank (int): adapter rank. Default: 8.
        lora_alpha (float): adapter alpha. Default: 16.
        lora_dropout (float): adapter dropout. Default: 0.0.
        use_dora (bool): DoRA instead of LoRA. Default: False.
        **sizes (int | float | bool): the keyword arguments of :func:`smollm3` (shown in this signature).

    Returns:
        TransformerDecoder: the model with adapters.

    Raises:
        ValueError: on bad LoRA options or sizes.
    """
    lora = LoRASettings(tuple(lora_attn_modules), apply_lora_to_mlp, apply_lora_to_output,
                        lora_rank, lora_alpha, lora_dropout, use_dora)
    return smollm3(**sizes, lora=lora)
