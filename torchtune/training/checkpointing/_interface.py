"""The interface every checkpointer satisfies, so recipes never ask which one they were given."""

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch

from torchtune.modules.peft import AdapterSpec


@runtime_checkable
class Checkpointer(Protocol):
    """Reads a model in some file format into torchtune's state-dict layout and writes it back.

    Implemented by :class:`HuggingFaceCheckpointer`, :class:`MetaCheckpointer` and
    :class:`GGUFCheckpointer`. Writing is not atomic: the crash-safe directory around
    :meth:`write_checkpoint` is :class:`CheckpointManager`'s (or :func:`atomic_directory`'s).

    Attributes:
        config (dict[str, Any]): the model's Hugging Face ``config.json`` (read, or derived from
            the format's own metadata); ``torchtune.models.model_from_hf_config(config)`` builds
            the model the weights belong to.
    """

    config: dict[str, Any]

    def load_checkpoint(self, directory: str | Path | None = None) -> dict[str, torch.Tensor]:
        """The model weights under torchtune names: of the source model (``directory=None``), or of a
        checkpoint directory this checkpointer wrote (to resume full fine-tuning)."""
        ...

    def load_adapter(self, adapter_dir: str | Path) -> dict[str, torch.Tensor]:
        """Adapter weights (``lora_a``/``lora_b``/``magnitude``) of a peft adapter directory, or of a
        checkpoint directory this checkpointer wrote (its ``adapter/`` sub-directory)."""
        ...

    def write_checkpoint(
        self,
        directory: str | Path,
        state_dict: dict[str, torch.Tensor],
        *,
        adapter_specs: Mapping[str, AdapterSpec] | None = None,
        adapter_only: bool = False,
    ) -> None:
        """Write ``state_dict`` into the existing ``directory``: the peft adapter (``adapter/``, or
        the directory itself with ``adapter_only``) when it holds adapters, and the weights with the
        adapters merged in. ``adapter_specs`` (from ``torchtune.modules.peft.get_adapter_specs``)
        gives each adapter's rank and alpha."""
        ...
