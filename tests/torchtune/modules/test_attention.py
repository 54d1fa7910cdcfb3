import pytest
import torch
from torch import nn
from transformers import Gemma2Config, LlamaConfig, Qwen3Config
from transformers.models.gemma2.modeling_gemma2 import Gemma2Attention
from transformers.models.llama.modeling_llama import LlamaAttention, LlamaRotaryEmbedding
from transformers.models.qwen3.modeling_qwen3 import Qwen3Attention

from torchtune.modules import MultiHeadAttention, RMSNorm, RotaryPositionalEmbeddings

D, N_H, N_KV, H_D, S = 32, 4, 2, 8, 6


def _ours(hf_attn, *, bias=False, qk_norm=False, **kwargs):
    def lin(ref):
        m = nn.Linear(ref.in_features, ref.out_features, bias=bias)
        m.load_state_dict(ref.state_dict())
        return m

    norms = {}
    if qk_norm:
        norms = {"q_norm": RMSNorm(H_D, eps=1e-6), "k_norm": RMSNorm(H_D, eps=1e-6)}
        norms["q_norm"].scale.data.copy_(hf_attn.q_norm.weight)
        norms["k_norm"].scale.data.copy_(hf_attn.k_norm.weight)
    return MultiHeadAttention(
        embed_dim=D, num_heads=N_H, num_kv_heads=N_KV, head_dim=H_D,
        q_proj=lin(hf_attn.q_proj), k_proj=lin(hf_attn.k_proj), v_proj=lin(hf_attn.v_proj),
        output_proj=lin(hf_attn.o_proj), pos_embeddings=RotaryPositionalEmbeddings(H_D, 64),
        max_seq_len=64, **norms, **kwargs,
    )


def _common(config_cls, **extra):
    cfg = config_cls(hidden_size=D, num_attention_heads=N_H, num_key_value_heads=N_KV, head_dim=H_D,
                     max_position_embeddings=64, **extra)
    cfg._attn_implementation = "eager"
    return cfg


def _randomize(module):
    torch.manual_seed(0)
    for p in module.parameters():
        p.data.normal_(0, 0.3)


def _hf_call(hf_attn, cfg, x, pos, allowed):
    cos, sin = LlamaRotaryEmbedding(cfg)(x, pos)
    additive = torch.zeros(allowed.shape).masked_fill(~allowed, float("-inf"))[:, None]  # [b, 1, s, s]
    return hf_attn(x, position_embeddings=(cos, sin), attention_mask=additive)[0]


def _padded_mask():
    causal = torch.tril(torch.ones(S, S, dtype=torch.bool))
    keep = torch.tensor([[True] * S, [False, False] + [True] * (S - 2)])  # row 1 left-padded
    return causal[None] & keep[:, None, :]


def _inputs():
    torch.manual_seed(1)
    x = torch.randn(2, S, D)
    pos = torch.tensor([list(range(S)), [0, 0] + list(range(S - 2))])
    return x, pos


@pytest.mark.parametrize("bias", [False, True])
def test_gqa_matches_llama_attention(bias):
    cfg = _common(LlamaConfig, attention_bias=bias)
    hf = LlamaAttention(cfg, layer_idx=0)
    _randomize(hf)
    ours = _ours(hf, bias=bias)
    x, pos = _inputs()
    mask = _padded_mask()
    expected = _hf_call(hf, cfg, x, pos, mask)
    got = ours(x, mask=mask, input_pos=pos)
    torch.testing.assert_close(got[0], expected[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got[1, 2:], expected[1, 2:], atol=1e-5, rtol=1e-5)
    # no mask: SDPA's causal path equals an explicit causal mask
    causal = torch.tril(torch.ones(S, S, dtype=torch.bool))[None].expand(2, S, S)
    plain = _hf_call(hf, cfg, x, torch.arange(S).expand(2, S), causal)
    torch.testing.assert_close(ours(x), plain, atol=1e-5, rtol=1e-5)


def test_qk_norm_matches_qwen3_attention():
    cfg = _common(Qwen3Config, rms_norm_eps=1e-6)
    hf = Qwen3Attention(cfg, layer_idx=0)
    _randomize(hf)
    ours = _ours(hf, qk_norm=True)
    x, _ = _inputs()
    causal = torch.tril(torch.ones(S, S, dtype=torch.bool))[None].expand(2, S, S)
    expected = _hf_call(hf, cfg, x, torch.arange(S).expand(2, S), causal)
    torch.testing.assert_close(ours(x), expected, atol=1e-5, rtol=1e-5)


def test_softcap_sliding_window_match_gemma2_attention():
    cfg = _common(Gemma2Config, query_pre_attn_scalar=16, attn_logit_softcapping=20.0, sliding_window=3)
    hf = Gemma2Attention(cfg, layer_idx=0)
    _randomize(hf)
    ours = _ours(hf, softcapping=20.0, sliding_window=3, scale=16**-0.5)
    x, _ = _inputs()
    idx = torch.arange(S)
    window = (idx[:, None] >= idx[None]) & (idx[:, None] - idx[None] < 3)
    expected = _hf_call(hf, cfg, x, idx.expand(2, S), window[None].expand(2, S, S))
    torch.testing.assert_close(ours(x), expected, atol=1e-5, rtol=1e-5)


def test_bad_heads():
    lin = nn.Linear(4, 4)
    with pytest.raises(ValueError, match="num_kv_heads=3 must divide num_heads=4"):
        MultiHeadAttention(embed_dim=4, num_heads=4, num_kv_heads=3, head_dim=1, q_proj=lin,
                           k_proj=lin, v_proj=lin, output_proj=lin)
    with pytest.raises(ValueError, match=r"attn_dropout=1.5 must be in \[0, 1\]"):
        MultiHeadAttention(embed_dim=4, num_heads=4, num_kv_heads=2, head_dim=1, q_proj=lin,
                           k_proj=lin, v_proj=lin, output_proj=lin, attn_dropout=1.5)
