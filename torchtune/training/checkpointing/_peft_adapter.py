"""LoRA/DoRA adapters in the peft format (``adapter_model.safetensors`` + ``adapter_config.json``).

Our adapter keys ``<module>.lora_a.weight``, ``<module>.lora_b.weight`` and ``<module>.magnitude``
become ``base_model.model.<hf module>.lora_A.weight``, ``...lora_B.weight`` and
``...lora_magnitude_vector``, where ``<hf module>`` is the Hugging Face module path.
"""

import json
import warnings
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from torchtune.config import ConfigError
from torchtune.models import hf_to_tune, tune_to_hf, tune_to_hf_module_name
from torchtune.modules.peft import AdapterSpec, get_adapter_state_dict, get_merged_lora_ckpt

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_SUBDIR = "adapter"  # a checkpoint's peft adapter, beside the merged model
_PEFT_PREFIX = "base_model.model."
# our parameter suffix -> peft parameter suffix
_SUFFIXES = {"lora_a.weight": "lora_A.weight", "lora_b.weight": "lora_B.weight", "magnitude": "lora_magnitude_vector"}


def _split_adapter_key(key: str) -> tuple[str, str]:
    for ours in _SUFFIXES:
        if key.endswith("." + ours):
            return key[: -len(ours) - 1], ours
    raise ValueError(f"key={key!r} is not an adapter key (expected a suffix in {sorted(_SUFFIXES)})")


def adapter_to_peft(adapter_state_dict: dict[str, torch.Tensor], config: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Rename our adapter entries to peft keys.

    Args:
        adapter_state_dict (dict[str, torch.Tensor]): only ``lora_a``/``lora_b``/``magnitude`` keys.
        config (dict[str, Any]): the Hugging Face ``config.json`` of the base model.

    Returns:
        dict[str, torch.Tensor]: peft-keyed tensors.

    Raises:
        ValueError: on a non-adapter key or a module without a Hugging Face counterpart.
    """
    out = {}
    for key, value in adapter_state_dict.items():
        module, suffix = _split_adapter_key(key)
        out[f"{_PEFT_PREFIX}{tune_to_hf_module_name(module, config)}.{_SUFFIXES[suffix]}"] = value
    return out


def peft_to_adapter(peft_state_dict: dict[str, torch.Tensor], config: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Rename peft adapter tensors to our adapter keys (inverse of :func:`adapter_to_peft`).

    Raises:
        ValueError: on a key that is not a peft LoRA/DoRA key of a known module.
    """
    reverse = {v: k for k, v in _SUFFIXES.items()}
    out = {}
    for key, value in peft_state_dict.items():
        hf_key = key.removeprefix(_PEFT_PREFIX)
        peft_suffix = next((s for s in reverse if hf_key.endswith("." + s)), None)
        if not key.startswith(_PEFT_PREFIX) or peft_suffix is None:
            raise ValueError(f"key={key!r} is not a peft LoRA key (base_model.model.<module>.lora_A.weight, ...)")
        hf_module = hf_key[: -len(peft_suffix) - 1]
        out[f"{_hf_to_tune_module(hf_module, config)}.{reverse[peft_suffix]}"] = value
    return out


def _hf_to_tune_module(hf_module: str, config: dict[str, Any]) -> str:
    """Map a Hugging Face module path to ours by converting a placeholder ``<module>.weight``."""
    probe = hf_to_tune({f"{hf_module}.weight": torch.empty(0)}, config)
    (name,) = probe
    return name.rsplit(".", 1)[0]


def _specs_from(
    adapter_state_dict: Mapping[str, torch.Tensor],
    adapter_specs: Mapping[str, AdapterSpec] | None,
    lora_alpha: float | None,
    lora_dropout: float,
) -> dict[str, AdapterSpec]:
    """Each adapter module's spec: from ``adapter_specs``, else rank from ``lora_a`` and one alpha."""
    specs = {}
    for key, value in adapter_state_dict.items():
        if not key.endswith(".lora_a.weight"):
            continue
        module = key[: -len(".lora_a.weight")]
        if adapter_specs is not None and module in adapter_specs:
            specs[module] = adapter_specs[module]
        elif lora_alpha is not None:
            use_dora = f"{module}.magnitude" in adapter_state_dict
            specs[module] = AdapterSpec(rank=value.shape[0], alpha=float(lora_alpha), dropout=lora_dropout, use_dora=use_dora)
        else:
            raise ValueError(
                f"no alpha for the adapter of {module!r}: pass adapter_specs=get_adapter_specs(model) "
                "(torchtune.modules.peft)"
            )
    return specs


def save_peft_adapter(
    directory: str | Path,
    adapter_state_dict: dict[str, torch.Tensor],
    config: dict[str, Any],
    *,
    adapter_specs: Mapping[str, AdapterSpec] | None = None,
    lora_alpha: float | None = None,
    lora_dropout: float = 0.0,
    base_model_name_or_path: str | None = None,
) -> None:
    """Write ``adapter_model.safetensors`` and ``adapter_config.json`` into ``directory``.

    Adapters of different ranks or alphas are written with peft's ``rank_pattern`` /
    ``alpha_pattern`` (the most common rank and alpha are ``r`` and ``lora_alpha``).

    Args:
        directory (str | Path): an existing directory.
        adapter_state_dict (dict[str, torch.Tensor]): our adapter entries; DoRA is recognised by
            the presence of ``magnitude``.
        config (dict[str, Any]): the base model's Hugging Face ``config.json``.
        adapter_specs (Mapping[str, AdapterSpec] | None): each adapter module's rank, alpha and
            dropout (``torchtune.modules.peft.get_adapter_specs(model)``). Default None.
        lora_alpha (float | None): one alpha for every adapter, when ``adapter_specs`` is not
            given (ranks then come from the ``lora_a`` shapes ``[r, in]``). Default None.
        lora_dropout (float): the dropout recorded with ``lora_alpha``. Default 0.0.
        base_model_name_or_path (str | None): recorded for ``PeftModel``. Default None.

    Raises:
        ValueError: if there are no adapters, or an adapter's alpha is known from neither argument.
    """
    specs = _specs_from(adapter_state_dict, adapter_specs, lora_alpha, lora_dropout)
    if not specs:
        raise ValueError("the adapter state dict holds no lora_a/lora_b weights; nothing to write")
    peft_sd = adapter_to_peft(adapter_state_dict, config)
    # "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight" -> "q_proj"
    targets = sorted({k.split(".")[-3] for k in peft_sd if k.endswith(".lora_A.weight")})
    save_file({k: v.detach().cpu().contiguous() for k, v in peft_sd.items()}, Path(directory) / ADAPTER_WEIGHTS,
              metadata={"format": "pt"})
    rank = Counter(s.rank for s in specs.values()).most_common(1)[0][0]
    alpha = Counter(s.alpha for s in specs.values()).most_common(1)[0][0]
    hf_names = {m: tune_to_hf_module_name(m, config) for m in specs}
    adapter_config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "r": rank,
        "lora_alpha": alpha,
        "rank_pattern": {hf_names[m]: s.rank for m, s in sorted(specs.items()) if s.rank != rank},
        "alpha_pattern": {hf_names[m]: s.alpha for m, s in sorted(specs.items()) if s.alpha != alpha},
        "lora_dropout": max(s.dropout for s in specs.values()),
        "target_modules": targets,
        "use_dora": any(s.use_dora for s in specs.values()),
        "bias": "none",
        "fan_in_fan_out": False,
        "inference_mode": True,
        "base_model_name_or_path": base_model_name_or_path,
    }
    with open(Path(directory) / ADAPTER_CONFIG, "w", encoding="utf-8") as f:
        json.dump(adapter_config, f, indent=2)


def adapter_dir_of(path: str | Path) -> Path:
    """The peft adapter directory of ``path``: its ``adapter/`` sub-directory when it is a
    checkpoint written by a checkpointer, else ``path`` itself."""
    path = Path(path)
    return path / ADAPTER_SUBDIR if (path / ADAPTER_SUBDIR / ADAPTER_CONFIG).is_file() else path


def write_adapter_and_merge(
    directory: str | Path,
    state_dict: dict[str, torch.Tensor],
    config: dict[str, Any],
    *,
    adapter_specs: Mapping[str, AdapterSpec] | None,
    adapter_only: bool,
    base_model_name_or_path: str,
    lora_alpha: float | None = None,
) -> dict[str, torch.Tensor] | None:
    """The adapter half of every checkpointer's ``write_checkpoint``.

    Writes the peft adapter of ``state_dict`` (if it holds one) into ``directory/adapter`` (into
    ``directory`` with ``adapter_only``) and returns the state dict the checkpointer writes as the
    model: adapters merged into their base weights, or None when only the adapter is written.

    Args:
        directory (str | Path): the checkpoint directory (exists).
        state_dict (dict[str, torch.Tensor]): torchtune state dict, adapters included or not.
        config (dict[str, Any]): the model's Hugging Face config.
        adapter_specs (Mapping[str, AdapterSpec] | None): from ``get_adapter_specs(model)``.
        adapter_only (bool): write only the adapter.
        base_model_name_or_path (str): recorded in ``adapter_config.json``.
        lora_alpha (float | None): deprecated; one alpha for every adapter. Default None.

    Returns:
        dict[str, torch.Tensor] | None: the weights to write, or None.

    Raises:
        ValueError: on ``adapter_only`` without adapters, or adapters whose alpha is unknown.
    """
    if lora_alpha is not None:
        warnings.warn("write_checkpoint(lora_alpha=...) is deprecated; pass adapter_specs=get_adapter_specs(model)",
                      DeprecationWarning, stacklevel=3)
    adapter = get_adapter_state_dict(state_dict)
    if adapter_only and not adapter:
        raise ValueError("adapter_only=True but the state dict holds no adapter weights")
    if not adapter:
        return state_dict
    specs = _specs_from(adapter, adapter_specs, lora_alpha, 0.0)
    adapter_dir = Path(directory) if adapter_only else Path(directory) / ADAPTER_SUBDIR
    adapter_dir.mkdir(exist_ok=True)
    save_peft_adapter(adapter_dir, adapter, config, adapter_specs=specs, base_model_name_or_path=base_model_name_or_path)
    if adapter_only:
        return None
    return get_merged_lora_ckpt(state_dict, adapter_specs=specs)  # adapters folded in and dropped


def check_save_mappings(
    state_dict: Mapping[str, torch.Tensor],
    config: dict[str, Any],
    *,
    adapter_specs: Mapping[str, AdapterSpec] | None = None,
) -> None:
    """Check, before training, that every tensor a save writes has a Hugging Face name.

    Runs what a save does to the keys (the peft names of the adapters, the merge, the Hugging Face
    names and fusions of the merged weights) on meta tensors, so it costs no memory and finds
    e.g. a LoRA target on a module that the checkpoint's layout fuses (``q_proj`` of a fused
    ``qkv_proj``) before the first step instead of at the final save.

    Args:
        state_dict (Mapping[str, torch.Tensor]): the model's state dict (adapters included or not).
        config (dict[str, Any]): the checkpoint's Hugging Face ``config.json``.
        adapter_specs (Mapping[str, AdapterSpec] | None): from ``get_adapter_specs(model)``.
            Default: None (no adapters).

    Raises:
        ConfigError: naming the tensor without a mapping and what to change.
    """
    meta = {k: torch.empty(v.shape, dtype=v.dtype, device="meta") for k, v in state_dict.items()}
    adapter = get_adapter_state_dict(meta)
    try:
        adapter_to_peft(adapter, config)
    except ValueError as e:
        raise ConfigError(
            f"the adapters cannot be saved in the peft format of this checkpoint ({config.get('model_type')}): {e}. "
            "Choose LoRA targets that exist in its layout (config keys model.lora_attn_modules, "
            "model.apply_lora_to_mlp, model.apply_lora_to_output)"
        ) from e
    merged = get_merged_lora_ckpt(meta, adapter_specs=adapter_specs) if adapter else meta
    try:
        tune_to_hf(merged, config)
    except ValueError as e:
        raise ConfigError(
            f"the model's weights cannot be saved in this checkpoint's layout ({config.get('model_type')}): {e}. "
            "The model (config key model) does not match the checkpoint's architecture"
        ) from e


def load_peft_adapter(directory: str | Path, config: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a peft adapter directory into our adapter keys.

    Args:
        directory (str | Path): holds ``adapter_model.safetensors`` and ``adapter_config.json``.
        config (dict[str, Any]): the base model's Hugging Face ``config.json``.

    Returns:
        tuple[dict[str, torch.Tensor], dict[str, Any]]: adapter state dict and adapter config.

    Raises:
        FileNotFoundError: if either file is missing.
    """
    directory = Path(directory)
    for name in (ADAPTER_WEIGHTS, ADAPTER_CONFIG):
        if not (directory / name).is_file():
            raise FileNotFoundError(f"{name} not found in {str(directory)!r}")
    with open(directory / ADAPTER_CONFIG, encoding="utf-8") as f:
        adapter_config = json.load(f)
    return peft_to_adapter(load_file(directory / ADAPTER_WEIGHTS), config), adapter_config
