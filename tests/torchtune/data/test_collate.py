"""Label shifting and padding collate functions."""

import pytest
import torch
import torch.nn.functional as F

from torchtune.data import (
    CROSS_ENTROPY_IGNORE_IDX,
    labels_from_tokens,
    dpo_collate_fn,
    padded_collate_dpo,
    padded_collate_sft,
    padding_free_collate_sft,
    padding_free_collate_dpo,
)


def test_labels_are_next_tokens_with_masked_targets_ignored():
    tokens = [10, 11, 12, 13, 14]
    mask = [True, True, False, False, True]
    assert labels_from_tokens(tokens, mask) == [-100, 12, 13, -100, -100]
    with pytest.raises(ValueError, match="tokens and mask must have the same length, got 2 and 1"):
        labels_from_tokens([1, 2], [True])


def test_shifted_labels_give_the_next_token_loss():
    torch.manual_seed(0)
    tokens = [3, 1, 4, 1, 5, 9, 2]
    mask = [True, True, True, False, False, False, False]
    batch = padded_collate_sft([{"tokens": tokens, "labels": labels_from_tokens(tokens, mask)}])
    logits = torch.randn(1, len(tokens), 10)
    ours = F.cross_entropy(logits[0], batch["labels"][0], ignore_index=CROSS_ENTROPY_IGNORE_IDX)
    # reference: predict token t+1 from position t, only where token t+1 is trainable
    idx = [t for t in range(len(tokens) - 1) if not mask[t + 1]]
    ref = F.cross_entropy(logits[0, idx], torch.tensor([tokens[t + 1] for t in idx]))
    torch.testing.assert_close(ours, ref)


def test_padded_collate_sft_pads_right():
    batch = padded_collate_sft(
        [{"tokens": [1, 2, 3], "labels": [2, 3, -100]}, {"tokens": [7], "labels": [-100]}], padding_idx=0
    )
    assert batch["tokens"].tolist() == [[1, 2, 3], [7, 0, 0]]
    assert batch["labels"].tolist() == [[2, 3, -100], [-100, -100, -100]]
    assert batch["tokens"].dtype == torch.long
    padded = padded_collate_sft([{"tokens": [1, 2, 3], "labels": [1, 2, 3]}], pad_to_multiple_of=4, padding_idx=9)
    assert padded["tokens"].tolist() == [[1, 2, 3, 9]]


def test_padded_collate_sft_rejects_length_mismatch():
    with pytest.raises(ValueError, match=r"sample 0: tokens \(2\) and labels \(1\) must have the same length"):
        padded_collate_sft([{"tokens": [1, 2], "labels": [1]}])


def test_padded_collate_dpo_chosen_first_then_rejected():
    batch = padded_collate_dpo(
        [
            {"chosen_input_ids": [1, 2], "chosen_labels": [2, -100], "rejected_input_ids": [1, 3, 4],
             "rejected_labels": [3, 4, -100]},
            {"chosen_input_ids": [5], "chosen_labels": [-100], "rejected_input_ids": [6], "rejected_labels": [-100]},
        ],
        padding_idx=0,
    )
    assert batch["tokens"].tolist() == [[1, 2, 0], [5, 0, 0], [1, 3, 4], [6, 0, 0]]
    assert batch["labels"][0].tolist() == [2, -100, -100]
    assert batch["sequence_ids"].tolist() == [[0] * 3, [1] * 3, [2] * 3, [3] * 3]


_PAIRS = [
    {"chosen_input_ids": [1, 2], "chosen_labels": [2, -100], "rejected_input_ids": [1, 3, 4],
     "rejected_labels": [3, 4, -100]},
    {"chosen_input_ids": [5], "chosen_labels": [-100], "rejected_input_ids": [6, 7], "rejected_labels": [7, -100]},
]


def test_padding_free_collate_dpo_lays_chosen_then_rejected_end_to_end():
    batch = padding_free_collate_dpo(_PAIRS)
    assert batch["tokens"].tolist() == [[1, 2, 5, 1, 3, 4, 6, 7]]
    assert batch["labels"].tolist() == [[2, -100, -100, 3, 4, -100, 7, -100]]
    assert batch["input_pos"].tolist() == [[0, 1, 0, 0, 1, 2, 0, 1]]
    assert batch["sequence_ids"].tolist() == [[0, 0, 1, 2, 2, 2, 3, 3]]
    assert batch["mask"].seq_lens == ((2, 1, 3, 2),)
    # the dense form: causal within each sequence, nothing across
    dense = batch["mask"].dense()[0]
    same = batch["sequence_ids"][0][:, None] == batch["sequence_ids"][0][None, :]
    assert torch.equal(dense, same & torch.ones(8, 8, dtype=torch.bool).tril())


def test_dpo_collate_fn_picks_the_layout_and_rejects_bad_samples():
    assert dpo_collate_fn(padding_free=True) is padding_free_collate_dpo
    padded = dpo_collate_fn(padding_free=False, padding_idx=9)(_PAIRS)
    assert padded["tokens"].tolist() == [[1, 2, 9], [5, 9, 9], [1, 3, 4], [6, 7, 9]]
    bad = [dict(_PAIRS[0], rejected_labels=[3])]
    for collate in (padding_free_collate_dpo, padded_collate_dpo):
        with pytest.raises(ValueError, match=r"sample 0: rejected_input_ids \(3\) and rejected_labels \(1\)"):
            collate(bad)


def test_padding_free_rows_padded_to_a_multiple_carry_the_padding_as_an_unlabelled_document():
    samples = [{"tokens": [5, 6, 7], "labels": [6, 7, -100]}, {"tokens": [8, 9], "labels": [9, -100]}]
    plain = padding_free_collate_sft(samples)
    out = padding_free_collate_sft(samples, pad_to_multiple_of=4, padding_idx=0)
    assert out["tokens"].tolist() == [[5, 6, 7, 8, 9, 0, 0, 0]]
    assert out["labels"].tolist() == [[6, 7, -100, 9, -100, -100, -100, -100]]
    assert out["input_pos"].tolist() == [[0, 1, 2, 0, 1, 0, 1, 2]]
    assert out["mask"].seq_lens == ((3, 2, 3),)
    dense = out["mask"].dense()[0]  # [8, 8]
    assert torch.equal(dense[:5, :5], plain["mask"].dense()[0])  # the real tokens attend as before
    assert not dense[:5, 5:].any() and not dense[5:, :5].any()  # nothing crosses into the padding
    assert padding_free_collate_sft(samples, pad_to_multiple_of=5)["tokens"].shape == (1, 5)  # already a multiple
    with pytest.raises(ValueError, match="pad_to_multiple_of=0 must be a positive"):
        padding_free_collate_sft(samples, pad_to_multiple_of=0)
