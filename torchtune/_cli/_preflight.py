"""What `tune validate` checks beyond signatures: what `tune run` would find in its first minute.

Nothing is trained and no weight data is read: the model is built on the meta device, the
checkpoint contributes its tensor names and shapes (safetensors headers), and the files that the
tokenizer and datasets name are looked up.
"""

from pathlib import Path
from typing import Any

import torch

from torchtune.config import ConfigError, DictConfig, instantiate

# checkpointer arguments that name the model files; a config whose files are absent (a shipped
# config before `tune download`) gets the signature checks only
_MODEL_FILE_KEYS = ("checkpoint_dir", "checkpoint_path")


def check_files(cfg: DictConfig, *, tokenizer: bool = True) -> None:
    """Dataset files, the datasets/logger extras, and (with ``tokenizer``) the tokenizer's files exist.

    Args:
        cfg (DictConfig): the config.
        tokenizer (bool): also check the ``tokenizer`` node's ``*path`` arguments. Default: True.

    Raises:
        ConfigError: naming the key and the missing file or package.
    """
    from torchtune.datasets import check_local_data_files
    from torchtune.training import check_metric_loggers

    check_local_data_files(cfg)
    check_metric_loggers(cfg.get("metric_logger"))
    node = cfg.get("tokenizer") if tokenizer else None
    if hasattr(node, "items"):
        for key, value in node.items():
            if key.endswith("path") and isinstance(value, str) and not Path(value).exists():
                raise ConfigError(f"tokenizer.{key}={value!r} does not exist")


def model_files(cfg: DictConfig) -> str | None:
    """The checkpoint directory or file the config names, when it exists."""
    node = cfg.get("checkpointer")
    if not hasattr(node, "get"):
        return None
    for key in _MODEL_FILE_KEYS:
        value = node.get(key)
        if isinstance(value, str) and Path(value).exists():
            return value
    return None


def check_model(cfg: DictConfig) -> str:
    """Build the model on the meta device and check it against the checkpoint's tensor names and
    shapes, the LoRA targets against the checkpoint's layout, as the training recipes do.

    Returns:
        str: a sentence saying what was checked.

    Raises:
        ConfigError: naming the problem and its fix.
    """
    from torchtune.models import model_from_hf_config
    from torchtune.modules.peft import get_adapter_params, get_adapter_specs
    from torchtune.training.checkpointing import check_save_mappings, check_weights_fit

    try:
        checkpointer = instantiate(cfg.checkpointer)
    except (OSError, ValueError) as e:
        raise ConfigError(f"checkpointer: {e}") from None
    node = cfg.get("model")
    builder = node.get("_component_") if hasattr(node, "get") else None
    with torch.device("meta"):
        if builder is not None:
            model = instantiate(node)
        else:
            options: dict[str, Any] = node.to_dict() if hasattr(node, "to_dict") else {}
            model = model_from_hf_config(checkpointer.config, **options)
    shapes = getattr(checkpointer, "load_checkpoint_shapes", None)
    checked = "the model builds"
    if shapes is not None:
        state_dict = shapes()
        check_weights_fit(model, state_dict, builder=builder)
        adapters = set(get_adapter_params(model))
        own = set(model.state_dict())
        missing = sorted(own - set(state_dict) - adapters)
        unexpected = sorted(set(state_dict) - own)
        if missing or unexpected:
            raise ConfigError(
                f"the checkpoint does not match the model: missing {missing[:5]}{' ...' if len(missing) > 5 else ''}, "
                f"unexpected {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''} (config key model)"
            )
        checked += f", its {len(state_dict)} checkpoint tensors fit"
    check_save_mappings(model.state_dict(), checkpointer.config, adapter_specs=get_adapter_specs(model))
    return checked + " and every tensor a save writes has a name in the checkpoint's layout"


def check_teacher(cfg: DictConfig) -> str | None:
    """For a distillation config whose teacher files exist: the teacher shares the student's
    vocabulary, builds (``teacher_model`` or its checkpoint's config) and fits its checkpoint.

    Returns:
        str | None: a sentence saying what was checked, or None without a teacher to check.

    Raises:
        ConfigError: naming the problem and its fix.
    """
    from torchtune.models import model_from_hf_config
    from torchtune.training.checkpointing import check_same_vocabulary, check_weights_fit

    node = cfg.get("teacher_checkpointer")
    if not hasattr(node, "get") or not any(isinstance(node.get(k), str) and Path(node.get(k)).exists()
                                           for k in _MODEL_FILE_KEYS):
        return None
    try:
        student, teacher = instantiate(cfg.checkpointer), instantiate(node)
    except (OSError, ValueError) as e:
        raise ConfigError(f"teacher_checkpointer: {e}") from None
    check_same_vocabulary(student, teacher)
    builder_node = cfg.get("teacher_model")
    with torch.device("meta"):
        model = instantiate(builder_node) if builder_node is not None else model_from_hf_config(teacher.config)
    shapes = getattr(teacher, "load_checkpoint_shapes", None)
    if shapes is None:
        return "the teacher shares the student's vocabulary and builds"
    state_dict = shapes()
    check_weights_fit(model, state_dict, builder=builder_node.get("_component_") if builder_node is not None else None)
    return f"the teacher shares the student's vocabulary, builds and its {len(state_dict)} checkpoint tensors fit"
