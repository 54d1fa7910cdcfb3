import pytest
import torch
import torch.nn.functional as F

from torchtune.modules import ChunkedCrossEntropyLoss, chunked_cross_entropy


def test_matches_cross_entropy_on_full_logits():
    torch.manual_seed(0)
    logits = torch.randn(2, 9, 11, dtype=torch.bfloat16)
    labels = torch.randint(0, 11, (2, 9))
    labels[0, :3] = -100
    labels[1, 7:] = -100
    expected = F.cross_entropy(logits.float().reshape(-1, 11), labels.reshape(-1), ignore_index=-100)
    got = ChunkedCrossEntropyLoss()(list(logits.chunk(4, dim=1)), labels)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(chunked_cross_entropy(logits, labels), expected)


def test_length_mismatch():
    with pytest.raises(ValueError, match="logits chunks cover 4 positions but labels have 5"):
        chunked_cross_entropy([torch.zeros(1, 4, 3)], torch.zeros(1, 5, dtype=torch.long))
