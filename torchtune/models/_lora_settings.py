"""Validated LoRA/DoRA options shared by every model builder."""

from dataclasses import dataclass

from torch import nn

from torchtune.modules.peft import DoRALinear, LoRALinear


LORA_ATTN_MODULES = ("q_proj", "k_proj", "v_proj", "output_proj")


@dataclass(frozen=True)
class LoRASettings:
    """Where and how to add adapters to a decoder.

    Args:
        attn_modules (tuple[str, ...]): subset of ``q_proj, k_proj, v_proj, output_proj``.
        apply_to_mlp (bool): adapt ``w1, w2, w3``. Default: False.
        apply_to_output (bool): adapt the output projection. Default: False.
        rank (int): adapter rank (> 0). Default: 8.
        alpha (float): adapter alpha. Default: 16.
        dropout (float): adapter input dropout. Default: 0.0.
        use_dora (bool): use :class:`DoRALinear` instead of :class:`LoRALinear`. Default: False.
        quantize_base (bool): store the frozen base weight of every adapted linear layer as NF4
            (QLoRA; needs the ``quant`` extra). Default: False.

    Raises:
        ValueError: on an unknown module name or a non-positive rank.
    """

    attn_modules: tuple[str, ...]
    apply_to_mlp: bool = False
    apply_to_output: bool = False
    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    use_dora: bool = False
    quantize_base: bool = False

    def __post_init__(self) -> None:
        unknown = [m for m in self.attn_modules if m not in LORA_ATTN_MODULES]
        if unknown:
            raise ValueError(
                f"lora_attn_modules={list(self.attn_modules)} has unknown names {unknown}; "
                f"allowed: {list(LORA_ATTN_MODULES)}"
            )
        if self.rank <= 0:
            raise ValueError(f"lora_rank={self.rank} must be a positive integer")

    def linear(self, in_dim: int, out_dim: int, bias: bool = False) -> nn.Module:
        """Build an adapter linear layer with these settings."""
        cls = DoRALinear if self.use_dora else LoRALinear
        return cls(in_dim, out_dim, rank=self.rank, alpha=self.alpha, dropout=self.dropout, use_bias=bias,
                   quantize_base=self.quantize_base)


@dataclass(frozen=True)
class MoESettings:
    """Mixture-of-experts feed-forward layers of a decoder (Qwen3-MoE style).

    Args:
        num_experts (int): routed experts per MoE layer E.
        top_k (int): experts per token k.
        hidden_dim (int): each expert's hidden dim (``moe_intermediate_size``).
        norm_topk_prob (bool): renormalise the chosen experts' weights. Default: True.
        layers (tuple[bool, ...] | None): one entry per layer, True for an MoE layer (the others
            keep the dense feed-forward of ``intermediate_dim``); None means every layer.
            Default: None.
        softmax_before_topk (bool): softmax over all experts, then the top k (Qwen3-MoE); False
            softmaxes the top k logits (gpt-oss). Default: True.
        router_bias (bool): a bias on the router projection. Default: False.
        expert_bias (bool): per-expert biases on both expert projections. Default: False.
        swiglu_limit (float | None): the experts use :class:`~torchtune.modules.ClampedSwiGLU`
            with this clamp (gpt-oss); None keeps ``act(gate) * up``. Default: None.
        swiglu_alpha (float): its sigmoid gain. Default: 1.702.

    Raises:
        ValueError: on a non-positive size or ``top_k`` outside ``[1, num_experts]``.
    """

    num_experts: int
    top_k: int
    hidden_dim: int
    norm_topk_prob: bool = True
    layers: tuple[bool, ...] | None = None
    softmax_before_topk: bool = True
    router_bias: bool = False
    expert_bias: bool = False
    swiglu_limit: float | None = None
    swiglu_alpha: float = 1.702

    def __post_init__(self) -> None:
        for name in ("num_experts", "hidden_dim"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}={getattr(self, name)} must be a positive integer")
        if not 1 <= self.top_k <= self.num_experts:
            raise ValueError(f"num_experts_per_tok={self.top_k} must be between 1 and num_experts={self.num_experts}")


def make_linear(in_dim: int, out_dim: int, bias: bool, lora: LoRASettings | None, adapt: bool) -> nn.Module:
    """``nn.Linear`` or, when ``adapt`` and ``lora`` is set, an adapter linear layer."""
    if lora is not None and adapt:
        return lora.linear(in_dim, out_dim, bias)
    return nn.Linear(in_dim, out_dim, bias=bias)
