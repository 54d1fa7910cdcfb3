"""GRPO: group-normalised advantages, per-token log-probabilities of sampled completions, and the
clipped policy-ratio loss with a KL penalty to a reference model.

Notation: B prompts, G completions per prompt (a group), R = B * G completions laid out group by
group (prompt 0's G completions first), n completion positions (padded), k scored tokens, v
vocabulary, d embed dim.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

_MIN_CHUNK_ROWS = 256


def group_advantages(rewards: torch.Tensor, group_size: int, *, scale: bool = True, eps: float = 1e-4) -> torch.Tensor:
    """Each completion's reward relative to the other completions of its prompt.

    ``A_i = (r_i - mean(group)) / (std(group) + eps)``, with the unbiased standard deviation
    over the group's G rewards; ``scale=False`` keeps only the centring (the "Dr. GRPO"
    variant, which does not up-weight prompts whose rewards barely differ). A group whose
    rewards are all equal gets zero advantages: it carries no signal.

    Args:
        rewards (torch.Tensor): ``[R]`` total reward of each completion, group by group.
        group_size (int): G, completions per prompt, >= 2.
        scale (bool): divide by the group's standard deviation. Default: True.
        eps (float): added to the standard deviation. Default: 1e-4.

    Returns:
        torch.Tensor: ``[R]`` fp32 advantages.

    Raises:
        ValueError: when ``group_size < 2`` or R is not a multiple of it.
    """
    if group_size < 2:
        raise ValueError(f"group_size={group_size} must be >= 2: advantages compare completions of one prompt")
    if rewards.dim() != 1 or rewards.shape[0] % group_size:
        raise ValueError(f"rewards {list(rewards.shape)} must be [R] with R a multiple of group_size={group_size}")
    groups = rewards.float().reshape(-1, group_size)  # [B, G]
    centred = groups - groups.mean(dim=1, keepdim=True)
    if scale:
        centred = centred / (groups.std(dim=1, keepdim=True) + eps)
    return centred.reshape(-1)  # [R]


def token_log_probs(
    out: torch.Tensor,
    labels: torch.Tensor,
    *,
    project: Callable[[torch.Tensor], torch.Tensor] | None = None,
    num_chunks: int = 8,
) -> torch.Tensor:
    """The log-probability of each label under the model's output, one value per position.

    Rows of at least 256 positions at a time (``num_chunks`` chunks at most) are projected (when
    ``project`` is given), upcast to fp32 and normalised, so the ``[k, v]`` logits never exist
    at once. Call the model with ``output_index`` on the scored positions and ``output="hidden"``.

    Args:
        out (torch.Tensor): ``[1, k, v]`` logits, or ``[1, k, d]`` final normed hidden states when
            ``project`` is given (any ``[..., k, ·]`` with a leading size of 1 per row works).
        labels (torch.Tensor): ``[1, k]`` long, the token that follows each position.
        project (Callable[[torch.Tensor], torch.Tensor] | None): ``[k_i, d] -> [k_i, v]``, e.g.
            :meth:`TransformerDecoder.project`. Default None (``out`` holds logits).
        num_chunks (int): most row chunks, >= 1. Default 8.

    Returns:
        torch.Tensor: ``[k]`` fp32, ``log p(label_j | prefix)``.

    Raises:
        ValueError: when ``out`` and ``labels`` disagree on k or ``num_chunks < 1``.
    """
    if num_chunks < 1:
        raise ValueError(f"num_chunks={num_chunks} must be >= 1")
    flat_out = out.reshape(-1, out.shape[-1])  # [k, d] or [k, v]
    flat_labels = labels.reshape(-1)  # [k]
    if flat_out.shape[0] != flat_labels.shape[0]:
        raise ValueError(f"out has {flat_out.shape[0]} positions but labels {flat_labels.shape[0]}")
    k = flat_labels.shape[0]
    rows = max(_MIN_CHUNK_ROWS, -(-k // num_chunks))
    pieces = []
    for start in range(0, k, rows):
        chunk = flat_out[start : start + rows]
        logits = (project(chunk) if project is not None else chunk).float()  # [k_i, v]
        logp = F.log_softmax(logits, dim=-1)
        pieces.append(logp.gather(1, flat_labels[start : start + rows, None]).squeeze(1))
    return torch.cat(pieces) if pieces else flat_out.new_zeros(0, dtype=torch.float32)


@dataclass
class GRPOLossOutput:
    """What :class:`GRPOLoss` returns for R completions.

    Args:
        losses (torch.Tensor): ``[R]`` fp32, one loss per completion: its per-token losses
            averaged over its tokens (sum them and divide by the global number of completions).
        kl (torch.Tensor): ``[R]``, each completion's mean per-token KL estimate to the
            reference (zeros when ``beta == 0``; detached).
        clipped (torch.Tensor): ``[R]``, the share of its tokens whose ratio was clipped (detached).
        ratio (torch.Tensor): ``[R]``, its mean policy ratio (detached).
    """

    losses: torch.Tensor
    kl: torch.Tensor
    clipped: torch.Tensor
    ratio: torch.Tensor


class GRPOLoss(nn.Module):
    """Group relative policy optimisation loss (DeepSeekMath, Shao et al. 2024), per completion.

    For token t of completion i with advantage ``A_i``, ratio ``rho = exp(logp - logp_old)``
    and reference log-probability ``logp_ref``::

        loss_t = -min(rho * A_i, clip(rho, 1 - epsilon, 1 + epsilon_high) * A_i) + beta * kl_t
        kl_t   = exp(logp_ref - logp) - (logp_ref - logp) - 1

    (``kl_t`` is the non-negative, unbiased "k3" estimator of KL(policy || reference)), and
    ``loss_i`` is the mean of ``loss_t`` over the completion's tokens. With one optimisation
    pass per batch of samples ``logp_old`` is ``logp`` detached (pass None): the ratio is 1,
    the clipping inactive, and the gradient the plain policy gradient with advantages.

    Args:
        epsilon (float): lower clip range of the ratio, in (0, 1). Default: 0.2.
        epsilon_high (float | None): upper clip range; None = ``epsilon`` (DAPO raises it to
            ~0.28). Default: None.
        beta (float): weight of the KL penalty, >= 0; 0 needs no reference model. Default: 0.04.

    Raises:
        ValueError: on a clip range outside (0, 1) (upper: > 0) or a negative ``beta``.
    """

    def __init__(self, epsilon: float = 0.2, epsilon_high: float | None = None, beta: float = 0.04) -> None:
        super().__init__()
        if not 0.0 < epsilon < 1.0:
            raise ValueError(f"epsilon={epsilon} must be in (0, 1)")
        if epsilon_high is not None and epsilon_high <= 0.0:
            raise ValueError(f"epsilon_high={epsilon_high} must be > 0 (or None for epsilon)")
        if beta < 0.0:
            raise ValueError(f"beta={beta} must be >= 0")
        self.epsilon = epsilon
        self.epsilon_high = epsilon if epsilon_high is None else epsilon_high
        self.beta = beta

    @property
    def reference_free(self) -> bool:
        """bool: True when ``beta == 0``: the reference model's log-probabilities are not used."""
        return self.beta == 0.0

    def forward(
        self,
        log_probs: torch.Tensor,
        advantages: torch.Tensor,
        mask: torch.Tensor,
        old_log_probs: torch.Tensor | None = None,
        ref_log_probs: torch.Tensor | None = None,
    ) -> GRPOLossOutput:
        """Loss of R completions.

        Args:
            log_probs (torch.Tensor): ``[R, n]`` the policy's log-probability of each completion
                token (with gradient).
            advantages (torch.Tensor): ``[R]`` from :func:`group_advantages`.
            mask (torch.Tensor): ``[R, n]`` bool, True on the completion's tokens (its stop token
                included), False on padding.
            old_log_probs (torch.Tensor | None): ``[R, n]`` the sampling policy's, without
                gradient; None = ``log_probs`` detached. Default: None.
            ref_log_probs (torch.Tensor | None): ``[R, n]`` the reference model's; needed
                unless ``beta == 0``. Default: None.

        Returns:
            GRPOLossOutput: per-completion losses and statistics.

        Raises:
            ValueError: on mismatched shapes, a completion without tokens, or a missing reference.
        """
        if log_probs.shape != mask.shape or log_probs.dim() != 2:
            raise ValueError(f"log_probs {list(log_probs.shape)} and mask {list(mask.shape)} must both be [R, n]")
        if advantages.shape != log_probs.shape[:1]:
            raise ValueError(f"advantages {list(advantages.shape)} must be [R] = [{log_probs.shape[0]}]")
        if ref_log_probs is None and not self.reference_free:
            raise ValueError(f"beta={self.beta} > 0 needs ref_log_probs; pass them or set beta=0")
        counts = mask.sum(dim=1)  # [R]
        if bool((counts == 0).any()):
            raise ValueError(f"completions {(counts == 0).nonzero().flatten().tolist()} have no tokens in mask")
        # padding positions may hold anything: zero them before exp() so no inf or NaN reaches a gradient
        dtype = torch.promote_types(log_probs.dtype, torch.float32)  # at least fp32
        log_probs = torch.where(mask, log_probs.to(dtype), 0.0)
        old = log_probs.detach() if old_log_probs is None else torch.where(mask, old_log_probs.to(dtype), 0.0)
        ratio = torch.exp(log_probs - old)  # [R, n]
        adv = advantages.to(dtype)[:, None]  # [R, 1]
        clipped_ratio = ratio.clamp(1.0 - self.epsilon, 1.0 + self.epsilon_high)
        per_token = -torch.minimum(ratio * adv, clipped_ratio * adv)  # [R, n]
        kl = torch.zeros_like(per_token)
        if not self.reference_free:
            diff = torch.where(mask, ref_log_probs.to(dtype), 0.0) - log_probs
            kl = torch.exp(diff) - diff - 1.0
            per_token = per_token + self.beta * kl
        per_token = per_token.masked_fill(~mask, 0.0)
        losses = per_token.sum(dim=1) / counts
        with torch.no_grad():
            was_clipped = (ratio != clipped_ratio) & mask
            return GRPOLossOutput(
                losses=losses,
                kl=(kl.masked_fill(~mask, 0.0).sum(dim=1) / counts).detach(),
                clipped=was_clipped.float().sum(dim=1) / counts,
                ratio=(ratio.masked_fill(~mask, 0.0).sum(dim=1) / counts).detach(),
            )
