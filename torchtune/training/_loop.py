"""Arithmetic every training loop shares."""

from torchtune.config import ConfigError


def steps_per_epoch(
    num_samples: int,
    *,
    batch_size: int,
    gradient_accumulation_steps: int,
    world_size: int = 1,
    max_steps_per_epoch: int | None = None,
) -> int:
    """Optimizer steps in one epoch: whole global batches of the dataset, capped by
    ``max_steps_per_epoch``.

    Args:
        num_samples (int): the dataset's length.
        batch_size (int): samples per micro-batch and process.
        gradient_accumulation_steps (int): micro-batches per optimizer step.
        world_size (int): processes, each with its own micro-batches. Default 1.
        max_steps_per_epoch (int | None): cap. Default None.

    Returns:
        int: steps per epoch, >= 1.

    Raises:
        ConfigError: when the dataset holds less than one global batch.
    """
    per_step = batch_size * gradient_accumulation_steps * world_size
    steps = num_samples // per_step
    if max_steps_per_epoch is not None:
        steps = min(steps, max_steps_per_epoch)
    if steps < 1:
        processes = f" * processes ({world_size})" if world_size > 1 else ""
        raise ConfigError(
            f"the dataset has {num_samples} samples, fewer than batch_size * gradient_accumulation_steps{processes} "
            f"= {per_step}; lower batch_size or gradient_accumulation_steps"
        )
    return steps
