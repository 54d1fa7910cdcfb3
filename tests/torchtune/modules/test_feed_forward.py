import torch
from torch import nn
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


def test_swiglu_matches_llama_mlp():
    _check(LlamaMLP(LlamaConfig(hidden_size=16, intermediate_size=24, num_attention_heads=2, num_key_value_heads=2)))


def test_geglu_matches_gemma_mlp():
    _check(GemmaMLP(GemmaConfig(hidden_size=16, intermediate_size=24, num_attention_heads=2, num_key_value_heads=2, head_dim=8, hidden_activation="gelu_pytorch_tanh")),
           activation=nn.GELU(approximate="tanh"))
