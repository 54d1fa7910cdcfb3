"""One builder for every Llama-shaped decoder (Llama, Mistral, Qwen, Gemma, Phi-3, SmolLM3, gpt-oss)."""

from typing import Any

from torch import nn

from torchtune.models._lora_settings import LoRASettings, MoESettings, make_linear
from torchtune.modules.peft import ExpertLoRA
from torchtune.modules import (
    ClampedSwiGLU,
    FeedForward,
    GroupedExperts,
    MoE,
    TopKRouter,
    MultiHeadAttention,
    RMSNorm,
    RotaryPositionalEmbeddings,
    TiedLinear,
    TransformerDecoder,
    TransformerSelfAttentionLayer,
)


def _check_sizes(embed_dim: int, num_heads: int, num_kv_heads: int, head_dim: int | None) -> int:
    for arg, value in (("embed_dim", embed_dim), ("num_heads", num_heads), ("num_kv_heads", num_kv_heads)):
        if value <= 0:
            raise ValueError(f"{arg}={value} must be a positive integer")
    if head_dim is None:
        if embed_dim % num_heads:
            raise ValueError(f"num_heads={num_heads} must divide embed_dim={embed_dim} (or pass head_dim)")
        head_dim = embed_dim // num_heads
    if num_heads % num_kv_heads:
        raise ValueError(f"num_kv_heads={num_kv_heads} must divide num_heads={num_heads}")
    return head_dim


def build_decoder(
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
    norm_eps: float = 1e-5,
    rope_base: float = 10000.0,
    rope_scaling: dict[str, Any] | None = None,
    rotary_dim: int | None = None,
    qkv_bias: bool = False,
    output_proj_bias: bool = False,
    mlp_bias: bool = False,
    qk_norm: bool = False,
    tie_word_embeddings: bool = False,
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
    """Build a pre-norm decoder with RoPE, grouped-query attention and a gated MLP.

    Args:
        vocab_size (int): vocabulary size v.
        num_layers (int): number of layers.
        num_heads (int): query heads.
        num_kv_heads (int): key/value heads; must divide ``num_heads``.
        embed_dim (int): model dim d.
        intermediate_dim (int): feed-forward hidden dim.
        max_seq_len (int): longest sequence (and RoPE cache length).
        head_dim (int | None): per-head dim; None means ``embed_dim // num_heads``. Default: None.
        attn_dropout (float): attention dropout. Default: 0.0.
        norm_eps (float): RMSNorm epsilon. Default: 1e-5.
        rope_base (float): RoPE theta. Default: 10000.
        rope_scaling (dict[str, Any] | None): Llama 3.1 RoPE scaling. Default: None.
        rotary_dim (int | None): rotated features per head; None = head_dim. Default: None.
        qkv_bias (bool): biases on q/k/v projections (Qwen2). Default: False.
        output_proj_bias (bool): bias on the attention output projection. Default: False.
        mlp_bias (bool): biases in the feed-forward projections. Default: False.
        qk_norm (bool): per-head RMSNorm of q and k (Qwen3). Default: False.
        tie_word_embeddings (bool): output reuses the embedding matrix. Default: False.
        sliding_window (int | list[int | None] | None): window for every layer, or one entry per
            layer. Default: None.
        norm_offset (float): RMSNorm offset (1.0 for Gemma). Default: 0.0.
        mlp_activation (nn.Module | None): gate activation; None = SiLU. Default: None.
        embed_scale (float | None): embedding multiplier (Gemma). Default: None.
        attn_scale (float | None): attention logit scale; None = ``head_dim ** -0.5``.
        attn_softcapping (float | None): attention-logit soft-cap. Default: None.
        final_logit_softcapping (float | None): output-logit soft-cap. Default: None.
        post_norms (bool): add post-attention / post-MLP norms as ``sa_scale`` / ``mlp_scale``
            (Gemma 2). Default: False.
        attention_sinks (bool): a learned sink logit per head in every attention (gpt-oss).
            Default: False.
        moe (MoESettings | None): mixture-of-experts feed-forward layers (stored as ``mlp.router``
            and ``mlp.experts``, see :class:`~torchtune.modules.MoE`). Default: None.
        lora (LoRASettings | None): adapters to add. Default: None.

    Returns:
        TransformerDecoder: the model.

    Raises:
        ValueError: on head counts that do not divide, a per-layer window or ``rope_layers``
            list of the wrong length, LoRA on a tied output, or ``apply_lora_to_mlp`` with MoE
            layers and DoRA or adapter dropout (each expert gets a plain LoRA adapter).
    """
    head_dim = _check_sizes(embed_dim, num_heads, num_kv_heads, head_dim)
    windows = sliding_window if isinstance(sliding_window, list) else [sliding_window] * num_layers
    if len(windows) != num_layers:
        raise ValueError(f"sliding_window has {len(windows)} entries but num_layers={num_layers}")
    use_rope = [True] * num_layers if rope_layers is None else [bool(r) for r in rope_layers]
    if len(use_rope) != num_layers:
        raise ValueError(f"rope_layers has {len(use_rope)} entries but num_layers={num_layers}")
    if lora is not None and lora.apply_to_output and tie_word_embeddings:
        raise ValueError("apply_lora_to_output=True is not supported with tie_word_embeddings=True")
    sparse = [False] * num_layers if moe is None else list(moe.layers or [True] * num_layers)
    if len(sparse) != num_layers:
        raise ValueError(f"moe.layers has {len(sparse)} entries but num_layers={num_layers}")
    if lora is not None and lora.apply_to_mlp and any(sparse) and (lora.use_dora or lora.dropout):
        raise ValueError(
            f"apply_lora_to_mlp=True on mixture-of-experts layers gives each expert a LoRA adapter, which supports "
            f"neither DoRA nor dropout (use_dora={lora.use_dora}, lora_dropout={lora.dropout}; peft's adapters on "
            "expert parameters neither): set use_dora=false and lora_dropout=0.0, or apply_lora_to_mlp=false"
        )
    attn_lora = set(lora.attn_modules) if lora else set()
    mlp_lora = bool(lora and lora.apply_to_mlp)
    rope = RotaryPositionalEmbeddings(rotary_dim or head_dim, max_seq_len=max_seq_len, base=rope_base, scaling=rope_scaling)
    local_rope = rope
    if local_rope_base is not None:
        local_rope = RotaryPositionalEmbeddings(rotary_dim or head_dim, max_seq_len=max_seq_len, base=local_rope_base)

    def positions(window: int | None, layer_uses_rope: bool) -> nn.Module | None:
        if not layer_uses_rope:
            return None
        return local_rope if window is not None else rope

    def norm(dim: int = embed_dim) -> RMSNorm:
        return RMSNorm(dim, eps=norm_eps, offset=norm_offset)

    layers = []
    def feed_forward(is_sparse: bool) -> nn.Module:
        if is_sparse:
            gated = None if moe.swiglu_limit is None else ClampedSwiGLU(alpha=moe.swiglu_alpha, limit=moe.swiglu_limit)
            e, h = moe.num_experts, moe.hidden_dim
            adapters = {}
            if mlp_lora:  # one adapter per expert on both stacked projections
                adapters = dict(gate_up_proj_lora=ExpertLoRA(e, embed_dim, 2 * h, lora.rank, lora.alpha),
                                down_proj_lora=ExpertLoRA(e, h, embed_dim, lora.rank, lora.alpha))
            return MoE(
                router=TopKRouter(dim=embed_dim, num_experts=moe.num_experts, top_k=moe.top_k,
                                  norm_topk_prob=moe.norm_topk_prob, softmax_before_topk=moe.softmax_before_topk,
                                  bias=moe.router_bias),
                experts=GroupedExperts(dim=embed_dim, hidden_dim=moe.hidden_dim, num_experts=moe.num_experts,
                                       activation=None if gated is not None else mlp_activation,
                                       gated_activation=gated, bias=moe.expert_bias, **adapters),
            )
        return FeedForward(
            gate_proj=make_linear(embed_dim, intermediate_dim, mlp_bias, lora, mlp_lora),
            down_proj=make_linear(intermediate_dim, embed_dim, mlp_bias, lora, mlp_lora),
            up_proj=make_linear(embed_dim, intermediate_dim, mlp_bias, lora, mlp_lora),
            activation=mlp_activation,
        )

    for window, layer_uses_rope, is_sparse in zip(windows, use_rope, sparse):
        q_out, kv_out = num_heads * head_dim, num_kv_heads * head_dim
        attn = MultiHeadAttention(
            embed_dim=embed_dim, num_heads=num_heads, num_kv_heads=num_kv_heads, head_dim=head_dim,
            q_proj=make_linear(embed_dim, q_out, qkv_bias, lora, "q_proj" in attn_lora),
            k_proj=make_linear(embed_dim, kv_out, qkv_bias, lora, "k_proj" in attn_lora),
            v_proj=make_linear(embed_dim, kv_out, qkv_bias, lora, "v_proj" in attn_lora),
            output_proj=make_linear(q_out, embed_dim, output_proj_bias, lora, "output_proj" in attn_lora),
            pos_embeddings=positions(window, layer_uses_rope), q_norm=norm(head_dim) if qk_norm else None,
            k_norm=norm(head_dim) if qk_norm else None, max_seq_len=max_seq_len,
            attn_dropout=attn_dropout, sliding_window=window, softcapping=attn_softcapping, scale=attn_scale,
            attention_sinks=attention_sinks,
        )
        layers.append(TransformerSelfAttentionLayer(
            attn=attn, mlp=feed_forward(is_sparse), sa_norm=norm(), mlp_norm=norm(),
            sa_scale=norm() if post_norms else None, mlp_scale=norm() if post_norms else None,
        ))
    tok_embeddings = nn.Embedding(vocab_size, embed_dim)
    adapt_output = bool(lora and lora.apply_to_output)
    output = TiedLinear(tok_embeddings) if tie_word_embeddings else make_linear(embed_dim, vocab_size, False, lora, adapt_output)
    return TransformerDecoder(
        tok_embeddings=tok_embeddings, layers=layers, max_seq_len=max_seq_len, num_heads=num_heads,
        head_dim=head_dim, norm=norm(), output=output, embed_scale=embed_scale,
        final_logit_softcapping=final_logit_softcapping,
    )
