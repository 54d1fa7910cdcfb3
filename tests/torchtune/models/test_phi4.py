"""Phi-4 (Hugging Face model_type "phi3"): GQA parity with transformers and the preset's size."""

import torch
from transformers import AutoModelForCausalLM, Phi3Config

from torchtune.models import hf_to_tune, model_from_hf_config
from torchtune.models.phi4 import lora_phi4_14b, phi4_14b

# microsoft/phi-4 config.json
PHI4 = dict(vocab_size=100352, hidden_size=5120, intermediate_size=17920, num_hidden_layers=40,
            num_attention_heads=40, num_key_value_heads=10, max_position_embeddings=16384,
            rope_theta=250000.0, rms_norm_eps=1e-5, sliding_window=None, tie_word_embeddings=False)


def test_phi4_14b_matches_published_config() -> None:
    with torch.device("meta"):
        model = phi4_14b()
        hf = AutoModelForCausalLM.from_config(Phi3Config(**PHI4))
        from_config = model_from_hf_config(Phi3Config(**PHI4).to_dict())
    count = sum(p.numel() for p in model.parameters())
    assert count == 14_659_507_200 == sum(p.numel() for p in hf.parameters())
    assert {k: v.shape for k, v in model.state_dict().items()} == {
        k: v.shape for k, v in from_config.state_dict().items()
    }
    attn = model.layers[0].attn
    assert (attn.num_kv_heads, attn.sliding_window, attn.pos_embeddings.base) == (10, None, 250_000)


def test_phi4_shaped_tiny_model_matches_transformers() -> None:
    torch.manual_seed(0)
    config = Phi3Config(vocab_size=70, hidden_size=40, intermediate_size=56, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=1, max_position_embeddings=32,
                        rope_theta=250000.0, sliding_window=None, pad_token_id=0, bos_token_id=1,
                        eos_token_id=2)
    hf = AutoModelForCausalLM.from_config(config).eval()
    ours = model_from_hf_config(hf.config.to_dict())
    ours.load_state_dict(hf_to_tune(hf.state_dict(), hf.config.to_dict()))
    tokens = torch.randint(0, 70, (2, 9), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(tokens), hf(input_ids=tokens).logits, atol=1e-5, rtol=1e-5)


def test_lora_phi4_adapters() -> None:
    with torch.device("meta"):
        model = lora_phi4_14b(["v_proj"], apply_lora_to_mlp=True, lora_rank=8)
    assert model.layers[0].attn.v_proj.lora_b.weight.shape == (1280, 8)
    assert model.layers[0].mlp.w1.lora_a.weight.shape == (8, 5120)
