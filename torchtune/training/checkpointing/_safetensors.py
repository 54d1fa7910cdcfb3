"""Writing safetensors files one tensor at a time."""

import json
import struct
from collections.abc import Mapping
from pathlib import Path

import torch

from torchtune.training.checkpointing._atomic import atomic_file
from torchtune.utils import tensor_meta

# safetensors' dtypes in its order of increasing alignment (the order of its Rust ``Dtype`` enum);
# a file lays its tensors out by decreasing alignment, then by name
_DTYPES = {
    torch.bool: "BOOL",
    torch.uint8: "U8",
    torch.int8: "I8",
    torch.float8_e5m2: "F8_E5M2",
    torch.float8_e4m3fn: "F8_E4M3",
    torch.float8_e4m3fnuz: "F8_E4M3FNUZ",
    torch.float8_e5m2fnuz: "F8_E5M2FNUZ",
    torch.int16: "I16",
    torch.uint16: "U16",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int32: "I32",
    torch.uint32: "U32",
    torch.float32: "F32",
    torch.complex64: "C64",
    torch.float64: "F64",
    torch.int64: "I64",
    torch.uint64: "U64",
}
_ALIGNMENT_RANK = {dtype: rank for rank, dtype in enumerate(_DTYPES)}
_HEADER_ALIGNMENT = 8


def save_safetensors(
    tensors: Mapping[str, torch.Tensor], path: str | Path, *, metadata: dict[str, str] | None = None
) -> Path:
    """Write a safetensors file one tensor at a time, atomically.

    The file's bytes are those ``safetensors.torch.save_file`` writes (tensors laid out by
    decreasing dtype alignment, then by name; the JSON header padded with spaces to 8 bytes),
    but no whole-file buffer is built: the header comes from the shapes and dtypes
    (:func:`torchtune.utils.tensor_meta`, which computes nothing for a
    :class:`torchtune.utils.LazyStateDict`), then each tensor is read, made contiguous on the
    CPU and written before the next is read. Tensors that share storage are each written whole
    (``save_file`` refuses them). The file is written through
    :func:`torchtune.training.checkpointing.atomic_file`.

    Example:
        >>> save_safetensors(tune_to_hf(merged, config), directory / "model.safetensors", metadata={"format": "pt"})

    Args:
        tensors (Mapping[str, torch.Tensor]): name -> tensor, a dict or a ``LazyStateDict``.
        path (str | Path): the destination file; its directory must exist.
        metadata (dict[str, str] | None): the header's ``__metadata__`` (written with sorted
            keys). Default None (none written).

    Returns:
        Path: ``path``.

    Raises:
        ValueError: for a dtype safetensors cannot store, or metadata that is not str -> str.
    """
    metas = {name: tensor_meta(tensors, name) for name in tensors}
    for name, meta in metas.items():
        if meta.dtype not in _DTYPES:
            raise ValueError(f"{name!r} is {meta.dtype}, which safetensors cannot store; convert it to one of "
                             f"{', '.join(str(d) for d in _DTYPES)}")
    order = sorted(metas, key=lambda name: (-_ALIGNMENT_RANK[metas[name].dtype], name))
    header: dict[str, object] = {}
    if metadata is not None:
        bad = [(k, v) for k, v in metadata.items() if not isinstance(k, str) or not isinstance(v, str)]
        if bad:
            raise ValueError(f"metadata[{bad[0][0]!r}] = {bad[0][1]!r}: safetensors metadata maps str to str; "
                             "convert the value with str() or json.dumps()")
        header["__metadata__"] = dict(sorted(metadata.items()))
    offset = 0
    for name in order:
        meta = metas[name]
        end = offset + meta.numel() * meta.element_size()
        header[name] = {"dtype": _DTYPES[meta.dtype], "shape": list(meta.shape), "data_offsets": [offset, end]}
        offset = end
    blob = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    blob += b" " * (-len(blob) % _HEADER_ALIGNMENT)
    with atomic_file(path) as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for name in order:
            value = tensors[name].detach().to("cpu").contiguous()
            f.write(value.reshape(-1).view(torch.uint8).numpy().data)
            del value  # before the next tensor is computed
    return Path(path)
