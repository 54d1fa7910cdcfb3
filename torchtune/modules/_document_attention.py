"""How rows of documents (a :class:`BlockCausalMask`) are attended: the choice and the one-kernel path.

Three ways compute the same result:

- ``"sdpa"``: one ``scaled_dot_product_attention`` call per document on its causal fast path.
  Fastest on CPU (a padding-free row of 516 tokens, 8 heads: 2.2 ms forward against 5.9 ms for
  compiled flex attention and 43 ms for eager flex, see docs/benchmarks.md), but a Python loop:
  thousands of kernel launches per step on a GPU, and nothing ``torch.compile`` can reuse.
- ``"flex"``: ``torch.nn.attention.flex_attention`` over the whole row with a block mask built
  once per batch from the document lengths: one kernel, sliding windows in the mask, softcapping
  as a score modifier, grouped key/value heads natively. CUDA only for training (torch has no
  flex backward on CPU).
- ``"dense"``: one SDPA call with the bool ``[b, s, s]`` mask. Memory grows with the square of
  the row, but it has fixed shapes for a given row length, so compiled layers are not
  recompiled for each new document layout (used for ``compile`` off CUDA).

Notation: b batch (rows), s row length, n_h query heads, n_kv key/value heads, h_d head dim.
"""

import logging
from collections.abc import Callable

import torch
from torch.nn.attention.flex_attention import BlockMask, create_block_mask, flex_attention

from torchtune.modules._block_causal_mask import BlockCausalMask

logger = logging.getLogger(__name__)

#: The values ``document_attention`` takes.
DOCUMENT_ATTENTION = ("auto", "sdpa", "flex", "dense")

_compiled_flex: Callable[..., torch.Tensor] | None = None


def resolve_document_attention(name: str, device: torch.device) -> str:
    """The concrete way (``"sdpa"``, ``"flex"`` or ``"dense"``) that ``name`` means on ``device``.

    Args:
        name (str): one of :data:`DOCUMENT_ATTENTION`; ``"auto"`` is flex on CUDA, per-document
            SDPA elsewhere.
        device (torch.device): where attention runs.

    Returns:
        str: ``"sdpa"``, ``"flex"`` or ``"dense"``.

    Raises:
        ValueError: on an unknown name.
    """
    if name not in DOCUMENT_ATTENTION:
        raise ValueError(f"document_attention={name!r} must be one of {list(DOCUMENT_ATTENTION)}")
    if name == "auto":
        return "flex" if device.type == "cuda" else "sdpa"
    return name


def document_block_mask(mask: BlockCausalMask, device: torch.device, sliding_window: int | None = None) -> BlockMask:
    """The flex-attention block mask of ``mask``: causal within each document, optionally windowed.

    Args:
        mask (BlockCausalMask): the rows' document lengths.
        device (torch.device): device of the block mask (that of the queries).
        sliding_window (int | None): a query sees only keys fewer than this many positions back.
            Default: None.

    Returns:
        BlockMask: for queries and keys of length s, every head alike.
    """
    starts = mask.document_starts(device)  # [b, s]: first position of each position's document

    def same_document_causal(b: torch.Tensor, h: torch.Tensor, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        keep = (k <= q) & (k >= starts[b, q])
        if sliding_window is not None:
            keep = keep & (q - k < sliding_window)
        return keep

    s = mask.seq_len
    return create_block_mask(same_document_causal, mask.batch_size, None, s, s, device=device)


def _softcap(cap: float) -> Callable[..., torch.Tensor]:
    def score_mod(score: torch.Tensor, b: torch.Tensor, h: torch.Tensor, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return cap * torch.tanh(score / cap)

    return score_mod


def flex_document_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    block_mask: BlockMask,
    *,
    scale: float,
    softcapping: float | None = None,
) -> torch.Tensor:
    """Attention of whole rows of documents in one flex-attention call.

    On CUDA the call goes through ``torch.compile(flex_attention)`` (flex attention is only a
    fused kernel when compiled; inside already compiled layers it is traced in place).

    Args:
        q (torch.Tensor): ``[b, n_h, s, h_d]``.
        k (torch.Tensor): ``[b, n_kv, s, h_d]``.
        v (torch.Tensor): ``[b, n_kv, s, h_d]``.
        block_mask (BlockMask): from :func:`document_block_mask`.
        scale (float): logit scale.
        softcapping (float | None): logits become ``c * tanh(logits / c)``. Default: None.

    Returns:
        torch.Tensor: ``[b, n_h, s, h_d]``.
    """
    global _compiled_flex
    fn: Callable[..., torch.Tensor] = flex_attention
    if q.device.type == "cuda" and not torch.compiler.is_compiling():
        if _compiled_flex is None:
            _compiled_flex = torch.compile(flex_attention)
        fn = _compiled_flex
    score_mod = _softcap(softcapping) if softcapping else None
    return fn(q, k, v, score_mod=score_mod, block_mask=block_mask, scale=scale,
              enable_gqa=q.shape[1] != k.shape[1])
