"""Validated LoRA/DoRA options shared by every model builder."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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
        return cls(in_dim, out_dim, rank=self.rank, alpha=self.alpha, dropout=self.dropout, use_bias=bias)


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


def lora_builder(build: Callable[..., Any], name: str, module: str) -> Callable[..., Any]:
    """Make ``lora_<family>(lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, *,
    lora_rank, lora_alpha, lora_dropout, use_dora, **sizes)`` from a family builder.

    Args:
        build (Callable[..., Any]): the family builder; must accept ``lora=``.
        name (str): the new function's name.
        module (str): the module the function is published from.

    Returns:
        Callable[..., Any]: the LoRA builder.
    """

    def lora_build(
        lora_attn_modules: list[str],
        apply_lora_to_mlp: bool = False,
        apply_lora_to_output: bool = False,
        *,
        lora_rank: int = 8,
        lora_alpha: float = 16,
        lora_dropout: float = 0.0,
        use_dora: bool = False,
        **sizes: Any,
    ) -> Any:
        lora = LoRASettings(
            tuple(lora_attn_modules), apply_lora_to_mlp, apply_lora_to_output,
            lora_rank, lora_alpha, lora_dropout, use_dora,
        )
        return build(**sizes, lora=lora)

    lora_build.__name__ = lora_build.__qualname__ = name
    lora_build.__module__ = module
    lora_build.__doc__ = (
        f"LoRA/DoRA version of :func:`{build.__name__}`.\n\n"
        "Args:\n"
        "    lora_attn_modules (list[str]): any of q_proj, k_proj, v_proj, output_proj.\n"
        "    apply_lora_to_mlp (bool): adapt the feed-forward projections. Default: False.\n"
        "    apply_lora_to_output (bool): adapt the output projection. Default: False.\n"
        "    lora_rank (int): adapter rank. Default: 8.\n"
        "    lora_alpha (float): adapter alpha. Default: 16.\n"
        "    lora_dropout (float): adapter dropout. Default: 0.0.\n"
        "    use_dora (bool): DoRA instead of LoRA. Default: False.\n"
        f"    **sizes: the keyword arguments of :func:`{build.__name__}`.\n\n"
        "Returns:\n    TransformerDecoder: the model with adapters.\n"
    )
    return lora_build


def lora_preset(lora_build: Callable[..., Any], sizes: dict[str, Any], name: str, module: str) -> Callable[..., Any]:
    """Make a LoRA preset ``name(lora_attn_modules, ...)`` with fixed ``sizes``.

    Args:
        lora_build (Callable[..., Any]): a function made by :func:`lora_builder`.
        sizes (dict[str, Any]): the preset's literal sizes.
        name (str): the preset's name.
        module (str): the module the preset is published from.

    Returns:
        Callable[..., Any]: the preset.
    """

    def preset(
        lora_attn_modules: list[str],
        apply_lora_to_mlp: bool = False,
        apply_lora_to_output: bool = False,
        lora_rank: int = 8,
        lora_alpha: float = 16,
        lora_dropout: float = 0.0,
        use_dora: bool = False,
    ) -> Any:
        return lora_build(
            lora_attn_modules, apply_lora_to_mlp, apply_lora_to_output, lora_rank=lora_rank,
            lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_dora=use_dora, **sizes,
        )

    preset.__name__ = preset.__qualname__ = name
    preset.__module__ = module
    preset.__doc__ = f"{name.removeprefix('lora_')} with LoRA/DoRA adapters; arguments as in {lora_build.__name__}."
    return preset
