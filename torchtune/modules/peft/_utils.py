"""Adapter bookkeeping: which parameters train, adapter state dicts, merging, disabling."""

import contextlib
import logging
from collections.abc import Iterator

import torch
from torch import nn

from torchtune.modules.peft._lora import DoRALinear

logger = logging.getLogger(__name__)

_ADAPTER_SUFFIXES = (".lora_a.weight", ".lora_b.weight", ".magnitude")


def _adapter_modules(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    for name, module in model.named_modules():
        if hasattr(module, "adapter_params") and callable(module.adapter_params):
            yield name, module


def get_adapter_params(model: nn.Module) -> dict[str, nn.Parameter]:
    """Collect the adapter parameters of every adapter module in ``model``.

    Args:
        model (nn.Module): a model containing e.g. :class:`LoRALinear` layers.

    Returns:
        dict[str, nn.Parameter]: full parameter name -> parameter.
    """
    params = {}
    for prefix, module in _adapter_modules(model):
        own = dict(module.named_parameters())
        for name in module.adapter_params():
            params[f"{prefix}.{name}" if prefix else name] = own[name]
    return params


def set_trainable_params(model: nn.Module, adapter_params: dict[str, nn.Parameter]) -> None:
    """Make exactly the given parameters trainable and freeze every other one.

    Args:
        model (nn.Module): the model.
        adapter_params (dict[str, nn.Parameter]): names to train (e.g. from
            :func:`get_adapter_params`).
    """
    for name, param in model.named_parameters():
        param.requires_grad_(name in adapter_params)


def is_adapter_key(key: str) -> bool:
    """bool: whether a state-dict key names a LoRA/DoRA adapter parameter."""
    return key.endswith(_ADAPTER_SUFFIXES)


def get_adapter_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keep only the adapter entries (``lora_a``, ``lora_b``, ``magnitude``) of a state dict.

    Args:
        state_dict (dict[str, torch.Tensor]): a full model state dict.

    Returns:
        dict[str, torch.Tensor]: the adapter entries, unchanged.
    """
    return {k: v for k, v in state_dict.items() if is_adapter_key(k)}


def get_merged_lora_ckpt(
    state_dict: dict[str, torch.Tensor], rank: int | None = None, alpha: float | None = None
) -> dict[str, torch.Tensor]:
    """Fold LoRA/DoRA adapters into their base weights and drop the adapter entries.

    LoRA: ``W + (alpha / rank) B A``. DoRA (a ``magnitude`` entry is present):
    ``magnitude / ||W + s B A||_row * (W + s B A)``.

    Args:
        state_dict (dict[str, torch.Tensor]): state dict with adapter entries.
        rank (int | None): adapter rank used in training. Default None: each adapter's own
            rank (``lora_a.shape[0]``).
        alpha (float | None): adapter alpha used in training; required when the state dict
            holds adapters. Default None.

    Returns:
        dict[str, torch.Tensor]: a new state dict in the base model's layout.

    Raises:
        ValueError: when ``rank`` is not positive, or ``alpha`` is None with adapters present.
    """
    if rank is not None and rank <= 0:
        raise ValueError(f"rank={rank} must be a positive integer")
    merged = {k: v for k, v in state_dict.items() if not is_adapter_key(k)}
    for key in state_dict:
        if not key.endswith(".lora_a.weight"):
            continue
        if alpha is None:
            raise ValueError("alpha=None: the state dict holds LoRA adapters, pass the alpha used in training")
        prefix = key[: -len(".lora_a.weight")]
        base = state_dict[f"{prefix}.weight"]
        lora_a, lora_b = state_dict[key], state_dict[f"{prefix}.lora_b.weight"]
        scale = alpha / (rank if rank is not None else lora_a.shape[0])
        adapted = base.float() + scale * (lora_b.float() @ lora_a.float())  # [out, in]
        magnitude = state_dict.get(f"{prefix}.magnitude")
        if magnitude is not None:
            adapted = (magnitude.float() / adapted.norm(p=2, dim=1))[:, None] * adapted
        merged[f"{prefix}.weight"] = adapted.to(base.dtype)
    return merged


@contextlib.contextmanager
def disable_adapter(model: nn.Module) -> Iterator[None]:
    """Run ``model`` as its base model inside the ``with`` block.

    Args:
        model (nn.Module): a model with adapter modules.

    Yields:
        None
    """
    modules = [m for _, m in _adapter_modules(model) if hasattr(m, "disabled")]
    before = [m.disabled for m in modules]
    for m in modules:
        m.disabled = True
    try:
        yield
    finally:
        for m, was in zip(modules, before):
            m.disabled = was


def initialize_dora_magnitudes(model: nn.Module) -> None:
    """Call :meth:`DoRALinear.initialize_dora_magnitude` on every DoRA layer (after loading)."""
    for _, module in _adapter_modules(model):
        if isinstance(module, DoRALinear):
            module.initialize_dora_magnitude()


def validate_missing_and_unexpected_for_lora(
    model: nn.Module,
    *,
    base_missing: list[str] | None = None,
    base_unexpected: list[str] | None = None,
    lora_missing: list[str] | None = None,
    lora_unexpected: list[str] | None = None,
) -> None:
    """Check the key lists returned by ``load_state_dict(strict=False)`` for a LoRA model.

    After loading base weights only adapter parameters may be missing; after loading adapter
    weights only base parameters may be missing; nothing may be unexpected.

    Args:
        model (nn.Module): the LoRA model that was loaded into.
        base_missing (list[str] | None): missing keys from loading base weights.
        base_unexpected (list[str] | None): unexpected keys from loading base weights.
        lora_missing (list[str] | None): missing keys from loading adapter weights.
        lora_unexpected (list[str] | None): unexpected keys from loading adapter weights.

    Raises:
        ValueError: naming the offending keys.
    """
    adapter = set(get_adapter_params(model))
    bad_base = sorted(k for k in base_missing or [] if k not in adapter)
    if bad_base:
        raise ValueError(f"base weights are missing non-adapter keys: {bad_base}")
    bad_lora = sorted(k for k in lora_missing or [] if k in adapter)
    if bad_lora:
        raise ValueError(f"adapter weights are missing adapter keys: {bad_lora}")
    unexpected = sorted([*(base_unexpected or []), *(lora_unexpected or [])])
    if unexpected:
        raise ValueError(f"unexpected keys in the loaded state dict: {unexpected}")
