"""GPU checks: the same tiny models on CUDA (bf16 and fp32) as transformers on CUDA.

Tagged `gpu`; every test skips cleanly on a machine without CUDA.
"""

import json

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from torchtune.generation import generate
from torchtune.models import hf_to_tune, model_from_hf_config

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

_TINY = dict(model_type="llama", vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)


def _pair(dtype):
    torch.manual_seed(0)
    hf_config = AutoConfig.for_model(**dict(_TINY))
    hf = AutoModelForCausalLM.from_config(hf_config, attn_implementation="sdpa").eval()
    config = json.loads(hf_config.to_json_string())
    ours = model_from_hf_config(config).eval()
    ours.load_state_dict(hf_to_tune(hf.state_dict(), config))
    return hf.to("cuda", dtype), ours.to("cuda", dtype)


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-4), (torch.bfloat16, 3e-2)])
def test_logits_match_transformers_on_cuda(dtype, tol):
    hf, ours = _pair(dtype)
    tokens = torch.randint(0, 128, (2, 32), device="cuda", generator=torch.Generator("cuda").manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(ours(tokens).float(), hf(tokens).logits.float(), atol=tol, rtol=tol)


def test_greedy_generation_matches_transformers_on_cuda():
    hf, ours = _pair(torch.float32)
    prompt = torch.randint(0, 128, (1, 8), device="cuda", generator=torch.Generator("cuda").manual_seed(2))
    with torch.no_grad():
        expected = hf.generate(prompt, max_new_tokens=10, do_sample=False, pad_token_id=0)
        got, _ = generate(ours, prompt, max_new_tokens=10, temperature=0.0)
    assert got.tolist() == expected.tolist()


def test_backward_in_bf16_gives_finite_grads():
    _, ours = _pair(torch.bfloat16)
    ours.train()
    tokens = torch.randint(0, 128, (2, 32), device="cuda")
    loss = torch.nn.functional.cross_entropy(ours(tokens)[:, :-1].flatten(0, 1).float(), tokens[:, 1:].flatten())
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in ours.parameters() if p.grad is not None)
