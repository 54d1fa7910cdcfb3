"""Vectorised dequantisation (and Q8_0 quantisation) of GGML tensor blocks.

Every GGML quantisation type stores a tensor as a sequence of fixed-size blocks, each
holding ``block_size`` consecutive values of a row. The functions here decode the raw
bytes of such blocks into float32 with torch operations over all blocks at once.

Notation: ``n`` is the number of blocks, ``B`` the bytes per block, ``K`` the values
per block (32 for the legacy types, 256 for the K-quants).
"""

from typing import Callable

import numpy as np
import torch


QK_K = 256  # values per K-quant super-block

# type name -> (values per block, bytes per block)
BLOCK_LAYOUT: dict[str, tuple[int, int]] = {
    "Q4_0": (32, 18),
    "Q4_1": (32, 20),
    "Q5_0": (32, 22),
    "Q5_1": (32, 24),
    "Q8_0": (32, 34),
    "IQ4_NL": (32, 18),
    "IQ4_XS": (QK_K, 136),
    "Q2_K": (QK_K, 84),
    "Q3_K": (QK_K, 110),
    "Q4_K": (QK_K, 144),
    "Q5_K": (QK_K, 176),
    "Q6_K": (QK_K, 210),
    "MXFP4": (32, 17),
}

_FLOAT_TYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def _half(cols: torch.Tensor) -> torch.Tensor:
    """Read two uint8 columns ``[n, 2]`` as a little-endian float16, returned as ``[n, 1]`` float32."""
    return cols.contiguous().view(torch.float16).float()


def _split_nibbles(qs: torch.Tensor) -> torch.Tensor:
    """Unpack ``[n, m]`` bytes into ``[n, 2 * m]`` values: all low nibbles, then all high nibbles."""
    return torch.cat([qs & 0x0F, qs >> 4], dim=-1)


def _high_bits(qh: torch.Tensor, count: int) -> torch.Tensor:
    """Bit ``j`` (j < count) of the little-endian bit field ``qh [n, count // 8]``, as ``[n, count]`` uint8."""
    shifts = torch.arange(8, dtype=torch.uint8)
    bits = (qh.unsqueeze(-1) >> shifts) & 1  # [n, count // 8, 8]
    return bits.reshape(qh.shape[0], count)  # [n, count]


def _q4_0(blocks: torch.Tensor) -> torch.Tensor:
    d = _half(blocks[:, 0:2])
    q = _split_nibbles(blocks[:, 2:18]).to(torch.int16) - 8  # [n, 32]
    return d * q.float()


def _q4_1(blocks: torch.Tensor) -> torch.Tensor:
    d, m = _half(blocks[:, 0:2]), _half(blocks[:, 2:4])
    q = _split_nibbles(blocks[:, 4:20]).float()  # [n, 32]
    return d * q + m


def _q5_0(blocks: torch.Tensor) -> torch.Tensor:
    d = _half(blocks[:, 0:2])
    high = _high_bits(blocks[:, 2:6], 32)  # [n, 32]
    q = (_split_nibbles(blocks[:, 6:22]) | (high << 4)).to(torch.int16) - 16
    return d * q.float()


def _q5_1(blocks: torch.Tensor) -> torch.Tensor:
    d, m = _half(blocks[:, 0:2]), _half(blocks[:, 2:4])
    high = _high_bits(blocks[:, 4:8], 32)  # [n, 32]
    q = (_split_nibbles(blocks[:, 8:24]) | (high << 4)).float()
    return d * q + m


def _q8_0(blocks: torch.Tensor) -> torch.Tensor:
    d = _half(blocks[:, 0:2])
    q = blocks[:, 2:34].contiguous().view(torch.int8).float()  # [n, 32]
    return d * q


def _k_scales_mins(packed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unpack the 12-byte field of eight 6-bit scales and eight 6-bit mins.

    Sub-block j < 4 keeps its scale in the low 6 bits of byte j and its min in the low
    6 bits of byte j + 4. Sub-block j >= 4 keeps the low 4 bits of its scale (min) in
    the low (high) nibble of byte j + 4 and the top 2 bits in the top 2 bits of byte
    j - 4 (byte j).

    Args:
        packed (torch.Tensor): ``[n, 12]`` uint8.

    Returns:
        tuple[torch.Tensor, torch.Tensor]: scales and mins, each ``[n, 8]`` float32.
    """
    lo, mid, hi = packed[:, 0:4], packed[:, 4:8], packed[:, 8:12]
    scales = torch.cat([lo & 63, (hi & 0x0F) | ((lo >> 6) << 4)], dim=-1)
    mins = torch.cat([mid & 63, (hi >> 4) | ((mid >> 6) << 4)], dim=-1)
    return scales.float(), mins.float()


# the 16 levels of the non-linear 4-bit types (IQ4_NL, IQ4_XS), indexed by the nibble
_IQ4_LEVELS = torch.tensor([-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113],
                           dtype=torch.float32)


def _iq4_nl(blocks: torch.Tensor) -> torch.Tensor:
    """IQ4_NL: blocks of 32; each nibble picks one of 16 fixed levels, times a float16 ``d``."""
    d = _half(blocks[:, 0:2])  # [n, 1]
    return d * _IQ4_LEVELS[_split_nibbles(blocks[:, 2:18]).long()]  # [n, 32]


def _iq4_xs(blocks: torch.Tensor) -> torch.Tensor:
    """IQ4_XS: super-blocks of 8 x 32 IQ4_NL-style values with 6-bit scales (offset -32)
    whose low nibbles sit in ``scales_l`` and top two bits in the 16-bit ``scales_h``."""
    n = blocks.shape[0]
    d = _half(blocks[:, 0:2])  # [n, 1]
    scales_h = blocks[:, 2:4].contiguous().view(torch.int16).to(torch.int32) & 0xFFFF  # [n, 1]
    scales_l = blocks[:, 4:8]  # [n, 4]: two 4-bit fields per byte
    low = torch.stack([scales_l & 0x0F, scales_l >> 4], dim=-1).reshape(n, 8).to(torch.int32)  # [n, 8]
    high = (scales_h >> (2 * torch.arange(8, dtype=torch.int32))) & 3  # [n, 8]
    scale = (d * ((low | (high << 4)) - 32).float()).unsqueeze(-1)  # [n, 8, 1]
    q = _split_nibbles(blocks[:, 8:136].reshape(n, 8, 16))  # [n, 8, 32]
    return (scale * _IQ4_LEVELS[q.long()]).reshape(n, QK_K)


# the 16 E2M1 values of MXFP4 (sign bit, 2 exponent bits, 1 mantissa bit), indexed by the nibble
_E2M1_LEVELS = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0],
                            dtype=torch.float32)


def _mxfp4(blocks: torch.Tensor) -> torch.Tensor:
    """MXFP4 (OCP microscaling): one E8M0 byte ``e`` (the block's scale ``2**(e - 127)``), then 32
    E2M1 values, the first 16 in the low nibbles of the 16 bytes and the last 16 in the high ones."""
    exponents = blocks[:, 0:1].to(torch.int32) - 127  # [n, 1]
    return torch.ldexp(_E2M1_LEVELS[_split_nibbles(blocks[:, 1:17]).long()], exponents)  # [n, 32]


def _two_bit_planes(qs: torch.Tensor) -> torch.Tensor:
    """The 2-bit fields of Q2_K/Q3_K ``qs [n, 64]``, in value order ``[n, 2, 4, 32]``.

    Each half of 128 values reads its own 32 bytes; quarter j of the half is bits 2j..2j+1.
    """
    n = qs.shape[0]
    shifts = torch.tensor([0, 2, 4, 6], dtype=torch.uint8).view(1, 1, 4, 1)
    return (qs.reshape(n, 2, 1, 32) >> shifts) & 3  # [n, half, quarter, 32]


def _q2_k(blocks: torch.Tensor) -> torch.Tensor:
    """Q2_K: 16 sub-blocks of 16 two-bit values; 4-bit scale and min per sub-block."""
    n = blocks.shape[0]
    packed = blocks[:, 0:16]  # [n, 16]: low nibble scale, high nibble min
    q = _two_bit_planes(blocks[:, 16:80]).reshape(n, 16, 16).float()  # [n, sub-block, 16]
    d, dmin = _half(blocks[:, 80:82]), _half(blocks[:, 82:84])  # [n, 1]
    scale = (d * (packed & 0x0F).float()).unsqueeze(-1)  # [n, 16, 1]
    offset = (dmin * (packed >> 4).float()).unsqueeze(-1)  # [n, 16, 1]
    return (scale * q - offset).reshape(n, QK_K)


def _q3_k_scales(packed: torch.Tensor) -> torch.Tensor:
    """Unpack Q3_K's sixteen 6-bit scales from 12 bytes (low nibbles in bytes 0-7, top two
    bits in bytes 8-11), offset by -32: ``[n, 12]`` uint8 -> ``[n, 16]`` float32."""
    lo, hi = packed[:, 0:8], packed[:, 8:12]  # [n, 8], [n, 4]
    low4 = torch.cat([lo & 0x0F, lo >> 4], dim=-1)  # [n, 16]: scales 0-7 then 8-15
    shifts = torch.tensor([0, 2, 4, 6], dtype=torch.uint8).view(1, 4, 1)
    top2 = ((hi.unsqueeze(1) >> shifts) & 3).reshape(packed.shape[0], 16)  # [n, 16]
    return (low4 | (top2 << 4)).float() - 32


def _q3_k(blocks: torch.Tensor) -> torch.Tensor:
    """Q3_K: 16 sub-blocks of 16 three-bit values (2 low bits in ``qs``, the third in
    ``hmask``, set meaning "no -4"), signed 6-bit scales, one float16 ``d``."""
    n = blocks.shape[0]
    hmask = blocks[:, 0:32]  # [n, 32]: bit 4h + j is value l of quarter j of half h
    low = _two_bit_planes(blocks[:, 32:96]).to(torch.int16)  # [n, 2, 4, 32]
    shifts = torch.arange(8, dtype=torch.uint8).view(1, 2, 4, 1)
    high = ((hmask.view(n, 1, 1, 32) >> shifts) & 1).to(torch.int16)  # [n, 2, 4, 32]
    q = (low - 4 * (1 - high)).reshape(n, 16, 16).float()  # [n, sub-block, 16]
    scales = _q3_k_scales(blocks[:, 96:108])  # [n, 16]
    d = _half(blocks[:, 108:110])  # [n, 1]
    return ((d * scales).unsqueeze(-1) * q).reshape(n, QK_K)


def _k_quant_4_5(blocks: torch.Tensor, with_high_bit: bool) -> torch.Tensor:
    """Q4_K (``with_high_bit=False``) and Q5_K: 8 sub-blocks of 32 with 6-bit scale and min."""
    n = blocks.shape[0]
    d, dmin = _half(blocks[:, 0:2]), _half(blocks[:, 2:4])
    scales, mins = _k_scales_mins(blocks[:, 4:16])
    qs_start = 16 + (32 if with_high_bit else 0)
    qs = blocks[:, qs_start : qs_start + 128].reshape(n, 4, 32)  # 4 chunks of 64 values
    q = torch.cat([qs & 0x0F, qs >> 4], dim=-1).reshape(n, 8, 32)  # [n, sub-block, 32]
    if with_high_bit:
        # bit j of qh[l] is the fifth bit of value l of sub-block j
        qh = blocks[:, 16:48]  # [n, 32]
        shifts = torch.arange(8, dtype=torch.uint8).view(1, 8, 1)
        q = q | (((qh.unsqueeze(1) >> shifts) & 1) << 4)  # [n, 8, 32]
    scale = (d * scales).unsqueeze(-1)  # [n, 8, 1]
    offset = (dmin * mins).unsqueeze(-1)  # [n, 8, 1]
    return (scale * q.float() - offset).reshape(n, QK_K)


def _q4_k(blocks: torch.Tensor) -> torch.Tensor:
    return _k_quant_4_5(blocks, with_high_bit=False)


def _q5_k(blocks: torch.Tensor) -> torch.Tensor:
    return _k_quant_4_5(blocks, with_high_bit=True)


def _q6_k(blocks: torch.Tensor) -> torch.Tensor:
    """Q6_K: 16 sub-blocks of 16 values, 4 low bits in ``ql``, 2 high bits in ``qh``, int8 scales."""
    n = blocks.shape[0]
    ql = blocks[:, 0:128].reshape(n, 2, 2, 32)  # [n, half, quarter-pair, 32]
    qh = blocks[:, 128:192].reshape(n, 2, 1, 32)  # [n, half, 1, 32]
    scales = blocks[:, 192:208].contiguous().view(torch.int8).float()  # [n, 16]
    d = _half(blocks[:, 208:210])  # [n, 1]
    # Within each half of 128 values, quarter k uses nibble (k // 2) of ql[k % 2] and bits 2k..2k+1 of qh.
    low = torch.stack([ql[:, :, 0] & 0x0F, ql[:, :, 1] & 0x0F, ql[:, :, 0] >> 4, ql[:, :, 1] >> 4], dim=2)
    shifts = torch.tensor([0, 2, 4, 6], dtype=torch.uint8).view(1, 1, 4, 1)
    high = (qh >> shifts) & 3  # [n, 2, 4, 32]
    q = (low | (high << 4)).to(torch.int16) - 32  # [n, 2, 4, 32]
    q = q.reshape(n, 16, 16).float()  # [n, sub-block, 16]
    return ((d * scales).unsqueeze(-1) * q).reshape(n, QK_K)


_DEQUANTISERS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "Q4_0": _q4_0,
    "Q4_1": _q4_1,
    "Q5_0": _q5_0,
    "Q5_1": _q5_1,
    "Q8_0": _q8_0,
    "IQ4_NL": _iq4_nl,
    "IQ4_XS": _iq4_xs,
    "Q2_K": _q2_k,
    "Q3_K": _q3_k,
    "Q4_K": _q4_k,
    "Q5_K": _q5_k,
    "Q6_K": _q6_k,
    "MXFP4": _mxfp4,
}

SUPPORTED_TYPES: tuple[str, ...] = tuple(_FLOAT_TYPES) + tuple(_DEQUANTISERS)


_CHUNK_VALUES = 1 << 20  # values decoded per step, bounding the float32 temporaries to a few MiB


def _dequantize_in_chunks(blocks: np.ndarray, type_name: str, block_size: int, dtype: torch.dtype) -> torch.Tensor:
    """Decode ``blocks [n, B]`` into a flat ``[n * K]`` tensor of ``dtype``, a slice at a time."""
    n = blocks.shape[0]
    out = torch.empty(n * block_size, dtype=dtype)
    step = max(_CHUNK_VALUES // block_size, 1)
    for first in range(0, n, step):
        chunk = torch.from_numpy(np.array(blocks[first : first + step]))  # [step, B] uint8, a copy
        out[first * block_size : (first + chunk.shape[0]) * block_size] = _DEQUANTISERS[type_name](chunk).reshape(-1)
    return out


def dequantize_blocks(blocks: torch.Tensor, type_name: str) -> torch.Tensor:
    """Decode quantisation blocks held as a torch tensor.

    Args:
        blocks (torch.Tensor): uint8 ``[n, B]``, ``n`` blocks of a type in :data:`BLOCK_LAYOUT`.
        type_name (str): the GGML type name, e.g. ``"Q4_1"``.

    Returns:
        torch.Tensor: float32 ``[n * K]``.

    Raises:
        ValueError: when ``type_name`` has no dequantiser.
    """
    if type_name not in _DEQUANTISERS:
        raise ValueError(f"GGML type {type_name} has no block dequantiser; block types: {', '.join(_DEQUANTISERS)}")
    return _DEQUANTISERS[type_name](blocks).reshape(-1)


def dequantize(
    raw: np.ndarray,
    type_name: str,
    shape: tuple[int, ...],
    *,
    dtype: torch.dtype = torch.float32,
    tensor_name: str = "<tensor>",
) -> torch.Tensor:
    """Decode one GGML tensor into a torch tensor of ``dtype``.

    Args:
        raw (np.ndarray): the tensor's data as stored: a float array for F32/F16/BF16
            (BF16 as uint16/int16 or uint8 bytes), or the uint8 block bytes for a quantised type.
        type_name (str): the GGML type name, e.g. ``"Q4_K"``.
        shape (tuple[int, ...]): the logical shape in torch order (rows first), e.g. ``(out, in)``.
        dtype (torch.dtype): the result dtype. Default ``torch.float32``.
        tensor_name (str): the tensor's name, used in error messages.

    Returns:
        torch.Tensor: the values, ``shape`` and ``dtype``.

    Raises:
        ValueError: when ``type_name`` is not supported, or the byte count does not match ``shape``.
    """
    numel = int(np.prod(shape)) if len(shape) else 1
    if type_name in _FLOAT_TYPES:
        src = torch.from_numpy(np.ascontiguousarray(raw).reshape(-1).view(np.uint8).copy())
        values = src.view(_FLOAT_TYPES[type_name])
    elif type_name in _DEQUANTISERS:
        block_size, block_bytes = BLOCK_LAYOUT[type_name]
        if numel % block_size or raw.size != numel // block_size * block_bytes:
            raise ValueError(
                f"tensor '{tensor_name}' of type {type_name} with shape {tuple(shape)} needs "
                f"{numel // block_size} blocks of {block_bytes} bytes, got {raw.size} bytes"
            )
        values = _dequantize_in_chunks(raw.reshape(-1, block_bytes), type_name, block_size, dtype)
    else:
        raise ValueError(
            f"tensor '{tensor_name}' has GGML type {type_name}, which is not supported; "
            f"supported types: {', '.join(SUPPORTED_TYPES)}"
        )
    if values.numel() != numel:
        raise ValueError(
            f"tensor '{tensor_name}' of type {type_name} holds {values.numel()} values, "
            f"shape {tuple(shape)} needs {numel}"
        )
    return values.reshape(shape).to(dtype)


def quantize_q8_0(values: torch.Tensor) -> np.ndarray:
    """Quantise to Q8_0 blocks as llama.cpp does: per 32 values, ``d = max|x| / 127``, ``q = round(x / d)``.

    Rounding is half away from zero, as C's ``roundf``.

    Args:
        values (torch.Tensor): ``[..., k]`` with ``k`` a multiple of 32.

    Returns:
        np.ndarray: uint8 ``[..., k // 32 * 34]``, the block bytes of each row.

    Raises:
        ValueError: when the last dimension is not a multiple of 32.
    """
    *lead, k = values.shape
    if k % 32:
        raise ValueError(f"Q8_0 needs rows whose length is a multiple of 32, got {k}")
    blocks = values.detach().to(torch.float32).reshape(-1, 32)  # [n, 32]
    d = blocks.abs().amax(dim=-1, keepdim=True) / 127  # [n, 1]
    inv = torch.where(d == 0, torch.zeros_like(d), 1 / d)
    scaled = blocks * inv
    q = (torch.sign(scaled) * torch.floor(scaled.abs() + 0.5)).to(torch.int8)
    packed = torch.cat([d.to(torch.float16).view(torch.uint8), q.view(torch.uint8)], dim=-1)  # [n, 34]
    return packed.reshape(*lead, k // 32 * 34).numpy()
