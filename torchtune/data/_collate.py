"""Collate functions: pad samples into the batch contract of docs/contributing.md."""

import functools
from typing import Any, Callable, Sequence

import torch
from torch.nn.utils.rnn import pad_sequence

from torchtune.data._common import CROSS_ENTROPY_IGNORE_IDX
from torchtune.data._packing import PackedDataset
from torchtune.modules import BlockCausalMask


def labels_from_tokens(tokens: Sequence[int], mask: Sequence[bool]) -> list[int]:
    """Shift tokens left into labels so that ``labels[t]`` is the target at position ``t``.

    Args:
        tokens (Sequence[int]): token ids, length s.
        mask (Sequence[bool]): True where a token is excluded from the loss, length s.

    Returns:
        list[int]: length s; ``labels[t] = tokens[t + 1]`` unless token ``t + 1`` is masked, and
        the last label is ``CROSS_ENTROPY_IGNORE_IDX``.

    Raises:
        ValueError: if the lengths differ.
    """
    if len(tokens) != len(mask):
        raise ValueError(f"tokens and mask must have the same length, got {len(tokens)} and {len(mask)}")
    labels = [CROSS_ENTROPY_IGNORE_IDX if m else t for t, m in zip(tokens[1:], mask[1:])]
    labels.append(CROSS_ENTROPY_IGNORE_IDX)
    return labels


def _pad(seqs: Sequence[Sequence[int]], value: int, pad_to: int | None = None) -> torch.Tensor:
    tensors = [torch.as_tensor(s, dtype=torch.long) for s in seqs]
    out = pad_sequence(tensors, batch_first=True, padding_value=value)  # [b, s_max]
    if pad_to is not None and out.shape[1] < pad_to:
        out = torch.nn.functional.pad(out, (0, pad_to - out.shape[1]), value=value)
    return out


def padded_collate_sft(
    batch: Sequence[dict[str, Any]],
    padding_idx: int = 0,
    ignore_idx: int = CROSS_ENTROPY_IGNORE_IDX,
    pad_to_multiple_of: int = 1,
) -> dict[str, torch.Tensor]:
    """Right-pad ``tokens`` and ``labels`` of SFT samples.

    Args:
        batch (Sequence[dict]): samples with ``tokens`` and ``labels`` (equal lengths).
        padding_idx (int): token id used for padding. Default 0.
        ignore_idx (int): label value for padded positions. Default -100.
        pad_to_multiple_of (int): round the padded length up to a multiple. Default 1.

    Returns:
        dict[str, torch.Tensor]: ``tokens [b, s]`` and ``labels [b, s]`` (long).

    Raises:
        ValueError: if a sample's tokens and labels differ in length.
    """
    for i, sample in enumerate(batch):
        if len(sample["tokens"]) != len(sample["labels"]):
            raise ValueError(
                f"sample {i}: tokens ({len(sample['tokens'])}) and labels ({len(sample['labels'])}) "
                "must have the same length"
            )
    longest = max(len(s["tokens"]) for s in batch)
    pad_to = -(-longest // pad_to_multiple_of) * pad_to_multiple_of
    tokens = _pad([s["tokens"] for s in batch], padding_idx, pad_to)  # [b, s]
    labels = _pad([s["labels"] for s in batch], ignore_idx, pad_to)  # [b, s]
    return {"tokens": tokens, "labels": labels}


def _dpo_sequences(batch: Sequence[dict[str, Any]]) -> tuple[list[Any], list[Any]]:
    """The chosen then the rejected token and label lists of preference samples."""
    for i, sample in enumerate(batch):
        for key in ("chosen", "rejected"):
            n, m = len(sample[f"{key}_input_ids"]), len(sample[f"{key}_labels"])
            if n != m or n == 0:
                raise ValueError(
                    f"sample {i}: {key}_input_ids ({n}) and {key}_labels ({m}) must have the same, non-zero length"
                )
    tokens = [s["chosen_input_ids"] for s in batch] + [s["rejected_input_ids"] for s in batch]
    labels = [s["chosen_labels"] for s in batch] + [s["rejected_labels"] for s in batch]
    return tokens, labels


def padded_collate_dpo(
    batch: Sequence[dict[str, Any]],
    padding_idx: int = 0,
    ignore_idx: int = CROSS_ENTROPY_IGNORE_IDX,
) -> dict[str, torch.Tensor]:
    """Pad preference pairs into one batch: the b chosen rows first, then the b rejected rows.

    Args:
        batch (Sequence[dict]): samples with ``chosen_input_ids``, ``chosen_labels``,
            ``rejected_input_ids`` and ``rejected_labels``.
        padding_idx (int): token id used for padding. Default 0.
        ignore_idx (int): label value for padded positions. Default -100.

    Returns:
        dict[str, torch.Tensor]: ``tokens [2b, s]``, ``labels [2b, s]`` and ``sequence_ids
        [2b, s]`` (the row index at every position); rows ``[:b]`` are the chosen responses
        and rows ``[b:]`` the rejected ones.

    Raises:
        ValueError: if a sample's tokens and labels differ in length or are empty.
    """
    tokens, labels = _dpo_sequences(batch)
    tokens_t = _pad(tokens, padding_idx)  # [2b, s]
    sequence_ids = torch.arange(tokens_t.shape[0])[:, None].expand_as(tokens_t).contiguous()  # [2b, s]
    return {"tokens": tokens_t, "labels": _pad(labels, ignore_idx), "sequence_ids": sequence_ids}


def padding_free_collate_dpo(batch: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Lay the chosen then the rejected sequences of preference pairs end to end in one row.

    As :func:`padding_free_collate_sft`: attention stays within each sequence and positions
    restart at 0, so every token gets the output it would get alone, with no padding.

    Args:
        batch (Sequence[dict]): samples with ``chosen_input_ids``, ``chosen_labels``,
            ``rejected_input_ids`` and ``rejected_labels``.

    Returns:
        dict[str, Any]: ``tokens``, ``labels``, ``input_pos`` and ``sequence_ids`` ``[1, T]``
        long, and ``mask`` (:class:`~torchtune.modules.BlockCausalMask`). ``sequence_ids``
        numbers the sequences: ``0 .. b-1`` the chosen ones, ``b .. 2b-1`` the rejected ones.

    Raises:
        ValueError: if a sample's tokens and labels differ in length or are empty.
    """
    tokens, labels = _dpo_sequences(batch)
    lens = [len(t) for t in tokens]
    return {
        "tokens": torch.cat([torch.as_tensor(t, dtype=torch.long) for t in tokens])[None],  # [1, T]
        "labels": torch.cat([torch.as_tensor(t, dtype=torch.long) for t in labels])[None],  # [1, T]
        "input_pos": torch.cat([torch.arange(n) for n in lens])[None],  # [1, T]
        "sequence_ids": torch.repeat_interleave(torch.arange(len(lens)), torch.tensor(lens))[None],  # [1, T]
        "mask": BlockCausalMask([lens]),
    }


def dpo_collate_fn(*, padding_free: bool, padding_idx: int = 0) -> Callable[[Sequence[dict[str, Any]]], dict[str, Any]]:
    """The collate function for preference pairs: :func:`padding_free_collate_dpo` or
    :func:`padded_collate_dpo`.

    Args:
        padding_free (bool): one row per batch instead of padded sequences.
        padding_idx (int): the token id padding uses (the tokenizer's ``pad_id``). Default 0.

    Returns:
        Callable[[Sequence[dict[str, Any]]], dict[str, Any]]: the collate function.
    """
    if padding_free:
        return padding_free_collate_dpo
    return functools.partial(padded_collate_dpo, padding_idx=padding_idx, ignore_idx=CROSS_ENTROPY_IGNORE_IDX)


def packed_block_causal_mask(seq_lens: Sequence[Sequence[int]]) -> torch.Tensor:
    """Build the dense attention mask of packed rows: causal within each document, nothing across.

    The collate functions pass the lighter :class:`~torchtune.modules.BlockCausalMask`; this
    dense form is for models that need a plain bool mask.

    Args:
        seq_lens (Sequence[Sequence[int]]): per row, the lengths of its documents (padding
            counted as its own document); every row sums to the same s.

    Returns:
        torch.Tensor: bool ``[b, s, s]``; True means "may attend".
    """
    return BlockCausalMask(seq_lens).dense()


def padded_collate_packed(batch: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack packs from ``PackedDataset`` (already padded to ``max_seq_len``).

    Args:
        batch (Sequence[dict]): packs with ``tokens``, ``labels``, ``input_pos`` (tensors of
            length s) and ``seq_lens``.

    Returns:
        dict[str, Any]: ``tokens``, ``labels``, ``input_pos`` ``[b, s]`` long and ``mask``, a
        :class:`~torchtune.modules.BlockCausalMask` of the packs' documents (``.dense()`` gives
        the bool ``[b, s, s]`` form).
    """
    return {
        "tokens": torch.stack([torch.as_tensor(p["tokens"]) for p in batch]).long(),
        "labels": torch.stack([torch.as_tensor(p["labels"]) for p in batch]).long(),
        "input_pos": torch.stack([torch.as_tensor(p["input_pos"]) for p in batch]).long(),
        "mask": BlockCausalMask([list(map(int, p["seq_lens"])) for p in batch]),
    }


def padding_free_collate_sft(
    batch: Sequence[dict[str, Any]], *, pad_to_multiple_of: int = 1, padding_idx: int = 0
) -> dict[str, Any]:
    """Lay the samples of a batch end to end in one row, without any padding.

    The model attends within each sample only (``mask`` is a
    :class:`~torchtune.modules.BlockCausalMask`) and positions restart at 0 in each sample, so
    every real token gets the same output as in a padded batch while no compute goes to
    padding. Labels are per sample (a sample's last label is already ignored), so no label
    crosses into the next sample.

    Args:
        batch (Sequence[dict]): samples with ``tokens`` and ``labels`` (equal, non-zero lengths).
        pad_to_multiple_of (int): round the row length T up to a multiple of this (e.g. 64 or
            128, so that compiled models see few distinct shapes). The padding is a document of
            its own, of ``padding_idx`` tokens, with no labels. Default 1 (no padding).
        padding_idx (int): token id of the padding. Default 0.

    Returns:
        dict[str, Any]: ``tokens``, ``labels``, ``input_pos`` ``[1, T]`` long (T the total
        number of tokens, padding included) and ``mask``, the
        :class:`~torchtune.modules.BlockCausalMask` of the samples (and the padding).

    Raises:
        ValueError: if a sample is empty or its tokens and labels differ in length, or
            ``pad_to_multiple_of`` is not positive.

    Example:
        >>> out = padding_free_collate_sft([{"tokens": [5, 6], "labels": [6, -100]}, {"tokens": [7], "labels": [-100]}])
        >>> out["tokens"].tolist(), out["input_pos"].tolist(), out["mask"]
        ([[5, 6, 7]], [[0, 1, 0]], BlockCausalMask(seq_lens=[[2, 1]]))
    """
    lens = []
    for i, sample in enumerate(batch):
        n = len(sample["tokens"])
        if n != len(sample["labels"]):
            raise ValueError(
                f"sample {i}: tokens ({n}) and labels ({len(sample['labels'])}) must have the same length"
            )
        if n == 0:
            raise ValueError(f"sample {i} has no tokens; drop empty samples from the dataset")
        lens.append(n)
    if pad_to_multiple_of < 1:
        raise ValueError(f"pad_to_multiple_of={pad_to_multiple_of} must be a positive number of tokens")
    tokens = [torch.as_tensor(s["tokens"], dtype=torch.long) for s in batch]
    labels = [torch.as_tensor(s["labels"], dtype=torch.long) for s in batch]
    pad = -sum(lens) % pad_to_multiple_of
    if pad:  # a document of its own, attended by nothing else and carrying no label
        tokens.append(torch.full((pad,), padding_idx, dtype=torch.long))
        labels.append(torch.full((pad,), CROSS_ENTROPY_IGNORE_IDX, dtype=torch.long))
        lens.append(pad)
    input_pos = torch.cat([torch.arange(n) for n in lens])[None]  # [1, T]
    return {"tokens": torch.cat(tokens)[None], "labels": torch.cat(labels)[None], "input_pos": input_pos,
            "mask": BlockCausalMask([lens])}  # tokens, labels [1, T]


def sft_collate_fn(
    dataset: Any, *, padding_free: bool, padding_idx: int = 0, pad_to_multiple_of: int = 1
) -> Callable[[Sequence[dict[str, Any]]], dict[str, Any]]:
    """The collate function for a fine-tuning dataset: packed rows stay as packed
    (:func:`padded_collate_packed`), otherwise the samples of a batch are laid end to end in one
    row (``padding_free``, :func:`padding_free_collate_sft`: no compute spent on padding) or
    right-padded (:func:`padded_collate_sft`).

    Args:
        dataset (Any): the dataset (a :class:`~torchtune.data.PackedDataset` or per-sample data).
        padding_free (bool): one row per batch instead of padded samples.
        padding_idx (int): the token id padding uses (the tokenizer's ``pad_id``). Default 0.
        pad_to_multiple_of (int): round padding-free rows and padded batches up to a multiple of
            this many tokens (fewer distinct shapes for ``torch.compile``). Default 1.

    Returns:
        Callable[[Sequence[dict[str, Any]]], dict[str, Any]]: the collate function.
    """
    if isinstance(dataset, PackedDataset):
        return padded_collate_packed
    if padding_free:
        if pad_to_multiple_of == 1:
            return padding_free_collate_sft
        return functools.partial(padding_free_collate_sft, pad_to_multiple_of=pad_to_multiple_of,
                                 padding_idx=padding_idx)
    return functools.partial(padded_collate_sft, padding_idx=padding_idx, ignore_idx=CROSS_ENTROPY_IGNORE_IDX,
                             pad_to_multiple_of=pad_to_multiple_of)
