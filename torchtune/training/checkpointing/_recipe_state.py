"""Recipe state (progress, optimizer, scheduler, RNG) saved without pickled objects.

Tensors go to ``recipe_state.safetensors``; everything else is JSON in ``recipe_state.json``,
where a tensor is referenced as ``{"__tensor__": key}``, a tuple as ``{"__tuple__": [...]}``
and a dict with non-string keys as ``{"__items__": [[key, value], ...]}``. The quantised
optimizer states of torchao (8-bit AdamW's ``OptimState8bit`` and its kin, tensor subclasses)
are stored as their plain inner tensors and attributes, ``{"__subclass__": "torchao.optim...",
"tensors": {...}, "attrs": [...]}``, and rebuilt from them; only classes under
``torchao.optim`` are rebuilt. Loading never unpickles.
"""

import importlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from torchtune.training import get_rng_state, load_full_optimizer_state_dict, set_rng_state


_FORMAT_VERSION = 1
_SCALARS = (str, int, float, bool, type(None))
# Tensor subclasses stored by their parts (``__tensor_flatten__``) and rebuilt on load.
_SUBCLASS_ROOTS = ("torchao.optim.",)


def _is_stored_subclass(obj: Any) -> bool:
    return isinstance(obj, torch.Tensor) and hasattr(obj, "__tensor_flatten__") and (
        type(obj).__module__ + ".").startswith(_SUBCLASS_ROOTS)


def _subclass(path: str) -> type:
    """The tensor subclass named ``module.QualName``, only under :data:`_SUBCLASS_ROOTS`."""
    module, _, name = path.rpartition(".")
    if not (module + ".").startswith(_SUBCLASS_ROOTS):
        raise ValueError(f"recipe state names tensor class {path!r}; only classes under "
                         f"{', '.join(_SUBCLASS_ROOTS)} are rebuilt")
    cls = getattr(importlib.import_module(module), name, None)
    if not (isinstance(cls, type) and issubclass(cls, torch.Tensor) and hasattr(cls, "__tensor_unflatten__")):
        raise ValueError(f"recipe state names {path!r}, which is not a tensor subclass that can be rebuilt")
    return cls


def _encode(obj: Any, key: str, tensors: dict[str, torch.Tensor]) -> Any:
    """Turn ``obj`` into JSON, moving tensors into ``tensors`` under dotted keys."""
    if _is_stored_subclass(obj):
        names, attrs = obj.__tensor_flatten__()
        return {"__subclass__": f"{type(obj).__module__}.{type(obj).__qualname__}",
                "tensors": {n: _encode(getattr(obj, n), f"{key}.{n}", tensors) for n in names},
                "attrs": _encode(list(attrs), f"{key}.attrs", tensors),
                "shape": list(obj.shape), "stride": list(obj.stride())}
    if isinstance(obj, torch.dtype):
        return {"__dtype__": str(obj).removeprefix("torch.")}
    if isinstance(obj, torch.Tensor):
        if key in tensors:  # dotted paths can coincide ({"a.b": x} and {"a": {"b": y}})
            key = f"{key}#{len(tensors)}"
        tensors[key] = obj.detach().to("cpu").contiguous().clone()
        return {"__tensor__": key}
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": obj.tolist(), "dtype": str(obj.dtype)}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, _SCALARS):
        return obj
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, f"{key}.{i}", tensors) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, f"{key}.{i}", tensors) for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: _encode(v, f"{key}.{k}", tensors) for k, v in obj.items()}
        return {"__items__": [[_encode(k, f"{key}.k{i}", tensors), _encode(v, f"{key}.{k}", tensors)]
                              for i, (k, v) in enumerate(obj.items())]}
    raise TypeError(
        f"recipe state at {key!r} has type {type(obj).__name__}; allowed: tensors, numpy arrays, "
        "str, int, float, bool, None, torch dtypes, torchao optimizer states, and lists/tuples/dicts of those"
    )


def _decode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Invert :func:`_encode`."""
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__tensor__" in obj:
        return tensors[obj["__tensor__"]]
    if "__subclass__" in obj:
        cls = _subclass(obj["__subclass__"])
        inner = {k: _decode(v, tensors) for k, v in obj["tensors"].items()}
        return cls.__tensor_unflatten__(inner, _decode(obj["attrs"], tensors), torch.Size(obj["shape"]),
                                        tuple(obj["stride"]))
    if "__dtype__" in obj:
        dtype = getattr(torch, obj["__dtype__"], None)
        if not isinstance(dtype, torch.dtype):
            raise ValueError(f"recipe state names an unknown dtype {obj['__dtype__']!r}")
        return dtype
    if "__ndarray__" in obj:
        return np.array(obj["__ndarray__"], dtype=obj["dtype"])
    if "__tuple__" in obj:
        return tuple(_decode(v, tensors) for v in obj["__tuple__"])
    if "__items__" in obj:
        return {_decode(k, tensors): _decode(v, tensors) for k, v in obj["__items__"]}
    return {k: _decode(v, tensors) for k, v in obj.items()}


def write_tree(directory: str | Path, stem: str, tree: Any) -> None:
    """Write nested containers of tensors and JSON values as ``<stem>.json`` + ``<stem>.safetensors``.

    Args:
        directory (str | Path): an existing directory.
        stem (str): file name without extension.
        tree (Any): dicts, lists, tuples, tensors, NumPy arrays, str, int, float, bool, None.

    Raises:
        TypeError: if a value cannot be stored without pickling.
    """
    tensors: dict[str, torch.Tensor] = {}
    encoded = _encode(tree, "state", tensors)
    save_file(tensors, Path(directory) / f"{stem}.safetensors", metadata={"format": "pt"})
    with open(Path(directory) / f"{stem}.json", "w", encoding="utf-8") as f:
        json.dump(encoded, f)


def read_tree(directory: str | Path, stem: str) -> Any:
    """Read what :func:`write_tree` wrote (no unpickling).

    Raises:
        FileNotFoundError: if either file is missing.
    """
    directory = Path(directory)
    for name in (f"{stem}.json", f"{stem}.safetensors"):
        if not (directory / name).is_file():
            raise FileNotFoundError(f"{name} not found in {str(directory)!r}")
    with open(directory / f"{stem}.json", encoding="utf-8") as f:
        encoded = json.load(f)
    return _decode(encoded, load_file(directory / f"{stem}.safetensors"))


def save_recipe_state(
    directory: str | Path,
    *,
    step: int,
    epoch: int,
    seed: int | None = None,
    samples_seen: int | None = None,
    optimizer: torch.optim.Optimizer | dict | None = None,
    lr_scheduler: Any = None,
    rng_state: dict[str, Any] | None = None,
    loss_history: list[float] | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write the recipe state into ``directory`` (normally an :func:`atomic_directory`).

    Args:
        directory (str | Path): an existing directory.
        step (int): optimizer steps taken so far.
        epoch (int): the current epoch.
        seed (int | None): the run's seed. Default None.
        samples_seen (int | None): position inside the current epoch's sampler order. Default None.
        optimizer (torch.optim.Optimizer | dict | None): an optimizer or its ``state_dict()``
            (for sharded models, the full optimizer state dict). Default None.
        lr_scheduler (Any): an object with ``state_dict()`` or a state dict. Default None.
        rng_state (dict[str, Any] | None): from :func:`torchtune.training.get_rng_state`; None captures it now.
        loss_history (list[float] | None): losses so far, saved exactly. Default None.
        extra (dict[str, Any] | None): other JSON-able/tensor values. Default None.

    Raises:
        TypeError: if a value cannot be stored without pickling.
    """
    directory = Path(directory)
    if optimizer is not None and hasattr(optimizer, "state_dict"):  # an optimizer (or OptimizerInBackward)
        optimizer = optimizer.state_dict()
    if lr_scheduler is not None and hasattr(lr_scheduler, "state_dict"):
        lr_scheduler = lr_scheduler.state_dict()
    state = {
        "version": _FORMAT_VERSION,
        "step": step,
        "epoch": epoch,
        "seed": seed,
        "samples_seen": samples_seen,
        "optimizer": optimizer,
        "lr_scheduler": lr_scheduler,
        "rng": rng_state if rng_state is not None else get_rng_state(),
        "loss_history": [float(x) for x in loss_history] if loss_history is not None else None,
        "extra": extra,
    }
    write_tree(directory, "recipe_state", state)


def load_recipe_state(directory: str | Path) -> dict[str, Any]:
    """Read what :func:`save_recipe_state` wrote.

    Args:
        directory (str | Path): the checkpoint directory.

    Returns:
        dict[str, Any]: keys ``step``, ``epoch``, ``seed``, ``samples_seen``, ``optimizer`` (a
        state dict for ``optimizer.load_state_dict``), ``lr_scheduler``, ``rng`` (for
        :func:`torchtune.training.set_rng_state`), ``loss_history`` and ``extra``.

    Raises:
        FileNotFoundError: if the directory lacks the recipe state files.
        ValueError: if the format version is unknown.
    """
    state = read_tree(directory, "recipe_state")
    if state.get("version") != _FORMAT_VERSION:
        raise ValueError(f"recipe state version={state.get('version')!r} is not supported (expected 1)")
    return state


def restore_training_state(
    directory: str | Path,
    optimizer: torch.optim.Optimizer,
    lr_scheduler: Any,
    *,
    sharded_model: torch.nn.Module | None = None,
    rank: int = 0,
) -> tuple[int, int, int]:
    """Put a run back where :func:`save_recipe_state` left it: optimizer and scheduler state, and
    the random-number generators (process 0's; other processes keep their ``seed + rank``
    streams).

    Args:
        directory (str | Path): the checkpoint to resume from.
        optimizer (torch.optim.Optimizer): the run's optimizer, built as before.
        lr_scheduler (Any): its scheduler.
        sharded_model (torch.nn.Module | None): the FSDP-sharded model when distributed: the
            saved full optimizer state is then scattered to the shards. Default None.
        rank (int): this process. Default 0.

    Returns:
        tuple[int, int, int]: ``(step, epoch, samples_seen)`` to continue from.
    """
    state = load_recipe_state(directory)
    if sharded_model is not None:
        load_full_optimizer_state_dict(sharded_model, optimizer, state["optimizer"])
    else:
        optimizer.load_state_dict(state["optimizer"])
    lr_scheduler.load_state_dict(state["lr_scheduler"])
    if rank == 0:
        set_rng_state(state["rng"])
    return state["step"], state["epoch"], state["samples_seen"]
