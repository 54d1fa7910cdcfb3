"""Decoder layer and decoder-only transformer.

Notation: b batch, s sequence, s_kv key/value length, d embed dim, v vocab.
"""

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention.flex_attention import BlockMask

from torchtune.modules._block_causal_mask import BlockCausalMask


class TiedLinear:
    """Output projection that reuses the token-embedding matrix.

    Not an ``nn.Module``, so the shared weight appears once in the state dict (as
    ``tok_embeddings.weight``).

    Args:
        tied_module (nn.Embedding): the embedding whose ``weight`` ``[v, d]`` is reused.
    """

    def __init__(self, tied_module: nn.Module) -> None:
        self.tied_module = tied_module

    @property
    def weight(self) -> torch.Tensor:
        """torch.Tensor: the shared ``[v, d]`` matrix."""
        return self.tied_module.weight

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Project ``x [..., d]`` to logits ``[..., v]``."""
        return F.linear(x, self.tied_module.weight)


class TransformerSelfAttentionLayer(nn.Module):
    """Pre-norm residual block: ``h = x + sa_scale(attn(sa_norm(x)))``,
    ``out = h + mlp_scale(mlp(mlp_norm(h)))``.

    Args:
        attn (nn.Module): a :class:`~torchtune.modules.MultiHeadAttention`.
        mlp (nn.Module): feed-forward network.
        sa_norm (nn.Module): norm before attention.
        mlp_norm (nn.Module): norm before the feed-forward network.
        sa_scale (nn.Module | None): applied to the attention output (Gemma 2's post-attention
            norm). Default: None (identity).
        mlp_scale (nn.Module | None): applied to the feed-forward output. Default: None.
    """

    def __init__(
        self,
        *,
        attn: nn.Module,
        mlp: nn.Module,
        sa_norm: nn.Module,
        mlp_norm: nn.Module,
        sa_scale: nn.Module | None = None,
        mlp_scale: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.sa_norm = sa_norm
        self.attn = attn
        self.mlp_norm = mlp_norm
        self.mlp = mlp
        self.sa_scale = sa_scale if sa_scale is not None else nn.Identity()
        self.mlp_scale = mlp_scale if mlp_scale is not None else nn.Identity()

    def setup_caches(self, batch_size: int, dtype: torch.dtype, decoder_max_seq_len: int) -> None:
        """Allocate the attention's KV cache (see :meth:`MultiHeadAttention.setup_cache`)."""
        self.attn.setup_cache(batch_size, dtype, decoder_max_seq_len)

    def caches_are_enabled(self) -> bool:
        """bool: whether the attention has a KV cache."""
        return self.attn.kv_cache is not None

    def reset_cache(self) -> None:
        """Empty the attention's KV cache."""
        if self.attn.kv_cache is not None:
            self.attn.kv_cache.reset()

    def forward(
        self,
        x: torch.Tensor,
        *,
        mask: torch.Tensor | BlockCausalMask | BlockMask | None = None,
        input_pos: torch.Tensor | None = None,
        output_index: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Run the block.

        Args:
            x (torch.Tensor): ``[b, s, d]``.
            mask (torch.Tensor | BlockCausalMask | BlockMask | None): bool ``[b, s, s_kv]``, True
                = may attend, a :class:`BlockCausalMask`, or a flex-attention ``BlockMask`` (see
                :meth:`TransformerDecoder.set_document_attention`). Default: None (causal).
            input_pos (torch.Tensor | None): positions ``[b, s]``. Default: None.
            output_index (torch.Tensor | None): long ``[n]``, ascending flat indices into the
                ``b * s`` positions whose outputs are wanted; only these run through the
                queries, the attention output projection and the feed-forward network.
                Default: None (every position).

        Returns:
            torch.Tensor: ``[b, s, d]``, or ``[1, n, d]`` with ``output_index``.
        """
        if output_index is None:
            h = x + self.sa_scale(self.attn(self.sa_norm(x), mask=mask, input_pos=input_pos))
        else:
            attn_out = self.attn(self.sa_norm(x), mask=mask, input_pos=input_pos, query_index=output_index)
            x_sel = x.reshape(-1, x.shape[-1]).index_select(0, output_index)[None]  # [1, n, d]
            h = x_sel + self.sa_scale(attn_out)
        return h + self.mlp_scale(self.mlp(self.mlp_norm(h)))
