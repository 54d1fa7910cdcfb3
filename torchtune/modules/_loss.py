"""Cross-entropy losses: over logits that arrive in chunks along the sequence, and over
hidden states projected only where a label exists."""

import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

CROSS_ENTROPY_IGNORE_IDX = -100
_MIN_CHUNK_ROWS = 256


def _chunk_rows(num_rows: int, num_chunks: int) -> int:
    """Rows per chunk when ``num_rows`` selected positions are projected in at most ``num_chunks``
    chunks: never under ``_MIN_CHUNK_ROWS``, since each chunk's backward is a pass over the whole
    ``[v, d]`` weight gradient, which a thin chunk makes memory bound for little memory saved."""
    return max(_MIN_CHUNK_ROWS, -(-num_rows // num_chunks))


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


def bind_loss(loss_fn: Callable[..., torch.Tensor], model: nn.Module) -> str:
    """Tell a loss which model it scores and return what the model must output for it.

    A loss declares its input with a ``model_output`` attribute: ``"logits"`` (the default for any
    loss without one, e.g. ``torch.nn.CrossEntropyLoss``) or ``"hidden"``, in which case the loss
    gets the model's :meth:`~torchtune.modules.TransformerDecoder.project` through ``bind(model)``.
    Call the model with ``output=bind_loss(loss_fn, model)``.

    Args:
        loss_fn (Callable[..., torch.Tensor]): the loss.
        model (nn.Module): the decoder (or a wrapper whose ``.module`` is one).

    Returns:
        str: ``"logits"`` or ``"hidden"``.

    Raises:
        ValueError: on an unknown ``model_output``, or ``"hidden"`` for a model with no ``project``.
    """
    wanted = getattr(loss_fn, "model_output", "logits")
    if wanted not in ("logits", "hidden"):
        raise ValueError(f"{type(loss_fn).__name__}.model_output={wanted!r} must be 'logits' or 'hidden'")
    if wanted == "hidden":
        loss_fn.bind(model)
    return wanted


class ChunkedCrossEntropyLoss(nn.Module):
    """Module form of :func:`chunked_cross_entropy`.

    Args:
        ignore_index (int): label value excluded from the loss. Default: -100.
    """

    model_output = "logits"

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
    size = _chunk_rows(keep.numel(), num_chunks)
    for h, y in zip(rows.split(size), targets.split(size)):
        logits = project(h).float()  # [n_i, v]
        loss_sum = loss_sum + F.cross_entropy(logits, y, reduction="sum")
    if keep.numel() == 0:  # keep the graph connected so that backward() still works
        loss_sum = loss_sum + hidden.sum() * 0.0
    return loss_sum / max(keep.numel(), 1)


class LinearCrossEntropyLoss(nn.Module):
    """Module form of :func:`linear_cross_entropy` that uses the model's output projection.

    Its input is the model's final normed hidden states (``model_output = "hidden"``): call
    ``output = bind_loss(loss_fn, model)`` once, then ``loss_fn(model(tokens, output=output),
    labels)`` projects only the labelled positions. The loss equals
    :class:`ChunkedCrossEntropyLoss` on the full logits.

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

    model_output = "hidden"

    def bind(self, model: nn.Module) -> None:
        """Use ``model``'s output projection (:meth:`TransformerDecoder.project`) in the loss.

        Args:
            model (nn.Module): a :class:`~torchtune.modules.TransformerDecoder` (or a wrapper
                whose ``.module`` is one).

        Raises:
            ValueError: when the model has no ``project``.
        """
        decoder = getattr(model, "module", model)
        if not callable(getattr(decoder, "project", None)):
            raise ValueError(f"{type(decoder).__name__} has no project() for LinearCrossEntropyLoss to use")
        self._project = decoder.project

    def set_model_output(self, model: nn.Module) -> None:
        """Deprecated: use :func:`bind_loss` and call the model with ``output="hidden"``. Binds the
        projection and makes the model return hidden states by default."""
        warnings.warn("LinearCrossEntropyLoss.set_model_output is deprecated; use torchtune.modules.bind_loss "
                      "and call the model with output='hidden'", DeprecationWarning, stacklevel=2)
        self.bind(model)
        getattr(model, "module", model).set_skip_output_projection(True)

    def forward(self, hidden: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """See :func:`linear_cross_entropy`.

        Raises:
            RuntimeError: when :func:`bind_loss` was not called.
        """
        if self._project is None:
            raise RuntimeError("LinearCrossEntropyLoss: call torchtune.modules.bind_loss(loss_fn, model) before the loss")
        return linear_cross_entropy(hidden, labels, self._project, self.num_output_chunks, self.ignore_index)
