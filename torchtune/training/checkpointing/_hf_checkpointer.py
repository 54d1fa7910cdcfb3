"""Hugging Face checkpoints: ``config.json`` plus single or sharded safetensors, and peft adapters."""

import json
import logging
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors.torch import load_file

from torchtune.models import hf_to_tune, tune_to_hf
from torchtune.modules.peft import AdapterSpec
from torchtune.training.checkpointing._atomic import save_with
from torchtune.training.checkpointing._peft_adapter import adapter_dir_of, load_peft_adapter, write_adapter_and_merge
from torchtune.training.checkpointing._safetensors import save_safetensors
from torchtune.utils import LazyStateDict, tensor_meta

logger = logging.getLogger(__name__)

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
# the non-weight files of a model directory that describe the model (others, e.g. a user's data
# files or a previous run's recipe state, are not copied into checkpoints)
_MODEL_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                "special_tokens_map.json", "added_tokens.json", "chat_template.jinja", "chat_template.json",
                "tokenizer.model", "vocab.json", "merges.txt", "preprocessor_config.json")
_MODEL_FILE_PREFIXES = ("LICENSE", "README", "NOTICE", "USE_POLICY")
# safetensors files torchtune writes next to model weights
_NOT_MODEL_WEIGHTS = {"adapter_model.safetensors", "recipe_state.safetensors", "optimizer_param_groups.safetensors"}


_SAFETENSORS_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64,
                       "I64": torch.int64, "I32": torch.int32, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool}


def write_safetensors_weights(
    directory: Path, hf_state_dict: Mapping[str, torch.Tensor], weight_map: dict[str, str] | None = None
) -> None:
    """Write ``model.safetensors``, or the shards of ``weight_map`` plus their index.

    Each file is written one tensor at a time (:func:`save_safetensors`), so a
    :class:`torchtune.utils.LazyStateDict` is computed tensor by tensor.

    Args:
        directory (Path): an existing directory.
        hf_state_dict (Mapping[str, torch.Tensor]): Hugging Face-keyed tensors, lazy or not.
        weight_map (dict[str, str] | None): key -> shard file name; keys missing from it go to
            the first shard. None writes a single ``model.safetensors``.
    """
    if weight_map is None:
        save_safetensors(hf_state_dict, directory / SINGLE_FILE, metadata={"format": "pt"})
        return
    first = sorted(set(weight_map.values()))[0]
    shards: dict[str, list[str]] = {}
    for key in hf_state_dict:
        shards.setdefault(weight_map.get(key, first), []).append(key)
    for name, keys in sorted(shards.items()):
        shard = LazyStateDict({k: tensor_meta(hf_state_dict, k) for k in keys}, hf_state_dict.__getitem__)
        save_safetensors(shard, directory / name, metadata={"format": "pt"})
    metas = [tensor_meta(hf_state_dict, k) for k in hf_state_dict]
    total = sum(m.numel() * m.element_size() for m in metas)
    index = {"metadata": {"total_size": total},
             "weight_map": {k: weight_map.get(k, first) for k in sorted(hf_state_dict)}}
    with open(directory / INDEX_FILE, "w", encoding="utf-8") as f:
        json.dump(index, f, indent=2)


class HuggingFaceCheckpointer:
    """Read and write Hugging Face model directories (safetensors) in torchtune's key layout.

    A :class:`~torchtune.training.checkpointing.Checkpointer`.

    Args:
        checkpoint_dir (str | Path): directory with ``config.json`` and the weights.
        output_dir (str | Path): where the deprecated :meth:`save_checkpoint` writes ``<output_dir>/<name>``.
        checkpoint_files (list[str] | None): weight files inside ``checkpoint_dir``; None finds
            ``model.safetensors.index.json`` shards, else ``model.safetensors``, else every
            ``*.safetensors``. Default None.
        model_type (str | None): overrides ``config.json``'s ``model_type``. Default None.

    Raises:
        FileNotFoundError: if ``config.json`` or the weight files are missing.
        ValueError: if no model_type is known.
    """

    def __init__(
        self,
        checkpoint_dir: str | Path,
        output_dir: str | Path,
        checkpoint_files: list[str] | None = None,
        model_type: str | None = None,
    ) -> None:
        self.checkpoint_dir = Path(checkpoint_dir)
        self.output_dir = Path(output_dir)
        config_path = self.checkpoint_dir / "config.json"
        if not config_path.is_file():
            raise FileNotFoundError(
                f"config.json not found in checkpoint_dir={str(self.checkpoint_dir)!r}: not a Hugging Face model "
                "directory; download one with `tune download <hf-repo> --output-dir <dir>` and pass model_dir=<dir>"
            )
        with open(config_path, encoding="utf-8") as f:
            self.config: dict[str, Any] = json.load(f)
        self._model_type_override = model_type is not None
        if model_type is not None:
            self.config["model_type"] = model_type
        if not self.config.get("model_type"):
            raise ValueError(f"model_type is missing from {str(config_path)!r}; pass model_type=")
        self.weight_map = self._read_weight_map()
        self.checkpoint_files = checkpoint_files or self._find_files()
        missing = [f for f in self.checkpoint_files if not (self.checkpoint_dir / f).is_file()]
        if missing:
            raise FileNotFoundError(f"checkpoint_files {missing} not found in {str(self.checkpoint_dir)!r}")

    def _read_weight_map(self) -> dict[str, str] | None:
        index = self.checkpoint_dir / INDEX_FILE
        if not index.is_file():
            return None
        with open(index, encoding="utf-8") as f:
            return json.load(f)["weight_map"]

    def _find_files(self) -> list[str]:
        if self.weight_map is not None:
            return sorted(set(self.weight_map.values()))
        if (self.checkpoint_dir / SINGLE_FILE).is_file():
            return [SINGLE_FILE]
        files = sorted(p.name for p in self.checkpoint_dir.glob("*.safetensors") if p.name not in _NOT_MODEL_WEIGHTS)
        if not files:
            raise FileNotFoundError(f"no *.safetensors weights found in checkpoint_dir={str(self.checkpoint_dir)!r}")
        return files

    def load_checkpoint(self, directory: str | Path | None = None) -> dict[str, torch.Tensor]:
        """Read the weights and rename them to torchtune keys.

        Args:
            directory (str | Path | None): a checkpoint this checkpointer wrote (e.g. a
                ``step_<N>`` directory, to resume); None reads ``checkpoint_dir``. Default None.

        Returns:
            dict[str, torch.Tensor]: torchtune state dict (CPU tensors).
        """
        source = self.checkpoint_dir if directory is None else Path(directory)
        files = self.checkpoint_files if directory is None else HuggingFaceCheckpointer._files_in(source)
        hf_state_dict: dict[str, torch.Tensor] = {}
        for name in files:
            hf_state_dict.update(load_file(source / name))
        logger.info("Loaded %d tensors from %s", len(hf_state_dict), source)
        return hf_to_tune(hf_state_dict, self.config)

    def load_checkpoint_shapes(self) -> dict[str, torch.Tensor]:
        """The source weights as meta tensors under torchtune names: shapes and dtypes read from
        the safetensors headers, no tensor data (for checking a config before a run).

        Returns:
            dict[str, torch.Tensor]: torchtune key -> meta tensor of the stored shape and dtype.
        """
        from safetensors import safe_open

        hf_state_dict: dict[str, torch.Tensor] = {}
        for name in self.checkpoint_files:
            with safe_open(str(self.checkpoint_dir / name), framework="pt") as f:
                for key in f.keys():
                    part = f.get_slice(key)
                    dtype = _SAFETENSORS_DTYPES.get(part.get_dtype(), torch.float32)
                    hf_state_dict[key] = torch.empty(part.get_shape(), dtype=dtype, device="meta")
        return hf_to_tune(hf_state_dict, self.config)

    @staticmethod
    def _files_in(directory: Path) -> list[str]:
        index = directory / INDEX_FILE
        if index.is_file():
            with open(index, encoding="utf-8") as f:
                return sorted(set(json.load(f)["weight_map"].values()))
        if not (directory / SINGLE_FILE).is_file():
            raise FileNotFoundError(f"no {SINGLE_FILE} or {INDEX_FILE} in {str(directory)!r}")
        return [SINGLE_FILE]

    def load_adapter(self, adapter_dir: str | Path) -> dict[str, torch.Tensor]:
        """Read a peft adapter into torchtune adapter keys.

        Args:
            adapter_dir (str | Path): a peft adapter directory, or a checkpoint written by
                :meth:`write_checkpoint` (its ``adapter/`` sub-directory is used when present).

        Returns:
            dict[str, torch.Tensor]: ``lora_a``/``lora_b``/``magnitude`` entries.
        """
        return load_peft_adapter(adapter_dir_of(adapter_dir), self.config)[0]

    def write_checkpoint(
        self,
        directory: str | Path,
        state_dict: dict[str, torch.Tensor],
        *,
        adapter_specs: Mapping[str, AdapterSpec] | None = None,
        adapter_only: bool = False,
        lora_alpha: float | None = None,
    ) -> None:
        """Write a Hugging Face model directory into an existing ``directory`` (not atomic).

        Adapter entries (``lora_a``/``lora_b``/``magnitude``) are written as a peft adapter and
        the model weights with the adapters merged into them. The adapter goes into the
        ``adapter/`` sub-directory, so that ``transformers`` loads ``directory`` as the merged
        model and ``peft.PeftModel.from_pretrained(base, directory / "adapter")`` the adapter;
        with ``adapter_only`` it is written into ``directory`` itself. The files of
        ``checkpoint_dir`` that describe the model (config, generation config, tokenizer and chat
        template files, license and README) are copied; nothing else of it is.

        Args:
            directory (str | Path): an existing, empty directory.
            state_dict (dict[str, torch.Tensor]): torchtune state dict, adapters included or not.
            adapter_specs (Mapping[str, AdapterSpec] | None): each adapter's rank and alpha
                (``torchtune.modules.peft.get_adapter_specs(model)``); required with adapters.
            adapter_only (bool): write only the adapter (and the copied files). Default False.
            lora_alpha (float | None): deprecated: one alpha for every adapter. Default None.

        Raises:
            ValueError: if there are adapters whose alpha is unknown, or ``adapter_only`` without
                adapters.
        """
        directory = Path(directory)
        self._copy_side_files(directory)
        weights = write_adapter_and_merge(
            directory, state_dict, self.config, adapter_specs=adapter_specs, adapter_only=adapter_only,
            base_model_name_or_path=str(self.checkpoint_dir), lora_alpha=lora_alpha,
        )
        if weights is not None:
            write_safetensors_weights(directory, tune_to_hf(weights, self.config), self.weight_map)

    def save_checkpoint(
        self,
        state_dict: dict[str, torch.Tensor],
        name: str = "final",
        *,
        lora_alpha: float | None = None,
        adapter_only: bool = False,
        write_extra: Callable[[Path], None] | None = None,
        overwrite: bool = True,
    ) -> Path:
        """Deprecated: atomically write ``<output_dir>/<name>``; recipes save through
        :class:`CheckpointManager` (one atomic path) with :meth:`write_checkpoint`."""
        return save_with(self, self.output_dir / name, state_dict, lora_alpha=lora_alpha,
                         adapter_only=adapter_only, write_extra=write_extra, overwrite=overwrite)

    def _copy_side_files(self, directory: Path) -> None:
        for path in sorted(self.checkpoint_dir.iterdir()):
            if path.is_file() and (path.name in _MODEL_FILES or path.name.upper().startswith(_MODEL_FILE_PREFIXES)):
                shutil.copy2(path, directory / path.name)
        if self._model_type_override:
            with open(directory / "config.json", "w", encoding="utf-8") as f:
                json.dump(self.config, f, indent=2)
