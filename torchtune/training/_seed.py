"""Seeding for reproducible training, and every random-number-generator state as plain values (no
pickled objects) for exact resume."""

import logging
import os
import random
from typing import Any

import numpy as np
import torch

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


def get_rng_state() -> dict[str, Any]:
    """Capture every random-number-generator state as tensors, ints, floats and None.

    The result holds no pickled objects, so it can be saved with safetensors/JSON or
    ``torch.save`` and read back with ``torch.load(weights_only=True)``.

    Returns:
        dict[str, Any]: ``python_version`` (int), ``python_state`` (int64 tensor [625]),
        ``python_gauss`` (float | None), ``numpy_state`` (int64 tensor [624]),
        ``numpy_pos`` (int), ``numpy_has_gauss`` (int), ``numpy_gauss`` (float),
        ``torch_cpu`` (uint8 tensor), ``torch_cuda`` (list of uint8 tensors, empty
        without CUDA).
    """
    version, py_state, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    assert name == "MT19937", name
    return {
        "python_version": int(version),
        "python_state": torch.tensor(py_state, dtype=torch.int64),
        "python_gauss": gauss,
        "numpy_state": torch.from_numpy(keys.astype(np.int64)),
        "numpy_pos": int(pos),
        "numpy_has_gauss": int(has_gauss),
        "numpy_gauss": float(cached),
        "torch_cpu": torch.get_rng_state(),
        "torch_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore states captured by :func:`get_rng_state`.

    Args:
        state (dict[str, Any]): the dict from :func:`get_rng_state` (possibly reloaded).

    Raises:
        KeyError: naming the missing entries when ``state`` is incomplete.
        ValueError: when CUDA states are given but the device count differs.
    """
    missing = [k for k in _KEYS if k not in state]
    if missing:
        raise KeyError(f"RNG state is missing {missing}; expected the dict from get_rng_state()")
    py_state = tuple(int(x) for x in state["python_state"].tolist())
    random.setstate((state["python_version"], py_state, state["python_gauss"]))
    keys = state["numpy_state"].numpy().astype(np.uint32)
    np.random.set_state(
        ("MT19937", keys, state["numpy_pos"], state["numpy_has_gauss"], state["numpy_gauss"])
    )
    torch.set_rng_state(state["torch_cpu"].to(torch.uint8).cpu())
    cuda = list(state["torch_cuda"])
    if cuda:
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n != len(cuda):
            raise ValueError(f"RNG state has {len(cuda)} CUDA generator states but {n} CUDA devices are visible")
        torch.cuda.set_rng_state_all([s.to(torch.uint8).cpu() for s in cuda])


_KEYS = (
    "python_version",
    "python_state",
    "python_gauss",
    "numpy_state",
    "numpy_pos",
    "numpy_has_gauss",
    "numpy_gauss",
    "torch_cpu",
    "torch_cuda",
)
