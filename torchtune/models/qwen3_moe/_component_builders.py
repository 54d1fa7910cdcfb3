"""Qwen3-MoE builders: Qwen3 attention (GQA, per-head q/k RMSNorm, RoPE theta 1e6) with a
mixture-of-experts feed-forward in every layer (softmax router, top-k of E experts, the chosen
weights renormalised, no shared expert)."""

from torchtune.models._decoder_builder import build_decoder
from torchtune.models._lora_settings import LoRASettings, MoESettings
from torchtune.modules import TransformerDecoder
from torchtune.utils import forwards_kwargs


def qwen3_moe(
    *,
    vocab_size: int,
    num_layers: int,
    num_heads: int,
    num_kv_heads: int,
    head_dim: int,
    embed_dim: int,
    num_experts: int,
    num_experts_per_tok: int,
    moe_intermediate_dim: int,
    max_seq_len: int,
    norm_topk_prob: bool = True,
    intermediate_dim: int | None = None,
    mlp_only_layers: list[int] | None = None,
    norm_eps: float = 1e-6,
    rope_base: float = 1_000_000.0,
    tie_word_embeddings: bool = False,
    attn_dropout: float = 0.0,
    lora: LoRASettings | None = None,
) -> TransformerDecoder:
    """Build a Qwen3-MoE decoder.

    Args:
        vocab_size (int): vocabulary size v.
        num_layers (int): number of layers.
        num_heads (int): query heads n_h.
        num_kv_heads (int): key/value heads n_kv.
        head_dim (int): per-head dim h_d.
        embed_dim (int): model dim d.
        num_experts (int): routed experts per layer E.
        num_experts_per_tok (int): experts per token k.
        moe_intermediate_dim (int): each expert's hidden dim.
        max_seq_len (int): longest sequence.
        norm_topk_prob (bool): renormalise the k chosen weights. Default: True.
        intermediate_dim (int | None): hidden dim of the dense layers in ``mlp_only_layers``.
            Default: None (needed only with ``mlp_only_layers``).
        mlp_only_layers (list[int] | None): layers with a dense feed-forward instead. Default: None.
        norm_eps (float): RMSNorm epsilon. Default: 1e-6.
        rope_base (float): RoPE theta. Default: 1e6.
        tie_word_embeddings (bool): output reuses the embedding matrix. Default: False.
        attn_dropout (float): attention dropout. Default: 0.0.
        lora (LoRASettings | None): adapters; ``apply_to_mlp`` puts one on every expert.
            Default: None.

    Returns:
        TransformerDecoder: the model.

    Raises:
        ValueError: on inconsistent sizes, ``mlp_only_layers`` without ``intermediate_dim`` or
            out of range, or DoRA/dropout with ``apply_lora_to_mlp`` on MoE layers.
    """
    dense = set(mlp_only_layers or [])
    if dense and intermediate_dim is None:
        raise ValueError(f"mlp_only_layers={sorted(dense)} needs intermediate_dim for the dense layers")
    bad = sorted(i for i in dense if not 0 <= i < num_layers)
    if bad:
        raise ValueError(f"mlp_only_layers has {bad}, outside [0, num_layers={num_layers})")
    moe = MoESettings(num_experts=num_experts, top_k=num_experts_per_tok, hidden_dim=moe_intermediate_dim,
                      norm_topk_prob=norm_topk_prob, layers=tuple(i not in dense for i in range(num_layers)))
    return build_decoder(
        vocab_size=vocab_size, num_layers=num_layers, num_heads=num_heads, num_kv_heads=num_kv_heads,
        embed_dim=embed_dim, intermediate_dim=intermediate_dim or moe_intermediate_dim, max_seq_len=max_seq_len,
        head_dim=head_dim, attn_dropout=attn_dropout, norm_eps=norm_eps, rope_base=rope_base, qk_norm=True,
        tie_word_embeddings=tie_word_embeddings, moe=moe, lora=lora,
    )


@forwards_kwargs(qwen3_moe, exclude=("lora",))
def lora_qwen3_moe(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    **sizes: int | float | bool | list[int] | None,
) -> TransformerDecoder:
    """:func:`qwen3_moe` with LoRA/DoRA adapters on the attention (and output) projections, and
    optionally LoRA on every expert.

    Args:
        lora_attn_modules (list[str]): any of q_proj, k_proj, v_proj, output_proj.
        apply_lora_to_mlp (bool): a LoRA adapter on every expert's projections (dense layers:
            on their feed-forward). Default: False.
        apply_lora_to_output (bool): adapt the output projection. Default: False.
        lora_rank (int): adapter rank. Default: 8.
        lora_alpha (float): adapter alpha. Default: 16.
        lora_dropout (float): adapter dropout. Default: 0.0.
        use_dora (bool): DoRA instead of LoRA. Default: False.
        **sizes (int | float | bool | list[int] | None): the keyword arguments of :func:`qwen3_moe` (shown in this signature).

    Returns:
        TransformerDecoder: the model with adapters.

    Raises:
        ValueError: on bad LoRA options (DoRA or dropout with ``apply_lora_to_mlp``) or sizes.
    """
    lora = LoRASettings(tuple(lora_attn_modules), apply_lora_to_mlp, apply_lora_to_output,
                        lora_rank, lora_alpha, lora_dropout, use_dora)
    return qwen3_moe(**sizes, lora=lora)
