"""Llama 3.1-style RoPE scaling in GGUF files: the ``rope_freqs`` tensor.

llama.cpp's converter does not store the Hugging Face ``rope_scaling`` parameters of a Llama 3.x
model; it stores one divisor per rotary frequency (``rope_freqs.weight``, ``[h_d / 2]``): 1 for
short wavelengths, ``factor`` for long ones and ``1 / ((1 - s) / factor + s)`` in between, where
``s = (original / wavelength - low_freq_factor) / (high_freq_factor - low_freq_factor)``.

Import recovers parameters that reproduce the divisors (``s`` is linear in 1 / wavelength, so the
in-between divisors fix it; ``low_freq_factor`` is taken as 1 and the others follow) and checks
them against the tensor; export writes the divisors from the parameters.
"""

import math
from typing import Any

import torch


_DEFAULT = {"low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}


def llama3_rope_divisors(theta: float, head_dim: int, scaling: dict[str, Any]) -> torch.Tensor:
    """The ``rope_freqs`` divisors llama.cpp stores for Llama 3.x scaling.

    Args:
        theta (float): RoPE base.
        head_dim (int): rotary dimension.
        scaling (dict[str, Any]): ``factor``, ``low_freq_factor``, ``high_freq_factor``,
            ``original_max_position_embeddings``.

    Returns:
        torch.Tensor: ``[head_dim // 2]`` float32 divisors of the inverse frequencies.
    """
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    wavelen = 2 * math.pi / inv_freq
    factor, low, high = float(scaling["factor"]), float(scaling["low_freq_factor"]), float(scaling["high_freq_factor"])
    original = float(scaling["original_max_position_embeddings"])
    smooth = ((original / wavelen - low) / (high - low)).clamp(0.0, 1.0)
    return (1.0 / ((1.0 - smooth) / factor + smooth)).to(torch.float32)


def _fit(divisors: torch.Tensor, theta: float, head_dim: int) -> dict[str, Any]:
    factor = float(divisors.max())
    inv_wavelen = (1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)) / (2 * math.pi)
    d = divisors.to(torch.float64)
    between = (d > 1 + 1e-6) & (d < factor * (1 - 1e-6))
    if factor <= 1 + 1e-6 or int(between.sum()) < 2:
        return {"rope_type": "llama3", "factor": factor, **_DEFAULT}
    smooth = (1.0 / d[between] - 1.0 / factor) / (1.0 - 1.0 / factor)  # s = a / wavelength + b
    x = inv_wavelen[between]
    a = float(((x - x.mean()) * (smooth - smooth.mean())).sum() / ((x - x.mean()) ** 2).sum())
    b = float(smooth.mean() - a * x.mean())
    # with low_freq_factor = 1: a = original / (high - 1), b = -1 / (high - 1)
    high = round(1.0 - 1.0 / b, 6)  # float noise of the fit; the check below guards the result
    return {"rope_type": "llama3", "factor": factor, "low_freq_factor": 1.0, "high_freq_factor": high,
            "original_max_position_embeddings": round(-a / b)}


def rope_scaling_from_divisors(divisors: torch.Tensor, theta: float, head_dim: int) -> dict[str, Any]:
    """Hugging Face ``rope_scaling`` (Llama 3.x) that reproduces a GGUF ``rope_freqs`` tensor.

    Args:
        divisors (torch.Tensor): ``rope_freqs.weight``, ``[head_dim // 2]``.
        theta (float): RoPE base.
        head_dim (int): rotary dimension.

    Returns:
        dict[str, Any]: ``rope_type="llama3"``, ``factor``, ``low_freq_factor``,
        ``high_freq_factor``, ``original_max_position_embeddings``.

    Raises:
        ValueError: when the tensor has the wrong size or no Llama 3.x parameters reproduce it.
    """
    if divisors.shape != (head_dim // 2,):
        raise ValueError(f"rope_freqs has shape {tuple(divisors.shape)}, expected ({head_dim // 2},)")
    scaling = _fit(divisors.float(), theta, head_dim)
    rebuilt = llama3_rope_divisors(theta, head_dim, scaling)
    if not torch.allclose(rebuilt, divisors.float(), rtol=1e-4, atol=1e-6):
        raise ValueError(
            f"rope_freqs {divisors.tolist()} is not Llama 3.x RoPE scaling (closest: {scaling}); not supported"
        )
    return scaling
