import pytest
import torch
from transformers.models.gemma.modeling_gemma import GemmaRMSNorm
from transformers.models.llama.modeling_llama import LlamaRMSNorm

from torchtune.modules import RMSNorm


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_matches_llama_rms_norm():
    ours, ref = RMSNorm(16, eps=1e-5), LlamaRMSNorm(16, eps=1e-5)
    w = torch.randn(16)
    ours.scale.data.copy_(w)
    ref.weight.data.copy_(w)
    x = torch.randn(2, 5, 16) * 3
    torch.testing.assert_close(ours(x), ref(x), atol=1e-6, rtol=1e-6)


def test_offset_matches_gemma_rms_norm():
    ours, ref = RMSNorm(16, eps=1e-6, offset=1.0), GemmaRMSNorm(16, eps=1e-6)
    w = torch.randn(16)
    ours.scale.data.copy_(w)
    ref.weight.data.copy_(w)
    x = torch.randn(3, 4, 16)
    torch.testing.assert_close(ours(x), ref(x), atol=1e-6, rtol=1e-6)


def test_offset_init_is_identity_scale():
    norm = RMSNorm(8, offset=1.0)
    x = torch.randn(2, 8)
    expected = x / x.pow(2).mean(-1, keepdim=True).add(1e-6).sqrt()
    torch.testing.assert_close(norm(x), expected)


def test_keeps_dtype():
    x = torch.randn(2, 8, dtype=torch.bfloat16)
    assert RMSNorm(8)(x).dtype == torch.bfloat16
