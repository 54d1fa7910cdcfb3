"""Stop training on a non-finite loss before the optimizer step corrupts the weights."""

import math

import torch


class TrainingDivergedError(FloatingPointError):
    """The loss (or another watched value) became NaN or infinite.

    Args:
        name (str): what was checked, e.g. ``"loss"``.
        value (float): the non-finite value.
        step (int): the training step.
    """

    def __init__(self, name: str, value: float, step: int) -> None:
        self.name, self.value, self.step = name, value, step
        super().__init__(
            f"{name} is {value} at step {step}: training diverged. Stopped before the optimizer "
            "step, so the weights and the last saved checkpoint are unaffected. Try a lower "
            "learning rate or more warmup, enable gradient clipping (clip_grad_norm), use "
            "bf16/fp32 instead of fp16, and check the data around this step."
        )


def check_finite(value: torch.Tensor | float, step: int, name: str = "loss") -> None:
    """Raise :class:`TrainingDivergedError` if ``value`` has a NaN or infinite entry.

    Recipes call it after ``backward`` and before ``optimizer.step()``. For a tensor on
    an accelerator this synchronises with the device (one scalar copy).

    Args:
        value (torch.Tensor | float): the loss (any shape) or a float.
        step (int): the current step, named in the error.
        name (str): what ``value`` is, named in the error. Default: ``"loss"``.

    Raises:
        TrainingDivergedError: when ``value`` is not finite.
    """
    if isinstance(value, torch.Tensor):
        value = value.detach()
        if bool(torch.isfinite(value).all()):
            return
        bad = value[~torch.isfinite(value)].flatten()[0] if value.dim() else value
        raise TrainingDivergedError(name, float(bad), step)
    if not math.isfinite(value):
        raise TrainingDivergedError(name, float(value), step)
