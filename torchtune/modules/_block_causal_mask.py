"""Attention mask of rows that hold several documents end to end.

Notation: b batch (rows), s row length.
"""

from collections.abc import Sequence

import torch


class BlockCausalMask:
    """Causal attention inside each document of a row and none across documents.

    Describes rows holding documents laid end to end: packed samples, or a padding-free batch
    (see :func:`torchtune.data.padding_free_collate_sft`). Position ``t`` may attend to
    position ``j`` when both lie in the same document and ``j <= t``. Pass it as ``mask`` to
    :class:`~torchtune.modules.TransformerDecoder`: attention then runs document by document on
    the causal fast path of ``scaled_dot_product_attention``, instead of through a dense
    ``[b, s, s]`` mask whose cost grows with the square of the row length. The lengths live on
    the host, so :meth:`to` returns the mask itself.

    Args:
        seq_lens (Sequence[Sequence[int]]): per row, the lengths of its documents in order.
            Padding at the end of a row counts as a document of its own. Every row must sum to
            the same length s.

    Raises:
        ValueError: when there are no rows, a row has no documents, a length is not positive,
            or the rows differ in total length.

    Example:
        >>> BlockCausalMask([[2, 1]]).dense()[0].int()
        tensor([[1, 0, 0],
                [1, 1, 0],
                [0, 0, 1]], dtype=torch.int32)
    """

    def __init__(self, seq_lens: Sequence[Sequence[int]]) -> None:
        rows = tuple(tuple(int(n) for n in row) for row in seq_lens)
        if not rows or any(not row for row in rows):
            raise ValueError(f"seq_lens={seq_lens!r} needs at least one row, each with at least one document")
        for r, row in enumerate(rows):
            if min(row) <= 0:
                raise ValueError(f"seq_lens row {r} = {list(row)}: every document length must be positive")
        totals = {sum(row) for row in rows}
        if len(totals) != 1:
            raise ValueError(f"every row of seq_lens must sum to the same length, got totals {sorted(totals)}")
        self.seq_lens = rows

    @property
    def batch_size(self) -> int:
        """int: number of rows b."""
        return len(self.seq_lens)

    @property
    def seq_len(self) -> int:
        """int: row length s."""
        return sum(self.seq_lens[0])

    @property
    def max_document_len(self) -> int:
        """int: the longest document of any row."""
        return max(max(row) for row in self.seq_lens)

    def document_starts(self, device: torch.device | str | None = None) -> torch.Tensor:
        """First position of the document that each position belongs to.

        Args:
            device (torch.device | str | None): device of the result. Default: None (CPU).

        Returns:
            torch.Tensor: long ``[b, s]``.
        """
        rows = []
        for row in self.seq_lens:
            lens = torch.tensor(row, dtype=torch.long)
            starts = torch.cumsum(lens, 0) - lens  # [n_docs]
            rows.append(torch.repeat_interleave(starts, lens))  # [s]
        return torch.stack(rows).to(device)  # [b, s]

    def dense(self, device: torch.device | str | None = None) -> torch.Tensor:
        """The same mask as a dense bool tensor.

        Args:
            device (torch.device | str | None): device of the result. Default: None (CPU).

        Returns:
            torch.Tensor: bool ``[b, s, s]``; True means "may attend".
        """
        starts = self.document_starts(device)  # [b, s]
        pos = torch.arange(self.seq_len, device=device)
        causal = pos[:, None] >= pos[None, :]  # [s, s]
        same_doc = pos[None, None, :] >= starts[:, :, None]  # [b, s, s]: key at or after the query's doc start
        return causal[None] & same_doc

    def to(self, device: torch.device | str) -> "BlockCausalMask":
        """Return ``self``: the lengths are host integers (lets batches move with ``.to``)."""
        return self

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BlockCausalMask) and other.seq_lens == self.seq_lens

    def __hash__(self) -> int:
        return hash(self.seq_lens)

    def __repr__(self) -> str:
        return f"BlockCausalMask(seq_lens={[list(row) for row in self.seq_lens]})"
