"""Preference-optimisation losses (DPO, IPO, SimPO) and the per-sequence log-probabilities they
take.

Notation: b preference pairs, N = 2b sequences (the b chosen ones first, then the b rejected
ones, as :func:`torchtune.data.dpo_collate_fn` lays them out), n scored token positions, v
vocabulary, d embed dim.

A loss gets the policy's :class:`SequenceLogProbs` and, unless it is reference free
(``reference_free = True``, as SimPO), the reference model's, and returns a
:class:`PreferenceLossOutput`: one loss per pair and the implicit rewards of both answers.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from torchtune.modules._loss import CROSS_ENTROPY_IGNORE_IDX

_MIN_CHUNK_ROWS = 256


@dataclass
class SequenceLogProbs:
    """Summed log-probabilities of the chosen and rejected answers of b pairs.

    Args:
        chosen (torch.Tensor): ``[b]`` fp32, ``sum_t log p(y_t | x, y_<t)`` over the chosen
            answer's scored tokens.
        rejected (torch.Tensor): ``[b]`` fp32, the same for the rejected answer.
        chosen_tokens (torch.Tensor): ``[b]``, the number of scored tokens of each chosen answer.
        rejected_tokens (torch.Tensor): ``[b]``, the same for the rejected answers.
    """

    chosen: torch.Tensor
    rejected: torch.Tensor
    chosen_tokens: torch.Tensor
    rejected_tokens: torch.Tensor

    @classmethod
    def from_sequences(cls, sums: torch.Tensor, counts: torch.Tensor) -> "SequenceLogProbs":
        """Split per-sequence values laid out chosen first, then rejected.

        Args:
            sums (torch.Tensor): ``[2b]`` summed log-probabilities (from :func:`sequence_log_probs`).
            counts (torch.Tensor): ``[2b]`` scored tokens per sequence.

        Returns:
            SequenceLogProbs: rows ``[:b]`` as chosen, ``[b:]`` as rejected.

        Raises:
            ValueError: when the sequences do not come in pairs.
        """
        if sums.dim() != 1 or sums.shape != counts.shape or sums.shape[0] % 2:
            raise ValueError(
                f"sums {list(sums.shape)} and counts {list(counts.shape)} must both be [2b]: b chosen then b rejected"
            )
        b = sums.shape[0] // 2
        return cls(chosen=sums[:b], rejected=sums[b:], chosen_tokens=counts[:b], rejected_tokens=counts[b:])

    def mean_chosen(self) -> torch.Tensor:
        """torch.Tensor: ``[b]``, the chosen answers' log-probabilities per token."""
        return self.chosen / self.chosen_tokens.clamp(min=1)

    def mean_rejected(self) -> torch.Tensor:
        """torch.Tensor: ``[b]``, the rejected answers' log-probabilities per token."""
        return self.rejected / self.rejected_tokens.clamp(min=1)


@dataclass
class PreferenceLossOutput:
    """What a preference loss returns for b pairs.

    Args:
        losses (torch.Tensor): ``[b]`` fp32, one loss per pair (average them, or sum and divide
            by the global number of pairs under gradient accumulation).
        chosen_rewards (torch.Tensor): ``[b]``, the implicit reward of each chosen answer
            (detached).
        rejected_rewards (torch.Tensor): ``[b]``, the same for the rejected answers.
    """

    losses: torch.Tensor
    chosen_rewards: torch.Tensor
    rejected_rewards: torch.Tensor


def sequence_log_probs(
    out: torch.Tensor,
    labels: torch.Tensor,
    sequence_ids: torch.Tensor,
    num_sequences: int,
    *,
    project: Callable[[torch.Tensor], torch.Tensor] | None = None,
    num_chunks: int = 8,
    ignore_index: int = CROSS_ENTROPY_IGNORE_IDX,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sequence sums of the labels' log-probabilities, and how many labels each sequence has.

    Rows of at least 256 positions at a time (``num_chunks`` chunks at most) are projected (when
    ``project`` is given), upcast to fp32 and normalised, so the full ``[n, v]`` logits of the
    batch never exist at once. Call the model with ``output_index`` on the labelled positions
    and ``output="hidden"`` to skip the output projection elsewhere.

    Args:
        out (torch.Tensor): ``[b, s, v]`` logits, or ``[b, s, d]`` final normed hidden states
            when ``project`` is given (``[1, n, ...]`` from a model called with ``output_index``).
        labels (torch.Tensor): ``[b, s]`` long, already shifted, ``ignore_index`` where not scored.
        sequence_ids (torch.Tensor): ``[b, s]`` long, the sequence each position belongs to, in
            ``[0, num_sequences)``.
        num_sequences (int): N, the number of sequences.
        project (Callable[[torch.Tensor], torch.Tensor] | None): ``[n_i, d] -> [n_i, v]``, e.g.
            :meth:`TransformerDecoder.project`. Default None (``out`` holds logits).
        num_chunks (int): most row chunks, >= 1. Default 8.
        ignore_index (int): the label of unscored positions. Default -100.

    Returns:
        tuple[torch.Tensor, torch.Tensor]: ``sums [N]`` fp32 and ``counts [N]`` long.

    Raises:
        ValueError: on mismatched shapes, ``num_chunks < 1`` or a sequence id out of range.
    """
    if num_chunks < 1:
        raise ValueError(f"num_chunks={num_chunks} must be >= 1")
    if out.dim() != 3 or out.shape[:2] != labels.shape or labels.shape != sequence_ids.shape:
        raise ValueError(
            f"out {list(out.shape)} must be [b, s, ...] with [b, s] = labels {list(labels.shape)} "
            f"= sequence_ids {list(sequence_ids.shape)}"
        )
    flat_labels = labels.reshape(-1)  # [b * s]
    keep = torch.nonzero(flat_labels != ignore_index).squeeze(1)  # [n]
    seq = sequence_ids.reshape(-1).index_select(0, keep)  # [n]
    if seq.numel() and (int(seq.min()) < 0 or int(seq.max()) >= num_sequences):
        raise ValueError(f"sequence_ids must lie in [0, num_sequences={num_sequences}), got {seq.min()}..{seq.max()}")
    rows = out.reshape(-1, out.shape[-1]).index_select(0, keep)  # [n, d or v]
    targets = flat_labels.index_select(0, keep)  # [n]
    size = max(_MIN_CHUNK_ROWS, -(-keep.numel() // num_chunks))
    token_lp = []
    for h, y in zip(rows.split(size), targets.split(size)):
        logits = (project(h) if project is not None else h).float()  # [n_i, v]
        token_lp.append(logits.gather(1, y[:, None]).squeeze(1) - torch.logsumexp(logits, dim=-1))  # [n_i]
    sums = torch.zeros(num_sequences, dtype=torch.float32, device=out.device)
    if token_lp:
        sums = sums.index_add(0, seq, torch.cat(token_lp))  # [N]
    else:  # no scored position: keep the graph connected so that backward() still works
        sums = sums + out.sum() * 0.0
    counts = torch.bincount(seq, minlength=num_sequences)  # [N]
    return sums, counts


def _rewards(beta: float, policy: SequenceLogProbs, reference: SequenceLogProbs) -> tuple[torch.Tensor, torch.Tensor]:
    chosen = beta * (policy.chosen - reference.chosen).detach()  # [b]
    rejected = beta * (policy.rejected - reference.rejected).detach()  # [b]
    return chosen, rejected


def _need_reference(name: str, reference: SequenceLogProbs | None) -> SequenceLogProbs:
    if reference is None:
        raise ValueError(f"{name} compares against a reference model: pass the reference's SequenceLogProbs")
    return reference


class DPOLoss(nn.Module):
    """Direct Preference Optimisation (Rafailov et al., 2023), the sigmoid loss.

    With ``h = (log pi(y_w) - log ref(y_w)) - (log pi(y_l) - log ref(y_l))`` over whole answers,
    ``loss = -(1 - eps) * log sigmoid(beta * h) - eps * log sigmoid(-beta * h)``, where ``eps``
    is the label smoothing of conservative DPO (cDPO; 0 gives plain DPO). The rewards are
    ``beta * (log pi(y) - log ref(y))``.

    Args:
        beta (float): the inverse temperature, > 0. Default 0.1.
        label_smoothing (float): eps, the assumed rate of flipped labels, in [0, 0.5). Default 0.0.

    Raises:
        ValueError: when ``beta`` or ``label_smoothing`` is out of range.
    """

    reference_free = False

    def __init__(self, beta: float = 0.1, label_smoothing: float = 0.0) -> None:
        super().__init__()
        if not beta > 0:
            raise ValueError(f"beta={beta} must be > 0")
        if not 0.0 <= label_smoothing < 0.5:
            raise ValueError(f"label_smoothing={label_smoothing} must lie in [0, 0.5)")
        self.beta, self.label_smoothing = beta, label_smoothing

    def forward(self, policy: SequenceLogProbs, reference: SequenceLogProbs | None = None) -> PreferenceLossOutput:
        """Args:
            policy (SequenceLogProbs): the trained model's log-probabilities.
            reference (SequenceLogProbs | None): the reference model's (required).

        Returns:
            PreferenceLossOutput: losses ``[b]`` and rewards ``[b]``.

        Raises:
            ValueError: without ``reference``.
        """
        reference = _need_reference("DPOLoss", reference)
        h = (policy.chosen - reference.chosen) - (policy.rejected - reference.rejected)  # [b]
        eps = self.label_smoothing
        losses = -(1 - eps) * F.logsigmoid(self.beta * h) - eps * F.logsigmoid(-self.beta * h)
        return PreferenceLossOutput(losses, *_rewards(self.beta, policy, reference))


class IPOLoss(nn.Module):
    """Identity Preference Optimisation (Azar et al., 2023).

    ``loss = (h - 1 / (2 * tau))^2`` with ``h`` the difference of the chosen and rejected
    log-ratios against the reference. As in TRL, each answer's log-probability is averaged
    over its tokens first (``average_log_probs=True``), which keeps ``h`` comparable across
    answer lengths; ``False`` uses whole-answer sums as the paper writes it. The rewards are
    ``tau * (log pi(y) - log ref(y))`` on whole answers.

    Args:
        tau (float): the regularisation strength, > 0 (TRL calls it beta). Default 0.1.
        average_log_probs (bool): average over tokens before the difference. Default True.

    Raises:
        ValueError: when ``tau <= 0``.
    """

    reference_free = False

    def __init__(self, tau: float = 0.1, average_log_probs: bool = True) -> None:
        super().__init__()
        if not tau > 0:
            raise ValueError(f"tau={tau} must be > 0")
        self.tau, self.average_log_probs = tau, average_log_probs

    def forward(self, policy: SequenceLogProbs, reference: SequenceLogProbs | None = None) -> PreferenceLossOutput:
        """Args:
            policy (SequenceLogProbs): the trained model's log-probabilities.
            reference (SequenceLogProbs | None): the reference model's (required).

        Returns:
            PreferenceLossOutput: losses ``[b]`` and rewards ``[b]``.

        Raises:
            ValueError: without ``reference``.
        """
        reference = _need_reference("IPOLoss", reference)
        if self.average_log_probs:
            h = (policy.mean_chosen() - reference.mean_chosen()) - (policy.mean_rejected() - reference.mean_rejected())
        else:
            h = (policy.chosen - reference.chosen) - (policy.rejected - reference.rejected)  # [b]
        losses = (h - 1.0 / (2.0 * self.tau)) ** 2
        return PreferenceLossOutput(losses, *_rewards(self.tau, policy, reference))


class SimPOLoss(nn.Module):
    """Simple Preference Optimisation (Meng et al., 2024): reference free.

    ``loss = -log sigmoid(beta * (mean log pi(y_w) - mean log pi(y_l)) - gamma)``, the means over
    each answer's tokens; the rewards are ``beta * mean log pi(y)``. No reference model runs.

    Args:
        beta (float): the reward scale, > 0. Default 2.0.
        gamma (float): the target reward margin, >= 0. Default 0.5.

    Raises:
        ValueError: when ``beta <= 0`` or ``gamma < 0``.
    """

    reference_free = True

    def __init__(self, beta: float = 2.0, gamma: float = 0.5) -> None:
        super().__init__()
        if not beta > 0:
            raise ValueError(f"beta={beta} must be > 0")
        if not gamma >= 0:
            raise ValueError(f"gamma={gamma} must be >= 0")
        self.beta, self.gamma = beta, gamma

    def forward(self, policy: SequenceLogProbs, reference: SequenceLogProbs | None = None) -> PreferenceLossOutput:
        """Args:
            policy (SequenceLogProbs): the trained model's log-probabilities.
            reference (SequenceLogProbs | None): ignored (SimPO has no reference).

        Returns:
            PreferenceLossOutput: losses ``[b]`` and rewards ``[b]``.
        """
        chosen, rejected = self.beta * policy.mean_chosen(), self.beta * policy.mean_rejected()  # [b]
        losses = -F.logsigmoid(chosen - rejected - self.gamma)
        return PreferenceLossOutput(losses, chosen.detach(), rejected.detach())


def reward_sums(out: PreferenceLossOutput) -> torch.Tensor:
    """Sums that :func:`reward_metrics` turns into the logged rewards, accumulated over
    micro-batches (and all-reduced over processes) by adding them.

    Args:
        out (PreferenceLossOutput): a loss's output for b pairs.

    Returns:
        torch.Tensor: fp32 ``[4]``: the sums of the chosen rewards, of the rejected rewards, the
        number of pairs whose chosen reward is the higher, and b.
    """
    chosen, rejected = out.chosen_rewards.float(), out.rejected_rewards.float()  # [b]
    return torch.stack([chosen.sum(), rejected.sum(), (chosen > rejected).float().sum(),
                        torch.tensor(float(chosen.numel()), device=chosen.device)])


def reward_metrics(sums: torch.Tensor) -> dict[str, float]:
    """The logged preference metrics from :func:`reward_sums` totals.

    Args:
        sums (torch.Tensor): ``[4]`` as :func:`reward_sums` returns (summed over batches).

    Returns:
        dict[str, float]: ``rewards/chosen`` and ``rewards/rejected`` (mean rewards),
        ``rewards/margin`` (their difference) and ``rewards/accuracy`` (the share of pairs whose
        chosen answer has the higher reward).
    """
    chosen, rejected, correct, pairs = (float(x) for x in sums.tolist())
    pairs = max(pairs, 1.0)
    return {"rewards/chosen": chosen / pairs, "rewards/rejected": rejected / pairs,
            "rewards/margin": (chosen - rejected) / pairs, "rewards/accuracy": correct / pairs}
