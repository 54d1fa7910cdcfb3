"""Cross-entropy over logits that arrive in chunks along the sequence."""

import logging

import torch
import torch.nn.functional as F
from torch import nn

logger = logging.getLogger(__name__)

CROSS_ENTROPY_IGNORE_IDX = -100


def chunked_cross_entropy(
    logits_chunks: list[torch.Tensor] | torch.Tensor,
    labels: torch.Tensor,
    ignore_index: int = CROSS_ENTROPY_IGNORE_IDX,
) -> torch.Tensor:
    """Mean cross-entropy over non-ignored tokens, upcasting one chunk at a time to fp32.

    Args:
        logits_chunks (list[torch.Tensor] | torch.Tensor): chunks ``[b, s_i, v]`` whose
            concatenation along dim 1 is ``[b, s, v]`` (a single tensor is one chunk).
        labels (torch.Tensor): ``[b, s]`` long, ``ignore_index`` where ignored.
        ignore_index (int): label value excluded from the loss. Default: -100.

    Returns:
        torch.Tensor: scalar fp32 loss (0 when every label is ignored).

    Raises:
        ValueError: when the chunk lengths do not add up to the label length.
    """
    if isinstance(logits_chunks, torch.Tensor):
        logits_chunks = [logits_chunks]
    total = sum(c.shape[1] for c in logits_chunks)
    if total != labels.shape[1]:
        raise ValueError(f"logits chunks cover {total} positions but labels have {labels.shape[1]}")
    label_chunks = labels.split([c.shape[1] for c in logits_chunks], dim=1)
    loss_sum = torch.zeros((), dtype=torch.float32, device=labels.device)
    for logits, lab in zip(logits_chunks, label_chunks):
        flat = logits.reshape(-1, logits.shape[-1]).float()  # [b * s_i, v]
        loss_sum = loss_sum + F.cross_entropy(flat, lab.reshape(-1), ignore_index=ignore_index, reduction="sum")
    count = (labels != ignore_index).sum().clamp(min=1)
    return loss_sum / count


class ChunkedCrossEntropyLoss(nn.Module):
    """Module form of :func:`chunked_cross_entropy`.

    Args:
        ignore_index (int): label value excluded from the loss. Default: -100.
    """

    def __init__(self, ignore_index: int = CROSS_ENTROPY_IGNORE_IDX) -> None:
        super().__init__()
        self.ignore_index = ignore_index

    def forward(self, logits: list[torch.Tensor] | torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """See :func:`chunked_cross_entropy`."""
        return chunked_cross_entropy(logits, labels, self.ignore_index)
