"""Knowledge distillation: a student's cross-entropy mixed with its divergence from a frozen
teacher's next-token distribution, computed a chunk of positions at a time.

Notation: n scored (labelled) token positions, d the student's embed dim, d_t the teacher's, v
the vocabulary that both models share.

The recipes call the student and the teacher with ``output_index`` on the labelled positions and
``output="hidden"``, so neither model runs its output projection anywhere else (as the SFT loss
:func:`~torchtune.modules.linear_cross_entropy` does). :func:`distillation_loss` then projects
both hidden states a chunk of rows at a time; under autograd each chunk is recomputed in the
backward pass (activation checkpointing), so only one chunk's ``[n_i, v]`` logits of either model
exist at once, never the whole batch's.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from torchtune.modules._loss import CROSS_ENTROPY_IGNORE_IDX, _chunk_rows

# "forward": KL(teacher || student), the classic distillation loss (mean seeking);
# "reverse": KL(student || teacher) (mode seeking); "js": the Jensen-Shannon divergence.
DIVERGENCES = ("forward", "reverse", "js")


@dataclass
class DistillationLossOutput:
    """What :func:`distillation_loss` returns: means over the scored positions.

    Args:
        loss (torch.Tensor): scalar fp32, ``(1 - kd_ratio) * ce + kd_ratio * kd``.
        ce (torch.Tensor): scalar fp32, the student's cross-entropy on the labels (detached).
        kd (torch.Tensor): scalar fp32, the divergence from the teacher (detached).
        num_tokens (int): n, the number of scored positions the means are over.
    """

    loss: torch.Tensor
    ce: torch.Tensor
    kd: torch.Tensor
    num_tokens: int


def token_divergence(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, divergence: str = "forward", temperature: float = 1.0
) -> torch.Tensor:
    """Per-position divergence between the teacher's and the student's next-token distributions.

    Both distributions are ``softmax(logits / temperature)`` in fp32; the result is multiplied by
    ``temperature ** 2`` so that its gradient keeps the same scale at any temperature (Hinton et
    al., 2015).

    Args:
        student_logits (torch.Tensor): ``[..., v]``.
        teacher_logits (torch.Tensor): ``[..., v]``, same shape.
        divergence (str): ``"forward"`` KL(teacher || student), ``"reverse"`` KL(student ||
            teacher) or ``"js"`` (Jensen-Shannon, the mean KL of both from their average).
            Default ``"forward"``.
        temperature (float): softmax temperature, > 0. Default 1.0.

    Returns:
        torch.Tensor: ``[...]`` fp32, one divergence per position.

    Raises:
        ValueError: on an unknown ``divergence``, ``temperature <= 0`` or logits of different
            vocabulary sizes.
    """
    if divergence not in DIVERGENCES:
        raise ValueError(f"divergence={divergence!r} must be one of {list(DIVERGENCES)}")
    if not temperature > 0:
        raise ValueError(f"temperature={temperature} must be > 0")
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student logits {list(student_logits.shape)} and teacher logits {list(teacher_logits.shape)} differ: "
            f"distillation compares the two distributions over one shared vocabulary (student v="
            f"{student_logits.shape[-1]}, teacher v={teacher_logits.shape[-1]})"
        )
    log_s = F.log_softmax(student_logits.float() / temperature, dim=-1)  # [..., v]
    log_t = F.log_softmax(teacher_logits.float() / temperature, dim=-1)  # [..., v]
    if divergence == "forward":
        div = (log_t.exp() * (log_t - log_s)).sum(-1)
    elif divergence == "reverse":
        div = (log_s.exp() * (log_s - log_t)).sum(-1)
    else:
        log_m = torch.logaddexp(log_s, log_t) - math.log(2.0)  # [..., v], log of the average distribution
        div = 0.5 * ((log_t.exp() * (log_t - log_m)).sum(-1) + (log_s.exp() * (log_s - log_m)).sum(-1))
    return div * temperature**2


def distillation_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    labels: torch.Tensor,
    *,
    student_project: Callable[[torch.Tensor], torch.Tensor] | None = None,
    teacher_project: Callable[[torch.Tensor], torch.Tensor] | None = None,
    kd_ratio: float = 0.5,
    divergence: str = "forward",
    temperature: float = 1.0,
    num_chunks: int = 8,
    ignore_index: int = CROSS_ENTROPY_IGNORE_IDX,
    recompute: bool = True,
) -> DistillationLossOutput:
    """Mixed cross-entropy and distillation loss over the labelled positions, chunk by chunk.

    Equal to ``(1 - kd_ratio) * cross_entropy(s, labels) + kd_ratio * mean(token_divergence(s,
    t))`` over the positions whose label is not ``ignore_index``, with ``s`` and ``t`` the
    student's and the teacher's full logits. Rows of at least 256 positions at a time
    (``num_chunks`` chunks at most) are projected (when a ``*_project`` is given) and upcast to
    fp32. The teacher runs without gradients. When gradients are recorded and ``recompute`` is
    set, each chunk is recomputed in the backward pass, so only one chunk of either model's logits
    is alive at once; without ``recompute`` every chunk's softmax outputs (student and teacher)
    stay alive until backward, which saves the second projection of each chunk (faster, about as
    much memory as the full logits).

    Args:
        student (torch.Tensor): ``[b, s, v]`` logits, or ``[b, s, d]`` final normed hidden states
            when ``student_project`` is given (``[1, n, ...]`` from a model called with
            ``output_index``).
        teacher (torch.Tensor): the teacher's ``[b, s, v]`` logits, or ``[b, s, d_t]`` hidden
            states when ``teacher_project`` is given; the same positions as ``student``.
        labels (torch.Tensor): ``[b, s]`` long, already shifted, ``ignore_index`` where not scored.
        student_project (Callable[[torch.Tensor], torch.Tensor] | None): ``[n_i, d] -> [n_i, v]``,
            e.g. the student's :meth:`TransformerDecoder.project`. Default None (logits given).
        teacher_project (Callable[[torch.Tensor], torch.Tensor] | None): ``[n_i, d_t] -> [n_i, v]``
            for the teacher. Default None (logits given).
        kd_ratio (float): weight of the divergence, in [0, 1]; the cross-entropy gets the rest.
            Default 0.5.
        divergence (str): see :func:`token_divergence`. Default ``"forward"``.
        temperature (float): see :func:`token_divergence`; the cross-entropy always uses
            temperature 1. Default 1.0.
        num_chunks (int): most row chunks, >= 1. Default 8.
        ignore_index (int): the label of unscored positions. Default -100.
        recompute (bool): recompute each chunk in backward instead of keeping its logits.
            Default True.

    Returns:
        DistillationLossOutput: the mixed loss (with gradients) and its two parts (0 with no
        scored position).

    Raises:
        ValueError: on mismatched shapes, a teacher vocabulary other than the student's, or an
            argument out of range.
    """
    if not 0.0 <= kd_ratio <= 1.0:
        raise ValueError(f"kd_ratio={kd_ratio} must lie in [0, 1]")
    if num_chunks < 1:
        raise ValueError(f"num_chunks={num_chunks} must be >= 1")
    if divergence not in DIVERGENCES:
        raise ValueError(f"divergence={divergence!r} must be one of {list(DIVERGENCES)}")
    if not temperature > 0:
        raise ValueError(f"temperature={temperature} must be > 0")
    if student.dim() != 3 or teacher.dim() != 3 or student.shape[:2] != labels.shape or teacher.shape[:2] != labels.shape:
        raise ValueError(
            f"student {list(student.shape)} and teacher {list(teacher.shape)} must be [b, s, ...] with "
            f"[b, s] = labels {list(labels.shape)}"
        )
    flat_labels = labels.reshape(-1)  # [b * s]
    keep = torch.nonzero(flat_labels != ignore_index).squeeze(1)  # [n]
    rows = student.reshape(-1, student.shape[-1]).index_select(0, keep)  # [n, d or v]
    teacher_rows = teacher.reshape(-1, teacher.shape[-1]).index_select(0, keep).detach()  # [n, d_t or v]
    targets = flat_labels.index_select(0, keep)  # [n]

    def chunk_sums(h: torch.Tensor, h_t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = (student_project(h) if student_project is not None else h).float()  # [n_i, v]
        with torch.no_grad():
            t_logits = (teacher_project(h_t) if teacher_project is not None else h_t).float()  # [n_i, v]
        if logits.shape[-1] != t_logits.shape[-1]:
            raise ValueError(f"the teacher's vocabulary (v={t_logits.shape[-1]}) differs from the student's "
                             f"(v={logits.shape[-1]}): distillation needs one shared tokenizer and vocabulary")
        ce = F.cross_entropy(logits, y, reduction="sum")
        kd = token_divergence(logits, t_logits, divergence, temperature).sum()
        return torch.stack([ce, kd])  # [2]

    size = _chunk_rows(keep.numel(), num_chunks)
    recompute = recompute and torch.is_grad_enabled() and rows.requires_grad
    sums = torch.zeros(2, dtype=torch.float32, device=student.device)
    for h, h_t, y in zip(rows.split(size), teacher_rows.split(size), targets.split(size)):
        if recompute:  # keep only the chunk's inputs; its logits are rebuilt in backward
            sums = sums + checkpoint(chunk_sums, h, h_t, y, use_reentrant=False)
        else:
            sums = sums + chunk_sums(h, h_t, y)
    if keep.numel() == 0:  # keep the graph connected so that backward() still works
        sums = sums + student.sum() * 0.0
    means = sums / max(keep.numel(), 1)  # [2]
    loss = (1.0 - kd_ratio) * means[0] + kd_ratio * means[1]
    return DistillationLossOutput(loss=loss, ce=means[0].detach(), kd=means[1].detach(), num_tokens=keep.numel())


class KDLoss(nn.Module):
    """Module form of :func:`distillation_loss` for the distillation recipes.

    ``loss_fn(student, teacher, labels, student_project=..., teacher_project=...)`` with the
    models' outputs at the labelled positions; see :func:`distillation_loss` for the shapes.

    Args:
        kd_ratio (float): weight of the divergence from the teacher, in [0, 1]; the
            cross-entropy on the labels gets ``1 - kd_ratio``. Default 0.5.
        divergence (str): ``"forward"`` KL(teacher || student), ``"reverse"`` KL(student ||
            teacher) or ``"js"`` (Jensen-Shannon). Default ``"forward"``.
        temperature (float): softmax temperature of the divergence, > 0. Default 1.0.
        num_output_chunks (int): most row chunks of the labelled positions (none under 256
            rows), >= 1. Default 8.
        ignore_index (int): label value excluded from the loss. Default -100.
        recompute (bool): recompute each chunk's logits in backward, so that one chunk of them is
            alive at a time; False keeps them (faster, about the memory of the full logits).
            Default True.

    Raises:
        ValueError: when an argument is out of range.
    """

    def __init__(self, kd_ratio: float = 0.5, divergence: str = "forward", temperature: float = 1.0,
                 num_output_chunks: int = 8, ignore_index: int = CROSS_ENTROPY_IGNORE_IDX,
                 recompute: bool = True) -> None:
        super().__init__()
        if not 0.0 <= kd_ratio <= 1.0:
            raise ValueError(f"kd_ratio={kd_ratio} must lie in [0, 1]")
        if divergence not in DIVERGENCES:
            raise ValueError(f"divergence={divergence!r} must be one of {list(DIVERGENCES)}")
        if not temperature > 0:
            raise ValueError(f"temperature={temperature} must be > 0")
        if num_output_chunks < 1:
            raise ValueError(f"num_output_chunks={num_output_chunks} must be >= 1")
        self.kd_ratio, self.divergence, self.temperature = kd_ratio, divergence, temperature
        self.num_output_chunks, self.ignore_index, self.recompute = num_output_chunks, ignore_index, recompute

    def forward(
        self,
        student: torch.Tensor,
        teacher: torch.Tensor,
        labels: torch.Tensor,
        *,
        student_project: Callable[[torch.Tensor], torch.Tensor] | None = None,
        teacher_project: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> DistillationLossOutput:
        """See :func:`distillation_loss`."""
        return distillation_loss(
            student, teacher, labels, student_project=student_project, teacher_project=teacher_project,
            kd_ratio=self.kd_ratio, divergence=self.divergence, temperature=self.temperature,
            num_chunks=self.num_output_chunks, ignore_index=self.ignore_index, recompute=self.recompute,
        )
