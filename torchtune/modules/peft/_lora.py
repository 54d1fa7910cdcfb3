"""LoRA and DoRA linear layers.

Notation: in_dim / out_dim of the wrapped linear, r the adapter rank.
"""

import logging
import math

import torch
import torch.nn.functional as F
from torch import nn

logger = logging.getLogger(__name__)


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

    Raises:
        ValueError: when ``rank``, the dims or ``dropout`` are out of range.
    """

    def __init__(
        self, in_dim: int, out_dim: int, rank: int, alpha: float, dropout: float = 0.0, use_bias: bool = False
    ) -> None:
        super().__init__()
        _check_lora_args(in_dim, out_dim, rank, dropout)
        self.in_dim, self.out_dim, self.rank, self.alpha = in_dim, out_dim, rank, alpha
        self.scaling = alpha / rank
        base = nn.Linear(in_dim, out_dim, bias=use_bias)
        self.weight = nn.Parameter(base.weight.data, requires_grad=False)  # [out_dim, in_dim]
        self.bias = nn.Parameter(base.bias.data, requires_grad=False) if use_bias else None
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.lora_a = nn.Linear(in_dim, rank, bias=False)  # weight [r, in_dim]
        self.lora_b = nn.Linear(rank, out_dim, bias=False)  # weight [out_dim, r]
        self.disabled = False
        self.initialize_parameters()

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
        return f"in_dim={self.in_dim}, out_dim={self.out_dim}, rank={self.rank}, alpha={self.alpha}"


class DoRALinear(LoRALinear):
    """Weight-decomposed LoRA (DoRA, Liu et al. 2024).

    The adapted weight ``W + s B A`` is renormalised per output row and rescaled by a
    trainable ``magnitude`` ``[out_dim]``; the row norm is treated as a constant in the
    backward pass, as in the paper and peft. Call :meth:`initialize_dora_magnitude` after the
    base weight is loaded.

    Args: as for :class:`LoRALinear`.
    """

    def __init__(
        self, in_dim: int, out_dim: int, rank: int, alpha: float, dropout: float = 0.0, use_bias: bool = False
    ) -> None:
        super().__init__(in_dim, out_dim, rank, alpha, dropout, use_bias)
        self.magnitude = nn.Parameter(torch.ones(out_dim))  # [out_dim]
        self.initialize_dora_magnitude()

    def adapter_params(self) -> list[str]:
        """list[str]: adapter parameter names, ``magnitude`` included."""
        return ["lora_a.weight", "lora_b.weight", "magnitude"]

    def _weight_norm(self) -> torch.Tensor:
        adapted = self.weight + self.delta_weight().to(self.weight.dtype)  # [out_dim, in_dim]
        return adapted.norm(p=2, dim=1)  # [out_dim]

    @torch.no_grad()
    def initialize_dora_magnitude(self) -> None:
        """Set ``magnitude`` to the row norms of ``W + s B A`` (``||W||`` before training)."""
        self.magnitude.copy_(self._weight_norm().to(self.magnitude.dtype))

    def merged_weight(self) -> torch.Tensor:
        """torch.Tensor: ``magnitude / ||W + s B A|| * (W + s B A)`` ``[out_dim, in_dim]``."""
        return dora_weight(self.weight + self.delta_weight().to(self.weight.dtype), self.magnitude)

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
