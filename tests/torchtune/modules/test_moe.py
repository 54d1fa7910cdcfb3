"""MoE layer against transformers' Qwen3-MoE and Qwen2-MoE blocks (outputs and gradients), against
a per-token loop written here, and its load-balancing loss against transformers' function."""

import pytest
import torch
from torch import nn
from transformers import Qwen2MoeConfig, Qwen3MoeConfig
from transformers.models.qwen2_moe.modeling_qwen2_moe import Qwen2MoeSparseMoeBlock
from transformers.models.qwen3_moe.modeling_qwen3_moe import Qwen3MoeSparseMoeBlock, load_balancing_loss_func

from torchtune.modules import FeedForward, GroupedExperts, MoE, TopKRouter, load_balancing_loss

D, H, E, K = 16, 24, 8, 2


def _ours(norm_topk_prob=True, softmax_before_topk=True, shared=False):
    torch.manual_seed(0)
    shared_expert = gate = None
    if shared:
        shared_expert = FeedForward(gate_proj=nn.Linear(D, 20, bias=False), down_proj=nn.Linear(20, D, bias=False),
                                    up_proj=nn.Linear(D, 20, bias=False))
        gate = nn.Linear(D, 1, bias=False)
    return MoE(router=TopKRouter(dim=D, num_experts=E, top_k=K, norm_topk_prob=norm_topk_prob,
                                 softmax_before_topk=softmax_before_topk),
               experts=GroupedExperts(dim=D, hidden_dim=H, num_experts=E),
               shared_expert=shared_expert, shared_expert_gate=gate)


def _copy_into_hf(ours, hf):
    with torch.no_grad():
        for p in hf.parameters():
            p.normal_(0, 0.3)
        ours.router.gate.weight.copy_(hf.gate.weight)
        ours.experts.gate_up_proj.copy_(hf.experts.gate_up_proj)
        ours.experts.down_proj.copy_(hf.experts.down_proj)
        if ours.shared_expert is not None:
            for ours_name, hf_name in (("w1", "gate_proj"), ("w2", "down_proj"), ("w3", "up_proj")):
                getattr(ours.shared_expert, ours_name).weight.copy_(getattr(hf.shared_expert, hf_name).weight)
            ours.shared_expert_gate.weight.copy_(hf.shared_expert_gate.weight)


def _compare(ours, hf):
    x = torch.randn(3, 7, D, generator=torch.Generator().manual_seed(1))
    x_ours, x_hf = x.clone().requires_grad_(), x.clone().requires_grad_()
    out, ref = ours(x_ours), hf(x_hf)
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-5)
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(2))
    out.backward(grad)
    ref.backward(grad)
    torch.testing.assert_close(x_ours.grad, x_hf.grad, atol=1e-6, rtol=1e-5)
    theirs = dict(hf.named_parameters())
    pairs = [(ours.router.gate.weight, "gate.weight"), (ours.experts.gate_up_proj, "experts.gate_up_proj"),
             (ours.experts.down_proj, "experts.down_proj")]
    if ours.shared_expert is not None:
        pairs += [(ours.shared_expert.w1.weight, "shared_expert.gate_proj.weight"),
                  (ours.shared_expert.w2.weight, "shared_expert.down_proj.weight"),
                  (ours.shared_expert_gate.weight, "shared_expert_gate.weight")]
    for param, name in pairs:
        torch.testing.assert_close(param.grad, theirs[name].grad, atol=1e-6, rtol=1e-5, msg=name)


@pytest.mark.parametrize("norm_topk_prob", [True, False])
def test_matches_qwen3_moe_block(norm_topk_prob):
    config = Qwen3MoeConfig(hidden_size=D, moe_intermediate_size=H, num_experts=E, num_experts_per_tok=K,
                            norm_topk_prob=norm_topk_prob)
    hf, ours = Qwen3MoeSparseMoeBlock(config), _ours(norm_topk_prob)
    _copy_into_hf(ours, hf)
    _compare(ours, hf)


def test_shared_expert_matches_qwen2_moe_block():
    config = Qwen2MoeConfig(hidden_size=D, moe_intermediate_size=H, num_experts=E, num_experts_per_tok=K,
                            shared_expert_intermediate_size=20, norm_topk_prob=False)
    hf, ours = Qwen2MoeSparseMoeBlock(config), _ours(norm_topk_prob=False, shared=True)
    _copy_into_hf(ours, hf)
    _compare(ours, hf)


def _per_token(moe, x):
    """First principles: for each token, its own top-k, then each chosen expert's MLP alone."""
    out = []
    for t in x.reshape(-1, D):
        logits = t @ moe.router.gate.weight.T
        if moe.router.softmax_before_topk:
            probs = torch.softmax(logits, -1)
            w, idx = probs.topk(K)
            w = w / w.sum() if moe.router.norm_topk_prob else w
        else:
            top, idx = logits.topk(K)
            w = torch.softmax(top, -1)
        y = torch.zeros(D)
        for weight, e in zip(w, idx):
            gate, up = (moe.experts.gate_up_proj[e] @ t).chunk(2)
            y = y + weight * (moe.experts.down_proj[e] @ (nn.functional.silu(gate) * up))
        out.append(y)
    return torch.stack(out).reshape(x.shape)


@pytest.mark.parametrize("softmax_before_topk", [True, False])
def test_matches_a_per_token_loop(softmax_before_topk):
    moe = _ours(softmax_before_topk=softmax_before_topk)
    x = torch.randn(2, 5, D, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(moe(x), _per_token(moe, x), atol=1e-5, rtol=1e-5)


def test_no_token_is_dropped_when_routing_collapses():
    """Every token routed to the same two experts still gets both outputs (no capacity limit)."""
    moe = _ours()
    with torch.no_grad():
        moe.router.gate.weight.zero_()
        moe.router.gate.weight[3] = 5.0  # x has positive sums: experts 3 then 5 win for every token
        moe.router.gate.weight[5] = 2.0
    x = torch.rand(4, 9, D, generator=torch.Generator().manual_seed(4)) + 0.1
    with torch.no_grad():
        out = moe(x)
    assert moe.expert_counts.tolist() == [0, 0, 0, 36, 0, 36, 0, 0]
    torch.testing.assert_close(out, _per_token(moe, x), atol=1e-5, rtol=1e-5)


def test_grouped_mm_path_equals_the_loop():
    if not hasattr(torch, "_grouped_mm"):
        pytest.skip("torch has no _grouped_mm")
    loop, grouped = _ours(), _ours()
    grouped.experts.use_grouped_mm = True
    x = torch.randn(3, 6, D, generator=torch.Generator().manual_seed(5))
    outs = []
    for moe in (loop, grouped):
        out = moe(x)
        (out * torch.arange(out.numel()).reshape(out.shape)).sum().backward()
        outs.append((out, moe.experts.gate_up_proj.grad, moe.experts.down_proj.grad, moe.router.gate.weight.grad))
    for a, b in zip(*outs):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_a_failing_grouped_kernel_falls_back_to_the_loop(monkeypatch):
    moe = _ours()
    x = torch.randn(2, 5, D, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        expected = _per_token(moe, x)

    def refuse(*args, **kwargs):
        raise RuntimeError("no kernel for these strides")

    monkeypatch.setattr(torch, "_grouped_mm", refuse, raising=False)
    moe.experts.use_grouped_mm = None
    monkeypatch.setattr(type(moe.experts), "_grouped", lambda self, x, w: self.use_grouped_mm is not False)
    with torch.no_grad():
        torch.testing.assert_close(moe(x), expected, atol=1e-5, rtol=1e-5)
    assert moe.experts.use_grouped_mm is False
    moe.experts.use_grouped_mm = True  # asked for explicitly: the error is not hidden
    with pytest.raises(RuntimeError, match="no kernel"):
        moe(x)


@pytest.mark.parametrize("with_mask", [False, True])
def test_load_balancing_loss_matches_transformers(with_mask):
    model = nn.ModuleList([_ours(), _ours()])
    with torch.no_grad():
        model[1].router.gate.weight.mul_(3.0)
    x = torch.randn(2, 6, D, generator=torch.Generator().manual_seed(6))
    model[1](model[0](x))
    mask = torch.ones(2, 6, dtype=torch.long)
    mask[1, :2] = 0
    got = load_balancing_loss(model, mask.bool() if with_mask else None)
    expected = load_balancing_loss_func(tuple(m.router_logits for m in model), E, K, mask if with_mask else None)
    torch.testing.assert_close(got, expected)
    assert load_balancing_loss(nn.Linear(2, 2)) is None
    got.backward()
    assert model[0].router.gate.weight.grad.abs().sum() > 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="top_k=9 must be between 1 and num_experts=8"):
        TopKRouter(dim=D, num_experts=8, top_k=9)
    with pytest.raises(ValueError, match="router has num_experts=8 but experts has 4"):
        MoE(router=TopKRouter(dim=D, num_experts=8, top_k=2),
            experts=GroupedExperts(dim=D, hidden_dim=H, num_experts=4))
