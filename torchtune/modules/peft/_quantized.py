"""Frozen base weights stored quantised: NF4 (QLoRA, via torchao) and GGUF blocks.

A quantised base weight is a tensor subclass that reports the logical shape ``[out_dim, in_dim]``
and dequantises when it is used: ``F.linear`` dequantises it for the product and again for the
input gradient in the backward pass, so no full-precision copy of the weight outlives one layer's
forward or backward. Two kinds are recognised:

- torchao's ``NF4Tensor`` (4-bit NormalFloat in blocks of 64 values with double-quantised
  absmax scales; the QLoRA format), made by :func:`to_nf4_weight`;
- :class:`torchtune.gguf.GGUFQuantizedTensor` (raw llama.cpp blocks, e.g. Q4_1), made by the
  GGUF checkpointer with ``keep_quantized=True``.

Both are duck-typed here (``get_original_weight`` / ``dequantized``), so this module imports
neither torchao nor the GGUF package.
"""

import torch

from torchtune.utils._import import require


NF4_BLOCK_SIZE = 64  # values per NF4 block (one absmax scale each)
NF4_SCALER_BLOCK_SIZE = 256  # absmax scales per second-level (double quantisation) block


def to_nf4_weight(weight: torch.Tensor) -> torch.Tensor:
    """Quantise a frozen weight to NF4 with double-quantised scales (torchao's ``NF4Tensor``).

    Args:
        weight (torch.Tensor): ``[out_dim, in_dim]`` floating-point weight.

    Returns:
        torch.Tensor: a torchao ``NF4Tensor`` of the same shape and dtype.

    Raises:
        ModuleNotFoundError: without torchao; the message names ``pip install 'torchtune[quant]'``.
        ValueError: when ``weight.numel()`` is not a multiple of ``64 * 256`` (each block of 64
            values has one scale, and the scales are quantised 256 at a time).
    """
    quantization = require("torchao.quantization", extra="quant")
    step = NF4_BLOCK_SIZE * NF4_SCALER_BLOCK_SIZE
    if weight.numel() % step:
        raise ValueError(
            f"quantize_base=True needs weights whose size is a multiple of {step} "
            f"({NF4_BLOCK_SIZE}-value blocks, {NF4_SCALER_BLOCK_SIZE} scales per scale block); "
            f"a weight of shape {tuple(weight.shape)} has {weight.numel()} values; published model sizes "
            "fit, a tiny test model needs e.g. embed_dim and the key/value width multiples of 128"
        )
    return quantization.to_nf4(weight.detach().contiguous(), NF4_BLOCK_SIZE, NF4_SCALER_BLOCK_SIZE)


def is_quantized_weight(weight: torch.Tensor | None) -> bool:
    """bool: whether ``weight`` is a quantised base weight (NF4 or GGUF blocks), or an FSDP2
    ``DTensor`` whose local shard is one."""
    weight = getattr(weight, "_local_tensor", weight)
    return weight is not None and (
        hasattr(type(weight), "get_original_weight") or hasattr(type(weight), "dequantized")
    )


def dequantize_weight(weight: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A plain tensor of ``dtype`` holding the values of a (possibly quantised) weight.

    Args:
        weight (torch.Tensor): a plain tensor, an ``NF4Tensor`` or a ``GGUFQuantizedTensor``.
        dtype (torch.dtype): the dtype of the result.

    Returns:
        torch.Tensor: ``weight``'s values, same shape; plain tensors are only cast. A sharded
        (``DTensor``) weight gives a ``DTensor`` with the same placements whose shards are
        dequantised locally.
    """
    local = getattr(weight, "_local_tensor", None)
    if local is not None:
        from torch.distributed.tensor import DTensor

        return DTensor.from_local(dequantize_weight(local, dtype), weight.device_mesh, weight.placements,
                                  run_check=False, shape=weight.shape, stride=weight.stride())
    if hasattr(type(weight), "get_original_weight"):  # torchao NF4Tensor
        return weight.get_original_weight().to(dtype)
    if hasattr(type(weight), "dequantized"):  # torchtune.gguf.GGUFQuantizedTensor
        return weight.dequantized(dtype)
    return weight.to(dtype)

