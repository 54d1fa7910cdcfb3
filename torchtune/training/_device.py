"""Which device and which dtype a run uses: one answer for every recipe.

``device: auto`` picks CUDA, then Apple MPS (single process only), then CPU. ``dtype: auto``
picks bf16 where the device multiplies bf16 matrices fast (CUDA with bf16 support; CPUs with
AMX or AVX512-BF16) and fp32 elsewhere, and says why. :func:`precision_plan` adds fp32 master
weights (autocast on one device, FSDP2's mixed-precision policy when sharded).
"""

import contextlib
import os
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import torch

from torchtune.config import ConfigError

#: The dtype names a config may use.
DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def get_device(name: str = "auto", *, distributed: bool = False) -> torch.device:
    """The device a config's ``device`` names.

    Args:
        name (str): ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:<i>"`` or ``"mps"``. Default ``"auto"``.
        distributed (bool): the process is one of several (torchrun): CUDA then means this
            process's local GPU (``LOCAL_RANK``), which becomes the current device, and ``auto``
            never picks MPS. Default False.

    Returns:
        torch.device: the device.

    Raises:
        ConfigError: when the named device is not available here (naming ``device`` and the fix).
    """
    if name == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        elif not distributed and torch.backends.mps.is_available():
            name = "mps"
        else:
            name = "cpu"
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise ConfigError(f"device={name!r} is not a device name; use auto, cpu, cuda or mps") from e
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device={name!r} but this machine has no usable CUDA GPU; use device=auto or device=cpu")
        if distributed and device.index is None:
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        if device.index is not None:
            torch.cuda.set_device(device)
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device={name!r} but MPS is not available here; use device=auto or device=cpu")
    return device


def _bf16_is_fast(device: torch.device) -> tuple[bool, str]:
    """Whether bf16 matrix multiplies beat fp32 on ``device``, and the reason, in words."""
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return True, f"{torch.cuda.get_device_name(device)} supports bf16"
        return False, f"{torch.cuda.get_device_name(device)} has no bf16 support"
    if device.type == "cpu":
        if torch.cpu._is_amx_tile_supported():
            return True, "the CPU has AMX tiles"
        if torch.cpu._is_avx512_bf16_supported():
            return True, "the CPU has AVX512-BF16"
        return False, f"the CPU has no bf16 matrix units ({torch.backends.cpu.get_cpu_capability()})"
    return False, f"auto keeps fp32 on {device.type}"


def bf16_supported(device: torch.device) -> bool:
    """Whether ``device`` can compute in bf16 at all (fast or not).

    Args:
        device (torch.device): the training device.

    Returns:
        bool: False only for a CUDA GPU without bf16.
    """
    return device.type != "cuda" or torch.cuda.is_bf16_supported()


def get_dtype(name: str, device: torch.device) -> tuple[torch.dtype, str]:
    """The dtype a config's ``dtype`` names on ``device``, and why it was chosen.

    Args:
        name (str): ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"``.
        device (torch.device): where the model runs.

    Returns:
        tuple[torch.dtype, str]: the dtype and a sentence for the run's log.

    Raises:
        ConfigError: on an unknown name, or bf16 on a device without bf16 support.
    """
    if name == "auto":
        fast, why = _bf16_is_fast(device)
        return (torch.bfloat16, f"dtype=auto chose bf16: {why}") if fast else (torch.float32, f"dtype=auto chose fp32: {why}")
    if name not in DTYPES:
        raise ConfigError(f"dtype={name!r} is not supported; use one of {['auto', *sorted(DTYPES)]}")
    if DTYPES[name] == torch.bfloat16 and not bf16_supported(device):
        raise ConfigError(f"dtype=bf16 but {torch.cuda.get_device_name(device)} has no bf16 support; use dtype=auto or dtype=fp32")
    return DTYPES[name], f"dtype={name}"


@dataclass(frozen=True)
class PrecisionPlan:
    """Which dtype parameters are stored in, which one computes, and how gradients are reduced.

    Made by :func:`precision_plan`. With fp32 master weights the parameters (and so the optimizer
    state) stay fp32 while matrix products run in ``compute_dtype``: on one device through
    ``torch.autocast`` (:meth:`autocast`), under FSDP2 through its ``MixedPrecisionPolicy``
    (:meth:`mp_policy`), which gathers bf16 copies of the fp32 shards.

    Args:
        param_dtype (torch.dtype): dtype of the stored parameters (``model.to(dtype=...)``).
        compute_dtype (torch.dtype): dtype of the forward and backward matrix products.
        reduce_dtype (torch.dtype | None): dtype FSDP2 reduce-scatters gradients in; None keeps
            the gradients' own dtype.
        device_type (str): ``"cuda"``, ``"cpu"``, ...
        distributed (bool): the model is sharded with FSDP2.
    """

    param_dtype: torch.dtype
    compute_dtype: torch.dtype
    reduce_dtype: torch.dtype | None
    device_type: str
    distributed: bool

    def autocast(self) -> AbstractContextManager:
        """The context to run forward (and the loss) in: autocast to ``compute_dtype`` when one
        device keeps fp32 master weights, else nothing."""
        if self.distributed or self.param_dtype == self.compute_dtype:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.compute_dtype)

    def mp_policy(self) -> Any:
        """The FSDP2 ``MixedPrecisionPolicy`` (``torch.distributed.fsdp``), or None when nothing
        is cast: bf16 (``compute_dtype``) parameters gathered from fp32 shards, gradients reduced
        in ``reduce_dtype``."""
        if not self.distributed:
            return None
        cast = self.param_dtype != self.compute_dtype
        if not cast and self.reduce_dtype in (None, self.param_dtype):
            return None
        from torch.distributed.fsdp import MixedPrecisionPolicy

        return MixedPrecisionPolicy(param_dtype=self.compute_dtype if cast else None, reduce_dtype=self.reduce_dtype)


def precision_plan(
    dtype: torch.dtype,
    device: torch.device,
    *,
    fp32_master_weights: bool = False,
    reduce_dtype: str | None = None,
    distributed: bool = False,
) -> PrecisionPlan:
    """How a run with compute dtype ``dtype`` (from :func:`get_dtype`) stores, computes and reduces.

    Args:
        dtype (torch.dtype): the compute dtype.
        device (torch.device): the training device.
        fp32_master_weights (bool): keep parameters and optimizer state in fp32 while computing
            in ``dtype`` (the config's ``fp32_master_weights``; no effect when ``dtype`` is fp32).
            Default False.
        reduce_dtype (str | None): ``"fp32"`` or ``"bf16"``: the dtype FSDP2 reduces gradients in
            (the config's ``reduce_dtype``); None keeps the gradients' dtype. Default None.
        distributed (bool): the model is sharded with FSDP2. Default False.

    Returns:
        PrecisionPlan: the plan.

    Raises:
        ConfigError: on an unknown ``reduce_dtype``.
    """
    if reduce_dtype is not None and reduce_dtype not in ("fp32", "bf16"):
        raise ConfigError(f"reduce_dtype={reduce_dtype!r} is not supported; use fp32, bf16 or leave it out (null)")
    param_dtype = torch.float32 if fp32_master_weights else dtype
    return PrecisionPlan(param_dtype=param_dtype, compute_dtype=dtype,
                         reduce_dtype=DTYPES[reduce_dtype] if reduce_dtype else None,
                         device_type=device.type, distributed=distributed)
