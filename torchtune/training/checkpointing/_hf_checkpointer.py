"""Hugging Face checkpoints: ``config.json`` plus single or sharded safetensors, and peft adapters."""

import json
import logging
import shutil
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors.torch import load_file, save_file

from torchtune.models import hf_to_tune, tune_to_hf
from torchtune.modules.peft import get_adapter_state_dict, get_merged_lora_ckpt
from torchtune.training.checkpointing._atomic import atomic_directory
from torchtune.training.checkpointing._peft_adapter import ADAPTER_CONFIG, load_peft_adapter, save_peft_adapter

logger = logging.getLogger(__name__)

SINGLE_FILE = "model.safetensors"
ADAPTER_SUBDIR = "adapter"
INDEX_FILE = "model.safetensors.index.json"
# files of a previous torchtune checkpoint that describe that run, not the model
_NOT_COPIED = {"CHECKPOINT_COMPLETE", "recipe_state.json", "adapter_config.json"}
# safetensors files torchtune writes next to model weights
_NOT_MODEL_WEIGHTS = {"adapter_model.safetensors", "recipe_state.safetensors", "optimizer_param_groups.safetensors"}
_WEIGHT_SUFFIXES = (".safetensors", ".safetensors.index.json", ".bin", ".bin.index.json", ".pth", ".pt", ".gguf")


def _unshared(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CPU, contiguous tensors that share no storage (safetensors refuses shared storage)."""
    out, seen = {}, set()
    for key, value in state_dict.items():
        value = value.detach().to("cpu").contiguous()
        ptr = value.untyped_storage().data_ptr()
        out[key] = value.clone() if ptr in seen else value
        seen.add(ptr)
    return out


def write_safetensors_weights(
    directory: Path, hf_state_dict: dict[str, torch.Tensor], weight_map: dict[str, str] | None = None
) -> None:
    """Write ``model.safetensors``, or the shards of ``weight_map`` plus their index.

    Args:
        directory (Path): an existing directory.
        hf_state_dict (dict[str, torch.Tensor]): Hugging Face-keyed tensors.
        weight_map (dict[str, str] | None): key -> shard file name; keys missing from it go to
            the first shard. None writes a single ``model.safetensors``.
    """
    hf_state_dict = _unshared(hf_state_dict)
    if weight_map is None:
        save_file(hf_state_dict, directory / SINGLE_FILE, metadata={"format": "pt"})
        return
    first = sorted(set(weight_map.values()))[0]
    shards: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in hf_state_dict.items():
        shards.setdefault(weight_map.get(key, first), {})[key] = value
    for name, tensors in sorted(shards.items()):
        save_file(tensors, directory / name, metadata={"format": "pt"})
    total = sum(v.numel() * v.element_size() for v in hf_state_dict.values())
    index = {"metadata": {"total_size": total},
             "weight_map": {k: weight_map.get(k, first) for k in sorted(hf_state_dict)}}
    with open(directory / INDEX_FILE, "w", encoding="utf-8") as f:
        json.dump(index, f, indent=2)


class HuggingFaceCheckpointer:
    """Read and write Hugging Face model directories (safetensors) in torchtune's key layout.

    Args:
        checkpoint_dir (str | Path): directory with ``config.json`` and the weights.
        output_dir (str | Path): where :meth:`save_checkpoint` writes ``<output_dir>/<name>``.
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
            raise FileNotFoundError(f"config.json not found in checkpoint_dir={str(self.checkpoint_dir)!r}")
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

    def load_checkpoint(self) -> dict[str, torch.Tensor]:
        """Read the weights and rename them to torchtune keys.

        Returns:
            dict[str, torch.Tensor]: torchtune state dict (CPU tensors).
        """
        hf_state_dict: dict[str, torch.Tensor] = {}
        for name in self.checkpoint_files:
            hf_state_dict.update(load_file(self.checkpoint_dir / name))
        logger.info("Loaded %d tensors from %s", len(hf_state_dict), self.checkpoint_dir)
        return hf_to_tune(hf_state_dict, self.config)

    def load_adapter(self, adapter_dir: str | Path) -> dict[str, torch.Tensor]:
        """Read a peft adapter into torchtune adapter keys.

        Args:
            adapter_dir (str | Path): a peft adapter directory, or a checkpoint written by
                :meth:`save_checkpoint` (its ``adapter/`` sub-directory is used when present).

        Returns:
            dict[str, torch.Tensor]: ``lora_a``/``lora_b``/``magnitude`` entries.
        """
        adapter_dir = Path(adapter_dir)
        if (adapter_dir / ADAPTER_SUBDIR / ADAPTER_CONFIG).is_file():
            adapter_dir = adapter_dir / ADAPTER_SUBDIR
        return load_peft_adapter(adapter_dir, self.config)[0]

    def write_checkpoint(
        self,
        directory: str | Path,
        state_dict: dict[str, torch.Tensor],
        *,
        lora_alpha: float | None = None,
        adapter_only: bool = False,
    ) -> None:
        """Write a Hugging Face model directory into an existing ``directory`` (not atomic).

        Adapter entries (``lora_a``/``lora_b``/``magnitude``) are written as a peft adapter and
        the model weights with the adapters merged into them. The adapter goes into the
        ``adapter/`` sub-directory, so that ``transformers`` loads ``directory`` as the merged
        model and ``peft.PeftModel.from_pretrained(base, directory / "adapter")`` the adapter;
        with ``adapter_only`` it is written into ``directory`` itself. Non-weight files of
        ``checkpoint_dir`` (config, generation config, tokenizer) are copied.

        Args:
            directory (str | Path): an existing, empty directory.
            state_dict (dict[str, torch.Tensor]): torchtune state dict, adapters included or not.
            lora_alpha (float | None): the adapters' alpha; required when there are adapters.
            adapter_only (bool): write only the adapter (and the copied files). Default False.

        Raises:
            ValueError: if there are adapters but no ``lora_alpha``, or ``adapter_only`` without
                adapters.
        """
        directory = Path(directory)
        adapter = get_adapter_state_dict(state_dict)
        if adapter and lora_alpha is None:
            raise ValueError("lora_alpha=None: the state dict holds LoRA adapters, pass the alpha used in training")
        if adapter_only and not adapter:
            raise ValueError("adapter_only=True but the state dict holds no adapter weights")
        self._copy_side_files(directory)
        if adapter:
            adapter_dir = directory if adapter_only else directory / ADAPTER_SUBDIR
            adapter_dir.mkdir(exist_ok=True)
            save_peft_adapter(adapter_dir, adapter, self.config, lora_alpha=lora_alpha,
                              base_model_name_or_path=str(self.checkpoint_dir))
        if adapter_only:
            return
        if adapter:
            state_dict = get_merged_lora_ckpt(state_dict, alpha=lora_alpha)  # adapters folded in and dropped
        write_safetensors_weights(directory, tune_to_hf(state_dict, self.config), self.weight_map)

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
        """Atomically write ``<output_dir>/<name>`` with :meth:`write_checkpoint`.

        Args:
            state_dict (dict[str, torch.Tensor]): torchtune state dict.
            name (str): sub-directory name, e.g. ``"epoch_0"`` or ``"step_100"``. Default "final".
            lora_alpha (float | None): see :meth:`write_checkpoint`.
            adapter_only (bool): see :meth:`write_checkpoint`. Default False.
            write_extra (Callable[[Path], None] | None): writes more files (e.g. recipe state)
                into the same directory before it is committed.
            overwrite (bool): replace an existing directory. Default True.

        Returns:
            Path: the finished directory.
        """
        final = self.output_dir / name
        with atomic_directory(final, overwrite=overwrite) as tmp:
            self.write_checkpoint(tmp, state_dict, lora_alpha=lora_alpha, adapter_only=adapter_only)
            if write_extra is not None:
                write_extra(tmp)
        return final

    def _copy_side_files(self, directory: Path) -> None:
        for path in sorted(self.checkpoint_dir.iterdir()):
            if path.is_file() and not path.name.endswith(_WEIGHT_SUFFIXES) and path.name not in _NOT_COPIED:
                shutil.copy2(path, directory / path.name)
        if self._model_type_override:
            with open(directory / "config.json", "w", encoding="utf-8") as f:
                json.dump(self.config, f, indent=2)
