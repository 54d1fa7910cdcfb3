"""SmolLM2 presets against transformers' LlamaForCausalLM built from the published config.json
values (HuggingFaceTB/SmolLM2-135M, -360M, -1.7B), on the meta device; the tiny random model's
logits against transformers'."""

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from torchtune.models import hf_to_tune, model_from_hf_config
from torchtune.models.smollm2 import lora_smollm2_135m, smollm2, smollm2_135m, smollm2_1_7b, smollm2_360m

# the published config.json values that differ between the sizes (all: vocab 49152, tied embeddings,
# max_position_embeddings 8192, rms_norm_eps 1e-5, silu)
PUBLISHED = {
    smollm2_135m: dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                       num_key_value_heads=3, rope_theta=100000.0),
    smollm2_360m: dict(hidden_size=960, intermediate_size=2560, num_hidden_layers=32, num_attention_heads=15,
                       num_key_value_heads=5, rope_theta=100000.0),
    smollm2_1_7b: dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=24, num_attention_heads=32,
                       num_key_value_heads=32, rope_theta=130000.0),
}


def _hf_config(**sizes) -> LlamaConfig:
    return LlamaConfig(vocab_size=49152, max_position_embeddings=8192, rms_norm_eps=1e-5, tie_word_embeddings=True,
                       **sizes)


@pytest.mark.parametrize("preset", list(PUBLISHED), ids=lambda p: p.__name__)
def test_presets_have_the_published_shapes(preset):
    with torch.device("meta"):
        ours = preset()
        theirs = LlamaForCausalLM(_hf_config(**PUBLISHED[preset]))
    expected = {k: v.shape for k, v in hf_to_tune(theirs.state_dict(), theirs.config.to_dict()).items()}
    assert {k: v.shape for k, v in ours.state_dict().items()} == expected
    assert ours.layers[0].attn.pos_embeddings.base == PUBLISHED[preset]["rope_theta"]


def test_lora_preset_trains_only_adapters_and_cannot_adapt_the_tied_output():
    with torch.device("meta"):
        model = lora_smollm2_135m(["q_proj", "v_proj"], apply_lora_to_mlp=True)
    assert any(k.endswith("lora_a.weight") for k in model.state_dict())
    with pytest.raises(ValueError, match="tie_word_embeddings"):
        lora_smollm2_135m(["q_proj"], apply_lora_to_output=True)


def test_family_builder_matches_transformers_logits():
    torch.manual_seed(0)
    sizes = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                 rope_theta=100000.0)
    hf = LlamaForCausalLM(_hf_config(**sizes)).eval()
    ours = smollm2(vocab_size=49152, max_seq_len=8192, num_layers=2, num_heads=4, num_kv_heads=2, embed_dim=64,
                   intermediate_dim=96).eval()
    ours.load_state_dict(hf_to_tune(hf.state_dict(), hf.config.to_dict()))
    tokens = torch.randint(0, 49152, (2, 17), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(ours(tokens), hf(tokens).logits, atol=1e-4, rtol=1e-4)
    # and model_from_hf_config reads the same architecture
    assert type(model_from_hf_config(hf.config.to_dict())) is type(ours)
