"""Adapter bookkeeping: which parameters train, adapter state dicts, merging, disabling."""

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from torchtune.modules.peft._lora import DoRALinear, dora_weight
from torchtune.utils import LazyStateDict, tensor_meta

_ADAPTER_SUFFIXES = (".lora_a.weight", ".lora_b.weight", ".magnitude")


def _adapter_modules(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    for name, module in model.named_modules():
        if hasattr(module, "adapter_params") and callable(module.adapter_params):
            yield name, module


@dataclass(frozen=True)
class AdapterSpec:
    """The settings of one adapter module, read off the model (see :func:`get_adapter_specs`).

    Args:
        rank (int): adapter rank r.
        alpha (float): the update is scaled by ``alpha / rank``.
        dropout (float): dropout on the adapter's input. Default: 0.0.
        use_dora (bool): a DoRA module (it has a ``magnitude``). Default: False.
    """

    rank: int
    alpha: float
    dropout: float = 0.0
    use_dora: bool = False


def get_adapter_specs(model: nn.Module) -> dict[str, AdapterSpec]:
    """The rank, alpha, dropout and kind of every adapter module, as the model holds them.

    Writers of merged weights and peft adapters read the settings from here, so nothing
    outside the model has to remember what the adapters were built with.

    Args:
        model (nn.Module): a model with adapter modules (anything with ``adapter_params()``,
            ``rank`` and ``alpha``), possibly sharded or compiled.

    Returns:
        dict[str, AdapterSpec]: module path (as in the state dict, e.g. ``"layers.0.attn.q_proj"``)
        -> its settings.
    """
    specs = {}
    for name, module in _adapter_modules(model):
        dropout = getattr(module, "dropout", None)
        specs[name.replace("_orig_mod.", "")] = AdapterSpec(
            rank=int(module.rank), alpha=float(module.alpha),
            dropout=float(dropout.p) if isinstance(dropout, nn.Dropout) else 0.0,
            use_dora="magnitude" in module.adapter_params(),
        )
    return specs


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


def set_adapter_dtype(model: nn.Module, dtype: torch.dtype) -> None:
    """Store every adapter parameter of ``model`` in ``dtype``; the other parameters keep theirs.

    Under a bf16 model, fp32 adapters are the master weights: the adapter layers compute in the
    input's dtype and the optimizer updates (and keeps its state) in fp32, so small updates are not
    rounded away. Call it after ``model.to(dtype)`` and before building the optimizer.

    Args:
        model (nn.Module): a model containing adapter layers.
        dtype (torch.dtype): the adapters' storage dtype, e.g. ``torch.float32``.
    """
    for param in get_adapter_params(model).values():
        param.data = param.data.to(dtype)


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
    state_dict: dict[str, torch.Tensor],
    rank: int | None = None,
    alpha: float | None = None,
    *,
    adapter_specs: Mapping[str, AdapterSpec] | None = None,
    lazy: bool = False,
) -> dict[str, torch.Tensor] | LazyStateDict:
    """Fold LoRA/DoRA adapters into their base weights and drop the adapter entries.

    LoRA: ``W + (alpha / rank) B A``. DoRA (a ``magnitude`` entry is present):
    ``magnitude / ||W + s B A||_row * (W + s B A)``.

    Args:
        state_dict (dict[str, torch.Tensor]): state dict with adapter entries.
        rank (int | None): adapter rank used in training. Default None: each adapter's own
            rank (``lora_a.shape[0]``).
        alpha (float | None): one alpha for every adapter. Default None: each adapter's alpha
            from ``adapter_specs``.
        adapter_specs (Mapping[str, AdapterSpec] | None): per-module settings from
            :func:`get_adapter_specs` (the usual way: read off the model). Default None.
        lazy (bool): return a :class:`torchtune.utils.LazyStateDict` that merges a weight each
            time it is read, instead of every merged weight at once; the checkpoint writers
            stream it, so a save holds one merged weight at a time. Default False.

    Returns:
        dict[str, torch.Tensor] | LazyStateDict: a new state dict in the base model's layout.

    Raises:
        ValueError: when ``rank`` is not positive, or an adapter's alpha is given neither by
            ``alpha`` nor by ``adapter_specs``.
    """
    if rank is not None and rank <= 0:
        raise ValueError(f"rank={rank} must be a positive integer")
    adapters = {}  # base weight key -> (adapter prefix, alpha / rank)
    for key in state_dict:
        if not key.endswith(".lora_a.weight"):
            continue
        prefix = key[: -len(".lora_a.weight")]
        spec = (adapter_specs or {}).get(prefix)
        if alpha is None and spec is None:
            raise ValueError(
                f"no alpha for the adapter of {prefix!r}: pass adapter_specs=get_adapter_specs(model) "
                "(or one alpha= for every adapter)"
            )
        # a linear layer's adapter sits in it (<prefix>.weight); an expert adapter beside its
        # stacked weight (<experts>.gate_up_proj_lora next to <experts>.gate_up_proj)
        base_key = f"{prefix}.weight" if f"{prefix}.weight" in state_dict else prefix.removesuffix("_lora")
        # lora_a is [r, in], or [E, r, in] for expert adapters
        lora_rank = rank if rank is not None else state_dict[key].shape[-2]
        adapters[base_key] = (prefix, (alpha if alpha is not None else spec.alpha) / lora_rank)

    def merged(base_key: str) -> torch.Tensor:
        base = state_dict[base_key]
        if base_key not in adapters:
            return base
        prefix, scale = adapters[base_key]
        lora_a, lora_b = state_dict[f"{prefix}.lora_a.weight"], state_dict[f"{prefix}.lora_b.weight"]
        adapted = base.float() + scale * (lora_b.float() @ lora_a.float())  # [out, in] (or [E, out, in])
        magnitude = state_dict.get(f"{prefix}.magnitude")
        if magnitude is not None:
            adapted = dora_weight(adapted, magnitude.float())
        return adapted.to(base.dtype)

    keys = [k for k in state_dict if not is_adapter_key(k)]
    if lazy:
        return LazyStateDict({k: tensor_meta(state_dict, k) for k in keys}, merged)
    return {k: merged(k) for k in keys}


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
