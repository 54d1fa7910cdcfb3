"""gpt-oss builders: grouped-query attention with biases and a learned sink logit per head,
sliding-window (128) and full attention layers alternating, YaRN RoPE, and a mixture-of-experts
feed-forward in every layer (a router with a bias, softmax over the top-k logits, experts with
biases and a clamped SwiGLU)."""

from typing import Any

from torchtune.models._decoder_builder import build_decoder
from torchtune.models._lora_settings import LoRASettings, MoESettings
from torchtune.modules import TransformerDecoder
from torchtune.utils import forwards_kwargs

_YARN: dict[str, Any] = {"rope_type": "yarn", "factor": 32.0, "original_max_position_embeddings": 4096,
                         "beta_fast": 32.0, "beta_slow": 1.0, "truncate": False}


def gpt_oss(
    *,
    vocab_size: int,
    num_layers: int,
    num_heads: int,
    num_kv_heads: int,
    head_dim: int,
    embed_dim: int,
    num_experts: int,
    num_experts_per_tok: int,
    intermediate_dim: int,
    max_seq_len: int,
    sliding_window: int = 128,
    norm_eps: float = 1e-5,
    rope_base: float = 150_000.0,
    rope_scaling: dict[str, Any] | None = None,
    swiglu_limit: float = 7.0,
    swiglu_alpha: float = 1.702,
    attn_dropout: float = 0.0,
    lora: LoRASettings | None = None,
) -> TransformerDecoder:
    """Build a gpt-oss decoder.

    Args:
        vocab_size (int): vocabulary size v.
        num_layers (int): number of layers; even layers (0, 2, ...) use the sliding window.
        num_heads (int): query heads n_h.
        num_kv_heads (int): key/value heads n_kv.
        head_dim (int): per-head dim h_d.
        embed_dim (int): model dim d.
        num_experts (int): experts per layer E.
        num_experts_per_tok (int): experts per token k.
        intermediate_dim (int): each expert's hidden dim.
        max_seq_len (int): longest sequence.
        sliding_window (int): window of the local layers. Default: 128.
        norm_eps (float): RMSNorm epsilon. Default: 1e-5.
        rope_base (float): RoPE theta. Default: 150000.
        rope_scaling (dict[str, Any] | None): None means the published YaRN scaling (factor 32
            over an original context of 4096). Default: None.
        swiglu_limit (float): the experts' clamp. Default: 7.0.
        swiglu_alpha (float): the experts' sigmoid gain. Default: 1.702.
        attn_dropout (float): attention dropout. Default: 0.0.
        lora (LoRASettings | None): adapters; ``apply_to_mlp`` puts one on every expert.
            Default: None.

    Returns:
        TransformerDecoder: the model.

    Raises:
        ValueError: on inconsistent sizes, or DoRA/dropout with ``apply_lora_to_mlp``.
    """
    moe = MoESettings(num_experts=num_experts, top_k=num_experts_per_tok, hidden_dim=intermediate_dim,
                      norm_topk_prob=False, softmax_before_topk=False, router_bias=True, expert_bias=True,
                      swiglu_limit=swiglu_limit, swiglu_alpha=swiglu_alpha)
    return build_decoder(
        vocab_size=vocab_size, num_layers=num_layers, num_heads=num_heads, num_kv_heads=num_kv_heads,
        embed_dim=embed_dim, intermediate_dim=intermediate_dim, max_seq_len=max_seq_len, head_dim=head_dim,
        attn_dropout=attn_dropout, norm_eps=norm_eps, rope_base=rope_base,
        rope_scaling=dict(_YARN) if rope_scaling is None else rope_scaling, qkv_bias=True, output_proj_bias=True,
        sliding_window=[sliding_window if i % 2 == 0 else None for i in range(num_layers)], attention_sinks=True,
        moe=moe, lora=lora,
    )


@forwards_kwargs(gpt_oss, exclude=("lora",))
def lora_gpt_oss(
    lora_attn_modules: list[str],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    **sizes: Any,
) -> TransformerDecoder:
    """:func:`gpt_oss` with LoRA/DoRA adapters on the attention (and output) projections, and
    optionally LoRA on every expert.

    Args:
        lora_attn_modules (list[str]): any of q_proj, k_proj, v_proj, output_proj.
        apply_lora_to_mlp (bool): a LoRA adapter on every expert's projections. Default: False.
        apply_lora_to_output (bool): adapt the output projection. Default: False.
        lora_rank (int): adapter rank. Default: 8.
        lora_alpha (float): adapter alpha. Default: 16.
        lora_dropout (float): adapter dropout. Default: 0.0.
        use_dora (bool): DoRA instead of LoRA. Default: False.
        **sizes (Any): the keyword arguments of :func:`gpt_oss` (shown in this signature).

    Returns:
        TransformerDecoder: the model with adapters.

    Raises:
        ValueError: on bad LoRA options (DoRA or dropout with ``apply_lora_to_mlp``) or sizes.
    """
    lora = LoRASettings(tuple(lora_attn_modules), apply_lora_to_mlp, apply_lora_to_output,
                        lora_rank, lora_alpha, lora_dropout, use_dora)
    return gpt_oss(**sizes, lora=lora)
