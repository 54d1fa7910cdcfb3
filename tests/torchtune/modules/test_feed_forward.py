import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from transformers import GemmaConfig, LlamaConfig
from transformers.models.gemma.modeling_gemma import GemmaMLP
from transformers.models.llama.modeling_llama import LlamaMLP

from torchtune.modules import FeedForward


def _check(ref, activation=None):
    torch.manual_seed(0)
    for p in ref.parameters():
        p.data.normal_()
    d, h = ref.gate_proj.in_features, ref.gate_proj.out_features
    ours = FeedForward(gate_proj=nn.Linear(d, h, bias=False), down_proj=nn.Linear(h, d, bias=False),
                       up_proj=nn.Linear(d, h, bias=False), activation=activation)
    ours.w1.weight.data.copy_(ref.gate_proj.weight)
    ours.w2.weight.data.copy_(ref.down_proj.weight)
    ours.w3.weight.data.copy_(ref.up_proj.weight)
    x = torch.randn(2, 3, d)
    torch.testing.assert_close(ours(x), ref(x), atol=1e-5, rtol=1e-5)
    # gradients (the activation is recomputed in backward) against transformers' autograd ones
    x_ours, x_ref = x.clone().requires_grad_(), x.clone().requires_grad_()
    grad_out = torch.randn(2, 3, d)
    ours(x_ours).backward(grad_out)
    ref(x_ref).backward(grad_out)
    torch.testing.assert_close(x_ours.grad, x_ref.grad, atol=1e-5, rtol=1e-5)
    for name, theirs in (("w1", "gate_proj"), ("w2", "down_proj"), ("w3", "up_proj")):
        torch.testing.assert_close(getattr(ours, name).weight.grad, getattr(ref, theirs).weight.grad,
                                   atol=1e-5, rtol=1e-5)


def test_swiglu_matches_llama_mlp():
    _check(LlamaMLP(LlamaConfig(hidden_size=16, intermediate_size=24, num_attention_heads=2, num_key_value_heads=2)))


def test_geglu_matches_gemma_mlp():
    _check(GemmaMLP(GemmaConfig(hidden_size=16, intermediate_size=24, num_attention_heads=2, num_key_value_heads=2, head_dim=8, hidden_activation="gelu_pytorch_tanh")),
           activation=nn.GELU(approximate="tanh"))


def _saved_bytes(module, x):
    """Bytes of distinct tensors autograd keeps from ``module(x)`` for backward."""
    kept = {}

    def pack(t):
        kept[(t.data_ptr(), t.shape)] = t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        module(x)
    return sum(kept.values())


def test_activation_is_recomputed_not_kept():
    torch.manual_seed(0)
    cfg = LlamaConfig(hidden_size=16, intermediate_size=24, num_attention_heads=2, num_key_value_heads=2)
    ref = LlamaMLP(cfg)
    ours = FeedForward(gate_proj=ref.gate_proj, down_proj=ref.down_proj, up_proj=ref.up_proj)
    for p in ref.parameters():  # frozen weights, as under LoRA: only activations are kept
        p.requires_grad_(False)
    x = torch.randn(4, 8, 16, requires_grad=True)
    one_hidden = 4 * 8 * 24 * 4  # one [b, s, hidden] fp32 tensor
    assert _saved_bytes(ref, x) - _saved_bytes(ours, x) == one_hidden
    with torch.no_grad():  # nothing kept, same values
        torch.testing.assert_close(ours(x), ref(x), rtol=0, atol=0)


@pytest.mark.parametrize("activation", [nn.SiLU(), nn.GELU(approximate="tanh"), nn.GELU()])
def test_gradients_are_autograds_bit_for_bit(activation):
    torch.manual_seed(0)
    ours = FeedForward(gate_proj=nn.Linear(16, 24, bias=False), down_proj=nn.Linear(24, 16, bias=False),
                       up_proj=nn.Linear(16, 24, bias=False), activation=activation)
    x = torch.randn(2, 5, 16, requires_grad=True)
    grad_out = torch.randn(2, 5, 16)
    params = [x, *ours.parameters()]
    # under FlopCounterMode (its module tracking puts multi-grad hooks on the graph)
    with FlopCounterMode(display=False):
        ours(x).backward(grad_out)
    ours_grads = [p.grad.clone() for p in params]
    for p in params:
        p.grad = None
    with FlopCounterMode(display=False):  # (the mode changes how some ops run: both under it)
        ours.w2(activation(ours.w1(x)) * ours.w3(x)).backward(grad_out)  # autograd without the Function
    for p, mine in zip(params, ours_grads, strict=True):
        assert torch.equal(mine, p.grad), (p.shape, (mine - p.grad).abs().max())
