"""Multi-head attention with grouped key/value heads.

Notation: b batch, s query length, s_kv key/value length, d embed dim, n_h query heads,
n_kv key/value heads, h_d head dim.
"""

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention.flex_attention import BlockMask

from torchtune.modules._block_causal_mask import BlockCausalMask
from torchtune.modules._document_attention import (
    VarlenDocuments,
    flex_document_attention,
    varlen_document_attention,
)
from torchtune.modules._kv_cache import KVCache


class MultiHeadAttention(nn.Module):
    """Self-attention covering MHA (n_kv == n_h), GQA (n_kv < n_h) and MQA (n_kv == 1).

    Projections are passed in already built (so biases and LoRA live in them). Uses
    :func:`torch.nn.functional.scaled_dot_product_attention`; only attention-logit soft-capping
    and attention sinks take an explicit math path.

    Args:
        embed_dim (int): model dimension d.
        num_heads (int): query heads n_h.
        num_kv_heads (int): key/value heads n_kv; must divide ``num_heads``.
        head_dim (int): per-head dimension h_d.
        q_proj (nn.Module): ``d -> n_h * h_d``.
        k_proj (nn.Module): ``d -> n_kv * h_d``.
        v_proj (nn.Module): ``d -> n_kv * h_d``.
        output_proj (nn.Module): ``n_h * h_d -> d``.
        pos_embeddings (nn.Module | None): rotary embeddings applied to q and k. Default: None.
        q_norm (nn.Module | None): per-head norm of queries (before RoPE). Default: None.
        k_norm (nn.Module | None): per-head norm of keys (before RoPE). Default: None.
        kv_cache (KVCache | None): cache for incremental decoding. Default: None.
        max_seq_len (int): longest sequence supported. Default: 4096.
        attn_dropout (float): dropout on attention probabilities in training. Default: 0.0.
        sliding_window (int | None): a query attends only to keys fewer than this many slots
            back. Default: None.
        softcapping (float | None): logits become ``c * tanh(logits / c)``. Default: None.
        scale (float | None): logit scale; None means ``1 / sqrt(head_dim)``. Default: None.
        attention_sinks (bool): a learned logit per query head, ``sinks [n_h]``, joins every
            softmax as one more key whose value is zero, so a query can attend to nothing
            (gpt-oss). Default: False.

    Raises:
        ValueError: on inconsistent head counts or out-of-range dropout.
    """

    def __init__(
        self,
        *,
        embed_dim: int,
        num_heads: int,
        num_kv_heads: int,
        head_dim: int,
        q_proj: nn.Module,
        k_proj: nn.Module,
        v_proj: nn.Module,
        output_proj: nn.Module,
        pos_embeddings: nn.Module | None = None,
        q_norm: nn.Module | None = None,
        k_norm: nn.Module | None = None,
        kv_cache: KVCache | None = None,
        max_seq_len: int = 4096,
        attn_dropout: float = 0.0,
        sliding_window: int | None = None,
        softcapping: float | None = None,
        scale: float | None = None,
        attention_sinks: bool = False,
    ) -> None:
        super().__init__()
        if num_heads <= 0 or num_kv_heads <= 0:
            raise ValueError(f"num_heads={num_heads} and num_kv_heads={num_kv_heads} must be positive")
        if num_heads % num_kv_heads:
            raise ValueError(f"num_kv_heads={num_kv_heads} must divide num_heads={num_heads}")
        if not 0.0 <= attn_dropout <= 1.0:
            raise ValueError(f"attn_dropout={attn_dropout} must be in [0, 1]")
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.num_kv_heads = num_kv_heads
        self.head_dim = head_dim
        self.max_seq_len = max_seq_len
        self.attn_dropout = attn_dropout
        self.sliding_window = sliding_window
        self.softcapping = softcapping
        self.scale = scale if scale is not None else head_dim**-0.5
        self.q_proj, self.k_proj, self.v_proj = q_proj, k_proj, v_proj
        self.output_proj = output_proj
        self.pos_embeddings = pos_embeddings
        self.q_norm, self.k_norm = q_norm, k_norm
        self.kv_cache = kv_cache
        self.sinks = nn.Parameter(torch.zeros(num_heads)) if attention_sinks else None  # [n_h]

    def setup_cache(self, batch_size: int, dtype: torch.dtype, max_seq_len: int) -> None:
        """Allocate a :class:`KVCache` on the device of the projections.

        Args:
            batch_size (int): batch size of decoding.
            dtype (torch.dtype): cache dtype.
            max_seq_len (int): number of cache slots.
        """
        device = next(self.q_proj.parameters()).device
        with torch.device(device):
            self.kv_cache = KVCache(batch_size, max_seq_len, self.num_kv_heads, self.head_dim, dtype)

    def _project(self, proj: nn.Module, x: torch.Tensor, n: int, norm: nn.Module | None) -> torch.Tensor:
        b, s, _ = x.shape
        out = proj(x).view(b, s, n, self.head_dim)  # [b, s, n, h_d]
        return norm(out) if norm is not None else out

    def _build_mask(
        self, mask: torch.Tensor | None, q_slots: torch.Tensor, s_kv: int, device: torch.device
    ) -> torch.Tensor | None:
        """Combine the given mask with causality (when none given) and the sliding window."""
        needs_explicit = (self.kv_cache is not None or self.sliding_window is not None or self.softcapping
                          or self.sinks is not None)
        if mask is None and not needs_explicit:
            return None  # SDPA's causal path
        kv_slots = torch.arange(s_kv, device=device)
        distance = q_slots[:, None] - kv_slots[None, :]  # [s, s_kv]
        if mask is None:
            mask = (distance >= 0)[None]  # [1, s, s_kv]
        if self.sliding_window is not None:
            mask = mask & (distance < self.sliding_window)[None]
        return mask

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        dropout = self.attn_dropout if self.training else 0.0
        if mask is not None:
            mask = mask[:, None]  # [b, 1, s, s_kv]
        if self.softcapping is None and self.sinks is None:
            return F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, dropout_p=dropout, is_causal=mask is None,
                scale=self.scale, enable_gqa=self.num_kv_heads != self.num_heads,
            )
        rep = self.num_heads // self.num_kv_heads
        k = k.repeat_interleave(rep, dim=1)  # [b, n_h, s_kv, h_d]
        v = v.repeat_interleave(rep, dim=1)  # [b, n_h, s_kv, h_d]
        logits = torch.matmul(q, k.transpose(-2, -1)) * self.scale  # [b, n_h, s, s_kv]
        if self.softcapping is not None:
            logits = self.softcapping * torch.tanh(logits / self.softcapping)
        logits = logits.masked_fill(~mask, float("-inf")).float()
        if self.sinks is None:
            probs = F.softmax(logits, dim=-1).to(q.dtype)
        else:  # the sink is one more column of the softmax, dropped after it
            sinks = self.sinks.float()[None, :, None, None].expand(*logits.shape[:-1], 1)  # [b, n_h, s, 1]
            probs = F.softmax(torch.cat([logits, sinks], dim=-1), dim=-1)[..., :-1].to(q.dtype)
        probs = F.dropout(probs, p=dropout, training=self.training)
        return torch.matmul(probs, v)  # [b, n_h, s, h_d]

    def _attend_documents(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: BlockCausalMask
    ) -> torch.Tensor:
        """Attend within each document of each row (causal fast path where possible)."""
        rows = []
        for r, lens in enumerate(mask.seq_lens):
            docs = zip(*(t[r : r + 1].split(lens, dim=2) for t in (q, k, v)))  # [1, n, len, h_d] each
            outs = []
            for q_doc, k_doc, v_doc in docs:
                n = q_doc.shape[2]
                doc_mask = self._build_mask(None, torch.arange(n, device=q.device), n, q.device)
                outs.append(self._attend(q_doc, k_doc, v_doc, doc_mask))
            rows.append(torch.cat(outs, dim=2))  # [1, n_h, s, h_d]
        return torch.cat(rows, dim=0)  # [b, n_h, s, h_d]

    def _query_mask(
        self,
        mask: torch.Tensor | BlockCausalMask | None,
        q_row: torch.Tensor,
        q_slot: torch.Tensor,
        s: int,
        device: torch.device,
    ) -> torch.Tensor:
        """Which keys each selected query may attend to: bool ``[n, s]``."""
        kv_slots = torch.arange(s, device=device)
        if isinstance(mask, BlockCausalMask):
            starts = mask.document_starts(device)[q_row, q_slot]  # [n]
            allowed = (kv_slots[None, :] <= q_slot[:, None]) & (kv_slots[None, :] >= starts[:, None])
        elif mask is None:
            allowed = kv_slots[None, :] <= q_slot[:, None]  # [n, s]
        else:
            allowed = mask[q_row, q_slot]  # [n, s]
        if self.sliding_window is not None:
            allowed = allowed & (q_slot[:, None] - kv_slots[None, :] < self.sliding_window)
        return allowed

    def forward(
        self,
        x: torch.Tensor,
        *,
        mask: torch.Tensor | BlockCausalMask | BlockMask | VarlenDocuments | None = None,
        input_pos: torch.Tensor | None = None,
        query_index: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Attend over ``x`` (and the cache, when one is set up).

        Args:
            x (torch.Tensor): input ``[b, s, d]``.
            mask (torch.Tensor | BlockCausalMask | BlockMask | VarlenDocuments | None): bool
                ``[b, s, s_kv]``, True = may attend. Without a cache ``s_kv = s``; with one,
                ``s_kv`` is the cache size and column j is slot j. A :class:`BlockCausalMask` (no cache) attends within each
                document. A flex-attention ``BlockMask`` (from
                :meth:`TransformerDecoder.set_document_attention` ``"flex"``; it holds the
                causal, document and window structure) attends over whole rows in one kernel,
                softcapping as its score modifier; ``VarlenDocuments`` likewise through flash
                attention (``"varlen"``). None means causal. Default: None.
            input_pos (torch.Tensor | None): RoPE positions ``[b, s]``; None means the token
                slots (``0 .. s-1`` without a cache). Default: None.
            query_index (torch.Tensor | None): long ``[n]``, ascending flat indices into the
                ``b * s`` positions: compute the output of these positions only (keys and values
                still cover every position). Not with a KV cache. Default: None.

        Returns:
            torch.Tensor: ``[b, s, d]``, or ``[1, n, d]`` with ``query_index``.

        Raises:
            ValueError: when a :class:`BlockCausalMask`, a ``BlockMask``, ``VarlenDocuments`` or
                ``query_index`` is used with a KV cache, the mask's shape differs from ``x``'s, a
                ``BlockMask`` or ``VarlenDocuments`` comes with attention dropout in training, or
                ``VarlenDocuments`` with softcapping.
        """
        b, s, _ = x.shape
        flex, varlen = isinstance(mask, BlockMask), isinstance(mask, VarlenDocuments)
        if (flex or varlen) and (self.kv_cache is not None or (self.training and self.attn_dropout > 0)):
            raise ValueError("document_attention 'flex' and 'varlen' are for training without attention dropout and "
                             "without a KV cache; use document_attention='sdpa'")
        if varlen and self.softcapping:
            raise ValueError(f"softcapping={self.softcapping} has no varlen kernel; use document_attention='flex'")
        if isinstance(mask, BlockCausalMask) and (mask.batch_size, mask.seq_len) != (b, s):
            raise ValueError(f"BlockCausalMask covers [{mask.batch_size}, {mask.seq_len}] but x is [{b}, {s}]")
        if self.kv_cache is not None and (isinstance(mask, BlockCausalMask) or query_index is not None):
            raise ValueError("BlockCausalMask and query_index are for training: call delete_caches() first")
        k = self._project(self.k_proj, x, self.num_kv_heads, self.k_norm)  # [b, s, n_kv, h_d]
        v = self._project(self.v_proj, x, self.num_kv_heads, None)  # [b, s, n_kv, h_d]
        if query_index is not None and not (flex or varlen):
            return self._forward_selected(x, k, v, mask, input_pos, query_index)
        q = self._project(self.q_proj, x, self.num_heads, self.q_norm)  # [b, s, n_h, h_d]
        if self.kv_cache is not None:
            q_slots = self.kv_cache.next_slots(s)
            if input_pos is None:
                input_pos = q_slots[None].expand(b, s)
        else:
            q_slots = torch.arange(s, device=x.device)
        if self.pos_embeddings is not None:
            q = self.pos_embeddings(q, input_pos)
            k = self.pos_embeddings(k, input_pos)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # [b, n, s, h_d]
        if self.kv_cache is not None:
            k, v = self.kv_cache.update(None, k, v)  # [b, n_kv, s_kv, h_d]
        if flex:
            out = flex_document_attention(q, k, v, mask, scale=self.scale, softcapping=self.softcapping)
        elif varlen:
            out = varlen_document_attention(q, k, v, mask, scale=self.scale, sliding_window=self.sliding_window)
        elif isinstance(mask, BlockCausalMask):
            out = self._attend_documents(q, k, v, mask)  # [b, n_h, s, h_d]
        else:
            out = self._attend(q, k, v, self._build_mask(mask, q_slots, k.shape[2], x.device))  # [b, n_h, s, h_d]
        out = out.transpose(1, 2).reshape(b, s, self.num_heads * self.head_dim)  # [b, s, n_h * h_d]
        if query_index is not None:  # flex, varlen: every query was attended, keep the selected ones
            out = out.reshape(b * s, -1).index_select(0, query_index)[None]  # [1, n, n_h * h_d]
        return self.output_proj(out)

    def _forward_selected(
        self,
        x: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        mask: torch.Tensor | BlockCausalMask | None,
        input_pos: torch.Tensor | None,
        query_index: torch.Tensor,
    ) -> torch.Tensor:
        """Outputs of the positions in ``query_index`` only, as one row ``[1, n, d]``."""
        b, s, d = x.shape
        n = query_index.numel()
        x_sel = x.reshape(b * s, d).index_select(0, query_index)[None]  # [1, n, d]
        q = self._project(self.q_proj, x_sel, self.num_heads, self.q_norm)  # [1, n, n_h, h_d]
        q_row, q_slot = query_index // s, query_index % s  # [n]
        if self.pos_embeddings is not None:
            if input_pos is None:
                input_pos = torch.arange(s, device=x.device)[None].expand(b, s)
            q = self.pos_embeddings(q, input_pos[q_row, q_slot][None])
            k = self.pos_embeddings(k, input_pos)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # [1, n_h, n, h_d], [b, n_kv, s, h_d]
        allowed = self._query_mask(mask, q_row, q_slot, s, x.device)  # [n, s]
        if b == 1:  # one row (padding-free): one call, no data-dependent split (compile-friendly)
            out = self._attend(q, k, v, allowed[None])  # [1, n_h, n, h_d]
            out = out.transpose(1, 2).reshape(1, n, self.num_heads * self.head_dim)  # [1, n, n_h * h_d]
            return self.output_proj(out)
        counts = torch.bincount(q_row, minlength=b).tolist()  # queries per row (ascending index)
        outs, start = [], 0
        for r, count in enumerate(counts):
            if count:
                stop = start + count
                row_mask = allowed[start:stop][None]  # [1, count, s]
                outs.append(self._attend(q[:, :, start:stop], k[r : r + 1], v[r : r + 1], row_mask))
                start = stop
        out = torch.cat(outs, dim=2) if outs else q[:, :, :0]  # [1, n_h, n, h_d]
        out = out.transpose(1, 2).reshape(1, n, self.num_heads * self.head_dim)  # [1, n, n_h * h_d]
        return self.output_proj(out)
