"""Check, before loading, that a checkpoint's tensors have the shapes of the model built for them,
and that a distillation teacher shares its student's vocabulary."""

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from torchtune.config import ConfigError


def check_weights_fit(model: nn.Module, state_dict: Mapping[str, torch.Tensor], *, builder: str | None = None) -> None:
    """Raise one clear error when the checkpoint's tensors do not have the model's shapes.

    ``load_state_dict`` reports every mismatching tensor as a ``size mismatch`` line; a config
    whose builder names another size than the checkpoint (e.g. ``llama3_2_3b`` with a 1B model
    directory) then prints hundreds of them. This names the first tensor, both shapes, how
    many differ, and how to fix the config. Keys present on one side only are left to
    ``load_state_dict`` (and its LoRA checks).

    Args:
        model (nn.Module): the model the weights are for (meta-device models work too).
        state_dict (Mapping[str, torch.Tensor]): the checkpoint's tensors in our key layout.
        builder (str | None): the config's ``model._component_`` when the architecture came
            from a builder; None when it was read from the checkpoint's config. Default: None.

    Raises:
        ConfigError: when at least one tensor's shape differs.
    """
    own = {k: v.shape for k, v in model.state_dict().items()}
    differing = [(k, tuple(v.shape), tuple(own[k])) for k, v in state_dict.items() if k in own and tuple(v.shape) != tuple(own[k])]
    if not differing:
        return
    key, theirs, ours = differing[0]
    where = f"the builder model._component_={builder}" if builder else "the model read from the checkpoint's config"
    fix = (
        "The checkpoint is of another size than the builder: remove the builder so that the architecture is "
        "read from the checkpoint's config.json (`~model._component_` for LoRA configs, which keeps the LoRA "
        "options; `~model` for full fine-tuning), or choose the builder of the checkpoint's size."
        if builder else "The checkpoint's config.json does not describe its tensors: check the model directory."
    )
    raise ConfigError(
        f"the checkpoint does not fit {where}: {key} is {list(theirs)} in the checkpoint but {list(ours)} in the "
        f"model ({len(differing)} of {len(state_dict)} tensors differ). {fix}"
    )


def check_same_vocabulary(checkpointer: Any, teacher_checkpointer: Any) -> None:
    """Raise one clear error when a distillation teacher's vocabulary differs from its student's.

    Distillation compares the two models' next-token distributions token id by token id, so both
    must have one tokenizer. Only the checkpoints' configs are read (``vocab_size``), before any
    weight is loaded.

    Args:
        checkpointer (Any): the student's checkpointer (config key ``checkpointer``); anything
            with a ``config`` dict (and, for the message, a ``checkpoint_dir`` or
            ``checkpoint_path``).
        teacher_checkpointer (Any): the teacher's (config key ``teacher_checkpointer``).

    Raises:
        ConfigError: naming both sizes, both checkpoints and the fix.
    """
    student_v, teacher_v = checkpointer.config.get("vocab_size"), teacher_checkpointer.config.get("vocab_size")
    if student_v == teacher_v:
        return

    def where(c: Any) -> str:
        return str(getattr(c, "checkpoint_dir", None) or getattr(c, "checkpoint_path", None) or "?")

    raise ConfigError(
        f"teacher_checkpointer: the teacher's vocab_size={teacher_v} (config of {where(teacher_checkpointer)}) "
        f"differs from the student's vocab_size={student_v} (checkpointer: config of {where(checkpointer)}); "
        "distillation compares the models' next-token distributions token by token, so pick a teacher with the "
        "student's tokenizer (usually a bigger model of the same family)"
    )
