"""Rotary positional embeddings (Hugging Face "rotate half" convention)."""

import math
from typing import Any

import torch
from torch import nn


_SCALING_KEYS = ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")


def llama3_scale_frequencies(inv_freq: torch.Tensor, scaling: dict[str, Any]) -> torch.Tensor:
    """Apply Llama 3.1 frequency scaling to inverse frequencies.

    Long wavelengths (beyond ``original / low_freq_factor``) are divided by ``factor``, short
    ones (below ``original / high_freq_factor``) are kept, and those in between are linearly
    interpolated between the two in terms of ``original / wavelength``.

    Args:
        inv_freq (torch.Tensor): inverse frequencies ``[dim // 2]``.
        scaling (dict[str, Any]): ``factor``, ``low_freq_factor``, ``high_freq_factor`` and
            ``original_max_position_embeddings``.

    Returns:
        torch.Tensor: scaled inverse frequencies ``[dim // 2]``.

    Raises:
        ValueError: when a key is missing from ``scaling``.
    """
    missing = [k for k in _SCALING_KEYS if k not in scaling]
    if missing:
        raise ValueError(f"scaling={scaling} is missing keys {missing}; needs {list(_SCALING_KEYS)}")
    factor = float(scaling["factor"])
    low, high = float(scaling["low_freq_factor"]), float(scaling["high_freq_factor"])
    original = float(scaling["original_max_position_embeddings"])
    wavelen = 2 * math.pi / inv_freq
    # ratio = how many wavelengths fit in the original context
    ratio = original / wavelen
    smooth = ((ratio - low) / (high - low)).clamp(0.0, 1.0)
    return (1.0 - smooth) * inv_freq / factor + smooth * inv_freq


_YARN_KEYS = ("factor", "original_max_position_embeddings")


def yarn_frequencies(dim: int, base: float, scaling: dict[str, Any]) -> tuple[torch.Tensor, float]:
    """YaRN's inverse frequencies and attention factor (gpt-oss, the long-context Qwen models).

    Each frequency is blended between its original value (extrapolation, for the fast dimensions
    that complete more than ``beta_fast`` turns over the original context) and the value divided
    by ``factor`` (interpolation, for those completing fewer than ``beta_slow``), with a linear
    ramp between the two dimension bounds; cos and sin are then multiplied by the attention
    factor, ``0.1 * ln(factor) + 1`` unless given.

    Args:
        dim (int): rotated features per head.
        base (float): RoPE theta.
        scaling (dict[str, Any]): ``factor`` and ``original_max_position_embeddings``; optional
            ``beta_fast`` (default 32), ``beta_slow`` (default 1), ``truncate`` (round the ramp
            bounds outwards, default True), ``attention_factor``, or ``mscale`` with
            ``mscale_all_dim``.

    Returns:
        tuple[torch.Tensor, float]: inverse frequencies ``[dim // 2]`` and the attention factor.

    Raises:
        ValueError: when a required key is missing or ``factor`` is not positive.
    """
    missing = [k for k in _YARN_KEYS if k not in scaling]
    if missing:
        raise ValueError(f"yarn RoPE scaling={scaling} is missing keys {missing}; needs {list(_YARN_KEYS)}")
    factor = float(scaling["factor"])
    if not factor > 0:
        raise ValueError(f"yarn RoPE scaling needs a positive 'factor'; got scaling={scaling}")
    original = float(scaling["original_max_position_embeddings"])

    def mscale(scale: float, m: float = 1.0) -> float:
        return 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0

    attention_factor = scaling.get("attention_factor")
    if attention_factor is None:
        if scaling.get("mscale") and scaling.get("mscale_all_dim"):
            attention_factor = mscale(factor, scaling["mscale"]) / mscale(factor, scaling["mscale_all_dim"])
        else:
            attention_factor = mscale(factor)

    def dimension_of(turns: float) -> float:  # the dimension whose wavelength fits `turns` times in the context
        return dim * math.log(original / (turns * 2 * math.pi)) / (2 * math.log(base))

    low, high = dimension_of(float(scaling.get("beta_fast") or 32)), dimension_of(float(scaling.get("beta_slow") or 1))
    if scaling.get("truncate", True):
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    if low == high:
        high += 0.001  # a ramp of zero width
    ramp = ((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low)).clamp(0.0, 1.0)  # 0 = keep, 1 = scale
    inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))  # [dim // 2]
    return inv_freq / factor * ramp + inv_freq * (1 - ramp), float(attention_factor)


class RotaryPositionalEmbeddings(nn.Module):
    """Rotary positional embeddings applied to queries or keys.

    Uses the Hugging Face "rotate half" layout: within each head the first ``dim // 2``
    features pair with the last ``dim // 2``. When ``dim`` is smaller than the head dim of the
    input, only the first ``dim`` features are rotated (partial rotary) and the rest pass through.

    Args:
        dim (int): number of rotated features per head (even).
        max_seq_len (int): largest position cached. Default: 4096.
        base (float): the RoPE theta. Default: 10000.
        scaling (dict[str, Any] | None): frequency scaling, or None for plain RoPE. Either Llama
            3.1's parameters (see :func:`llama3_scale_frequencies`; ``rope_type`` absent or
            ``"llama3"``), ``{"rope_type": "linear", "factor": f}``, which divides every
            frequency by ``f`` (positions interpolated, as Gemma 3's global layers), or
            ``{"rope_type": "yarn", ...}`` (see :func:`yarn_frequencies`). Default: None.

    Raises:
        ValueError: when ``dim`` is not a positive even number, or ``scaling`` names an unknown
            ``rope_type`` or a non-positive linear ``factor``.
    """

    def __init__(
        self,
        dim: int,
        max_seq_len: int = 4096,
        base: float = 10000,
        scaling: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if dim <= 0 or dim % 2:
            raise ValueError(f"dim={dim} must be a positive even number")
        self.dim = dim
        self.max_seq_len = max_seq_len
        self.base = base
        self.scaling = scaling
        rope_type = (scaling or {}).get("rope_type", "llama3")
        if scaling is not None and rope_type not in ("llama3", "linear", "yarn"):
            raise ValueError(f"scaling rope_type={rope_type!r} is not supported; supported: ['linear', 'llama3', 'yarn']")
        if rope_type == "linear" and not float(scaling.get("factor", 0)) > 0:
            raise ValueError(f"linear RoPE scaling needs a positive 'factor'; got scaling={scaling}")
        self.rope_init()

    def rope_init(self) -> None:
        """(Re)compute the cos/sin cache; call after materialising a meta-device model."""
        exponent = torch.arange(0, self.dim, 2, dtype=torch.int64).float() / self.dim
        inv_freq = 1.0 / (self.base**exponent)  # [dim // 2]
        attention_factor = 1.0
        if self.scaling is not None and self.scaling.get("rope_type") == "yarn":
            inv_freq, attention_factor = yarn_frequencies(self.dim, self.base, self.scaling)
        elif self.scaling is not None and self.scaling.get("rope_type") == "linear":
            inv_freq = inv_freq / float(self.scaling["factor"])  # position t acts as t / factor
        elif self.scaling is not None:
            inv_freq = llama3_scale_frequencies(inv_freq, self.scaling)
        pos = torch.arange(self.max_seq_len, dtype=torch.float32)
        freqs = torch.outer(pos, inv_freq)  # [max_seq_len, dim // 2]
        angles = torch.cat([freqs, freqs], dim=-1)  # [max_seq_len, dim]
        self.register_buffer("cos_cache", angles.cos() * attention_factor, persistent=False)
        self.register_buffer("sin_cache", angles.sin() * attention_factor, persistent=False)

    def forward(self, x: torch.Tensor, input_pos: torch.Tensor | None = None) -> torch.Tensor:
        """Rotate ``x`` by its positions.

        Args:
            x (torch.Tensor): queries or keys ``[b, s, n_h, h_d]`` with ``h_d >= dim``.
            input_pos (torch.Tensor | None): positions ``[b, s]`` (long); None means
                ``0 .. s-1`` for every row. Default: None.

        Returns:
            torch.Tensor: rotated tensor ``[b, s, n_h, h_d]`` in the dtype of ``x``.

        Raises:
            ValueError: when a position is not below ``max_seq_len``.
        """
        s = x.shape[1]
        if input_pos is None:
            if s > self.max_seq_len:
                raise ValueError(f"sequence length {s} exceeds max_seq_len={self.max_seq_len}")
            cos, sin = self.cos_cache[:s], self.sin_cache[:s]  # [s, dim]
            cos, sin = cos[None, :, None, :], sin[None, :, None, :]  # [1, s, 1, dim]
        else:
            cos = self.cos_cache[input_pos][:, :, None, :]  # [b, s, 1, dim]
            sin = self.sin_cache[input_pos][:, :, None, :]  # [b, s, 1, dim]
        rot, rest = x[..., : self.dim], x[..., self.dim :]
        first, second = rot.float().chunk(2, dim=-1)
        rotated_half = torch.cat([-second, first], dim=-1)  # [b, s, n_h, dim]
        out = rot.float() * cos + rotated_half * sin
        return torch.cat([out.to(x.dtype), rest], dim=-1)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, max_seq_len={self.max_seq_len}, base={self.base}, scaling={self.scaling}"
