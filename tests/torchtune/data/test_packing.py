"""Packing: a packed batch gives the same per-token loss as the samples unpacked."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from torchtune.data import (
    CROSS_ENTROPY_IGNORE_IDX,
    PackedDataset,
    labels_from_tokens,
    packed_block_causal_mask,
    padded_collate_packed,
    padding_free_collate_sft,
)
from torchtune.modules import BlockCausalMask

VOCAB = 32


class TinyLM(nn.Module):
    """Embedding + learned positions + one causal attention layer + output head."""

    def __init__(self):
        super().__init__()
        self.tok = nn.Embedding(VOCAB, 16)
        self.pos = nn.Embedding(64, 16)
        self.qkv = nn.Linear(16, 48)
        self.out = nn.Linear(16, VOCAB)

    def forward(self, tokens, *, mask=None, input_pos=None):
        b, s = tokens.shape
        if input_pos is None:
            input_pos = torch.arange(s).expand(b, s)
        x = self.tok(tokens) + self.pos(input_pos)  # [b, s, d]
        q, k, v = self.qkv(x).view(b, s, 3, 2, 8).unbind(2)  # each [b, s, n_h, h_d]
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # [b, n_h, s, h_d]
        if isinstance(mask, BlockCausalMask):
            mask = mask.dense()  # this toy model takes the dense form
        if mask is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None])
        return self.out(x + y.transpose(1, 2).reshape(b, s, 16))  # [b, s, v]


def _samples(lengths, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for n in lengths:
        tokens = torch.randint(1, VOCAB, (n,), generator=g).tolist()
        mask = [i < n // 3 for i in range(n)]  # a masked prompt, then trainable tokens
        out.append({"tokens": tokens, "labels": labels_from_tokens(tokens, mask)})
    return out


def _per_token_losses(model, tokens, labels, **kwargs):
    logits = model(tokens, **kwargs)
    losses = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=CROSS_ENTROPY_IGNORE_IDX,
                             reduction="none")
    return losses[labels.flatten() != CROSS_ENTROPY_IGNORE_IDX]


def _check_packed_equals_unpacked(model, samples, max_seq_len):
    packed = PackedDataset(samples, max_seq_len=max_seq_len)
    batch = padded_collate_packed([packed[i] for i in range(len(packed))])
    _check_batch_equals_unpacked(model, samples, batch)
    _check_batch_equals_unpacked(model, samples, padding_free_collate_sft(samples))


def _check_batch_equals_unpacked(model, samples, batch):
    ours = _per_token_losses(model, batch["tokens"], batch["labels"], mask=batch["mask"], input_pos=batch["input_pos"])
    ref = torch.cat([
        _per_token_losses(model, torch.tensor([s["tokens"]]), torch.tensor([s["labels"]])) for s in samples
    ])
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours.mean(), ref.mean(), rtol=1e-5, atol=1e-5)


def test_packed_loss_equals_unpacked_loss():
    torch.manual_seed(0)
    _check_packed_equals_unpacked(TinyLM().eval(), _samples([5, 9, 3, 12, 7, 4, 16]), max_seq_len=16)


def test_packed_loss_equals_unpacked_with_torchtune_decoder():
    from torchtune.models._decoder_builder import build_decoder

    torch.manual_seed(0)
    model = build_decoder(vocab_size=VOCAB, num_layers=2, num_heads=4, num_kv_heads=2, embed_dim=32,
                          intermediate_dim=64, max_seq_len=32).eval()
    _check_packed_equals_unpacked(model, _samples([6, 10, 4, 13], seed=1), max_seq_len=20)


def test_pack_layout():
    samples = [{"tokens": [1, 2, 3], "labels": [2, 3, -100]}, {"tokens": [4, 5], "labels": [5, -100]},
               {"tokens": [6, 7, 8, 9], "labels": [7, 8, 9, -100]}]
    packed = PackedDataset(samples, max_seq_len=6, padding_idx=0)
    assert len(packed) == 2
    assert packed[0]["tokens"].tolist() == [1, 2, 3, 4, 5, 0]
    assert packed[0]["labels"].tolist() == [2, 3, -100, 5, -100, -100]  # no label crosses a document
    assert packed[0]["input_pos"].tolist() == [0, 1, 2, 0, 1, 0]
    assert packed[0]["seq_lens"].tolist() == [3, 2, 1]
    assert packed[1]["tokens"].tolist() == [6, 7, 8, 9, 0, 0]
    mask = padded_collate_packed([packed[0]])["mask"].dense()
    assert mask.shape == (1, 6, 6) and mask.dtype == torch.bool
    assert mask[0, 3].tolist() == [False, False, False, True, False, False]  # doc 2 never sees doc 1
    assert mask[0, 4].tolist() == [False, False, False, True, True, False]


def test_block_causal_mask_matches_explicit_construction():
    mask = packed_block_causal_mask([[2, 3]])[0]
    expected = torch.zeros(5, 5, dtype=torch.bool)
    for start, n in ((0, 2), (2, 3)):
        expected[start:start + n, start:start + n] = torch.ones(n, n, dtype=torch.bool).tril()
    assert torch.equal(mask, expected)


def test_padding_free_collate_layout_and_errors():
    samples = [{"tokens": [1, 2, 3], "labels": [2, 3, -100]}, {"tokens": [4, 5], "labels": [5, -100]}]
    batch = padding_free_collate_sft(samples)
    assert batch["tokens"].tolist() == [[1, 2, 3, 4, 5]]
    assert batch["labels"].tolist() == [[2, 3, -100, 5, -100]]
    assert batch["input_pos"].tolist() == [[0, 1, 2, 0, 1]]
    assert batch["mask"] == BlockCausalMask([[3, 2]])
    with pytest.raises(ValueError, match="sample 1: tokens \\(2\\) and labels \\(1\\)"):
        padding_free_collate_sft([samples[0], {"tokens": [4, 5], "labels": [5]}])
    with pytest.raises(ValueError, match="sample 0 has no tokens"):
        padding_free_collate_sft([{"tokens": [], "labels": []}])


def test_split_across_pack_and_max_packs():
    samples = [{"tokens": list(range(1, 6)), "labels": list(range(2, 6)) + [-100]}] * 3
    packed = PackedDataset(samples, max_seq_len=4, split_across_pack=True)
    assert [p["seq_lens"].tolist() for p in packed] == [[4], [1, 3], [2, 2], [3, 1]]
    assert len(PackedDataset(samples, max_seq_len=8, max_packs=1)) == 1


def test_packing_errors():
    with pytest.raises(ValueError, match="sample 0 has 5 tokens, more than max_seq_len=4"):
        PackedDataset([{"tokens": [1] * 5, "labels": [1] * 5}], max_seq_len=4)
    with pytest.raises(ValueError, match="max_seq_len=0 must be positive"):
        PackedDataset([], max_seq_len=0)
    with pytest.raises(ValueError, match="PackedDataset is empty"):
        PackedDataset([], max_seq_len=4)
