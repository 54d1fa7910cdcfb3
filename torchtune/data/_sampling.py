"""The order in which an epoch visits a dataset: seeded, resumable, split across processes."""

import torch


def epoch_sample_order(
    num_samples: int, *, seed: int, epoch: int, shuffle: bool = True, world_size: int = 1, rank: int = 0
) -> list[int]:
    """Sample indices of one epoch for one process.

    The order depends only on ``seed + epoch`` (a resumed run sees the same batches, skipping
    the samples it had seen). With several processes, process ``rank`` takes every
    ``world_size``-th index and every process gets the same number (the last
    ``num_samples % world_size`` indices of the epoch are left out), so that processes run the
    same number of steps.

    Args:
        num_samples (int): the dataset's length.
        seed (int): the run's seed.
        epoch (int): the epoch, from 0.
        shuffle (bool): a seeded permutation; False keeps dataset order. Default True.
        world_size (int): number of processes. Default 1.
        rank (int): this process, ``0 <= rank < world_size``. Default 0.

    Returns:
        list[int]: this process's indices, in visiting order.

    Raises:
        ValueError: when ``rank`` is not in ``[0, world_size)``.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank={rank} must be in [0, world_size={world_size})")
    if shuffle:
        order = torch.randperm(num_samples, generator=torch.Generator().manual_seed(seed + epoch)).tolist()
    else:
        order = list(range(num_samples))
    return order[rank : num_samples // world_size * world_size : world_size]
