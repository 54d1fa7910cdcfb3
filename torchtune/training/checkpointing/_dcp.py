"""Sharded checkpoints with ``torch.distributed.checkpoint`` (DCP, safetensors storage), written
through the same crash-safe directory protocol as every other checkpoint."""

import os
import shutil
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch import nn

from torchtune.training.checkpointing._atomic import commit_temp_dir, prepare_temp_dir, temp_dir_for
from torchtune.training.checkpointing._recipe_state import read_tree, write_tree

PARAM_GROUPS = "optimizer_param_groups"


def _sd():
    """``torch.distributed.checkpoint.state_dict``, imported on first use (it is slow to import)."""
    import torch.distributed.checkpoint.state_dict as state_dict_api

    return state_dict_api


def _sharded_state(model: nn.Module, optimizer: torch.optim.Optimizer | None) -> tuple[dict[str, Any], list | None]:
    """The sharded (DTensor) tensors DCP saves and loads, and the optimizer's param groups."""
    state = {"model": _sd().get_model_state_dict(model)}
    if optimizer is None:
        return state, None
    optim_state = _sd().get_optimizer_state_dict(model, optimizer)
    state["optimizer"] = optim_state["state"]
    return state, optim_state["param_groups"]


def _shared_token() -> int:
    """Rank 0's process id, known to every rank (names the shared temporary directory)."""
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    token = torch.tensor([os.getpid()], dtype=torch.int64, device=device)
    dist.broadcast(token, src=0)
    return int(token.item())


def dcp_save(
    final_path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    write_extra: Callable[[Path], None] | None = None,
    overwrite: bool = True,
) -> Path:
    """Save the sharded model (and optimizer) state with DCP into a crash-safe directory.

    Every rank writes its shards as safetensors (DCP's Hugging Face storage) into the same
    temporary directory; rank 0 writes the optimizer's param groups as JSON
    (``optimizer_param_groups.json``) and, after a barrier, runs ``write_extra`` (e.g. recipe
    state), marks the directory complete and renames it into place. Nothing is pickled.
    Must be called on every rank.

    Args:
        final_path (str | Path): the checkpoint directory, on a filesystem all ranks share.
        model (nn.Module): the sharded model.
        optimizer (torch.optim.Optimizer | None): its optimizer. Default None.
        write_extra (Callable[[Path], None] | None): called on rank 0 with the temporary directory.
        overwrite (bool): replace an existing ``final_path``. Default True.

    Returns:
        Path: ``final_path``.
    """
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import HuggingFaceStorageWriter

    final = Path(final_path)
    token = _shared_token()
    rank = dist.get_rank()
    if rank == 0:
        prepare_temp_dir(final, token)
    dist.barrier()
    tmp = temp_dir_for(final, token)
    try:
        state, param_groups = _sharded_state(model, optimizer)
        dcp.save(state, storage_writer=HuggingFaceStorageWriter(str(tmp), save_distributed=True))
        dist.barrier()
        if rank == 0:
            if param_groups is not None:
                write_tree(tmp, PARAM_GROUPS, param_groups)
            if write_extra is not None:
                write_extra(tmp)
            commit_temp_dir(tmp, final, overwrite=overwrite)
        dist.barrier()
    except BaseException:
        if rank == 0:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def dcp_load(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> None:
    """Load a :func:`dcp_save` checkpoint into the sharded model (and optimizer), in place.

    Args:
        path (str | Path): the checkpoint directory.
        model (nn.Module): the sharded model.
        optimizer (torch.optim.Optimizer | None): its optimizer. Default None.
    """
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import HuggingFaceStorageReader

    state, _ = _sharded_state(model, optimizer)
    dcp.load(state, storage_reader=HuggingFaceStorageReader(str(path)))
    _sd().set_model_state_dict(model, state["model"])
    if optimizer is not None:
        optim_state = {"state": state["optimizer"], "param_groups": read_tree(path, PARAM_GROUPS)}
        _sd().set_optimizer_state_dict(model, optimizer, optim_state)
