"""Reading GGUF files into Hugging Face style state dicts, and writing them back atomically."""

import logging
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from torchtune.gguf._arch import (
    check_architecture,
    check_gpt_oss_layout,
    check_smollm3_layout,
    gemma3_gguf_rope,
    gguf_architecture,
    gpt_oss_gguf_rope,
    join_gguf_experts,
    join_gpt_oss_experts,
    split_gpt_oss_experts,
    split_hf_experts,
    gguf_to_hf_name,
    gguf_value_to_hf,
    hf_config_from_metadata,
    hf_to_gguf_name,
    hf_value_to_gguf,
)
from torchtune.gguf._quants import BLOCK_LAYOUT, dequantize, quantize_q8_0
from torchtune.gguf._rope import llama3_rope_divisors
from torchtune.gguf._tensor import GGUFQuantizedTensor
from torchtune.utils import tensor_meta

logger = logging.getLogger(__name__)

OUT_TYPES = ("F32", "F16", "Q8_0")
ROPE_FREQS = "rope_freqs.weight"  # Llama 3.x RoPE scaling divisors, not a model parameter
_HEADER_KEYS = ("GGUF.version", "GGUF.tensor_count", "GGUF.kv_count")


def _gguf():
    from torchtune.utils import require

    return require("gguf", extra="gguf")


def open_gguf(path: str | Path) -> Any:
    """Open a GGUF file read-only (memory-mapped).

    Raises:
        FileNotFoundError: if ``path`` does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"GGUF file '{path}' does not exist")
    return _gguf().GGUFReader(path, "r")


def read_metadata(reader: Any) -> dict[str, Any]:
    """All key/value fields of a ``gguf.GGUFReader`` as Python values (header fields left out)."""
    return {k: f.contents() for k, f in reader.fields.items() if k not in _HEADER_KEYS}


class TensorInfo(NamedTuple):
    """Where one tensor lies in a GGUF file: name, GGML type name, torch-order shape, bytes."""

    name: str
    type_name: str
    shape: tuple[int, ...]
    offset: int
    n_bytes: int


def read_tensor_infos(reader: Any) -> list[TensorInfo]:
    """The tensors of a ``gguf.GGUFReader``; GGUF lists dimensions innermost first, we reverse them."""
    return [
        TensorInfo(t.name, t.tensor_type.name, tuple(int(s) for s in reversed(t.shape.tolist())),
                   int(t.data_offset), int(t.n_bytes))
        for t in reader.tensors
    ]


def _read_tensor(path: str | Path, info: TensorInfo, dtype: torch.dtype) -> torch.Tensor:
    with open(path, "rb") as f:
        f.seek(info.offset)
        raw = np.frombuffer(f.read(info.n_bytes), dtype=np.uint8)
    return dequantize(raw, info.type_name, info.shape, dtype=dtype, tensor_name=info.name)


def read_hf_state_dict(
    path: str | Path, tensors: list[TensorInfo], config: dict[str, Any], dtype: torch.dtype = torch.float32,
    *, keep_quantized: bool = False,
) -> dict[str, torch.Tensor]:
    """Dequantise every tensor of a GGUF file and name it as Hugging Face does.

    Args:
        path (str | Path): the ``.gguf`` file.
        tensors (list[TensorInfo]): from :func:`read_tensor_infos`.
        config (dict[str, Any]): from :func:`hf_config_from_metadata`.
        dtype (torch.dtype): the result dtype. Default ``torch.float32``.
        keep_quantized (bool): keep the block-quantised weights of linear layers (``*_proj``,
            ``lm_head``) as :class:`GGUFQuantizedTensor` (raw blocks, dequantised where used)
            instead of decoding them; other quantised tensors (embeddings, stacked experts) are
            decoded, with a logged note. Default False.

    Returns:
        dict[str, torch.Tensor]: Hugging Face parameter name -> tensor, with llama.cpp's q/k
        permutation and gemma norm offset undone.

    Raises:
        ValueError: for an unknown tensor name or an unsupported quantisation type.
    """
    state_dict, decoded = {}, []
    # Plain file reads rather than the reader's memory map, so the file's pages do not stay
    # resident in this process on top of the decoded weights.
    with open(path, "rb") as f:
        for info in tensors:
            hf_name = gguf_to_hf_name(info.name, config["model_type"])
            f.seek(info.offset)
            raw = np.frombuffer(f.read(info.n_bytes), dtype=np.uint8)
            if keep_quantized and info.type_name in BLOCK_LAYOUT:
                if _is_linear_weight(hf_name, info.shape):
                    state_dict[hf_name] = _quantized_weight(hf_name, raw, info, config, dtype)
                    continue
                decoded.append(f"{info.name} ({info.type_name})")
            # 1-D tensors (norms, biases) may get arithmetic (gemma's offset): keep them float32 until then
            work = torch.float32 if len(info.shape) == 1 else dtype
            value = dequantize(raw, info.type_name, info.shape, dtype=work, tensor_name=info.name)
            state_dict[hf_name] = gguf_value_to_hf(hf_name, value, config).to(dtype)
    if decoded:
        logger.info("keep_quantized: %d quantised tensors are dequantised to %s instead (only linear-layer "
                    "weights stay quantised; embeddings are looked up and stacked experts are joined): %s",
                    len(decoded), dtype, ", ".join(decoded))
    if config["model_type"] == "qwen3_moe":
        state_dict = join_gguf_experts(state_dict)
    if config["model_type"] == "gpt_oss":
        state_dict = join_gpt_oss_experts(state_dict)
    return state_dict


def _is_linear_weight(hf_name: str, shape: tuple[int, ...]) -> bool:
    return len(shape) == 2 and (hf_name.endswith("_proj.weight") or hf_name == "lm_head.weight")


def _quantized_weight(hf_name: str, raw: np.ndarray, info: TensorInfo, config: dict[str, Any],
                      dtype: torch.dtype) -> GGUFQuantizedTensor:
    """A linear weight's blocks as a :class:`GGUFQuantizedTensor`; llama.cpp's q/k row permutation
    is undone on the rows of blocks (blocks run along a row, so a row permutation moves whole rows)."""
    rows = torch.from_numpy(raw.copy()).reshape(info.shape[0], -1)  # [out_dim, in_dim / K * B] uint8
    rows = gguf_value_to_hf(hf_name, rows, config).contiguous()
    return GGUFQuantizedTensor(rows, info.type_name, info.shape, dtype)


def read_gguf_header(path: str | Path) -> tuple[dict[str, Any], dict[str, Any], list[TensorInfo]]:
    """Read a GGUF file's metadata and tensor table (no weights).

    Args:
        path (str | Path): the ``.gguf`` file.

    Returns:
        tuple: (GGUF metadata dict, Hugging Face style config dict, tensor table).

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: for an unsupported architecture or rope scaling, or missing metadata.
    """
    reader = open_gguf(path)
    metadata, tensors = read_metadata(reader), read_tensor_infos(reader)
    del reader  # its per-field objects are large; free them before any weights are decoded
    check_architecture(metadata.get("general.architecture", "<missing>"))
    rope = next((t for t in tensors if t.name == ROPE_FREQS), None)
    rope_freqs = _read_tensor(path, rope, torch.float32) if rope is not None else None
    config = hf_config_from_metadata(metadata, {t.name: t.shape for t in tensors}, rope_freqs)
    return metadata, config, [t for t in tensors if t.name != ROPE_FREQS]


def load_gguf(
    path: str | Path, dtype: torch.dtype = torch.float32
) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """Read a GGUF model file.

    Args:
        path (str | Path): the ``.gguf`` file.
        dtype (torch.dtype): dtype of the returned weights. Default ``torch.float32``.

    Returns:
        tuple: (Hugging Face state dict, Hugging Face style config dict, GGUF metadata dict).

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: for an unsupported architecture, tensor name or quantisation type.
    """
    metadata, config, tensors = read_gguf_header(path)
    state_dict = read_hf_state_dict(path, tensors, config, dtype)
    logger.info("Read %d tensors of a %s model from %s", len(state_dict), config["model_type"], path)
    return state_dict, config, metadata


def _add_value(writer: Any, key: str, value: Any) -> None:
    """Add one metadata value with llama.cpp's usual types (ids uint32, int arrays int32)."""
    vt = _gguf().GGUFValueType
    if isinstance(value, bool):
        writer.add_bool(key, value)
    elif isinstance(value, int) and value >= 0:
        writer.add_uint32(key, value)
    elif isinstance(value, int):
        writer.add_int32(key, value)
    elif isinstance(value, float):
        writer.add_float32(key, value)
    elif isinstance(value, str):
        writer.add_string(key, value)
    elif isinstance(value, (list, tuple)):
        sub = vt.STRING
        if value and isinstance(value[0], bool):
            sub = vt.BOOL
        elif value and isinstance(value[0], int):
            sub = vt.INT32
        elif value and isinstance(value[0], float):
            sub = vt.FLOAT32
        writer.add_key_value(key, list(value), vt.ARRAY, sub_type=sub)
    else:
        raise ValueError(f"metadata key '{key}' has a value of type {type(value).__name__}, "
                         "which GGUF cannot store")


def _add_architecture(writer: Any, config: dict[str, Any]) -> None:
    arch = gguf_architecture(config["model_type"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_head_count_kv(config["num_key_value_heads"])
    writer.add_layer_norm_rms_eps(float(config["rms_norm_eps"]))
    gemma3_rope = gemma3_gguf_rope(config) if arch == "gemma3" else None
    writer.add_rope_freq_base(gemma3_rope[0] if gemma3_rope else _rope_theta(config))
    writer.add_vocab_size(config["vocab_size"])
    head_dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    if head_dim * config["num_attention_heads"] != config["hidden_size"] or arch != "llama":
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    if arch in ("llama", "smollm3"):
        writer.add_rope_dimension_count(head_dim)
    if arch == "gemma2":
        writer.add_attn_logit_softcapping(float(config["attn_logit_softcapping"]))
        writer.add_final_logit_softcapping(float(config["final_logit_softcapping"]))
        writer.add_sliding_window(int(config["sliding_window"]))
    if arch == "gemma3":
        writer.add_sliding_window(int(config["sliding_window"]))
        if gemma3_rope[1] is not None:
            writer.add_rope_scaling_type(_gguf().RopeScalingType.LINEAR)
            writer.add_rope_scaling_factor(gemma3_rope[1])
    if arch == "qwen3moe":
        writer.add_expert_count(int(config.get("num_experts", config.get("num_local_experts"))))
        writer.add_expert_used_count(int(config["num_experts_per_tok"]))
        writer.add_expert_feed_forward_length(int(config["moe_intermediate_size"]))
    if arch == "gpt-oss":
        writer.add_expert_count(int(config.get("num_local_experts", config.get("num_experts"))))
        writer.add_expert_used_count(int(config["num_experts_per_tok"]))
        writer.add_expert_feed_forward_length(int(config["intermediate_size"]))
        writer.add_sliding_window(int(config["sliding_window"]))
        _add_yarn(writer, gpt_oss_gguf_rope(config))


def _add_yarn(writer: Any, yarn: dict[str, Any] | None) -> None:
    """YaRN RoPE scaling under llama.cpp's ``rope.scaling.*`` keys (nothing for plain RoPE)."""
    if yarn is None:
        return
    writer.add_rope_scaling_type(_gguf().RopeScalingType.YARN)
    writer.add_rope_scaling_factor(float(yarn["factor"]))
    writer.add_rope_scaling_orig_ctx_len(int(yarn["original_max_position_embeddings"]))
    if yarn.get("attention_factor") is not None:
        writer.add_rope_scaling_yarn_attn_factor(float(yarn["attention_factor"]))
    if yarn.get("beta_fast") is not None:
        writer.add_rope_scaling_yarn_beta_fast(float(yarn["beta_fast"]))
    if yarn.get("beta_slow") is not None:
        writer.add_rope_scaling_yarn_beta_slow(float(yarn["beta_slow"]))


def _gguf_type(name: str, shape: tuple[int, ...], out_type: str) -> str:
    """The GGUF type one tensor is written as: 1-D tensors stay F32 (as llama.cpp keeps them), and
    Q8_0 needs rows of a multiple of 32 values (others are written as F16)."""
    if len(shape) == 1 or out_type == "F32":
        return "F32"
    if out_type == "Q8_0" and shape[-1] % 32:
        logger.warning("%s has rows of %d values, not a multiple of 32: written as F16", name, shape[-1])
        return "F16"
    return out_type


def _tensor_layout(shape: tuple[int, ...], gguf_type: str) -> tuple[tuple[int, ...], np.dtype, int, Any]:
    """What the GGUF tensor table records of a tensor before its bytes are written: the shape and
    numpy dtype of the encoded array (Q8_0: ``uint8`` rows of 34-byte blocks of 32 values), its
    size in bytes, and the raw GGML type (None for F32 and F16)."""
    if gguf_type == "Q8_0":
        shape = (*shape[:-1], shape[-1] // 32 * 34)
        return shape, np.dtype(np.uint8), math.prod(shape), _gguf().GGMLQuantizationType.Q8_0
    dtype = np.dtype(np.float32 if gguf_type == "F32" else np.float16)
    return tuple(shape), dtype, math.prod(shape) * dtype.itemsize, None


def _encode_tensor(w: torch.Tensor, gguf_type: str) -> np.ndarray:
    """GGUF bytes for one tensor of type ``gguf_type`` (from :func:`_gguf_type`)."""
    w = w.detach()
    if gguf_type == "F16" and w.dtype in (torch.bfloat16, torch.float16, torch.float32):
        # every value of these is a float32 value: the direct cast rounds as the cast through float32
        # does, without a float32 copy of the tensor
        return w.to(torch.float16).numpy()
    w = w.to(torch.float32)
    if gguf_type == "F32":
        return w.numpy()
    if gguf_type == "F16":
        return w.to(torch.float16).numpy()
    return quantize_q8_0(w)


def _rope_theta(config: dict[str, Any]) -> float:
    """RoPE base of a Hugging Face config: ``rope_theta`` (v4) or ``rope_parameters`` (v5)."""
    return float(config.get("rope_theta") or (config.get("rope_parameters") or {}).get("rope_theta", 10000.0))


def _llama3_scaling(config: dict[str, Any]) -> dict[str, Any] | None:
    """The Llama 3.x ``rope_scaling`` of a Hugging Face config (v4 or v5 layout), else None.

    Raises:
        ValueError: for another kind of RoPE scaling, which GGUF export does not write.
    """
    scaling = config.get("rope_scaling") or config.get("rope_parameters") or {}
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    if kind == "default":
        return None
    if kind != "llama3":
        raise ValueError(f"rope_type={kind!r} cannot be written to GGUF; supported: default, llama3")
    return scaling


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_gguf(
    hf_state_dict: Mapping[str, torch.Tensor],
    config: dict[str, Any],
    path: str | Path,
    *,
    tokenizer_metadata: dict[str, Any] | None = None,
    out_type: str = "F16",
    name: str | None = None,
) -> Path:
    """Write a GGUF model file from a Hugging Face state dict, atomically.

    The file is written to a temporary file in the destination directory, fsynced and
    renamed into place, so ``path`` is either the whole new file or untouched.

    The tensor table is written from the shapes first, then each tensor is read, encoded and
    written before the next, so a :class:`torchtune.utils.LazyStateDict` (e.g. weights with
    adapters merged in) is computed one tensor at a time and no encoded copy of the whole model
    is held.

    Args:
        hf_state_dict (Mapping[str, torch.Tensor]): Hugging Face parameter names -> tensors, a
            dict or a ``LazyStateDict``.
        config (dict[str, Any]): Hugging Face style config (``model_type`` and sizes).
        path (str | Path): destination ``.gguf`` file.
        tokenizer_metadata (dict[str, Any] | None): ``tokenizer.*`` keys to store (vocabulary,
            merges, special ids, ``tokenizer.chat_template``). Default None (none stored).
        out_type (str): ``"F32"``, ``"F16"`` or ``"Q8_0"`` for the 2-D weights. Default ``"F16"``.
        name (str | None): ``general.name``. Default None.

    Returns:
        Path: ``path``.

    Raises:
        ValueError: for an unsupported ``out_type`` or architecture, or an unknown parameter.
    """
    if out_type not in OUT_TYPES:
        raise ValueError(f"out_type={out_type!r} is not supported; choose one of {', '.join(OUT_TYPES)}")
    arch = gguf_architecture(config.get("model_type", "<missing>"))
    check_architecture(arch)
    if arch == "smollm3":
        check_smollm3_layout(config)
    if arch == "qwen3moe":
        if not config.get("norm_topk_prob", False):
            raise ValueError("norm_topk_prob=False cannot be written to GGUF: llama.cpp's qwen3moe always "
                             "renormalises the chosen experts' weights")
        config = {**config, "num_experts": config.get("num_experts", config.get("num_local_experts"))}
        hf_state_dict = split_hf_experts(hf_state_dict, config)
    if arch == "gpt-oss":
        check_gpt_oss_layout(config)
        hf_state_dict = split_gpt_oss_experts(hf_state_dict)
        if "lm_head.weight" not in hf_state_dict:  # llama.cpp's gpt-oss requires an output tensor
            logger.info("gpt-oss: tied embeddings are written as a separate output.weight, which llama.cpp requires")
            hf_state_dict = {**hf_state_dict, "lm_head.weight": hf_state_dict["model.embed_tokens.weight"]}
    gguf = _gguf()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        writer = gguf.GGUFWriter(tmp, arch)
        if name:
            writer.add_name(name)
        writer.add_file_type({"F32": 0, "F16": 1, "Q8_0": 7}[out_type])  # llama.cpp's LlamaFileType
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        _add_architecture(writer, config)
        for key, value in (tokenizer_metadata or {}).items():
            _add_value(writer, key, value)
        # The tensor table first, from the shapes alone; then each tensor is read, encoded and
        # written before the next (a LazyStateDict, e.g. merged adapters, is computed one at a time).
        rope_freqs = None
        scaling = _llama3_scaling(config) if arch not in ("gemma3", "gpt-oss") else None
        if scaling is not None:
            head_dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
            rope_freqs = llama3_rope_divisors(_rope_theta(config), head_dim, scaling).numpy()
            writer.add_tensor_info(ROPE_FREQS, rope_freqs.shape, rope_freqs.dtype, rope_freqs.nbytes)
        types = {}
        for hf_name in hf_state_dict:
            gguf_name = hf_to_gguf_name(hf_name, arch)
            shape = tuple(tensor_meta(hf_state_dict, hf_name).shape)
            types[hf_name] = _gguf_type(gguf_name, shape, out_type)
            table_shape, dtype, n_bytes, raw_type = _tensor_layout(shape, types[hf_name])
            writer.add_tensor_info(gguf_name, table_shape, dtype, n_bytes, raw_dtype=raw_type)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        if rope_freqs is not None:
            writer.write_tensor_data(rope_freqs)
        for hf_name, gguf_type in types.items():
            writer.write_tensor_data(_encode_tensor(hf_value_to_gguf(hf_name, hf_state_dict[hf_name], config), gguf_type))
        writer.close()
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    logger.info("Wrote %d tensors (%s) to %s", len(hf_state_dict), out_type, path)
    return path
