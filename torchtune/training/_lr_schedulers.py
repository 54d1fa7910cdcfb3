"""Learning-rate schedules with linear warmup, as ``LambdaLR`` so state dicts round-trip."""

import functools
import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def _check(num_warmup_steps: int, num_training_steps: int) -> None:
    if num_warmup_steps < 0:
        raise ValueError(f"num_warmup_steps={num_warmup_steps} must be >= 0")
    if num_training_steps < 1:
        raise ValueError(f"num_training_steps={num_training_steps} must be >= 1")


def _cosine_factor(step: int, *, num_warmup_steps: int, num_training_steps: int, num_cycles: float) -> float:
    if step < num_warmup_steps:
        return step / max(1, num_warmup_steps)
    progress = (step - num_warmup_steps) / max(1, num_training_steps - num_warmup_steps)
    return max(0.0, 0.5 * (1.0 + math.cos(2.0 * math.pi * num_cycles * progress)))


def _linear_factor(step: int, *, num_warmup_steps: int, num_training_steps: int) -> float:
    if step < num_warmup_steps:
        return step / max(1, num_warmup_steps)
    return max(0.0, (num_training_steps - step) / max(1, num_training_steps - num_warmup_steps))


def get_cosine_schedule_with_warmup(
    optimizer: Optimizer,
    num_warmup_steps: int,
    num_training_steps: int,
    num_cycles: float = 0.5,
    last_epoch: int = -1,
) -> LambdaLR:
    """Linear warmup from 0 to the base lr, then cosine decay.

    At step ``t`` the lr is ``base_lr * f(t)`` with ``f(t) = t / num_warmup_steps`` during
    warmup and ``max(0, 0.5 * (1 + cos(2 pi * num_cycles * p)))`` after it, where
    ``p = (t - num_warmup_steps) / (num_training_steps - num_warmup_steps)``. With the default
    ``num_cycles=0.5`` the lr reaches 0 at ``num_training_steps``.

    Args:
        optimizer (Optimizer): the optimizer whose lr is scheduled.
        num_warmup_steps (int): steps of linear warmup (>= 0).
        num_training_steps (int): total optimizer steps (>= 1).
        num_cycles (float): cosine periods over the decay phase. Default: 0.5.
        last_epoch (int): index of the last step when resuming. Default: -1.

    Returns:
        LambdaLR: call ``scheduler.step()`` after each ``optimizer.step()``.

    Raises:
        ValueError: for negative warmup or fewer than one training step.
    """
    _check(num_warmup_steps, num_training_steps)
    factor = functools.partial(
        _cosine_factor,
        num_warmup_steps=num_warmup_steps,
        num_training_steps=num_training_steps,
        num_cycles=num_cycles,
    )
    return LambdaLR(optimizer, factor, last_epoch)


def get_linear_schedule_with_warmup(
    optimizer: Optimizer,
    num_warmup_steps: int,
    num_training_steps: int,
    last_epoch: int = -1,
) -> LambdaLR:
    """Linear warmup from 0 to the base lr, then linear decay to 0 at ``num_training_steps``.

    Args:
        optimizer (Optimizer): the optimizer whose lr is scheduled.
        num_warmup_steps (int): steps of linear warmup (>= 0).
        num_training_steps (int): total optimizer steps (>= 1).
        last_epoch (int): index of the last step when resuming. Default: -1.

    Returns:
        LambdaLR: call ``scheduler.step()`` after each ``optimizer.step()``.

    Raises:
        ValueError: for negative warmup or fewer than one training step.
    """
    _check(num_warmup_steps, num_training_steps)
    factor = functools.partial(
        _linear_factor, num_warmup_steps=num_warmup_steps, num_training_steps=num_training_steps
    )
    return LambdaLR(optimizer, factor, last_epoch)
