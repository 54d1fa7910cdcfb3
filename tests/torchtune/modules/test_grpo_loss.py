"""GRPO: advantages, per-token log-probabilities and the clipped loss with KL, each against a
direct computation written here (Python floats and loops, the formulas of the papers)."""

import math
import statistics

import pytest
import torch
import torch.nn.functional as F

from torchtune.modules import GRPOLoss, group_advantages, token_log_probs


def test_group_advantages_match_per_group_mean_and_sample_std():
    rewards = [1.0, 0.0, 0.0, 1.0, 0.5, 0.5, 0.5, 0.5, 3.0, -1.0, 2.0, 0.0]
    got = group_advantages(torch.tensor(rewards), 4).tolist()
    for g in range(3):
        group = rewards[4 * g : 4 * g + 4]
        mu, sd = statistics.mean(group), statistics.stdev(group)
        for i, r in enumerate(group):
            assert got[4 * g + i] == pytest.approx((r - mu) / (sd + 1e-4), rel=1e-6, abs=1e-6)
    centred = group_advantages(torch.tensor(rewards), 4, scale=False).tolist()
    assert centred[8:] == pytest.approx([3.0 - 1.0, -1.0 - 1.0, 2.0 - 1.0, 0.0 - 1.0])
    assert centred[4:8] == [0.0] * 4  # equal rewards: no signal


def test_group_advantages_reject_bad_groups():
    with pytest.raises(ValueError, match="group_size=1 must be >= 2"):
        group_advantages(torch.zeros(4), 1)
    with pytest.raises(ValueError, match=r"rewards \[5\] must be \[R\] with R a multiple of group_size=2"):
        group_advantages(torch.zeros(5), 2)


@pytest.mark.parametrize("k, num_chunks", [(7, 8), (700, 3)])
def test_token_log_probs_equal_cross_entropy_with_and_without_projection(k, num_chunks):
    g = torch.Generator().manual_seed(0)
    hidden, weight = torch.randn(1, k, 16, generator=g), torch.randn(40, 16, generator=g)
    labels = torch.randint(0, 40, (1, k), generator=g)
    want = -F.cross_entropy(hidden[0] @ weight.T, labels[0], reduction="none")
    projected = token_log_probs(hidden, labels, project=lambda h: h @ weight.T, num_chunks=num_chunks)
    from_logits = token_log_probs(hidden @ weight.T, labels, num_chunks=num_chunks)
    torch.testing.assert_close(projected, want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(from_logits, want, rtol=1e-5, atol=1e-5)


def _direct_loss(logp, old, ref, adv, mask, eps_lo, eps_hi, beta):
    """Per-completion GRPO loss in Python floats, straight from the formula."""
    out = []
    for i in range(len(logp)):
        terms = []
        for t in range(len(logp[i])):
            if not mask[i][t]:
                continue
            ratio = math.exp(logp[i][t] - old[i][t])
            clipped = min(max(ratio, 1 - eps_lo), 1 + eps_hi)
            surrogate = min(ratio * adv[i], clipped * adv[i])
            kl = math.exp(ref[i][t] - logp[i][t]) - (ref[i][t] - logp[i][t]) - 1 if beta else 0.0
            terms.append(-surrogate + beta * kl)
        out.append(sum(terms) / len(terms))
    return out


@pytest.mark.parametrize("beta, eps_hi", [(0.04, None), (0.0, 0.28), (0.5, 0.1)])
def test_loss_values_and_gradients_match_the_formula(beta, eps_hi):
    g = torch.Generator().manual_seed(1)
    r, n = 6, 5
    logp = (-torch.rand(r, n, generator=g, dtype=torch.float64) * 3).requires_grad_()
    old = (logp.detach() + 0.4 * torch.randn(r, n, generator=g, dtype=torch.float64)).clamp(max=0)
    ref = -torch.rand(r, n, generator=g, dtype=torch.float64) * 3
    adv = torch.randn(r, generator=g, dtype=torch.float64)
    mask = torch.ones(r, n, dtype=torch.bool)
    mask[0, 3:] = False
    mask[4, 1:] = False
    padded = logp.detach().clone()
    padded[~mask] = float("-inf")  # what padding holds must not matter
    loss_fn = GRPOLoss(epsilon=0.2, epsilon_high=eps_hi, beta=beta)
    out = loss_fn(logp, adv, mask, old_log_probs=old, ref_log_probs=ref)
    want = _direct_loss(logp.tolist(), old.tolist(), ref.tolist(), adv.tolist(), mask.tolist(), 0.2,
                        0.2 if eps_hi is None else eps_hi, beta)
    assert out.losses.tolist() == pytest.approx(want, rel=1e-6, abs=1e-7)
    # gradient: finite differences of the direct formula
    out.losses.sum().backward()
    h = 1e-6
    for i, t in [(0, 0), (0, 4), (2, 2), (4, 0), (5, 3)]:
        up, down = logp.detach().clone(), logp.detach().clone()
        up[i, t] += h
        down[i, t] -= h
        fd = (sum(_direct_loss(up.tolist(), old.tolist(), ref.tolist(), adv.tolist(), mask.tolist(), 0.2,
                               0.2 if eps_hi is None else eps_hi, beta))
              - sum(_direct_loss(down.tolist(), old.tolist(), ref.tolist(), adv.tolist(), mask.tolist(), 0.2,
                                 0.2 if eps_hi is None else eps_hi, beta))) / (2 * h)
        assert float(logp.grad[i, t]) == pytest.approx(fd, rel=1e-4, abs=1e-6), (i, t)
    assert logp.grad[0, 3:].abs().sum() == 0  # padding gets no gradient
    with_inf = loss_fn(torch.where(mask, logp.detach(), padded), adv, mask, old_log_probs=old, ref_log_probs=ref)
    assert with_inf.losses.tolist() == pytest.approx(want, rel=1e-6, abs=1e-7)


def test_one_update_per_sample_is_the_policy_gradient_with_kl():
    g = torch.Generator().manual_seed(2)
    logp = (-torch.rand(4, 3, generator=g, dtype=torch.float64)).requires_grad_()
    ref = -torch.rand(4, 3, generator=g, dtype=torch.float64)
    adv = torch.tensor([1.0, -1.0, 0.5, 0.0], dtype=torch.float64)
    mask = torch.ones(4, 3, dtype=torch.bool)
    out = GRPOLoss(beta=0.1)(logp, adv, mask, ref_log_probs=ref)  # old = logp detached: ratio 1
    assert out.ratio.tolist() == [1.0] * 4 and out.clipped.tolist() == [0.0] * 4
    out.losses.sum().backward()
    # d/dlogp of -A * exp(logp - sg(logp)) is -A; of beta * k3 it is beta * (1 - exp(ref - logp)); per token / n
    want = (-adv[:, None] + 0.1 * (1 - torch.exp(ref - logp.detach()))) / 3
    torch.testing.assert_close(logp.grad, want)
    kl = (torch.exp(ref - logp.detach()) - (ref - logp.detach()) - 1).mean(dim=1)
    torch.testing.assert_close(out.kl, kl)


def test_clip_fraction_counts_tokens_outside_the_range():
    logp = torch.zeros(1, 4)
    old = torch.log(torch.tensor([[1.0, 1 / 1.5, 1 / 0.5, 1.0]]))  # ratios 1, 1.5, 0.5, 1
    out = GRPOLoss(epsilon=0.2, beta=0.0)(logp, torch.ones(1), torch.ones(1, 4, dtype=torch.bool), old_log_probs=old)
    assert out.clipped.tolist() == [0.5]


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"epsilon=1.5 must be in \(0, 1\)"):
        GRPOLoss(epsilon=1.5)
    with pytest.raises(ValueError, match="beta=-1 must be >= 0"):
        GRPOLoss(beta=-1)
    loss_fn = GRPOLoss(beta=0.1)
    with pytest.raises(ValueError, match="needs ref_log_probs"):
        loss_fn(torch.zeros(2, 3), torch.zeros(2), torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"completions \[1\] have no tokens"):
        GRPOLoss(beta=0.0)(torch.zeros(2, 3), torch.zeros(2), torch.tensor([[True] * 3, [False] * 3]))
    with pytest.raises(ValueError, match=r"advantages \[3\] must be \[R\] = \[2\]"):
        GRPOLoss(beta=0.0)(torch.zeros(2, 3), torch.zeros(3), torch.ones(2, 3, dtype=torch.bool))
