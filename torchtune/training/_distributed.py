"""Distributed training helpers: process group, FSDP2 sharding, full/sharded state dicts, DCP.

The model is sharded with FSDP2 (``torch.distributed.fsdp.fully_shard``), one unit per decoder
layer plus the root. Checkpoints are gathered to rank 0 as full state dicts; sharded checkpoints
(DCP) are written by :func:`torchtune.training.checkpointing.dcp_save`.
"""

import logging
import os
import re
from typing import TYPE_CHECKING, Any, Callable, Sequence

import torch
import torch.distributed as dist
from torch import nn

if TYPE_CHECKING:
    from torch.distributed.fsdp import MixedPrecisionPolicy

logger = logging.getLogger(__name__)

def _sd():
    """``torch.distributed.checkpoint.state_dict``, imported on first use (it is slow to import)."""
    import torch.distributed.checkpoint.state_dict as state_dict_api

    return state_dict_api


def _full_options(**kwargs: bool):
    return _sd().StateDictOptions(full_state_dict=True, **kwargs)

_LAYER_NAME = re.compile(r"(^|\.)layers\.\d+$")


def is_distributed() -> bool:
    """Whether a process group is initialized."""
    return dist.is_available() and dist.is_initialized()


def init_distributed(backend: str | None = None) -> bool:
    """Initialize the default process group from the torchrun environment.

    Args:
        backend (str | None): ``"gloo"`` or ``"nccl"``; None picks nccl with CUDA, else gloo.

    Returns:
        bool: True when running distributed (``WORLD_SIZE`` set by torchrun), False otherwise.

    Raises:
        ValueError: if ``backend`` is not gloo or nccl.
    """
    if backend is not None and backend not in ("gloo", "nccl"):
        raise ValueError(f"backend={backend!r} must be 'gloo', 'nccl' or None")
    if is_distributed():
        return True
    if "WORLD_SIZE" not in os.environ or "MASTER_ADDR" not in os.environ:
        return False
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend)
    logger.info("Initialized %s process group: rank %d of %d", backend, dist.get_rank(), dist.get_world_size())
    return True


def get_world_size_and_rank() -> tuple[int, int]:
    """``(world_size, rank)``; ``(1, 0)`` when not distributed."""
    if is_distributed():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def _is_decoder_layer(name: str, module: nn.Module) -> bool:
    return bool(_LAYER_NAME.search(name))


def shard_model(
    model: nn.Module,
    *,
    shard_conditions: Sequence[Callable[[str, nn.Module], bool]] | None = None,
    layer_types: tuple[type[nn.Module], ...] | None = None,
    cpu_offload: bool = False,
    reshard_after_forward: bool = True,
    mp_policy: "MixedPrecisionPolicy | None" = None,
) -> nn.Module:
    """Shard ``model`` in place with FSDP2: each selected submodule, then the root.

    Args:
        model (nn.Module): the model, on its training device (or meta, materialized later).
        shard_conditions (Sequence[Callable[[str, nn.Module], bool]] | None): a submodule
            ``(name, module)`` becomes its own FSDP unit if any condition holds.
        layer_types (tuple[type[nn.Module], ...] | None): submodules of these types become units.
            When neither this nor ``shard_conditions`` is given, the units are the decoder
            layers (modules named ``layers.<i>``).
        cpu_offload (bool): keep sharded parameters and gradients on CPU. Default False.
        reshard_after_forward (bool): free gathered parameters after forward. Default True.
        mp_policy (MixedPrecisionPolicy | None): e.g. ``MixedPrecisionPolicy(param_dtype=
            torch.bfloat16, reduce_dtype=torch.float32)``. Default None (no casting).

    Returns:
        nn.Module: ``model`` itself, now sharded.

    Raises:
        ValueError: if ``cpu_offload`` is set without CUDA.
        RuntimeError: if no process group is initialized.
    """
    if cpu_offload and not torch.cuda.is_available():
        raise ValueError("cpu_offload=True needs a CUDA device; without one the parameters already live on the CPU")
    if not is_distributed():
        raise RuntimeError("shard_model needs an initialized process group; call init_distributed() first")
    from torch.distributed.fsdp import CPUOffloadPolicy, fully_shard
    conditions = list(shard_conditions or [])
    if layer_types:
        conditions.append(lambda name, module: isinstance(module, layer_types))
    if not conditions:
        conditions.append(_is_decoder_layer)
    kwargs: dict[str, Any] = {"reshard_after_forward": reshard_after_forward}
    if cpu_offload:
        kwargs["offload_policy"] = CPUOffloadPolicy()
    if mp_policy is not None:
        kwargs["mp_policy"] = mp_policy
    units = [m for name, m in model.named_modules() if name and any(c(name, m) for c in conditions)]
    for module in reversed(units):
        fully_shard(module, **kwargs)
    fully_shard(model, **kwargs)
    logger.info("Sharded the model into %d FSDP units plus the root", len(units))
    return model


def gather_full_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Gather the full (unsharded) model state dict onto rank 0's CPU.

    Returns:
        dict[str, torch.Tensor]: the full state dict on rank 0; an empty dict on other ranks.
    """
    return _sd().get_model_state_dict(model, options=_full_options(cpu_offload=True))


def gather_full_optimizer_state_dict(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Gather the full optimizer state dict (keyed by parameter name) onto rank 0's CPU.

    Plain states are all-gathered as DTensors. Quantised states (torchao's 8-bit optimizer tensor
    subclasses, sharded on dim 0 like their parameters, each shard with whole quantisation blocks)
    are gathered here from their inner ``codes`` and ``scale`` tensors with plain collectives and
    rebuilt on rank 0: DTensor's own all-gather of these subclasses (functional collectives on their
    inner tensors) crashed a gloo process at a save now and then.

    Returns:
        dict[str, Any]: ``{"state": {fqn: {...}}, "param_groups": [...]}`` on rank 0; empty elsewhere.

    Raises:
        TypeError: for a quantised state that is not made of ``codes`` and ``scale`` blocks.
    """
    sharded = _sd().get_optimizer_state_dict(model, optimizer, options=_sd().StateDictOptions(full_state_dict=False))
    rank = dist.get_rank() if dist.is_initialized() else 0
    full: dict[str, dict[str, Any]] = {}
    for fqn, state in sharded.get("state", {}).items():  # the parameters' order, the same on every process
        for key, value in state.items():
            local = getattr(value, "_local_tensor", None)
            if local is None:  # not sharded (e.g. the step count)
                gathered = value.detach().cpu() if isinstance(value, torch.Tensor) else value
            elif type(local) is torch.Tensor:
                gathered = value.full_tensor().cpu()
            else:
                gathered = _gather_quantised_state(local, tuple(value.shape), f"{fqn} ({key})")
            if rank == 0:
                full.setdefault(fqn, {})[key] = gathered
    return {"state": full, "param_groups": sharded["param_groups"]} if rank == 0 else {}


def _gather_quantised_state(local: torch.Tensor, shape: tuple[int, ...], name: str) -> torch.Tensor | None:
    """One quantised optimizer state of ``shape`` rebuilt on rank 0's CPU from every process's
    dim-0 shard ``local`` (None on the other ranks)."""
    if not all(isinstance(getattr(local, attr, None), torch.Tensor) for attr in ("codes", "scale")):
        raise TypeError(f"optimizer state {name} is a {type(local).__name__}, which cannot be gathered: only "
                        "quantised states made of 'codes' and 'scale' blocks (torchao's 8-bit optimizers) can")
    inner_names, context = local.__tensor_flatten__()
    parts = [local.codes.detach().cpu(), local.scale.detach().cpu()]
    everyone: list[Any] = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(parts, everyone, dst=0)
    if dist.get_rank() != 0:
        return None
    inner = {n: getattr(local, n).detach().cpu() for n in inner_names}
    inner["codes"] = torch.cat([codes for codes, _ in everyone])  # [rows, ...]
    inner["scale"] = torch.cat([scale for _, scale in everyone])  # [blocks]
    return type(local).__tensor_unflatten__(inner, context, shape, None)


def load_full_state_dict(model: nn.Module, full_state_dict: dict[str, torch.Tensor], *, strict: bool = True) -> None:
    """Load a full state dict held by rank 0 into a sharded model (broadcast, then sharded).

    Args:
        model (nn.Module): the sharded model.
        full_state_dict (dict[str, torch.Tensor]): the full state dict on rank 0; other ranks may
            pass an empty dict.
        strict (bool): require every key to match. Default True.
    """
    options = _full_options(broadcast_from_rank0=True, strict=strict)
    _sd().set_model_state_dict(model, full_state_dict, options=options)


def load_full_optimizer_state_dict(
    model: nn.Module, optimizer: torch.optim.Optimizer, full_state_dict: dict[str, Any]
) -> None:
    """Load a full optimizer state dict (from :func:`gather_full_optimizer_state_dict`).

    Plain tensors are broadcast from rank 0. Quantised states (torchao's 8-bit optimizer
    tensor subclasses) cannot be broadcast, so every process must pass the full state dict (the
    recipes read it from the checkpoint on every process): each takes the rows of its own shard
    from it (FSDP2 shards dim 0 in ``ceil(rows / world_size)`` chunks).

    Raises:
        ValueError: when a quantised state is given on one process only or does not match its shard.
    """
    quantised = {(fqn, key): value for fqn, state in (full_state_dict.get("state") or {}).items()
                 for key, value in state.items() if isinstance(value, torch.Tensor) and type(value) is not torch.Tensor}
    plain = full_state_dict
    if quantised:
        plain = {**full_state_dict, "state": {
            fqn: {k: v for k, v in state.items() if (fqn, k) not in quantised}
            for fqn, state in full_state_dict["state"].items()}}
    _sd().set_optimizer_state_dict(model, optimizer, plain, options=_full_options(broadcast_from_rank0=True))
    if dist.is_initialized():  # every process needs the quantised states itself: none can be broadcast
        most = torch.tensor([float(len(quantised))], device=next(model.parameters()).device)
        dist.all_reduce(most, op=dist.ReduceOp.MAX)
        if int(most.item()) != len(quantised):
            raise ValueError(f"this process was given {len(quantised)} quantised optimizer states, another "
                             f"{int(most.item())}: pass the full optimizer state dict on every process")
    if not quantised:
        return
    world_size, rank = get_world_size_and_rank()
    params = dict(model.named_parameters())
    for (fqn, key), full in quantised.items():
        local = optimizer.state[params[fqn]][key]
        shard = local.to_local() if hasattr(local, "to_local") else local
        rows = -(-full.shape[0] // world_size) if hasattr(local, "to_local") else 0
        start = min(rank * rows, full.shape[0])
        if tuple(shard.shape) != (min(start + shard.shape[0], full.shape[0]) - start, *full.shape[1:]):
            raise ValueError(f"saved optimizer state {fqn!r} ({key}) of shape {tuple(full.shape)} does not "
                             f"match this process's shard {tuple(shard.shape)}")
        with torch.no_grad():
            shard.copy_(full[start:start + shard.shape[0]].to(shard.device))
