"""Load GGUF model files into torchtune models and export fine-tuned weights back to GGUF."""

import logging
from pathlib import Path
from typing import Any

import torch

from torchtune.training.checkpointing._gguf_io import OUT_TYPES, load_gguf, write_gguf
from torchtune.training.checkpointing._gguf_tokenizer import GGUFTokenizer

logger = logging.getLogger(__name__)

_TOKENIZER_PREFIX = "tokenizer."
_ADAPTER_PARTS = (".lora_a.", ".lora_b.", ".magnitude")  # LoRA and DoRA parameter names


def gguf_tokenizer_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """The ``tokenizer.*`` keys of GGUF metadata (vocabulary, merges, ids, chat template)."""
    return {k: v for k, v in metadata.items() if k.startswith(_TOKENIZER_PREFIX)}


def _hf_to_tune(hf_state_dict: dict[str, torch.Tensor], config: dict[str, Any]) -> dict[str, torch.Tensor]:
    from torchtune.models import hf_to_tune

    return hf_to_tune(hf_state_dict, config)


def _tune_to_hf(state_dict: dict[str, torch.Tensor], config: dict[str, Any]) -> dict[str, torch.Tensor]:
    from torchtune.models import tune_to_hf

    return tune_to_hf(state_dict, config)


def export_gguf(
    state_dict: dict[str, torch.Tensor],
    config: dict[str, Any],
    path: str | Path,
    *,
    tokenizer_metadata: dict[str, Any] | None = None,
    out_type: str = "F16",
    name: str | None = None,
) -> Path:
    """Write a torchtune state dict as a GGUF file that llama.cpp can run.

    LoRA weights must be merged first (``torchtune.modules.peft`` merge utilities): only base
    parameters have GGUF names.

    Args:
        state_dict (dict[str, torch.Tensor]): torchtune parameter names -> tensors.
        config (dict[str, Any]): Hugging Face style config of the model (``model_type`` and sizes),
            e.g. ``GGUFCheckpointer.config``.
        path (str | Path): destination ``.gguf`` file, written atomically.
        tokenizer_metadata (dict[str, Any] | None): ``tokenizer.*`` keys to store, e.g. from the
            source GGUF (:func:`gguf_tokenizer_metadata`) or from a Hugging Face tokenizer
            (:func:`gguf_tokenizer_metadata_from_hf`). Default None.
        out_type (str): ``"F32"``, ``"F16"`` or ``"Q8_0"`` for 2-D weights. Default ``"F16"``.
        name (str | None): ``general.name``. Default None.

    Returns:
        Path: ``path``.

    Raises:
        ValueError: for adapter (LoRA/DoRA) weights, an unsupported ``out_type`` or architecture,
            or a parameter without a GGUF name.
    """
    adapters = sorted(k for k in state_dict if any(part in k for part in _ADAPTER_PARTS))
    if adapters:
        raise ValueError(
            f"state_dict holds adapter weights ({adapters[0]}, ...), which GGUF cannot store; merge "
            "them into the base weights first (torchtune.modules.peft.get_merged_lora_ckpt)"
        )
    hf_state_dict = _tune_to_hf(state_dict, config)
    return write_gguf(
        hf_state_dict, config, path, tokenizer_metadata=tokenizer_metadata, out_type=out_type, name=name
    )


class GGUFCheckpointer:
    """Read a GGUF model file (llama, qwen2, qwen3, gemma2) as a torchtune checkpoint.

    The weights are dequantised to ``dtype`` and renamed through the Hugging Face names, so the
    model is the one ``model_from_hf_config(checkpointer.config)`` builds. Saving writes a GGUF
    that carries over the source file's tokenizer and chat template.

    Example:
        >>> ckpt = GGUFCheckpointer("SmolLM2-135M-Instruct.Q4_1.gguf", "out/")
        >>> model = ckpt.build_model()
        >>> model.load_state_dict(ckpt.load_checkpoint()["model"])
        >>> tokenizer = ckpt.tokenizer()

    Args:
        checkpoint_path (str | Path): the ``.gguf`` file.
        output_dir (str | Path): where :meth:`save_checkpoint` writes.
        dtype (torch.dtype): dtype of the loaded weights. Default ``torch.float32``.
        out_type (str): GGUF type of saved 2-D weights, ``"F32"``, ``"F16"`` or ``"Q8_0"``.
            Default ``"F16"``.

    Raises:
        FileNotFoundError: if ``checkpoint_path`` does not exist.
        ValueError: for an unsupported architecture, quantisation type or ``out_type``.
    """

    def __init__(
        self,
        checkpoint_path: str | Path,
        output_dir: str | Path,
        dtype: torch.dtype = torch.float32,
        out_type: str = "F16",
    ) -> None:
        if out_type not in OUT_TYPES:
            raise ValueError(f"out_type={out_type!r} is not supported; choose one of {', '.join(OUT_TYPES)}")
        self.checkpoint_path = Path(checkpoint_path)
        self.output_dir = Path(output_dir)
        self.dtype = dtype
        self.out_type = out_type
        self._hf_state_dict, self.config, self.metadata = load_gguf(self.checkpoint_path, dtype)

    def load_hf_state_dict(self) -> dict[str, torch.Tensor]:
        """The weights under Hugging Face parameter names (llama.cpp's changes undone)."""
        return dict(self._hf_state_dict)

    def load_checkpoint(self) -> dict[str, dict[str, torch.Tensor]]:
        """The weights under torchtune parameter names.

        Returns:
            dict[str, dict[str, torch.Tensor]]: ``{"model": state_dict}``.
        """
        state_dict = _hf_to_tune(self._hf_state_dict, self.config)
        self._hf_state_dict = {}  # the torchtune dict shares the tensors; drop our names
        return {"model": state_dict}

    def build_model(self, **lora_kwargs: Any) -> torch.nn.Module:
        """Build the (uninitialised) torchtune model this file holds weights for.

        Args:
            **lora_kwargs: passed to ``model_from_hf_config`` (e.g. ``lora_attn_modules``, ``lora_rank``).

        Returns:
            TransformerDecoder: the model.
        """
        from torchtune.models import model_from_hf_config

        return model_from_hf_config(self.config, **lora_kwargs)

    def tokenizer(self, max_seq_len: int | None = None) -> GGUFTokenizer:
        """The tokenizer and chat template stored in the file."""
        return GGUFTokenizer(self.metadata, max_seq_len=max_seq_len)

    def save_checkpoint(self, state_dict: dict[str, Any], epoch: int = 0, **_: Any) -> Path:
        """Write ``state_dict["model"]`` to ``<output_dir>/epoch_<epoch>/model-<out_type>.gguf``.

        Args:
            state_dict (dict[str, Any]): ``{"model": torchtune state dict, ...}``; other keys
                (optimizer, recipe state) have no place in a GGUF file and are ignored.
            epoch (int): used in the directory name. Default 0.

        Returns:
            Path: the written file.
        """
        path = self.output_dir / f"epoch_{epoch}" / f"model-{self.out_type}.gguf"
        return export_gguf(
            state_dict["model"],
            self.config,
            path,
            tokenizer_metadata=gguf_tokenizer_metadata(self.metadata),
            out_type=self.out_type,
            name=self.metadata.get("general.name"),
        )
