"""Architecture facts of the Gemma families, written once for the two places that need them: the
family builders (``models/gemma*/_component_builders.py``) and the Hugging Face config readers
(``models/_hf_config.py``, which cannot import the family packages: they depend on this package).

The defaults below are also the defaults of transformers' ``Gemma2Config`` and
``Gemma3TextConfig``, so a ``config.json`` that leaves a key out builds the model transformers builds.
"""

from torch import nn

# Gemma's RMSNorm multiplies by (1 + scale); Hugging Face stores `scale`. Gemma 1, 2 and 3.
GEMMA_NORM_OFFSET = 1.0

# Gemma 2's published attention- and output-logit soft caps and window (also Gemma2Config's defaults).
GEMMA2_ATTN_SOFTCAPPING = 50.0
GEMMA2_FINAL_LOGIT_SOFTCAPPING = 30.0
GEMMA2_SLIDING_WINDOW = 4096
# Gemma2Config's query_pre_attn_scalar when config.json has none (the 27B model sets 144).
GEMMA2_QUERY_PRE_ATTN_SCALAR = 256

# Gemma 3: one global layer in this many, the others slide (5 local, then 1 global).
GEMMA3_SLIDING_WINDOW_PATTERN = 6


def gemma_activation() -> nn.Module:
    """The gate activation of every Gemma feed-forward layer: GELU with the tanh approximation
    (Hugging Face's ``gelu_pytorch_tanh``; Gemma 1's legacy ``gelu`` means the same).

    Returns:
        nn.Module: a new ``nn.GELU(approximate="tanh")``.
    """
    return nn.GELU(approximate="tanh")


def gemma_embed_scale(embed_dim: int) -> float:
    """Gemma multiplies the token embeddings by ``sqrt(embed_dim)``, computed as ``embed_dim ** 0.5``
    like transformers (``math.sqrt`` differs in the last bit for a few sizes, e.g. 2921).

    Args:
        embed_dim (int): model dim d.

    Returns:
        float: the embedding multiplier.
    """
    return embed_dim**0.5


def gemma2_sliding_windows(num_layers: int, sliding_window: int | None) -> list[int | None]:
    """Per-layer windows of Gemma 2: even layers (0, 2, 4, ...) slide, odd layers attend globally.

    Args:
        num_layers (int): number of layers.
        sliding_window (int | None): the model's window; None disables it everywhere.

    Returns:
        list[int | None]: one window per layer (None = global).
    """
    return [sliding_window if i % 2 == 0 else None for i in range(num_layers)]


def gemma3_sliding_windows(
    num_layers: int, sliding_window: int | None, pattern: int = GEMMA3_SLIDING_WINDOW_PATTERN
) -> list[int | None]:
    """Per-layer windows of Gemma 3: every ``pattern``-th layer (1-based) is global, the others slide.

    Args:
        num_layers (int): number of layers.
        sliding_window (int | None): the local layers' window; None disables it everywhere.
        pattern (int): one global layer in this many. Default: 6.

    Returns:
        list[int | None]: one window per layer (None = global).

    Raises:
        ValueError: when ``pattern`` is not a positive integer.
    """
    if pattern <= 0:
        raise ValueError(f"sliding_window_pattern={pattern} must be a positive integer")
    return [sliding_window if (i + 1) % pattern else None for i in range(num_layers)]
