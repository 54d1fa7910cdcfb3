"""Document attention: flex attention and the dense mask against per-document SDPA and transformers.

transformers runs each document alone; our model runs them end to end in one padding-free row,
attended per document (today's path), in one flex-attention call, or with the dense mask. Torch
has no flex-attention backward on CPU, so the gradient checks run flex's eager (reference)
implementation with the device check lifted: the same mask and score modifier the CUDA kernel
gets. The CUDA kernel itself is checked in tests/torchtune/gpu.
"""

import copy
import json

import pytest
import torch
import torch.nn.attention.flex_attention as flex_module
from transformers import AutoConfig, AutoModelForCausalLM

from torchtune.models import hf_to_tune, model_from_hf_config
from torchtune.modules import BlockCausalMask

_TINY = dict(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=64, head_dim=16)
CONFIGS = {
    "llama_gqa": dict(_TINY, model_type="llama"),
    "mistral_window": dict(_TINY, model_type="mistral", sliding_window=4),
    "gemma2_softcap_window": dict(_TINY, model_type="gemma2", num_hidden_layers=3, query_pre_attn_scalar=24,
                                  sliding_window=3, attn_logit_softcapping=2.0, final_logit_softcapping=3.0),
}
LENS = [5, 9, 3, 7]


@pytest.fixture
def cpu_flex_backward(monkeypatch):
    """Let flex attention's eager reference implementation run backward on CPU."""
    monkeypatch.setattr(flex_module, "_validate_device", lambda *args: None)


def _pair(name):
    torch.manual_seed(0)
    hf_config = AutoConfig.for_model(**copy.deepcopy(CONFIGS[name]))
    hf = AutoModelForCausalLM.from_config(hf_config, attn_implementation="eager").eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.normal_(0, 0.2)
    config = json.loads(hf_config.to_json_string())
    ours = model_from_hf_config(config).eval()
    ours.load_state_dict(hf_to_tune(hf.state_dict(), config), strict=True)
    return hf, ours


def _row():
    g = torch.Generator().manual_seed(1)
    docs = [torch.randint(0, 64, (n,), generator=g) for n in LENS]
    input_pos = torch.cat([torch.arange(n) for n in LENS])[None]  # [1, s]
    return docs, torch.cat(docs)[None], input_pos


def _logits_and_grads(model, how, tokens, input_pos, output_index=None):
    model.zero_grad(set_to_none=True)
    model.set_document_attention(how)
    logits = model(tokens, mask=BlockCausalMask([LENS]), input_pos=input_pos, output_index=output_index)
    (logits.square().mean()).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    return logits.detach(), grads


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_flex_and_dense_match_transformers_per_document(name, cpu_flex_backward):
    hf, ours = _pair(name)
    docs, tokens, input_pos = _row()
    with torch.no_grad():
        expected = torch.cat([hf(input_ids=d[None]).logits[0] for d in docs])[None]  # [1, s, v]
        for how in ("flex", "dense", "sdpa"):
            ours.set_document_attention(how)
            got = ours(tokens, mask=BlockCausalMask([LENS]), input_pos=input_pos)
            torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5, msg=lambda m: f"{how}: {m}")


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("selected", [False, True])
def test_flex_and_dense_gradients_equal_per_document_sdpa(name, selected, cpu_flex_backward):
    _, ours = _pair(name)
    ours.train()
    _, tokens, input_pos = _row()
    index = torch.tensor([0, 3, 4, 8, 13, 15, 16, 20, 23]) if selected else None
    ref_logits, ref_grads = _logits_and_grads(ours, "sdpa", tokens, input_pos, index)
    for how in ("flex", "dense"):
        logits, grads = _logits_and_grads(ours, how, tokens, input_pos, index)
        torch.testing.assert_close(logits, ref_logits, atol=1e-5, rtol=1e-5)
        for n, g in ref_grads.items():
            torch.testing.assert_close(grads[n], g, atol=1e-5, rtol=1e-4, msg=lambda m: f"{how} {n}: {m}")


def test_flex_mask_is_the_block_causal_mask_with_window():
    mask = BlockCausalMask([[3, 4], [7]])
    window = 2
    from torchtune.modules._document_attention import document_block_mask

    block_mask = document_block_mask(mask, torch.device("cpu"), window)
    pos = torch.arange(7)
    expected = mask.dense() & (pos[:, None] - pos[None, :] < window)[None]  # [b, s, s]
    b, q, k = torch.meshgrid(torch.arange(2), pos, pos, indexing="ij")
    got = block_mask.mask_mod(b, torch.zeros_like(b), q, k)
    assert torch.equal(got, expected)


def test_auto_is_flex_on_cuda_and_per_document_sdpa_elsewhere(monkeypatch):
    from torchtune.modules import _document_attention
    from torchtune.modules._document_attention import resolve_document_attention

    monkeypatch.setattr(_document_attention, "_has_triton", lambda: True)
    assert resolve_document_attention("auto", torch.device("cuda")) == "flex"
    monkeypatch.setattr(_document_attention, "_has_triton", lambda: False)  # flex needs Triton to compile
    assert resolve_document_attention("auto", torch.device("cuda")) == "sdpa"
    assert resolve_document_attention("auto", torch.device("cpu")) == "sdpa"
    assert resolve_document_attention("dense", torch.device("cuda")) == "dense"
    with pytest.raises(ValueError, match="document_attention='fast'"):
        resolve_document_attention("fast", torch.device("cpu"))


def test_varlen_documents_are_the_rows_end_to_end_and_refuse_what_flash_cannot_do():
    from torchtune.modules._document_attention import VarlenDocuments, varlen_document_attention

    docs = VarlenDocuments.of(BlockCausalMask([[3, 4], [1, 6]]), torch.device("cpu"))
    assert docs.cu_seqlens.dtype == torch.int32 and docs.cu_seqlens.tolist() == [0, 3, 7, 8, 14]
    assert docs.max_len == 6
    q = torch.randn(2, 4, 7, 16)
    with pytest.raises(ValueError, match="document_attention='varlen' needs bf16 or fp16"):
        varlen_document_attention(q, q[:, :2], q[:, :2], docs, scale=0.25)
    _, ours = _pair("gemma2_softcap_window")
    _, tokens, input_pos = _row()
    attn = ours.layers[0].attn
    x = torch.randn(1, tokens.shape[1], 32)
    with pytest.raises(ValueError, match="softcapping=2.0 has no varlen kernel; use document_attention='flex'"):
        attn(x, mask=docs.__class__.of(BlockCausalMask([LENS]), torch.device("cpu")), input_pos=input_pos)
    # through the decoder, layers varlen cannot compute attend per document instead
    ours.set_document_attention("varlen")
    with torch.no_grad():
        got = ours(tokens, mask=BlockCausalMask([LENS]), input_pos=input_pos)
        ours.set_document_attention("sdpa")
        torch.testing.assert_close(got, ours(tokens, mask=BlockCausalMask([LENS]), input_pos=input_pos), rtol=0, atol=0)


def test_layers_with_attention_sinks_attend_per_document_under_flex(cpu_flex_backward):
    torch.manual_seed(0)
    config = dict(CONFIGS["llama_gqa"])
    ours = model_from_hf_config(json.loads(AutoConfig.for_model(**config).to_json_string())).eval()
    ours.layers[1].attn.sinks = torch.nn.Parameter(torch.randn(4))  # a gpt-oss style sink on one layer
    _, tokens, input_pos = _row()
    ours.set_document_attention("flex")
    masks = ours._layer_masks(BlockCausalMask([LENS]), torch.device("cpu"))
    assert isinstance(masks[1], BlockCausalMask) and not isinstance(masks[0], BlockCausalMask)
    with torch.no_grad():
        got = ours(tokens, mask=BlockCausalMask([LENS]), input_pos=input_pos)
        ours.set_document_attention("sdpa")
        torch.testing.assert_close(got, ours(tokens, mask=BlockCausalMask([LENS]), input_pos=input_pos),
                                   atol=1e-5, rtol=1e-5)
