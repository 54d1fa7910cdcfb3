"""LoRA/DoRA adapters in the peft format (``adapter_model.safetensors`` + ``adapter_config.json``).

Our adapter keys ``<module>.lora_a.weight``, ``<module>.lora_b.weight`` and ``<module>.magnitude``
become ``base_model.model.<hf module>.lora_A.weight``, ``...lora_B.weight`` and
``...lora_magnitude_vector``, where ``<hf module>`` is the Hugging Face module path.
"""

import json
import logging
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from torchtune.models import hf_to_tune, tune_to_hf_module_name

logger = logging.getLogger(__name__)

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
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


def save_peft_adapter(
    directory: str | Path,
    adapter_state_dict: dict[str, torch.Tensor],
    config: dict[str, Any],
    *,
    lora_alpha: float,
    lora_dropout: float = 0.0,
    base_model_name_or_path: str | None = None,
) -> None:
    """Write ``adapter_model.safetensors`` and ``adapter_config.json`` into ``directory``.

    Args:
        directory (str | Path): an existing directory.
        adapter_state_dict (dict[str, torch.Tensor]): our adapter entries; the rank is read from
            the ``lora_a`` shapes ``[r, in]`` and DoRA from the presence of ``magnitude``.
        config (dict[str, Any]): the base model's Hugging Face ``config.json``.
        lora_alpha (float): the adapters' alpha.
        lora_dropout (float): the adapters' dropout. Default 0.0.
        base_model_name_or_path (str | None): recorded for ``PeftModel``. Default None.

    Raises:
        ValueError: if there are no adapters or the adapters have different ranks.
    """
    ranks = {v.shape[0] for k, v in adapter_state_dict.items() if k.endswith(".lora_a.weight")}
    if len(ranks) != 1:
        raise ValueError(f"adapter ranks={sorted(ranks)}: expected exactly one LoRA rank in the adapter state dict")
    peft_sd = adapter_to_peft(adapter_state_dict, config)
    # "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight" -> "q_proj"
    targets = sorted({k.split(".")[-3] for k in peft_sd if k.endswith(".lora_A.weight")})
    save_file({k: v.detach().cpu().contiguous() for k, v in peft_sd.items()}, Path(directory) / ADAPTER_WEIGHTS,
              metadata={"format": "pt"})
    adapter_config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "r": ranks.pop(),
        "lora_alpha": lora_alpha,
        "lora_dropout": lora_dropout,
        "target_modules": targets,
        "use_dora": any(k.endswith(".magnitude") for k in adapter_state_dict),
        "bias": "none",
        "fan_in_fan_out": False,
        "inference_mode": True,
        "base_model_name_or_path": base_model_name_or_path,
    }
    with open(Path(directory) / ADAPTER_CONFIG, "w", encoding="utf-8") as f:
        json.dump(adapter_config, f, indent=2)


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
