"""Gradient utilities: clipping that reports the norm, and gradient scaling.

Gradient accumulation is done by the recipes: they call ``loss.backward()`` on each of
``gradient_accumulation_steps`` micro-batches, then (optionally) :func:`scale_grads` to
normalise by the number of tokens seen, then :func:`clip_grad_norm` and
``optimizer.step()``.
"""

from collections.abc import Iterable

import torch
from torch import nn


def clip_grad_norm(
    parameters: Iterable[torch.Tensor] | torch.Tensor,
    max_norm: float | None,
    norm_type: float = 2.0,
) -> torch.Tensor:
    """Return the total gradient norm, clipping gradients to ``max_norm`` when given.

    Args:
        parameters (Iterable[torch.Tensor] | torch.Tensor): parameters whose ``.grad`` is used;
            parameters without a gradient are skipped.
        max_norm (float | None): clip so the total norm is at most this; None only measures.
        norm_type (float): the p of the p-norm; ``inf`` for the max norm. Default: 2.0.

    Returns:
        torch.Tensor: scalar total norm of the gradients before clipping.

    Raises:
        ValueError: when ``max_norm`` is not positive.
    """
    if max_norm is not None and max_norm <= 0:
        raise ValueError(f"max_norm={max_norm} must be > 0 (or None to only measure)")
    params = [parameters] if isinstance(parameters, torch.Tensor) else list(parameters)
    if max_norm is None:
        return nn.utils.get_total_norm([p.grad for p in params if p.grad is not None], norm_type)
    return nn.utils.clip_grad_norm_(params, max_norm, norm_type=norm_type)


@torch.no_grad()
def scale_grads(model: nn.Module, scale: torch.Tensor | float) -> None:
    """Multiply every gradient of ``model`` in place by ``scale`` (e.g. ``1 / num_tokens``).

    Args:
        model (nn.Module): the model whose parameter gradients are scaled.
        scale (torch.Tensor | float): the factor; a tensor is moved to each gradient's device.
    """
    for p in model.parameters():
        if p.grad is not None:
            p.grad.mul_(scale.to(p.grad.device) if isinstance(scale, torch.Tensor) else scale)
