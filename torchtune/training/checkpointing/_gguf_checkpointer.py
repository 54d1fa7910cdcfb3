"""Load GGUF model files into torchtune models and export fine-tuned weights back to GGUF."""

from pathlib import Path
from collections.abc import Mapping
from typing import Any, Callable

import torch

from torchtune.gguf import OUT_TYPES, read_gguf_header, read_hf_state_dict, write_gguf
from torchtune.models import hf_to_tune, model_from_hf_config, tune_to_hf
from torchtune.modules.peft import AdapterSpec, is_adapter_key
from torchtune.modules.tokenizers import GGUFTokenizer
from torchtune.training.checkpointing._atomic import save_with
from torchtune.training.checkpointing._peft_adapter import adapter_dir_of, load_peft_adapter, write_adapter_and_merge


_TOKENIZER_PREFIX = "tokenizer."


def gguf_tokenizer_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """The ``tokenizer.*`` keys of GGUF metadata (vocabulary, merges, ids, chat template)."""
    return {k: v for k, v in metadata.items() if k.startswith(_TOKENIZER_PREFIX)}


def export_gguf(
    state_dict: Mapping[str, torch.Tensor],
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
    have GGUF names. A :class:`torchtune.utils.LazyStateDict` (``get_merged_lora_ckpt(...,
    lazy=True)``) is converted and written one tensor at a time.

    Args:
        state_dict (Mapping[str, torch.Tensor]): torchtune parameter names -> tensors, a dict
            or a ``LazyStateDict``.
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
    """Read a GGUF model file (llama, qwen2, qwen3, gemma2, gemma3, smollm3, qwen3moe, gpt-oss) as a
    torchtune checkpoint.

    A :class:`~torchtune.training.checkpointing.Checkpointer`, so recipes can use it in place of
    :class:`HuggingFaceCheckpointer`. The weights
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
        output_dir (str | Path): where the deprecated :meth:`save_checkpoint` writes ``<output_dir>/<name>``.
        dtype (torch.dtype): dtype of the loaded weights. Default ``torch.float32``.
        out_type (str): GGUF type of saved 2-D weights, ``"F32"``, ``"F16"`` or ``"Q8_0"``.
            Default ``"F16"``.
        keep_quantized (bool): :meth:`load_checkpoint` keeps the block-quantised linear weights
            of ``checkpoint_path`` (Q4_0, Q4_1, Q8_0, Q4_K and the other block types) as
            :class:`torchtune.gguf.GGUFQuantizedTensor`: LoRA layers take them as their frozen
            base and dequantise one layer at a time in forward and backward, so the base stays
            near its file size in memory. Embeddings and other quantised tensors are dequantised
            (logged). Outputs are unchanged: merged weights are written dequantised. Default False.

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
        keep_quantized: bool = False,
    ) -> None:
        if out_type not in OUT_TYPES:
            raise ValueError(f"out_type={out_type!r} is not supported; choose one of {', '.join(OUT_TYPES)}")
        self.checkpoint_path = Path(checkpoint_path)
        if not self.checkpoint_path.is_file():
            raise FileNotFoundError(
                f"checkpoint_path={str(checkpoint_path)!r} does not exist; pass the model file with "
                "checkpointer.checkpoint_path=<file.gguf>"
            )
        self.output_dir = Path(output_dir)
        self.dtype = dtype
        self.out_type = out_type
        self.keep_quantized = keep_quantized
        self.metadata, self.config, self._tensors = read_gguf_header(self.checkpoint_path)

    @property
    def file_name(self) -> str:
        """Name of the GGUF file inside a saved checkpoint directory."""
        return f"model-{self.out_type}.gguf"

    def load_hf_state_dict(self, directory: str | Path | None = None) -> dict[str, torch.Tensor]:
        """Read the weights under Hugging Face parameter names (llama.cpp's changes undone).

        Args:
            directory (str | Path | None): a checkpoint this checkpointer wrote; None reads
                ``checkpoint_path``. Default None.

        Raises:
            FileNotFoundError: if ``directory`` holds no GGUF file of this checkpointer.
            ValueError: for an unknown tensor name or an unsupported quantisation type.
        """
        if directory is None:
            return read_hf_state_dict(self.checkpoint_path, self._tensors, self.config, self.dtype,
                                      keep_quantized=self.keep_quantized)
        path = Path(directory) / self.file_name
        if not path.is_file():
            raise FileNotFoundError(f"{self.file_name} not found in {str(directory)!r}")
        _, config, tensors = read_gguf_header(path)
        return read_hf_state_dict(path, tensors, config, self.dtype)

    def load_checkpoint(self, directory: str | Path | None = None) -> dict[str, torch.Tensor]:
        """Read the weights under torchtune parameter names (each call reads the file again).

        Args:
            directory (str | Path | None): a checkpoint this checkpointer wrote (to resume full
                fine-tuning; its weights are ``out_type``, so F16 resumes from rounded weights);
                None reads ``checkpoint_path``. Default None.

        Returns:
            dict[str, torch.Tensor]: torchtune state dict.

        Raises:
            ValueError: for an unknown tensor name or an unsupported quantisation type.
        """
        return hf_to_tune(self.load_hf_state_dict(directory), self.config)

    def load_adapter(self, adapter_dir: str | Path) -> dict[str, torch.Tensor]:
        """Read a peft adapter (a checkpoint's ``adapter/`` sub-directory when present).

        Returns:
            dict[str, torch.Tensor]: ``lora_a``/``lora_b``/``magnitude`` entries.
        """
        return load_peft_adapter(adapter_dir_of(adapter_dir), self.config)[0]

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
        adapter_specs: Mapping[str, AdapterSpec] | None = None,
        adapter_only: bool = False,
        lora_alpha: float | None = None,
    ) -> None:
        """Write the GGUF file (and the peft adapter) into an existing ``directory``.

        Args:
            directory (str | Path): an existing directory.
            state_dict (dict[str, torch.Tensor]): torchtune state dict, adapters included or not.
            adapter_specs (Mapping[str, AdapterSpec] | None): each adapter's rank and alpha
                (``torchtune.modules.peft.get_adapter_specs(model)``); required with adapters.
            adapter_only (bool): write only the adapter. Default False.
            lora_alpha (float | None): deprecated: one alpha for every adapter. Default None.

        Raises:
            ValueError: if there are adapters whose alpha is unknown, or ``adapter_only`` without
                adapters.
        """
        weights = write_adapter_and_merge(
            directory, state_dict, self.config, adapter_specs=adapter_specs, adapter_only=adapter_only,
            base_model_name_or_path=str(self.checkpoint_path), lora_alpha=lora_alpha,
        )
        if weights is None:
            return
        export_gguf(
            weights,
            self.config,
            Path(directory) / self.file_name,
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
        """Deprecated: atomically write ``<output_dir>/<name>``; recipes save through
        :class:`CheckpointManager` (one atomic path) with :meth:`write_checkpoint`."""
        return save_with(self, self.output_dir / name, state_dict, lora_alpha=lora_alpha,
                         adapter_only=adapter_only, write_extra=write_extra, overwrite=overwrite)
