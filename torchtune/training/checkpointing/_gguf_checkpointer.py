"""Load GGUF model files into torchtune models and export fine-tuned weights back to GGUF."""

import logging
from pathlib import Path
from typing import Any, Callable

import torch

from torchtune.models import hf_to_tune, model_from_hf_config, tune_to_hf
from torchtune.modules.peft import get_adapter_state_dict, get_merged_lora_ckpt, is_adapter_key
from torchtune.training.checkpointing._atomic import atomic_directory
from torchtune.gguf import OUT_TYPES, read_gguf_header, read_hf_state_dict, write_gguf
from torchtune.modules.tokenizers import GGUFTokenizer
from torchtune.training.checkpointing._peft_adapter import ADAPTER_CONFIG, load_peft_adapter, save_peft_adapter

logger = logging.getLogger(__name__)

_TOKENIZER_PREFIX = "tokenizer."
ADAPTER_SUBDIR = "adapter"


def gguf_tokenizer_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """The ``tokenizer.*`` keys of GGUF metadata (vocabulary, merges, ids, chat template)."""
    return {k: v for k, v in metadata.items() if k.startswith(_TOKENIZER_PREFIX)}


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

    LoRA weights must be merged first (``torchtune.modules.peft.get_merged_lora_ckpt``; the
    checkpointer's :meth:`GGUFCheckpointer.write_checkpoint` does it): only base parameters
    have GGUF names.

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
    adapters = sorted(k for k in state_dict if is_adapter_key(k))
    if adapters:
        raise ValueError(
            f"state_dict holds adapter weights ({adapters[0]}, ...), which GGUF cannot store; merge "
            "them into the base weights first (torchtune.modules.peft.get_merged_lora_ckpt)"
        )
    hf_state_dict = tune_to_hf(state_dict, config)
    return write_gguf(
        hf_state_dict, config, path, tokenizer_metadata=tokenizer_metadata, out_type=out_type, name=name
    )


class GGUFCheckpointer:
    """Read a GGUF model file (llama, qwen2, qwen3, gemma2) as a torchtune checkpoint.

    The interface is :class:`HuggingFaceCheckpointer`'s, so recipes can use either. The weights
    are dequantised to ``dtype`` and renamed through the Hugging Face names, so the model is the
    one ``model_from_hf_config(checkpointer.config)`` builds. Checkpoints are directories holding
    ``model-<out_type>.gguf`` (adapters merged in, the source file's tokenizer and chat template
    carried over) and, when training adapters, the peft adapter in ``adapter/``.

    Example:
        >>> ckpt = GGUFCheckpointer("SmolLM2-135M-Instruct.Q4_1.gguf", "out/")
        >>> model = ckpt.build_model()
        >>> model.load_state_dict(ckpt.load_checkpoint())
        >>> tokenizer = ckpt.tokenizer()

    Args:
        checkpoint_path (str | Path): the ``.gguf`` file.
        output_dir (str | Path): where :meth:`save_checkpoint` writes ``<output_dir>/<name>``.
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
        self.metadata, self.config, self._tensors = read_gguf_header(self.checkpoint_path)

    @property
    def file_name(self) -> str:
        """Name of the GGUF file inside a saved checkpoint directory."""
        return f"model-{self.out_type}.gguf"

    def load_hf_state_dict(self) -> dict[str, torch.Tensor]:
        """Read the weights under Hugging Face parameter names (llama.cpp's changes undone).

        Raises:
            ValueError: for an unknown tensor name or an unsupported quantisation type.
        """
        return read_hf_state_dict(self.checkpoint_path, self._tensors, self.config, self.dtype)

    def load_checkpoint(self) -> dict[str, torch.Tensor]:
        """Read the weights under torchtune parameter names (each call reads the file again).

        Returns:
            dict[str, torch.Tensor]: torchtune state dict.

        Raises:
            ValueError: for an unknown tensor name or an unsupported quantisation type.
        """
        return hf_to_tune(self.load_hf_state_dict(), self.config)

    def load_adapter(self, adapter_dir: str | Path) -> dict[str, torch.Tensor]:
        """Read a peft adapter (a checkpoint's ``adapter/`` sub-directory when present).

        Returns:
            dict[str, torch.Tensor]: ``lora_a``/``lora_b``/``magnitude`` entries.
        """
        adapter_dir = Path(adapter_dir)
        if (adapter_dir / ADAPTER_SUBDIR / ADAPTER_CONFIG).is_file():
            adapter_dir = adapter_dir / ADAPTER_SUBDIR
        return load_peft_adapter(adapter_dir, self.config)[0]

    def build_model(self, **lora_kwargs: Any) -> torch.nn.Module:
        """Build the (uninitialised) torchtune model this file holds weights for.

        Args:
            **lora_kwargs: passed to ``model_from_hf_config`` (e.g. ``lora_attn_modules``, ``lora_rank``).

        Returns:
            TransformerDecoder: the model.
        """
        return model_from_hf_config(self.config, **lora_kwargs)

    def tokenizer(self, max_seq_len: int | None = None) -> GGUFTokenizer:
        """The tokenizer and chat template stored in the file."""
        return GGUFTokenizer(self.metadata, max_seq_len=max_seq_len)

    def write_checkpoint(
        self,
        directory: str | Path,
        state_dict: dict[str, torch.Tensor],
        *,
        lora_alpha: float | None = None,
        adapter_only: bool = False,
    ) -> None:
        """Write the GGUF file (and the peft adapter) into an existing ``directory``.

        Args:
            directory (str | Path): an existing directory.
            state_dict (dict[str, torch.Tensor]): torchtune state dict, adapters included or not.
            lora_alpha (float | None): the adapters' alpha; required when there are adapters.
            adapter_only (bool): write only the adapter. Default False.

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
        if adapter:
            adapter_dir = directory if adapter_only else directory / ADAPTER_SUBDIR
            adapter_dir.mkdir(exist_ok=True)
            save_peft_adapter(adapter_dir, adapter, self.config, lora_alpha=lora_alpha,
                              base_model_name_or_path=str(self.checkpoint_path))
            if adapter_only:
                return
            state_dict = get_merged_lora_ckpt(state_dict, alpha=lora_alpha)  # adapters folded in and dropped
        export_gguf(
            state_dict,
            self.config,
            directory / self.file_name,
            tokenizer_metadata=gguf_tokenizer_metadata(self.metadata),
            out_type=self.out_type,
            name=self.metadata.get("general.name"),
        )

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
            name (str): sub-directory name, e.g. ``"epoch_0"``. Default ``"final"``.
            lora_alpha (float | None): see :meth:`write_checkpoint`.
            adapter_only (bool): see :meth:`write_checkpoint`. Default False.
            write_extra (Callable[[Path], None] | None): writes more files (e.g. recipe state)
                into the same directory before it is committed.
            overwrite (bool): replace an existing directory. Default True.

        Returns:
            Path: the finished directory.
        """
        with atomic_directory(self.output_dir / name, overwrite=overwrite) as tmp:
            self.write_checkpoint(tmp, state_dict, lora_alpha=lora_alpha, adapter_only=adapter_only)
            if write_extra is not None:
                write_extra(tmp)
        return self.output_dir / name
