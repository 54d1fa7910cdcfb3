"""Gated feed-forward network (SwiGLU / GeGLU)."""

import torch
from torch import nn


class FeedForward(nn.Module):
    """``w2(activation(w1(x)) * w3(x))``: SwiGLU with SiLU, GeGLU with tanh-approximated GELU.

    Args:
        gate_proj (nn.Module): ``d -> hidden``, stored as ``w1``.
        down_proj (nn.Module): ``hidden -> d``, stored as ``w2``.
        up_proj (nn.Module): ``d -> hidden``, stored as ``w3``.
        activation (nn.Module | None): applied to the gate; None means SiLU. Default: None.
    """

    def __init__(
        self,
        *,
        gate_proj: nn.Module,
        down_proj: nn.Module,
        up_proj: nn.Module,
        activation: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.w1 = gate_proj
        self.w2 = down_proj
        self.w3 = up_proj
        self.activation = activation if activation is not None else nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the gated MLP.

        Args:
            x (torch.Tensor): ``[b, s, d]``.

        Returns:
            torch.Tensor: ``[b, s, d]``.
        """
        return self.w2(self.activation(self.w1(x)) * self.w3(x))
