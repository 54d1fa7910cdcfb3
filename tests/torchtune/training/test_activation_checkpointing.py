import copy

import pytest
import torch
from torch import nn

import torchtune.modules._feed_forward as feed_forward_module
from torchtune.modules import FeedForward
from torchtune.training import apply_activation_checkpointing, is_checkpointed


class Block(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Dropout(0.1), nn.Linear(2 * d, d))
        self.calls = 0

    def forward(self, x: torch.Tensor, *, scale: float = 1.0) -> torch.Tensor:
        self.calls += 1
        return x + scale * self.mlp(self.norm(x))


class Tiny(nn.Module):
    def __init__(self, d: int = 8, n: int = 3) -> None:
        super().__init__()
        self.layers = nn.ModuleList(Block(d) for _ in range(n))
        self.out = nn.Linear(d, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, scale=0.5)
        return self.out(x)


def _grads(model, x):
    torch.manual_seed(1)  # same dropout masks in both runs
    model(x).square().mean().backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}


def test_same_gradients_and_recompute():
    torch.manual_seed(0)
    ref = Tiny().train()
    ckpt = copy.deepcopy(ref)
    assert apply_activation_checkpointing(ckpt, auto_wrap_policy={Block}) == 3
    x = torch.randn(2, 5, 8)
    expected, got = _grads(ref, x), _grads(ckpt, x)
    assert expected.keys() == got.keys()
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=0)
    assert [b.calls for b in ref.layers] == [1, 1, 1]
    assert [b.calls for b in ckpt.layers] == [2, 2, 2]  # forward re-run in backward


def test_module_tree_and_state_dict_keys_unchanged():
    model = Tiny()
    keys = list(model.state_dict())
    apply_activation_checkpointing(model, {Block})
    assert list(model.state_dict()) == keys
    assert all(is_checkpointed(b) for b in model.layers) and not is_checkpointed(model.out)
    assert apply_activation_checkpointing(model, {Block}) == 0  # idempotent


def test_callable_policy_and_nested_selection():
    model = Tiny()
    n = apply_activation_checkpointing(model, lambda m: isinstance(m, (Block, nn.Linear)))
    assert n == 4  # 3 blocks + out; the Linears inside the blocks are already covered
    assert not is_checkpointed(model.layers[0].mlp[0])


@pytest.mark.parametrize(
    "policy, message",
    [
        ({int}, r"auto_wrap_policy must hold nn.Module subclasses"),
        (3, r"auto_wrap_policy must be a collection of nn.Module types or a callable, got int"),
    ],
)
def test_bad_policy(policy, message):
    with pytest.raises(TypeError, match=message):
        apply_activation_checkpointing(Tiny(), policy)


class MLPBlock(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.mlp = FeedForward(gate_proj=nn.Linear(d, 3 * d), down_proj=nn.Linear(3 * d, d), up_proj=nn.Linear(d, 3 * d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mlp(x)


def test_feed_forward_recompute_turned_off_inside_checkpointed_modules(monkeypatch):
    # FeedForward's own recomputation of act(w1(x)) only adds memory under a whole-layer
    # checkpoint; it stays on in modules that are not checkpointed. Gradients are unchanged.
    calls = []
    apply = feed_forward_module._GatedActivation.apply
    monkeypatch.setattr(feed_forward_module._GatedActivation, "apply",
                        lambda *a: calls.append(1) or apply(*a))
    torch.manual_seed(0)
    ref = nn.Sequential(MLPBlock(8), MLPBlock(8))
    ckpt = copy.deepcopy(ref)
    assert apply_activation_checkpointing(ckpt, auto_wrap_policy=lambda m: m is ckpt[0]) == 1
    x = torch.randn(2, 5, 8)
    expected = _grads(ref, x)
    assert len(calls) == 2  # both blocks recompute the activation
    calls.clear()
    got = _grads(ckpt, x)
    assert len(calls) == 1  # only the block that is not checkpointed
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=0)
