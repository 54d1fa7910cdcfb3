"""Check, before loading, that a checkpoint's tensors have the shapes of the model built for them."""

import logging
from collections.abc import Mapping

import torch
from torch import nn

from torchtune.config import ConfigError

logger = logging.getLogger(__name__)


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
