"""Meta-format checkpoints: ``consolidated.00.pth`` plus ``params.json``.

Meta's reference code applies rotary embeddings to interleaved pairs ``(2i, 2i + 1)`` of each
head's dimensions; torchtune (like Hugging Face) rotates halves ``(i, i + h_d / 2)``. The rows of
``wq`` and ``wk`` are permuted at load and permuted back at save.
"""

import json
import re
import shutil
from pathlib import Path
from collections.abc import Mapping
from typing import Any, Callable

import torch

from torchtune.modules.peft import AdapterSpec, is_adapter_key
from torchtune.training.checkpointing._atomic import save_with
from torchtune.training.checkpointing._peft_adapter import adapter_dir_of, load_peft_adapter, write_adapter_and_merge


PARAMS_FILE = "params.json"
# Meta module name -> torchtune module name ("{}" is the layer index)
_META_TO_TUNE = {
    "tok_embeddings": "tok_embeddings",
    "layers.{}.attention.wq": "layers.{}.attn.q_proj",
    "layers.{}.attention.wk": "layers.{}.attn.k_proj",
    "layers.{}.attention.wv": "layers.{}.attn.v_proj",
    "layers.{}.attention.wo": "layers.{}.attn.output_proj",
    "layers.{}.attention_norm": "layers.{}.sa_norm",
    "layers.{}.feed_forward.w1": "layers.{}.mlp.w1",
    "layers.{}.feed_forward.w2": "layers.{}.mlp.w2",
    "layers.{}.feed_forward.w3": "layers.{}.mlp.w3",
    "layers.{}.ffn_norm": "layers.{}.mlp_norm",
    "norm": "norm",
    "output": "output",
}
_TUNE_TO_META = {v: k for k, v in _META_TO_TUNE.items()}
_NORMS = ("layers.{}.sa_norm", "layers.{}.mlp_norm", "norm")
_LAYER = re.compile(r"^layers\.(\d+)\.")
_IGNORED = ("rope.freqs",)
_WRITTEN = "consolidated.00.pth"


def meta_to_hf_rotary(weight: torch.Tensor, num_heads: int) -> torch.Tensor:
    """Reorder q/k projection rows from Meta's interleaved to the rotate-half layout.

    Args:
        weight (torch.Tensor): ``[n_h * h_d, ...]`` (weight or bias).
        num_heads (int): heads in this projection (``n_kv_heads`` for ``wk``).

    Returns:
        torch.Tensor: the same shape, rows ``(h, 2i + j)`` moved to ``(h, j * h_d / 2 + i)``.
    """
    rest = weight.shape[1:]
    head_dim = weight.shape[0] // num_heads
    w = weight.reshape(num_heads, head_dim // 2, 2, *rest)  # [n_h, h_d/2, 2, ...]
    return w.transpose(1, 2).reshape(num_heads * head_dim, *rest)  # [n_h * h_d, ...]


def hf_to_meta_rotary(weight: torch.Tensor, num_heads: int) -> torch.Tensor:
    """Inverse of :func:`meta_to_hf_rotary`.

    Args:
        weight (torch.Tensor): ``[n_h * h_d, ...]`` in the rotate-half layout.
        num_heads (int): heads in this projection.

    Returns:
        torch.Tensor: the same shape in Meta's interleaved layout.
    """
    rest = weight.shape[1:]
    head_dim = weight.shape[0] // num_heads
    w = weight.reshape(num_heads, 2, head_dim // 2, *rest)  # [n_h, 2, h_d/2, ...]
    return w.transpose(1, 2).reshape(num_heads * head_dim, *rest)  # [n_h * h_d, ...]


def _split(key: str) -> tuple[str, str | None, str]:
    """``"layers.3.attention.wq.weight"`` -> (``"layers.{}.attention.wq"``, ``"3"``, ``"weight"``)."""
    module, _, leaf = key.rpartition(".")
    match = _LAYER.match(module)
    if match is None:
        return module, None, leaf
    return "layers.{}." + module[match.end() :], match.group(1), leaf


def _hf_config(params: dict[str, Any], weights: dict[str, torch.Tensor]) -> dict[str, Any]:
    """The Hugging Face ``LlamaConfig`` fields of a Meta ``params.json``; vocabulary and
    feed-forward sizes (which params.json gives only as ``vocab_size: -1`` / ``multiple_of``
    rules) and tied embeddings are read off the weights."""
    needed = ("tok_embeddings.weight", "layers.0.feed_forward.w1.weight")
    missing = [k for k in needed if k not in weights]
    if missing:
        raise ValueError(f"the checkpoint has no {missing}: not a Meta Llama checkpoint (consolidated.*.pth)")
    vocab_size, dim = weights["tok_embeddings.weight"].shape
    config = {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "vocab_size": int(vocab_size),
        "hidden_size": int(dim),
        "intermediate_size": int(weights["layers.0.feed_forward.w1.weight"].shape[0]),
        "num_hidden_layers": int(params["n_layers"]),
        "num_attention_heads": int(params["n_heads"]),
        "num_key_value_heads": int(params.get("n_kv_heads") or params["n_heads"]),
        "rms_norm_eps": float(params.get("norm_eps", 1e-5)),
        "rope_theta": float(params.get("rope_theta", 10000.0)),
        "max_position_embeddings": int(params.get("max_seq_len", 131072 if params.get("use_scaled_rope") else 8192)),
        "tie_word_embeddings": "output.weight" not in weights,
        "hidden_act": "silu",
    }
    if params.get("use_scaled_rope"):
        config["rope_scaling"] = {"rope_type": "llama3", "factor": float(params.get("rope_scaling_factor", 8.0)),
                                  "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                  "original_max_position_embeddings": 8192}
    return config


class MetaCheckpointer:
    """Read and write Meta ``consolidated.00.pth`` checkpoints (Llama) in torchtune's layout.

    A :class:`~torchtune.training.checkpointing.Checkpointer`: ``config`` is the Hugging Face
    Llama config the checkpoint corresponds to, and adapters are written as a peft adapter
    beside the merged ``consolidated.00.pth`` (Meta's format has no adapter files).

    Args:
        checkpoint_dir (str | Path): directory with ``params.json`` and the ``.pth`` file.
        output_dir (str | Path): where the deprecated :meth:`save_checkpoint` writes ``<output_dir>/<name>``.
        checkpoint_files (list[str] | None): the weight file; None finds ``consolidated.*.pth``.

    Raises:
        FileNotFoundError: if ``params.json`` or the weights are missing.
        ValueError: if the checkpoint is split into model-parallel shards (several files).
    """

    def __init__(self, checkpoint_dir: str | Path, output_dir: str | Path, checkpoint_files: list[str] | None = None) -> None:
        self.checkpoint_dir = Path(checkpoint_dir)
        self.output_dir = Path(output_dir)
        params = self.checkpoint_dir / PARAMS_FILE
        if not params.is_file():
            raise FileNotFoundError(f"{PARAMS_FILE} not found in checkpoint_dir={str(self.checkpoint_dir)!r}")
        with open(params, encoding="utf-8") as f:
            self.params = json.load(f)
        self.num_heads = self.params["n_heads"]
        self.num_kv_heads = self.params.get("n_kv_heads") or self.num_heads
        files = checkpoint_files or sorted(p.name for p in self.checkpoint_dir.glob("consolidated.*.pth"))
        if not files or not all((self.checkpoint_dir / f).is_file() for f in files):
            raise FileNotFoundError(f"checkpoint files {files or 'consolidated.*.pth'} not found in {str(self.checkpoint_dir)!r}")
        if len(files) > 1:
            raise ValueError(f"checkpoint_files={files}: model-parallel shards are not supported; pass one file")
        self.checkpoint_files = files
        self._config: dict[str, Any] | None = None

    @property
    def config(self) -> dict[str, Any]:
        """dict[str, Any]: the Hugging Face Llama ``config.json`` this checkpoint corresponds to."""
        if self._config is None:
            weights = torch.load(self.checkpoint_dir / self.checkpoint_files[0], map_location="cpu",
                                 weights_only=True, mmap=True)
            self._config = _hf_config(self.params, weights)
        return self._config

    def _heads(self, module: str) -> int | None:
        return {"layers.{}.attn.q_proj": self.num_heads, "layers.{}.attn.k_proj": self.num_kv_heads}.get(module)

    def load_checkpoint(self, directory: str | Path | None = None) -> dict[str, torch.Tensor]:
        """Load the weights (``torch.load(weights_only=True)``) and convert them to torchtune keys.

        Args:
            directory (str | Path | None): a checkpoint this checkpointer wrote (to resume); None
                reads ``checkpoint_dir``. Default None.

        Returns:
            dict[str, torch.Tensor]: torchtune state dict.

        Raises:
            FileNotFoundError: if ``directory`` holds no ``consolidated.00.pth``.
            ValueError: on a key with no torchtune counterpart.
        """
        path = self.checkpoint_dir / self.checkpoint_files[0] if directory is None else Path(directory) / _WRITTEN
        if not path.is_file():
            raise FileNotFoundError(f"{path.name} not found in {str(path.parent)!r}")
        meta = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        out = {}
        for key, value in meta.items():
            if key in _IGNORED:
                continue
            template, layer, leaf = _split(key)
            if template not in _META_TO_TUNE:
                raise ValueError(f"no torchtune name for Meta key {key!r}")
            tune = _META_TO_TUNE[template]
            heads = self._heads(tune)
            value = meta_to_hf_rotary(value, heads) if heads else value
            leaf = "scale" if tune in _NORMS else leaf
            out[f"{tune.format(layer)}.{leaf}"] = value
        return out

    def load_adapter(self, adapter_dir: str | Path) -> dict[str, torch.Tensor]:
        """Read a peft adapter (a checkpoint's ``adapter/`` sub-directory when present).

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
        """Write ``consolidated.00.pth`` and ``params.json`` into ``directory`` (not atomic).

        Adapters, if any, are written as a peft adapter in ``adapter/`` (in ``directory`` with
        ``adapter_only``) and merged into the weights.

        Args:
            directory (str | Path): an existing directory.
            state_dict (dict[str, torch.Tensor]): torchtune state dict.
            adapter_specs (Mapping[str, AdapterSpec] | None): each adapter's rank and alpha
                (``torchtune.modules.peft.get_adapter_specs(model)``); required with adapters.
            adapter_only (bool): write only the adapter. Default False.
            lora_alpha (float | None): deprecated: one alpha for every adapter. Default None.

        Raises:
            ValueError: on adapters whose alpha is unknown or a key with no Meta counterpart.
        """
        # the HF config (derived from the source weights) only names the peft adapter's modules
        config = self.config if any(is_adapter_key(k) for k in state_dict) else {}
        weights = write_adapter_and_merge(
            directory, state_dict, config, adapter_specs=adapter_specs, adapter_only=adapter_only,
            base_model_name_or_path=str(self.checkpoint_dir), lora_alpha=lora_alpha,
        )
        if weights is None:
            return
        meta = {}
        for key, value in weights.items():
            template, layer, leaf = _split(key)
            if template not in _TUNE_TO_META:
                raise ValueError(f"no Meta name for torchtune key {key!r}")
            heads = self._heads(template)
            value = hf_to_meta_rotary(value, heads) if heads else value
            leaf = "weight" if leaf == "scale" else leaf
            meta[f"{_TUNE_TO_META[template].format(layer)}.{leaf}"] = value.detach().cpu().contiguous()
        torch.save(meta, Path(directory) / _WRITTEN)
        shutil.copy2(self.checkpoint_dir / PARAMS_FILE, Path(directory) / PARAMS_FILE)

    def save_checkpoint(
        self,
        state_dict: dict[str, torch.Tensor],
        name: str = "final",
        *,
        lora_alpha: float | None = None,
        write_extra: Callable[[Path], None] | None = None,
        overwrite: bool = True,
    ) -> Path:
        """Deprecated: atomically write ``<output_dir>/<name>``; recipes save through
        :class:`CheckpointManager` (one atomic path) with :meth:`write_checkpoint`."""
        return save_with(self, self.output_dir / name, state_dict, lora_alpha=lora_alpha,
                         write_extra=write_extra, overwrite=overwrite)
