"""Root-mean-square layer normalisation."""

import torch
from torch import nn


class RMSNorm(nn.Module):
    """Root-mean-square normalisation over the last dimension.

    ``y = x / sqrt(mean(x**2) + eps) * (offset + scale)``, computed in fp32 and cast back to the
    input dtype. ``offset=1.0`` gives Gemma's ``x * (1 + w)`` parameterisation.

    Args:
        dim (int): size of the normalised (last) dimension.
        eps (float): added to the mean square for stability. Default: 1e-6.
        offset (float): constant added to ``scale`` before multiplying. Default: 0.0.
    """

    def __init__(self, dim: int, eps: float = 1e-6, offset: float = 0.0) -> None:
        super().__init__()
        self.eps = eps
        self.offset = offset
        init = 1.0 - offset
        self.scale = nn.Parameter(torch.full((dim,), init))

    def reset_parameters(self) -> None:
        """Set ``scale`` so that the layer starts as a pure normalisation."""
        nn.init.constant_(self.scale, 1.0 - self.offset)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise ``x``.

        Args:
            x (torch.Tensor): input of shape ``[..., dim]``.

        Returns:
            torch.Tensor: same shape and dtype as ``x``.
        """
        x_fp32 = x.float()
        normed = x_fp32 * torch.rsqrt(x_fp32.pow(2).mean(-1, keepdim=True) + self.eps)
        return (normed * (self.scale.float() + self.offset)).to(x.dtype)

    def extra_repr(self) -> str:
        return f"dim={self.scale.shape[0]}, eps={self.eps}, offset={self.offset}"
