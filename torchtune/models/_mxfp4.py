"""MXFP4 (OCP microscaling FP4) weights, as gpt-oss checkpoints store their experts.

A tensor of ``n`` values per row is stored as ``<name>_blocks`` (uint8 ``[..., n / 32, 16]``, two
E2M1 values per byte, the low nibble first) and ``<name>_scales`` (uint8 ``[..., n / 32]``, one
E8M0 exponent per block of 32 values, biased by 127).
"""

import torch

# the 16 E2M1 code points: sign bit, 2 exponent bits, 1 mantissa bit
_E2M1 = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0)


def dequantize_mxfp4(blocks: torch.Tensor, scales: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Decode MXFP4 blocks into a dense tensor.

    Args:
        blocks (torch.Tensor): uint8 ``[..., g, 16]``: ``g`` blocks of 32 packed values per row.
        scales (torch.Tensor): uint8 ``[..., g]``: each block's power-of-two exponent plus 127.
        dtype (torch.dtype): of the result. Default: torch.float32.

    Returns:
        torch.Tensor: ``[..., g * 32]``.

    Raises:
        ValueError: when the shapes do not pair up as above.
    """
    if blocks.dim() < 2 or blocks.shape[-1] != 16 or blocks.shape[:-1] != scales.shape:
        raise ValueError(f"MXFP4 blocks {list(blocks.shape)} and scales {list(scales.shape)} do not pair up: "
                         "expected blocks [..., g, 16] and scales [..., g]")
    table = torch.tensor(_E2M1, dtype=torch.float32, device=blocks.device)
    packed = blocks.to(torch.uint8)
    values = torch.stack([table[(packed & 0x0F).long()], table[(packed >> 4).long()]], dim=-1)  # [..., g, 16, 2]
    values = values.reshape(*blocks.shape[:-1], 32)  # [..., g, 32]: low nibble, then high, per byte
    exponents = scales.to(torch.int32) - 127  # [..., g]
    out = torch.ldexp(values, exponents[..., None])  # [..., g, 32]
    return out.reshape(*blocks.shape[:-2], blocks.shape[-2] * 32).to(dtype)  # [..., g * 32]
