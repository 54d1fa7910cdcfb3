import pytest
import torch
from transformers import LlamaConfig
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb

from torchtune.modules import RotaryPositionalEmbeddings

HEAD_DIM = 16
LLAMA3_SCALING = {
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 64,
}


def _hf_rotate(x, pos, rope_parameters):
    cfg = LlamaConfig(hidden_size=HEAD_DIM * 2, num_attention_heads=2, rope_parameters=rope_parameters,
                      max_position_embeddings=512)
    rope = LlamaRotaryEmbedding(cfg)
    cos, sin = rope(x, pos)
    q = x.transpose(1, 2)  # [b, n_h, s, h_d]
    out, _ = apply_rotary_pos_emb(q, q, cos, sin)
    return out.transpose(1, 2)


@pytest.mark.parametrize(
    "scaling,params",
    [
        (None, {"rope_type": "default", "rope_theta": 500000.0}),
        (LLAMA3_SCALING, {"rope_type": "llama3", "rope_theta": 500000.0, **LLAMA3_SCALING}),
    ],
)
def test_matches_hf(scaling, params):
    torch.manual_seed(0)
    x = torch.randn(2, 7, 3, HEAD_DIM)
    pos = torch.tensor([[0, 1, 2, 3, 4, 5, 6], [0, 0, 0, 1, 2, 300, 511]])
    rope = RotaryPositionalEmbeddings(HEAD_DIM, max_seq_len=512, base=500000.0, scaling=scaling)
    torch.testing.assert_close(rope(x, pos), _hf_rotate(x, pos, params), atol=1e-5, rtol=1e-5)


def test_default_positions_are_arange():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 2, HEAD_DIM)
    rope = RotaryPositionalEmbeddings(HEAD_DIM, max_seq_len=32)
    pos = torch.arange(5).expand(2, 5)
    ref = _hf_rotate(x, pos, {"rope_type": "default", "rope_theta": 10000.0})
    torch.testing.assert_close(rope(x), ref, atol=1e-5, rtol=1e-5)


def test_partial_rotary_leaves_tail_untouched():
    torch.manual_seed(0)
    x = torch.randn(1, 4, 2, HEAD_DIM)
    rope = RotaryPositionalEmbeddings(8, max_seq_len=16)
    out = rope(x)
    torch.testing.assert_close(out[..., 8:], x[..., 8:])
    torch.testing.assert_close(out[..., :8], RotaryPositionalEmbeddings(8, max_seq_len=16)(x[..., :8]))


def test_bad_dim():
    with pytest.raises(ValueError, match="dim=7 must be a positive even number"):
        RotaryPositionalEmbeddings(7)


def test_too_long():
    rope = RotaryPositionalEmbeddings(8, max_seq_len=4)
    with pytest.raises(ValueError, match="sequence length 5 exceeds max_seq_len=4"):
        rope(torch.zeros(1, 5, 1, 8))


def test_missing_scaling_key():
    with pytest.raises(ValueError, match="missing keys"):
        RotaryPositionalEmbeddings(8, scaling={"factor": 8.0})
