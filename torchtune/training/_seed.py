"""Seeding for reproducible training; RNG state capture lives in torchtune.utils._rng."""

import logging
import os
import random

import numpy as np
import torch

from torchtune.utils._rng import get_rng_state, set_rng_state  # re-exported here

logger = logging.getLogger(__name__)

_MAX_SEED = 2**32 - 1  # numpy's limit


def set_seed(seed: int, rank: int = 0, deterministic: bool = False) -> int:
    """Seed Python, NumPy and torch (CPU and every CUDA device) with ``seed + rank``.

    Each rank gets a different stream (dropout differs across data-parallel ranks); data
    order is not affected, since samplers carry their own seed.

    Args:
        seed (int): the base seed, ``0 <= seed + rank < 2**32``.
        rank (int): the process rank added to ``seed``. Default: 0.
        deterministic (bool): also make torch use deterministic algorithms
            (``torch.use_deterministic_algorithms(True)``, cuDNN deterministic and not
            benchmarking, ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` unless set). Ops without a
            deterministic implementation then raise. This setting is process-wide and
            slower. Default: False.

    Returns:
        int: the seed actually used (``seed + rank``).

    Raises:
        ValueError: when the seed is out of range or ``rank`` is negative.
    """
    if rank < 0:
        raise ValueError(f"rank={rank} must be >= 0")
    effective = seed + rank
    if not 0 <= effective <= _MAX_SEED:
        raise ValueError(f"seed={seed} (+ rank={rank}) must be in [0, {_MAX_SEED}]")
    random.seed(effective)
    np.random.seed(effective)
    torch.manual_seed(effective)  # also seeds every CUDA device
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    logger.debug("seeded with %d (deterministic=%s)", effective, deterministic)
    return effective


__all__ = ["get_rng_state", "set_rng_state", "set_seed"]
