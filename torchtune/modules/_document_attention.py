"""How rows of documents (a :class:`BlockCausalMask`) are attended: the choice and the one-kernel path.

Three ways compute the same result:

- ``"sdpa"``: one ``scaled_dot_product_attention`` call per document on its causal fast path.
  Fastest on CPU (a padding-free row of 561 tokens, 12 heads, one thread: 7.1 ms forward against
  16.1 ms for compiled flex attention and 176 ms for eager flex, docs/benchmarks.md), but a Python loop:
  thousands of kernel launches per step on a GPU, and nothing ``torch.compile`` can reuse.
- ``"flex"``: ``torch.nn.attention.flex_attention`` over the whole row with a block mask built
  once per batch from the document lengths: one kernel, sliding windows in the mask, softcapping
  as a score modifier, grouped key/value heads natively. CUDA only for training (torch has no
  flex backward on CPU).
- ``"varlen"``: ``torch.nn.attention.varlen.varlen_attn`` (flash attention over cumulative
  document lengths): one kernel, sliding windows and GQA, no softcapping; CUDA, bf16/fp16 only.
  Not chosen by ``"auto"`` until measured against flex on a GPU (tools/benchmarks).
- ``"dense"``: one SDPA call with the bool ``[b, s, s]`` mask. Memory grows with the square of
  the row, but it has fixed shapes for a given row length, so compiled layers are not
  recompiled for each new document layout (used for ``compile`` off CUDA).

Notation: b batch (rows), s row length, n_h query heads, n_kv key/value heads, h_d head dim.
"""

import functools
import itertools
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.nn.attention.flex_attention import BlockMask, create_block_mask, flex_attention

from torchtune.modules._block_causal_mask import BlockCausalMask

#: The values ``document_attention`` takes.
DOCUMENT_ATTENTION = ("auto", "sdpa", "flex", "varlen", "dense")

_compiled_flex: Callable[..., torch.Tensor] | None = None


def resolve_document_attention(name: str, device: torch.device) -> str:
    """The concrete way (``"sdpa"``, ``"flex"``, ``"varlen"`` or ``"dense"``) that ``name`` means on ``device``.

    Args:
        name (str): one of :data:`DOCUMENT_ATTENTION`; ``"auto"`` is flex on CUDA (when Triton,
            which compiles its kernel, is there), per-document SDPA elsewhere.
        device (torch.device): where attention runs.

    Returns:
        str: ``"sdpa"``, ``"flex"``, ``"varlen"`` or ``"dense"``.

    Raises:
        ValueError: on an unknown name.
    """
    if name not in DOCUMENT_ATTENTION:
        raise ValueError(f"document_attention={name!r} must be one of {list(DOCUMENT_ATTENTION)}")
    if name == "auto":
        return "flex" if device.type == "cuda" and _has_triton() else "sdpa"
    return name


@functools.cache
def _has_triton() -> bool:
    from torch.utils._triton import has_triton

    return has_triton()


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


@dataclass(frozen=True)
class VarlenDocuments:
    """Every document of a batch's rows, for ``varlen_attn``: the rows laid end to end.

    Args:
        cu_seqlens (torch.Tensor): int32 ``[n_docs + 1]``, where each document starts in the
            flattened ``b * s`` positions (and the total at the end).
        max_len (int): the longest document.
    """

    cu_seqlens: torch.Tensor
    max_len: int

    @classmethod
    def of(cls, mask: BlockCausalMask, device: torch.device) -> "VarlenDocuments":
        """The documents of ``mask``, with ``cu_seqlens`` on ``device``."""
        lens = [n for row in mask.seq_lens for n in row]
        cu = torch.tensor([0, *itertools.accumulate(lens)], dtype=torch.int32, device=device)
        return cls(cu_seqlens=cu, max_len=max(lens))


def varlen_document_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    docs: VarlenDocuments,
    *,
    scale: float,
    sliding_window: int | None = None,
) -> torch.Tensor:
    """Causal attention within each document through ``varlen_attn`` (flash attention).

    Args:
        q (torch.Tensor): ``[b, n_h, s, h_d]`` in bf16 or fp16.
        k (torch.Tensor): ``[b, n_kv, s, h_d]``.
        v (torch.Tensor): ``[b, n_kv, s, h_d]``.
        docs (VarlenDocuments): the documents of the rows.
        scale (float): logit scale.
        sliding_window (int | None): a query sees only keys fewer than this many positions back.
            Default: None.

    Returns:
        torch.Tensor: ``[b, n_h, s, h_d]``.

    Raises:
        ValueError: for fp32 inputs (flash attention computes in bf16 or fp16 only).
    """
    from torch.nn.attention.varlen import varlen_attn

    if q.dtype not in (torch.bfloat16, torch.float16):
        raise ValueError(f"document_attention='varlen' needs bf16 or fp16 activations, got {q.dtype}; "
                         "use dtype=bf16 or document_attention='flex'")
    b, n_h, s, h_d = q.shape
    flat = [t.transpose(1, 2).reshape(b * s, t.shape[1], h_d) for t in (q, k, v)]  # [b * s, n, h_d]
    window = (-1, 0) if sliding_window is None else (sliding_window - 1, 0)
    out = varlen_attn(*flat, docs.cu_seqlens, docs.cu_seqlens, docs.max_len, docs.max_len, scale=scale,
                      window_size=window, enable_gqa=n_h != k.shape[1])  # [b * s, n_h, h_d]
    return out.reshape(b, s, n_h, h_d).transpose(1, 2)  # [b, n_h, s, h_d]
