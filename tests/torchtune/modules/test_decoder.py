import pytest
import torch
import torch.nn.functional as F
from torch import nn

from torchtune.modules import (
    FeedForward,
    KVCache,
    MultiHeadAttention,
    RMSNorm,
    RotaryPositionalEmbeddings,
    TiedLinear,
    TransformerDecoder,
    TransformerSelfAttentionLayer,
)

V, D, N_H, N_KV, H_D, HID, L, MAX = 50, 32, 4, 2, 8, 48, 2, 32


def _tiny(tied=False, sliding_window=None, softcapping=None, final_cap=None, hidden=None):
    torch.manual_seed(0)
    layers = []
    for _ in range(L):
        attn = MultiHeadAttention(
            embed_dim=D, num_heads=N_H, num_kv_heads=N_KV, head_dim=H_D,
            q_proj=nn.Linear(D, N_H * H_D, bias=True), k_proj=nn.Linear(D, N_KV * H_D, bias=True),
            v_proj=nn.Linear(D, N_KV * H_D, bias=True), output_proj=nn.Linear(N_H * H_D, D, bias=False),
            pos_embeddings=RotaryPositionalEmbeddings(H_D, MAX), max_seq_len=MAX,
            sliding_window=sliding_window, softcapping=softcapping,
        )
        mlp = FeedForward(gate_proj=nn.Linear(D, HID, bias=False), down_proj=nn.Linear(HID, D, bias=False),
                          up_proj=nn.Linear(D, HID, bias=False))
        layers.append(TransformerSelfAttentionLayer(attn=attn, mlp=mlp, sa_norm=RMSNorm(D), mlp_norm=RMSNorm(D)))
    emb = nn.Embedding(V, D)
    model = TransformerDecoder(
        tok_embeddings=emb, layers=layers, max_seq_len=MAX, num_heads=N_H, head_dim=H_D, norm=RMSNorm(D),
        output=TiedLinear(emb) if tied else nn.Linear(D, V, bias=False), final_logit_softcapping=final_cap,
        output_hidden_states=hidden,
    )
    for p in model.parameters():
        p.data.normal_(0, 0.2)
    return model.eval()


def _left_padded(b=2, s=7, pad=(0, 3)):
    torch.manual_seed(1)
    tokens = torch.randint(0, V, (b, s))
    keep = torch.ones(b, s, dtype=torch.bool)
    for i, p in enumerate(pad):
        keep[i, :p] = False
    mask = torch.tril(torch.ones(s, s, dtype=torch.bool))[None] & keep[:, None, :]  # [b, s, s]
    pos = (keep.long().cumsum(-1) - 1).clamp(min=0)  # [b, s]
    return tokens, mask, pos, keep


@pytest.mark.parametrize(
    "kwargs", [{}, {"tied": True}, {"sliding_window": 3}, {"softcapping": 5.0, "final_cap": 3.0}]
)
def test_kv_cache_decoding_matches_full_forward(kwargs):
    model = _tiny(**kwargs)
    tokens, mask, pos, keep = _left_padded()
    b, s = tokens.shape
    full = model(tokens, mask=mask, input_pos=pos)
    cache_len = 12
    cache_mask = F.pad(mask, (0, cache_len - s))  # [b, s, cache_len]
    model.setup_caches(b, torch.float32, decoder_max_seq_len=cache_len)
    assert model.caches_are_enabled()
    for _ in range(2):  # second round checks reset_caches
        steps = [model(tokens[:, :4], mask=cache_mask[:, :4], input_pos=pos[:, :4])]
        for t in range(4, s):
            steps.append(model(tokens[:, t : t + 1], mask=cache_mask[:, t : t + 1], input_pos=pos[:, t : t + 1]))
        inc = torch.cat(steps, dim=1)
        torch.testing.assert_close(inc[keep], full[keep], atol=1e-5, rtol=1e-5)
        assert torch.isfinite(inc).all()
        model.reset_caches()


def test_kv_cache_without_mask_is_causal():
    model = _tiny()
    tokens = torch.randint(0, V, (2, 6))
    full = model(tokens)
    model.setup_caches(2, torch.float32)
    inc = torch.cat([model(tokens[:, :3])] + [model(tokens[:, t : t + 1]) for t in range(3, 6)], dim=1)
    torch.testing.assert_close(inc, full, atol=1e-5, rtol=1e-5)


def test_causal_default_equals_explicit_mask():
    model = _tiny()
    tokens = torch.randint(0, V, (2, 6))
    causal = torch.tril(torch.ones(6, 6, dtype=torch.bool))[None].expand(2, 6, 6)
    torch.testing.assert_close(model(tokens), model(tokens, mask=causal), atol=1e-6, rtol=1e-6)


def test_packed_documents_are_independent():
    model = _tiny()
    torch.manual_seed(2)
    a, c = torch.randint(0, V, (1, 4)), torch.randint(0, V, (1, 3))
    packed = torch.cat([a, c], dim=1)
    doc = torch.tensor([0, 0, 0, 0, 1, 1, 1])
    mask = (doc[:, None] == doc[None]) & torch.tril(torch.ones(7, 7, dtype=torch.bool))
    pos = torch.tensor([[0, 1, 2, 3, 0, 1, 2]])
    out = model(packed, mask=mask[None], input_pos=pos)
    torch.testing.assert_close(out[:, :4], model(a), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[:, 4:], model(c), atol=1e-5, rtol=1e-5)


def test_tied_output_has_no_separate_weight():
    model = _tiny(tied=True)
    assert "output.weight" not in model.state_dict()
    tokens = torch.randint(0, V, (1, 5))
    h = model.norm(model.layers[1](model.layers[0](model.tok_embeddings(tokens))))
    torch.testing.assert_close(model(tokens), h @ model.tok_embeddings.weight.T, atol=1e-5, rtol=1e-5)


def test_chunked_output_and_hidden_states():
    model = _tiny(hidden=[0, 2])
    tokens = torch.randint(0, V, (2, 7))
    h0, h2, full = model(tokens)
    torch.testing.assert_close(h0, model.tok_embeddings(tokens))
    torch.testing.assert_close(model.output(model.norm(h2)), full)
    model.set_num_output_chunks(3)
    *_, chunks = model(tokens)
    assert len(chunks) == 3
    torch.testing.assert_close(torch.cat(chunks, dim=1), full)


def test_bad_inputs():
    model = _tiny()
    with pytest.raises(ValueError, match="num_output_chunks=-1 must be >= 0"):
        model.set_num_output_chunks(-1)
    with pytest.raises(ValueError, match=f"sequence length {MAX + 1} exceeds max_seq_len={MAX}"):
        model(torch.zeros(1, MAX + 1, dtype=torch.long))
    with pytest.raises(RuntimeError, match="before setup_caches"):
        model.reset_caches()
    model.setup_caches(1, torch.float32, decoder_max_seq_len=8)
    with pytest.raises(ValueError, match=r"the mask must be \[b, s, 8\]"):
        model(torch.zeros(1, 2, dtype=torch.long), mask=torch.ones(1, 2, 2, dtype=torch.bool))


def test_kv_cache_errors():
    cache = KVCache(1, 4, 2, 8, torch.float32)
    k = torch.zeros(1, 2, 3, 8)
    cache.update(None, k, k)
    with pytest.raises(ValueError, match="cache overflow: 3 slots used"):
        cache.update(None, k, k)
    with pytest.raises(ValueError, match="batch size 2 does not match the cache's batch_size=1"):
        cache.update(None, torch.zeros(2, 2, 1, 8), torch.zeros(2, 2, 1, 8))


def test_delete_caches_restores_the_uncached_model():
    model = _tiny().eval()
    tokens = torch.randint(0, V, (3, 6), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = model(tokens)
        model.setup_caches(1, torch.float32)
        assert model.caches_are_enabled()
        model.delete_caches()
        assert not model.caches_are_enabled()
        torch.testing.assert_close(model(tokens), expected)  # another batch size, no cache left
