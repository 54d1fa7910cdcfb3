"""LoRA on stacked expert weights: one low-rank update per expert.

Notation: E experts, in_dim / out_dim of each expert's projection, r the adapter rank.
"""

import math

import torch
from torch import nn


class _Stacked(nn.Module):
    """Holds one stacked adapter factor as ``weight``, so its state-dict key ends in ``.weight``."""

    def __init__(self, *shape: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(*shape))

    def extra_repr(self) -> str:
        return f"shape={list(self.weight.shape)}"


class ExpertLoRA(nn.Module):
    """Trainable low-rank updates ``(alpha / rank) * B_e A_e`` of a stacked expert weight ``[E, out, in]``.

    The module holds only the adapter; :class:`~torchtune.modules.GroupedExperts` applies it to
    the tokens routed to each expert (``s * B_e (A_e x)``, two more grouped matmuls), and merging
    folds it into the expert weight it sits beside (``gate_up_proj_lora`` into ``gate_up_proj``).
    Its peft form is a LoRA on the expert parameter (peft's ``target_parameters``). ``A`` starts
    kaiming-uniform per expert and ``B`` at zero, so the experts start unchanged.

    Args:
        num_experts (int): E.
        in_dim (int): input features of each expert's projection.
        out_dim (int): output features of each expert's projection.
        rank (int): adapter rank r (> 0).
        alpha (float): the update is multiplied by ``alpha / rank``.

    Raises:
        ValueError: when a size is not positive.
    """

    def __init__(self, num_experts: int, in_dim: int, out_dim: int, rank: int, alpha: float) -> None:
        super().__init__()
        for name, value in (("num_experts", num_experts), ("in_dim", in_dim), ("out_dim", out_dim), ("rank", rank)):
            if value <= 0:
                raise ValueError(f"{name}={value} must be a positive integer")
        self.num_experts, self.in_dim, self.out_dim, self.rank, self.alpha = num_experts, in_dim, out_dim, rank, alpha
        self.scaling = alpha / rank
        self.lora_a = _Stacked(num_experts, rank, in_dim)  # weight [E, r, in]
        self.lora_b = _Stacked(num_experts, out_dim, rank)  # weight [E, out, r]
        self.disabled = False
        self.initialize_parameters()

    def initialize_parameters(self) -> None:
        """Kaiming-uniform ``lora_a`` for each expert (as for ``nn.Linear``) and zero ``lora_b``."""
        for a in self.lora_a.weight.data.unbind(0):
            nn.init.kaiming_uniform_(a, a=math.sqrt(5))
        nn.init.zeros_(self.lora_b.weight)

    def adapter_params(self) -> list[str]:
        """list[str]: names (relative to this module) of the trainable adapter parameters."""
        return ["lora_a.weight", "lora_b.weight"]

    def delta_weight(self) -> torch.Tensor:
        """torch.Tensor: the scaled updates ``(alpha / rank) * B_e A_e`` ``[E, out, in]``."""
        return self.scaling * (self.lora_b.weight @ self.lora_a.weight)

    def extra_repr(self) -> str:
        return (f"num_experts={self.num_experts}, in_dim={self.in_dim}, out_dim={self.out_dim}, rank={self.rank}, "
                f"alpha={self.alpha}")
