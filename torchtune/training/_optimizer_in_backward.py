"""The optimizer step inside the backward pass, one parameter at a time (``optimizer_in_bwd``).

Normally every gradient of the model is alive between the end of ``loss.backward()`` and
``optimizer.step()``: as much memory again as the weights. With :class:`OptimizerInBackward` a
parameter is updated as soon as autograd has finished its gradient (a
``Tensor.register_post_accumulate_grad_hook``), and that gradient is freed at once, so about one
parameter's gradient is alive at a time. The update is the optimizer's own arithmetic, applied
to the same gradient, so the training run is the same; what is given up is anything that needs
all gradients before any update: clipping by the total norm and gradient accumulation.
"""

import logging
from typing import Any

import torch
import torch.distributed as dist

from torchtune.config import ConfigError, DictConfig

logger = logging.getLogger(__name__)


class OptimizerInBackward:
    """Run ``optimizer``'s update of each parameter inside backward, as its gradient completes.

    Every parameter in ``optimizer.param_groups`` gets a post-accumulate-grad hook that
    multiplies the gradient by :attr:`grad_scale` (what :func:`torchtune.training.scale_grads`
    would do after backward), adds its squared norm to this step's total, calls
    ``optimizer.step()`` and sets the gradient to ``None``. Because the optimizer skips
    parameters without a gradient, that step updates this one parameter only. The optimizer
    must therefore update each parameter from its own gradient and state alone: Adam, AdamW,
    SGD and torchao's 8-bit AdamW do, LBFGS does not.

    The optimizer stays an ordinary optimizer: build the learning-rate scheduler on it
    (:attr:`param_groups` and :meth:`state_dict` / :meth:`load_state_dict` are the optimizer's,
    also reachable here), save and restore its state as usual, and call ``lr_scheduler.step()``
    after each backward. Do not call ``optimizer.step()`` or ``zero_grad()`` yourself.

    With FSDP2 the hooks sit on the sharded parameters and run when their reduce-scattered
    gradient shard is assigned, so each process updates its shard.

    Example::

        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        in_bwd = OptimizerInBackward(optimizer)
        for batch in batches:
            loss, num_tokens = summed_loss(model, batch)
            in_bwd.prepare(grad_scale=1.0 / num_tokens)  # mean over tokens
            loss.backward()  # every parameter is updated in here
            lr_scheduler.step()

    Args:
        optimizer (torch.optim.Optimizer): the optimizer whose parameters get the hooks.

    Raises:
        ValueError: when a parameter appears twice in ``optimizer`` or does not require grad.
    """

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer
        self.grad_scale: float = 1.0
        self._sq_norm: torch.Tensor | None = None
        self._handles = []
        seen: set[int] = set()
        for group in optimizer.param_groups:
            for p in group["params"]:
                if id(p) in seen:
                    raise ValueError("a parameter appears twice in the optimizer's param_groups")
                if not p.requires_grad:
                    raise ValueError(f"a parameter of shape {tuple(p.shape)} does not require grad; "
                                     "give the optimizer trainable parameters only")
                seen.add(id(p))
                self._handles.append(p.register_post_accumulate_grad_hook(self._step_one))
        logger.info("optimizer step in backward for %d parameters", len(self._handles))

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        """The optimizer's parameter groups (what LR schedulers read and write)."""
        return self.optimizer.param_groups

    def state_dict(self) -> dict[str, Any]:
        """The optimizer's ``state_dict()``."""
        return self.optimizer.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load the optimizer's state (``optimizer.load_state_dict``)."""
        self.optimizer.load_state_dict(state_dict)

    def prepare(self, grad_scale: float = 1.0) -> None:
        """Get ready for the next backward: set the factor every gradient is multiplied by before
        its update (e.g. ``1 / num_tokens`` for the mean over tokens) and start a new gradient norm.

        Args:
            grad_scale (float): the factor. Default: 1.0.
        """
        self.grad_scale = grad_scale
        self._sq_norm = None

    @torch.no_grad()
    def _step_one(self, param: torch.Tensor) -> None:
        grad = param.grad
        if grad is None:
            return
        if self.grad_scale != 1.0:
            grad.mul_(self.grad_scale)
        local = grad.to_local() if hasattr(grad, "to_local") else grad  # a DTensor shard under FSDP2
        sq = torch.linalg.vector_norm(local, dtype=torch.float32).square()
        self._sq_norm = sq if self._sq_norm is None else self._sq_norm + sq.to(self._sq_norm.device)
        self.optimizer.step()  # only this parameter holds a gradient
        param.grad = None

    def grad_norm(self) -> torch.Tensor:
        """The 2-norm of all (scaled) gradients of the last backward, before their updates.

        Under FSDP2 each process saw its shards; their squared norms are summed over processes
        (a collective: every process must call this).

        Returns:
            torch.Tensor: scalar fp32 norm; 0 when no gradient was seen.
        """
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        sq = self._sq_norm if self._sq_norm is not None else torch.zeros((), device=params[0].device)
        if dist.is_available() and dist.is_initialized() and any(hasattr(p, "to_local") for p in params):
            sq = sq.clone()
            dist.all_reduce(sq)
        return sq.sqrt()

    def remove(self) -> None:
        """Remove the hooks: the optimizer is then stepped by hand again."""
        for handle in self._handles:
            handle.remove()
        self._handles = []


def check_optimizer_in_bwd(cfg: DictConfig) -> bool:
    """Whether the recipe config asks for ``optimizer_in_bwd``, after checking it can work.

    Args:
        cfg (DictConfig): the recipe config (keys ``optimizer_in_bwd``, ``clip_grad_norm``,
            ``gradient_accumulation_steps``).

    Returns:
        bool: ``cfg.optimizer_in_bwd`` (False when absent).

    Raises:
        ConfigError: when it is not a bool, or is combined with ``clip_grad_norm`` or with
            ``gradient_accumulation_steps`` > 1, which both need every gradient before any update.
    """
    value = cfg.get("optimizer_in_bwd", False)
    where = cfg.location("optimizer_in_bwd") or "config"
    if not isinstance(value, bool):
        raise ConfigError(f"optimizer_in_bwd ({where}) must be true or false, got {value!r}")
    if not value:
        return False
    if cfg.get("clip_grad_norm") is not None:
        raise ConfigError(
            f"optimizer_in_bwd: true ({where}) updates each parameter as soon as its gradient is "
            f"ready, so gradients cannot be clipped by their total norm; got clip_grad_norm="
            f"{cfg.clip_grad_norm!r}. Set clip_grad_norm: null, or optimizer_in_bwd: false"
        )
    accum = cfg.get("gradient_accumulation_steps", 1)
    if accum != 1:
        raise ConfigError(
            f"optimizer_in_bwd: true ({where}) updates the weights during every backward, so "
            f"gradients cannot accumulate over micro-batches; got gradient_accumulation_steps={accum!r}. "
            "Set gradient_accumulation_steps: 1 (raise batch_size instead), or optimizer_in_bwd: false"
        )
    return True
