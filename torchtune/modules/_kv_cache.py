"""Key/value cache for incremental decoding."""

import torch
from torch import nn


class KVCache(nn.Module):
    """Preallocated key/value cache for one attention layer.

    Keys and values are written to consecutive *slots* ``0, 1, 2, ...``; slot ``j`` of the cache
    is column ``j`` of the attention mask during decoding. Slots are independent of the RoPE
    positions, so left-padded batches can share slot indices while their positions differ.

    Args:
        batch_size (int): batch size the cache is laid out for.
        max_seq_len (int): number of slots.
        num_kv_heads (int): number of key/value heads.
        head_dim (int): per-head dimension.
        dtype (torch.dtype): dtype of the cache.
    """

    def __init__(
        self,
        batch_size: int,
        max_seq_len: int,
        num_kv_heads: int,
        head_dim: int,
        dtype: torch.dtype,
    ) -> None:
        super().__init__()
        shape = (batch_size, num_kv_heads, max_seq_len, head_dim)
        self.register_buffer("k_cache", torch.zeros(shape, dtype=dtype), persistent=False)
        self.register_buffer("v_cache", torch.zeros(shape, dtype=dtype), persistent=False)
        self.batch_size = batch_size
        self.max_seq_len = max_seq_len
        self.size = 0

    def reset(self) -> None:
        """Zero the cache and start writing at slot 0 again."""
        self.k_cache.zero_()
        self.v_cache.zero_()
        self.size = 0

    def next_slots(self, seq_len: int) -> torch.Tensor:
        """Slots that the next ``seq_len`` tokens will occupy.

        Args:
            seq_len (int): number of incoming tokens.

        Returns:
            torch.Tensor: long tensor ``[seq_len]``.
        """
        return torch.arange(self.size, self.size + seq_len, device=self.k_cache.device)

    def update(
        self, input_pos: torch.Tensor | None, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write new keys/values and return the whole cache.

        Args:
            input_pos (torch.Tensor | None): slots ``[s]`` to write to; None appends after the
                last written slot.
            k (torch.Tensor): keys ``[b, n_kv, s, h_d]``.
            v (torch.Tensor): values ``[b, n_kv, s, h_d]``.

        Returns:
            tuple[torch.Tensor, torch.Tensor]: keys and values ``[b, n_kv, max_seq_len, h_d]``.

        Raises:
            ValueError: when the batch size differs from the cache's or the cache would overflow.
        """
        b, _, s, _ = k.shape
        if b != self.batch_size:
            raise ValueError(f"batch size {b} does not match the cache's batch_size={self.batch_size}")
        if input_pos is None:
            if self.size + s > self.max_seq_len:
                raise ValueError(
                    f"cache overflow: {self.size} slots used + {s} new > max_seq_len={self.max_seq_len}"
                )
            input_pos = self.next_slots(s)
        self.k_cache.index_copy_(2, input_pos, k.to(self.k_cache.dtype))
        self.v_cache.index_copy_(2, input_pos, v.to(self.v_cache.dtype))
        self.size = max(self.size, int(input_pos.max()) + 1)
        return self.k_cache, self.v_cache
