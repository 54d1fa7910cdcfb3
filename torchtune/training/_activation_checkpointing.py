"""Activation checkpointing: recompute chosen submodules' activations in the backward pass."""

import logging
from collections.abc import Callable, Collection
from typing import Any

from torch import nn
from torch.utils.checkpoint import checkpoint

logger = logging.getLogger(__name__)

Policy = Collection[type[nn.Module]] | Callable[[nn.Module], bool]


class _CheckpointedForward:
    """Replacement ``forward`` that runs the original under non-reentrant checkpointing."""

    def __init__(self, forward: Callable[..., Any]) -> None:
        self.original = forward

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return checkpoint(self.original, *args, use_reentrant=False, **kwargs)


def is_checkpointed(module: nn.Module) -> bool:
    """Whether :func:`apply_activation_checkpointing` wrapped ``module``."""
    return isinstance(module.__dict__.get("forward"), _CheckpointedForward)


def apply_activation_checkpointing(model: nn.Module, auto_wrap_policy: Policy) -> int:
    """Checkpoint every submodule selected by ``auto_wrap_policy``, in place.

    A selected module's ``forward`` is replaced by one that calls the original through
    ``torch.utils.checkpoint.checkpoint(..., use_reentrant=False)``: its intermediate
    activations are freed after the forward pass and recomputed during backward. The
    module tree and state-dict keys are unchanged (no wrapper module is inserted). Modules
    inside an already selected module are not selected again. Submodules with their own
    recomputation (``set_activation_recompute``, e.g. :class:`~torchtune.modules.FeedForward`)
    have it turned off inside a checkpointed module, where it only adds memory.

    Args:
        model (nn.Module): the model (the root itself may be selected).
        auto_wrap_policy (Collection[type[nn.Module]] | Callable[[nn.Module], bool]): module
            types to checkpoint (e.g. ``{TransformerSelfAttentionLayer}``), or a predicate.

    Returns:
        int: the number of modules checkpointed.

    Raises:
        TypeError: when the policy is neither a collection of module types nor a callable.
    """
    select = _as_predicate(auto_wrap_policy)
    count = 0
    stack = [model]
    while stack:
        module = stack.pop()
        if select(module) and not is_checkpointed(module):
            module.forward = _CheckpointedForward(module.forward)
            for sub in module.modules():  # e.g. FeedForward: the checkpoint recomputes the whole layer
                if callable(getattr(sub, "set_activation_recompute", None)):
                    sub.set_activation_recompute(False)
            count += 1
            continue
        stack.extend(reversed(list(module.children())))
    logger.info("activation checkpointing applied to %d modules", count)
    return count


def _as_predicate(policy: Policy) -> Callable[[nn.Module], bool]:
    if isinstance(policy, type):
        policy = {policy}
    if isinstance(policy, Collection) and not isinstance(policy, (str, bytes)):
        types = tuple(policy)
        if not all(isinstance(t, type) and issubclass(t, nn.Module) for t in types):
            raise TypeError(f"auto_wrap_policy must hold nn.Module subclasses, got {types!r}")
        return lambda m: isinstance(m, types)
    if callable(policy):
        return policy
    raise TypeError(
        f"auto_wrap_policy must be a collection of nn.Module types or a callable, got {type(policy).__name__}"
    )
