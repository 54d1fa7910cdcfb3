"""Run by hand: our DPO, IPO and SimPO losses and gradients against TRL's on the same log-probs.

TRL is not a test dependency (it needs ``datasets`` and ``pandas``, which the test lock does not
hold), so the unit tests (tests/torchtune/modules/test_preference_loss.py) compare against the
published formulas re-derived in float64. This script closes the loop against TRL itself, in a
scratch venv::

    python -m venv /tmp/trl && /tmp/trl/bin/pip install torch==2.13.0 trl==1.16.0
    /tmp/trl/bin/python tools/reference_checks/trl_preference_losses.py

It calls TRL's own loss code: ``DPOTrainer._compute_loss`` (loss types ``sigmoid`` and ``ipo``,
with precomputed reference log-probs and a stand-in model whose outputs are given per-token
log-probs) and ``CPOTrainer.cpo_loss`` (``simpo``), on random float64 log-probs of sequences of
random answer lengths, and prints the largest differences of the losses and of their gradients
with respect to the policy's per-token log-probs. Measured 2026-12-03 with TRL 1.16.0: at most
8.9e-16 (losses) and 2.8e-17 (gradients).
"""

import sys
import types
from collections import defaultdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's torchtune, not an installed one

from trl.experimental.cpo.cpo_trainer import CPOTrainer  # noqa: E402
from trl.trainer.dpo_trainer import DPOTrainer  # noqa: E402

from torchtune.modules import DPOLoss, IPOLoss, SequenceLogProbs, SimPOLoss  # noqa: E402

B, S = 6, 12  # pairs, sequence length


def make_inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-token log-probs of the policy and the reference ``[2B, S-1]`` (chosen rows first) and
    the completion mask ``[2B, S]`` (each sequence's answer a random span)."""
    g = torch.Generator().manual_seed(0)
    policy = -5 * torch.rand(2 * B, S - 1, generator=g, dtype=torch.float64)
    reference = -5 * torch.rand(2 * B, S - 1, generator=g, dtype=torch.float64)
    mask = torch.zeros(2 * B, S, dtype=torch.long)
    for i in range(2 * B):
        start = int(torch.randint(1, 6, (1,), generator=g))
        mask[i, start : int(torch.randint(start + 1, S + 1, (1,), generator=g))] = 1
    return policy, reference, mask


def trl_dpo(loss_type: str, beta: float, policy_tok, reference_tok, mask) -> tuple[float, torch.Tensor]:
    """TRL's DPOTrainer loss (mean over pairs) and its gradient w.r.t. the per-token log-probs."""
    shift = mask[:, 1:].double()
    policy = policy_tok.clone().requires_grad_(True)
    outputs = types.SimpleNamespace(log_probs=policy * shift, entropy=torch.zeros_like(policy),
                                    mean_logits=torch.zeros_like(policy), is_top1=torch.zeros_like(policy, dtype=torch.bool))
    trainer = types.SimpleNamespace(
        model=types.SimpleNamespace(training=True),
        accelerator=types.SimpleNamespace(device="cpu", gather_for_metrics=lambda x: x, gather=lambda x: x),
        aux_loss_enabled=False, ld_alpha=None, precompute_ref_logps=True, f_divergence_type="reverse_kl",
        loss_types=[loss_type], loss_weights=[1.0], beta=beta, label_smoothing=0.0, use_weighting=False,
        _metrics=defaultdict(lambda: defaultdict(list)), _total_train_tokens=0, _tp_size=1,
        args=types.SimpleNamespace(gradient_checkpointing_kwargs=None))
    ref = (reference_tok * shift).sum(1)
    inputs = {"input_ids": torch.zeros_like(mask), "attention_mask": torch.ones_like(mask), "completion_mask": mask,
              "ref_chosen_logps": ref[:B], "ref_rejected_logps": ref[B:]}
    loss = DPOTrainer._compute_loss(trainer, lambda **kwargs: outputs, inputs, False)
    loss = loss[0] if isinstance(loss, tuple) else loss
    loss.backward()
    return loss.item(), policy.grad


def trl_simpo(beta: float, gamma: float, policy_tok, mask) -> tuple[float, torch.Tensor]:
    """TRL's CPOTrainer SimPO loss (mean over pairs) on per-token-averaged log-probs, and its gradient."""
    shift = mask[:, 1:].double()
    policy = policy_tok.clone().requires_grad_(True)
    average = (policy * shift).sum(1) / shift.sum(1)
    trainer = types.SimpleNamespace(loss_type="simpo", alpha=0.0, beta=beta, simpo_gamma=gamma, label_smoothing=0.0,
                                    accelerator=types.SimpleNamespace(device="cpu"))
    loss = CPOTrainer.cpo_loss(trainer, average[:B], average[B:])[0].mean()
    loss.backward()
    return loss.item(), policy.grad


def ours(loss_fn, policy_tok, reference_tok, mask) -> tuple[float, torch.Tensor]:
    """Our loss (mean over pairs) on the same per-token log-probs, and its gradient."""
    shift = mask[:, 1:].double()
    policy = policy_tok.clone().requires_grad_(True)
    counts = shift.sum(1)
    reference = SequenceLogProbs.from_sequences((reference_tok * shift).sum(1), counts)
    loss = loss_fn(SequenceLogProbs.from_sequences((policy * shift).sum(1), counts), reference).losses.mean()
    loss.backward()
    return loss.item(), policy.grad


def main() -> int:
    policy, reference, mask = make_inputs()
    cases = [(f"sigmoid beta={b}", trl_dpo("sigmoid", b, policy, reference, mask), DPOLoss(beta=b)) for b in (0.1, 0.7)]
    cases += [(f"ipo tau={t}", trl_dpo("ipo", t, policy, reference, mask), IPOLoss(tau=t)) for t in (0.1, 0.5)]
    cases += [(f"simpo beta={b} gamma={g}", trl_simpo(b, g, policy, mask), SimPOLoss(beta=b, gamma=g))
              for b, g in ((2.0, 0.5), (2.5, 1.4))]
    worst = 0.0
    for name, (trl_value, trl_grad), loss_fn in cases:
        value, grad = ours(loss_fn, policy, reference, mask)
        diff, grad_diff = abs(value - trl_value), float((grad - trl_grad).abs().max())
        worst = max(worst, diff, grad_diff)
        print(f"{name:>24}: TRL {trl_value:.12f}  ours {value:.12f}  |loss diff| {diff:.1e}  max |grad diff| {grad_diff:.1e}")
    return 0 if worst < 1e-12 else 1


if __name__ == "__main__":
    sys.exit(main())
