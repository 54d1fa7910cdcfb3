"""Gated feed-forward network (SwiGLU / GeGLU)."""

from collections.abc import Callable
from functools import partial

import torch
from torch import nn


def _activation_backward(activation: nn.Module) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None:
    """The op autograd runs in backward for ``activation``: ``(grad, input) -> grad of input``."""
    if type(activation) is nn.SiLU:
        return torch.ops.aten.silu_backward
    if type(activation) is nn.GELU:
        return partial(torch.ops.aten.gelu_backward, approximate=activation.approximate)
    return None


class _GatedActivation(torch.autograd.Function):
    """``activation(gate) * up`` that keeps only ``gate`` and ``up`` for backward.

    Autograd would also keep ``activation(gate)`` (one more ``[b, s, hidden]`` tensor per layer, a
    quarter of what a gated MLP holds between forward and backward); it is recomputed in backward
    instead, and the gradients come from the ops autograd itself runs, so they are the same.
    """

    @staticmethod
    def forward(ctx, gate: torch.Tensor, up: torch.Tensor, activation: nn.Module,
                activation_backward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> torch.Tensor:
        ctx.activation = activation
        ctx.activation_backward = activation_backward
        ctx.save_for_backward(gate, up)
        return activation(gate) * up

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None, None]:
        gate, up = ctx.saved_tensors
        grad_up = grad * ctx.activation(gate) if ctx.needs_input_grad[1] else None
        grad_gate = ctx.activation_backward(grad * up, gate) if ctx.needs_input_grad[0] else None
        return grad_gate, grad_up, None, None


class FeedForward(nn.Module):
    """``w2(activation(w1(x)) * w3(x))``: SwiGLU with SiLU, GeGLU with tanh-approximated GELU.

    In training, ``activation(w1(x))`` is not kept for backward but recomputed there (from
    ``w1(x)``, which is kept anyway): the gradients are unchanged and the layer holds three
    ``[b, s, hidden]`` tensors between forward and backward instead of four. This is done for
    ``nn.SiLU`` and ``nn.GELU``; other activations, and code under ``torch.compile`` (the compiler
    makes its own choice of what to recompute), use the plain expression.

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
        self._activation_backward = _activation_backward(self.activation)
        self._recompute_activation = True

    def set_activation_recompute(self, enabled: bool) -> None:
        """Turn the recomputation of ``activation(w1(x))`` in backward on or off (on by default).

        :func:`torchtune.training.apply_activation_checkpointing` turns it off inside the layers it
        checkpoints: there the whole layer is recomputed anyway, and the two recomputations together
        held more memory, not less (1B QLoRA on CPU: peak RSS 5.77 GiB with both, 2.78 GiB with
        checkpointing alone; docs/benchmarks.md). The gradients are the same either way.

        Args:
            enabled (bool): True to recompute the activation, False for the plain expression.
        """
        self._recompute_activation = bool(enabled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the gated MLP.

        Args:
            x (torch.Tensor): ``[b, s, d]``.

        Returns:
            torch.Tensor: ``[b, s, d]``.
        """
        gate = self.w1(x)  # [b, s, hidden]
        up = self.w3(x)  # [b, s, hidden]
        if (
            torch.is_grad_enabled()
            and (gate.requires_grad or up.requires_grad)
            and self._recompute_activation
            and self._activation_backward is not None
            and not torch.compiler.is_compiling()
        ):
            return self.w2(_GatedActivation.apply(gate, up, self.activation, self._activation_backward))
        return self.w2(self.activation(gate) * up)
