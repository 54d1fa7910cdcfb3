"""Meta-format checkpoints: ``consolidated.00.pth`` plus ``params.json``.

Meta's reference code applies rotary embeddings to interleaved pairs ``(2i, 2i + 1)`` of each
head's dimensions; torchtune (like Hugging Face) rotates halves ``(i, i + h_d / 2)``. The rows of
``wq`` and ``wk`` are permuted at load and permuted back at save.
"""

import json
import logging
import re
import shutil
from pathlib import Path
from typing import Callable

import torch

from torchtune.modules.peft import get_adapter_state_dict, get_merged_lora_ckpt
from torchtune.training.checkpointing._atomic import atomic_directory

logger = logging.getLogger(__name__)

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


class MetaCheckpointer:
    """Read and write Meta ``consolidated.00.pth`` checkpoints in torchtune's layout.

    Args:
        checkpoint_dir (str | Path): directory with ``params.json`` and the ``.pth`` file.
        output_dir (str | Path): where :meth:`save_checkpoint` writes ``<output_dir>/<name>``.
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

    def _heads(self, module: str) -> int | None:
        return {"layers.{}.attn.q_proj": self.num_heads, "layers.{}.attn.k_proj": self.num_kv_heads}.get(module)

    def load_checkpoint(self) -> dict[str, torch.Tensor]:
        """Load the weights (``torch.load(weights_only=True)``) and convert them to torchtune keys.

        Returns:
            dict[str, torch.Tensor]: torchtune state dict.

        Raises:
            ValueError: on a key with no torchtune counterpart.
        """
        path = self.checkpoint_dir / self.checkpoint_files[0]
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

    def write_checkpoint(self, directory: str | Path, state_dict: dict[str, torch.Tensor], *, lora_alpha: float | None = None) -> None:
        """Write ``consolidated.00.pth`` and ``params.json`` into ``directory`` (not atomic).

        Adapters, if any, are merged into the weights (Meta's format has no adapter files).

        Args:
            directory (str | Path): an existing directory.
            state_dict (dict[str, torch.Tensor]): torchtune state dict.
            lora_alpha (float | None): the adapters' alpha; required when there are adapters.

        Raises:
            ValueError: on adapters without ``lora_alpha`` or a key with no Meta counterpart.
        """
        adapter = get_adapter_state_dict(state_dict)
        if adapter:
            if lora_alpha is None:
                raise ValueError("lora_alpha=None: the state dict holds LoRA adapters, pass the alpha used in training")
            state_dict = get_merged_lora_ckpt(state_dict, alpha=lora_alpha)  # adapters folded in and dropped
        meta = {}
        for key, value in state_dict.items():
            template, layer, leaf = _split(key)
            if template not in _TUNE_TO_META:
                raise ValueError(f"no Meta name for torchtune key {key!r}")
            heads = self._heads(template)
            value = hf_to_meta_rotary(value, heads) if heads else value
            leaf = "weight" if leaf == "scale" else leaf
            meta[f"{_TUNE_TO_META[template].format(layer)}.{leaf}"] = value.detach().cpu().contiguous()
        torch.save(meta, Path(directory) / "consolidated.00.pth")
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
        """Atomically write ``<output_dir>/<name>`` with :meth:`write_checkpoint`.

        Args:
            state_dict (dict[str, torch.Tensor]): torchtune state dict.
            name (str): sub-directory name. Default "final".
            lora_alpha (float | None): see :meth:`write_checkpoint`.
            write_extra (Callable[[Path], None] | None): writes more files before the commit.
            overwrite (bool): replace an existing directory. Default True.

        Returns:
            Path: the finished directory.
        """
        final = self.output_dir / name
        with atomic_directory(final, overwrite=overwrite) as tmp:
            self.write_checkpoint(tmp, state_dict, lora_alpha=lora_alpha)
            if write_extra is not None:
                write_extra(tmp)
        return final
