"""LoRA and DoRA linear layers.

Notation: in_dim / out_dim of the wrapped linear, r the adapter rank.
"""

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from torchtune.modules.peft._quantized import dequantize_weight, is_quantized_weight, to_nf4_weight


def _check_lora_args(in_dim: int, out_dim: int, rank: int, dropout: float) -> None:
    if rank <= 0:
        raise ValueError(f"rank={rank} must be a positive integer")
    if in_dim <= 0 or out_dim <= 0:
        raise ValueError(f"in_dim={in_dim} and out_dim={out_dim} must be positive")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout={dropout} must be in [0, 1)")


def dora_weight(adapted: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
    """DoRA's merged weight: each row of the adapted weight rescaled to its magnitude.

    Args:
        adapted (torch.Tensor): ``W + s B A`` ``[out_dim, in_dim]``.
        magnitude (torch.Tensor): ``[out_dim]``.

    Returns:
        torch.Tensor: ``magnitude / ||adapted||_row * adapted`` ``[out_dim, in_dim]``.
    """
    return (magnitude / adapted.norm(p=2, dim=1))[:, None] * adapted


class LoRALinear(nn.Module):
    """Linear layer with a frozen base weight and a trainable low-rank update.

    ``y = W x + b + (alpha / rank) * B A dropout(x)``. ``A`` (``lora_a``) starts
    kaiming-uniform and ``B`` (``lora_b``) at zero, so the layer starts equal to the base.

    Args:
        in_dim (int): input features.
        out_dim (int): output features.
        rank (int): adapter rank r (> 0).
        alpha (float): scaling numerator; the update is multiplied by ``alpha / rank``.
        dropout (float): dropout on the adapter's input. Default: 0.0.
        use_bias (bool): whether the base layer has a (frozen) bias. Default: False.
        quantize_base (bool): store the frozen base weight as NF4 (QLoRA: 4-bit NormalFloat,
            double-quantised scales; torchao, the ``quant`` extra). Default: False.

    The base weight may also be a quantised tensor loaded from a checkpoint (a
    ``torchtune.gguf.GGUFQuantizedTensor`` from the GGUF checkpointer's ``keep_quantized``):
    :meth:`load_state_dict` then takes it as it is instead of copying it into a float weight.
    A quantised base stays quantised under ``model.to(dtype=...)`` (only ``base_dtype``, the
    dtype it dequantises to in :meth:`state_dict`, changes) and is dequantised per layer in the
    forward and backward passes; :meth:`state_dict` holds it dequantised to ``base_dtype``, so
    merged checkpoints are plain weights.

    Raises:
        ValueError: when ``rank``, the dims or ``dropout`` are out of range, or (with
            ``quantize_base``) the weight's size does not fit NF4's blocks.
        ModuleNotFoundError: ``quantize_base=True`` without torchao.
    """

    def __init__(
        self, in_dim: int, out_dim: int, rank: int, alpha: float, dropout: float = 0.0, use_bias: bool = False,
        quantize_base: bool = False,
    ) -> None:
        super().__init__()
        _check_lora_args(in_dim, out_dim, rank, dropout)
        self.in_dim, self.out_dim, self.rank, self.alpha = in_dim, out_dim, rank, alpha
        self.scaling = alpha / rank
        self.quantize_base = quantize_base
        base = nn.Linear(in_dim, out_dim, bias=use_bias)
        self.base_dtype = base.weight.dtype  # what a quantised base dequantises to in state_dict()
        weight = to_nf4_weight(base.weight.data) if quantize_base else base.weight.data
        self.weight = nn.Parameter(weight, requires_grad=False)  # [out_dim, in_dim]
        self.bias = nn.Parameter(base.bias.data, requires_grad=False) if use_bias else None
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.lora_a = nn.Linear(in_dim, rank, bias=False)  # weight [r, in_dim]
        self.lora_b = nn.Linear(rank, out_dim, bias=False)  # weight [out_dim, r]
        self.disabled = False
        self.initialize_parameters()
        self.register_state_dict_post_hook(_dequantize_base_in_state_dict)

    def initialize_parameters(self) -> None:
        """Kaiming-uniform ``lora_a`` (as for ``nn.Linear``) and zero ``lora_b``."""
        nn.init.kaiming_uniform_(self.lora_a.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_b.weight)

    def adapter_params(self) -> list[str]:
        """list[str]: names (relative to this module) of the trainable adapter parameters."""
        return ["lora_a.weight", "lora_b.weight"]

    def delta_weight(self) -> torch.Tensor:
        """torch.Tensor: the scaled update ``(alpha / rank) * B A`` ``[out_dim, in_dim]``."""
        return self.scaling * (self.lora_b.weight @ self.lora_a.weight)

    def base_weight(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """The frozen base weight as a plain tensor ``[out_dim, in_dim]`` (a quantised base dequantised).

        Args:
            dtype (torch.dtype | None): the result's dtype; None means ``base_dtype``. Default None.
        """
        return dequantize_weight(self.weight, dtype or self.base_dtype)

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True) -> "LoRALinear":
        # A quantised base keeps its packed form under .to(dtype) / .half() / .to(device): it is moved
        # to fn's device and only base_dtype follows fn's dtype (fn applied to an empty probe tells both).
        if not is_quantized_weight(self.weight):
            return super()._apply(fn, recurse)
        weight, self._parameters["weight"] = self._parameters["weight"], None  # _apply skips None
        try:
            super()._apply(fn, recurse)
        finally:
            probe = fn(torch.empty(0, dtype=self.base_dtype, device=weight.device))
            if probe.is_floating_point():
                self.base_dtype = probe.dtype
            moved = weight if probe.device == weight.device else weight.detach().to(probe.device)
            self._parameters["weight"] = moved if moved is weight else nn.Parameter(moved, requires_grad=False)
        return self

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, local_metadata: dict, strict: bool,
                              missing_keys: list[str], unexpected_keys: list[str], error_msgs: list[str]) -> None:
        # A quantised incoming base weight (GGUF blocks, or NF4) is taken as it is, not copied into a
        # float weight (a copy would dequantise it). GGUF blocks cannot take new values in place, so a
        # float weight loaded over them replaces them. (NF4 takes a float weight by quantising it: torchao's copy_.)
        key = prefix + "weight"
        incoming = state_dict.get(key)
        holds_blocks = hasattr(type(self.weight), "dequantized")
        if not is_quantized_weight(incoming) and not (incoming is not None and holds_blocks):
            return super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                                 unexpected_keys, error_msgs)
        if tuple(incoming.shape) != (self.out_dim, self.in_dim):
            error_msgs.append(f"size mismatch for {key}: quantised weight of shape {tuple(incoming.shape)}, "
                              f"the layer needs {(self.out_dim, self.in_dim)}")
            return
        rest = {k: v for k, v in state_dict.items() if k != key}
        super()._load_from_state_dict(rest, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)
        if key in missing_keys:
            missing_keys.remove(key)
        value = incoming.detach() if is_quantized_weight(incoming) else incoming.detach().to(self.base_dtype)
        self.weight = nn.Parameter(value.to(self.lora_a.weight.device), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the adapted layer.

        Args:
            x (torch.Tensor): ``[..., in_dim]``.

        Returns:
            torch.Tensor: ``[..., out_dim]``.
        """
        out = F.linear(x, self.weight, self.bias)  # [..., out_dim]
        if self.disabled:
            return out
        # adapters may be stored in fp32 under a bf16 model (master weights); they compute in x's dtype
        low_rank = F.linear(self.dropout(x), self.lora_a.weight.to(x.dtype))  # [..., r]
        # out + scaling * low_rank @ B^T in one GEMM that accumulates into out (no [..., out_dim]
        # temporaries for the product and its scaling)
        update = torch.addmm(
            out.reshape(-1, self.out_dim), low_rank.reshape(-1, self.rank), self.lora_b.weight.to(x.dtype).t(),
            alpha=self.scaling,
        )  # [n, out_dim]
        return update.view(out.shape)

    def extra_repr(self) -> str:
        quantized = f", base={type(self.weight).__name__}" if is_quantized_weight(self.weight) else ""
        return f"in_dim={self.in_dim}, out_dim={self.out_dim}, rank={self.rank}, alpha={self.alpha}{quantized}"


def _dequantize_base_in_state_dict(module: LoRALinear, state_dict: dict, prefix: str, local_metadata: dict) -> None:
    """State-dict hook: a quantised base weight is written dequantised to ``base_dtype`` (merging and
    every checkpoint format then see plain weights)."""
    key = prefix + "weight"
    if key in state_dict and is_quantized_weight(state_dict[key]):
        state_dict[key] = module.base_weight()


class DoRALinear(LoRALinear):
    """Weight-decomposed LoRA (DoRA, Liu et al. 2024).

    The adapted weight ``W + s B A`` is renormalised per output row and rescaled by a
    trainable ``magnitude`` ``[out_dim]``; the row norm is treated as a constant in the
    backward pass, as in the paper and peft. Call :meth:`initialize_dora_magnitude` after the
    base weight is loaded.

    Args: as for :class:`LoRALinear`.
    """

    def __init__(
        self, in_dim: int, out_dim: int, rank: int, alpha: float, dropout: float = 0.0, use_bias: bool = False,
        quantize_base: bool = False,
    ) -> None:
        super().__init__(in_dim, out_dim, rank, alpha, dropout, use_bias, quantize_base)
        self.magnitude = nn.Parameter(torch.ones(out_dim))  # [out_dim]
        self.initialize_dora_magnitude()

    def adapter_params(self) -> list[str]:
        """list[str]: adapter parameter names, ``magnitude`` included."""
        return ["lora_a.weight", "lora_b.weight", "magnitude"]

    def _weight_norm(self) -> torch.Tensor:
        base = self.base_weight()  # dequantised when the base is quantised
        adapted = base + self.delta_weight().to(base.dtype)  # [out_dim, in_dim]
        return adapted.norm(p=2, dim=1)  # [out_dim]

    @torch.no_grad()
    def initialize_dora_magnitude(self) -> None:
        """Set ``magnitude`` to the row norms of ``W + s B A`` (``||W||`` before training)."""
        self.magnitude.copy_(self._weight_norm().to(self.magnitude.dtype))

    def merged_weight(self) -> torch.Tensor:
        """torch.Tensor: ``magnitude / ||W + s B A|| * (W + s B A)`` ``[out_dim, in_dim]``."""
        base = self.base_weight()
        return dora_weight(base + self.delta_weight().to(base.dtype), self.magnitude)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the DoRA layer.

        Args:
            x (torch.Tensor): ``[..., in_dim]``.

        Returns:
            torch.Tensor: ``[..., out_dim]``.
        """
        base = F.linear(x, self.weight)
        if self.disabled:
            return base if self.bias is None else base + self.bias
        if self.training and isinstance(self.dropout, nn.Dropout):
            x_drop = self.dropout(x)
            base_drop = F.linear(x_drop, self.weight)
        else:
            x_drop, base_drop = x, base
        ratio = (self.magnitude / self._weight_norm().detach()).to(x.dtype)  # [out_dim]
        low_rank = F.linear(x_drop, self.lora_a.weight.to(x.dtype))  # [..., r]
        update = self.scaling * F.linear(low_rank, self.lora_b.weight.to(x.dtype))  # [..., out_dim]
        out = base + (ratio - 1) * base_drop + ratio * update
        return out if self.bias is None else out + self.bias
