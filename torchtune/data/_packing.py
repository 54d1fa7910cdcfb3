"""Greedy packing of tokenized samples into fixed-length rows."""

from typing import Any, Sequence

import torch
from torch.utils.data import Dataset

from torchtune.data._common import CROSS_ENTROPY_IGNORE_IDX


def _as_list(values: Any) -> list[int]:
    return values.tolist() if hasattr(values, "tolist") else list(values)


class PackedDataset(Dataset):
    """Pack samples greedily, in order, into rows of exactly ``max_seq_len`` tokens.

    A sample goes into the current row while it fits, otherwise the row is closed and padded.
    Each sample keeps its own labels (so no label crosses a document boundary), its positions
    restart at 0, and ``seq_lens`` records the documents so that ``padded_collate_packed`` can
    build a mask that never lets a token attend across documents. Padding is one extra document
    of ``padding_idx`` tokens with ignored labels.

    Args:
        ds (Sequence[dict]): tokenized samples with ``tokens`` and ``labels`` (already shifted).
        max_seq_len (int): length of every packed row.
        padding_idx (int): token id for padding. Default 0.
        max_packs (int | None): stop after this many rows. Default None (pack everything).
        split_across_pack (bool): split a sample that does not fit into the remaining space
            instead of starting a new row. Default False.

    Raises:
        ValueError: if ``max_seq_len`` is not positive, a sample is longer than ``max_seq_len``
            (with ``split_across_pack=False``), or nothing was packed.
    """

    def __init__(
        self,
        ds: Sequence[dict[str, Any]],
        *,
        max_seq_len: int,
        padding_idx: int = 0,
        max_packs: int | None = None,
        split_across_pack: bool = False,
    ) -> None:
        if max_seq_len <= 0:
            raise ValueError(f"max_seq_len={max_seq_len} must be positive")
        self.max_seq_len = max_seq_len
        self.padding_idx = padding_idx
        self.packs: list[dict[str, torch.Tensor]] = []
        self._pack(ds, max_packs, split_across_pack)
        if not self.packs:
            raise ValueError("PackedDataset is empty: the source dataset has no samples")

    def _pack(self, ds: Sequence[dict[str, Any]], max_packs: int | None, split: bool) -> None:
        tokens: list[int] = []
        labels: list[int] = []
        lens: list[int] = []
        for i in range(len(ds)):
            sample = ds[i]
            t, l = _as_list(sample["tokens"]), _as_list(sample["labels"])
            if len(t) > self.max_seq_len and not split:
                raise ValueError(
                    f"sample {i} has {len(t)} tokens, more than max_seq_len={self.max_seq_len}; "
                    "truncate it (the tokenizer's max_seq_len) or pass split_across_pack=True"
                )
            while t:
                room = self.max_seq_len - len(tokens)
                if len(t) > room and (not split or room == 0):
                    self._close(tokens, labels, lens)
                    tokens, labels, lens = [], [], []
                    if max_packs is not None and len(self.packs) >= max_packs:
                        return
                    continue
                take = min(len(t), room)
                tokens += t[:take]
                labels += l[:take]
                lens.append(take)
                t, l = t[take:], l[take:]
        if tokens and (max_packs is None or len(self.packs) < max_packs):
            self._close(tokens, labels, lens)

    def _close(self, tokens: list[int], labels: list[int], lens: list[int]) -> None:
        pad = self.max_seq_len - len(tokens)
        input_pos = [p for n in lens for p in range(n)]
        if pad:
            tokens = tokens + [self.padding_idx] * pad
            labels = labels + [CROSS_ENTROPY_IGNORE_IDX] * pad
            input_pos = input_pos + list(range(pad))
            lens = lens + [pad]
        self.packs.append(
            {
                "tokens": torch.tensor(tokens, dtype=torch.long),
                "labels": torch.tensor(labels, dtype=torch.long),
                "input_pos": torch.tensor(input_pos, dtype=torch.long),
                "seq_lens": torch.tensor(lens, dtype=torch.long),
            }
        )

    def __len__(self) -> int:
        return len(self.packs)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.packs[index]
