"""Cross-entropy losses: over logits that arrive in chunks along the sequence, and over
hidden states projected only where a label exists."""

import logging
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

logger = logging.getLogger(__name__)

CROSS_ENTROPY_IGNORE_IDX = -100
_MIN_CHUNK_ROWS = 256


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


def linear_cross_entropy(
    hidden: torch.Tensor,
    labels: torch.Tensor,
    project: Callable[[torch.Tensor], torch.Tensor],
    num_chunks: int = 8,
    ignore_index: int = CROSS_ENTROPY_IGNORE_IDX,
) -> torch.Tensor:
    """Mean cross-entropy that projects only the positions with a label.

    Equal to ``cross_entropy(project(hidden), labels)`` over the non-ignored positions, but
    the output projection and the softmax run on those positions alone (for instruction data
    most positions are prompt or padding), a chunk of ``max(256, ceil(n / num_chunks))`` rows
    at a time, each upcast to fp32.

    Args:
        hidden (torch.Tensor): final normed hidden states ``[b, s, d]`` (or ``[1, n, d]`` of
            selected positions, from a model called with ``output_index``).
        labels (torch.Tensor): ``[b, s]`` long, ``ignore_index`` where ignored.
        project (Callable[[torch.Tensor], torch.Tensor]): ``[n, d] -> [n, v]`` logits, e.g.
            :meth:`TransformerDecoder.project`.
        num_chunks (int): most row chunks of the selected positions, >= 1. Default: 8.
        ignore_index (int): label value excluded from the loss. Default: -100.

    Returns:
        torch.Tensor: scalar fp32 loss (0 when every label is ignored).

    Raises:
        ValueError: when ``hidden`` and ``labels`` disagree on ``[b, s]`` or ``num_chunks < 1``.
    """
    if num_chunks < 1:
        raise ValueError(f"num_chunks={num_chunks} must be >= 1")
    if hidden.dim() != 3 or hidden.shape[:2] != labels.shape:
        raise ValueError(f"hidden {list(hidden.shape)} must be [b, s, d] with [b, s] = labels {list(labels.shape)}")
    flat_labels = labels.reshape(-1)  # [b * s]
    keep = torch.nonzero(flat_labels != ignore_index).squeeze(1)  # [n]
    rows = hidden.reshape(-1, hidden.shape[-1]).index_select(0, keep)  # [n, d]
    targets = flat_labels.index_select(0, keep)  # [n]
    loss_sum = torch.zeros((), dtype=torch.float32, device=hidden.device)
    # no chunk under _MIN_CHUNK_ROWS rows: each chunk's backward is a pass over the whole [v, d]
    # weight gradient, which a thin chunk makes memory bound for little memory saved
    size = max(_MIN_CHUNK_ROWS, -(-keep.numel() // num_chunks))
    for h, y in zip(rows.split(size), targets.split(size)):
        logits = project(h).float()  # [n_i, v]
        loss_sum = loss_sum + F.cross_entropy(logits, y, reduction="sum")
    if keep.numel() == 0:  # keep the graph connected so that backward() still works
        loss_sum = loss_sum + hidden.sum() * 0.0
    return loss_sum / max(keep.numel(), 1)


class LinearCrossEntropyLoss(nn.Module):
    """Module form of :func:`linear_cross_entropy` that owns the model's output projection.

    Call :meth:`set_model_output` once with the model: the model then returns its final normed
    hidden states ``[b, s, d]`` instead of logits, and ``loss_fn(hidden, labels)`` projects
    only the labelled positions. The loss equals :class:`ChunkedCrossEntropyLoss` on the full
    logits.

    Args:
        num_output_chunks (int): most row chunks of the selected positions (none under 256 rows), >= 1. Default: 8.
        ignore_index (int): label value excluded from the loss. Default: -100.

    Raises:
        ValueError: when ``num_output_chunks < 1``.
    """

    def __init__(self, num_output_chunks: int = 8, ignore_index: int = CROSS_ENTROPY_IGNORE_IDX) -> None:
        super().__init__()
        if num_output_chunks < 1:
            raise ValueError(f"num_output_chunks={num_output_chunks} must be >= 1")
        self.num_output_chunks = num_output_chunks
        self.ignore_index = ignore_index
        self._project: Callable[[torch.Tensor], torch.Tensor] | None = None

    def set_model_output(self, model: nn.Module) -> None:
        """Make ``model`` return hidden states and use its output projection in the loss.

        Args:
            model (nn.Module): a :class:`~torchtune.modules.TransformerDecoder` (or a wrapper
                whose ``.module`` is one).

        Raises:
            ValueError: when the model has no ``set_skip_output_projection`` / ``project``.
        """
        decoder = getattr(model, "module", model)
        if not hasattr(decoder, "set_skip_output_projection") or not hasattr(decoder, "project"):
            raise ValueError(f"{type(decoder).__name__} has no set_skip_output_projection()/project()")
        decoder.set_skip_output_projection(True)
        self._project = decoder.project

    def forward(self, hidden: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """See :func:`linear_cross_entropy`.

        Raises:
            RuntimeError: when :meth:`set_model_output` was not called.
        """
        if self._project is None:
            raise RuntimeError("LinearCrossEntropyLoss: call set_model_output(model) before the loss")
        return linear_cross_entropy(hidden, labels, self._project, self.num_output_chunks, self.ignore_index)
