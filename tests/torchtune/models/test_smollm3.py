"""SmolLM3 against transformers' SmolLM3ForCausalLM on a tiny random checkpoint made with
SmolLM3Config: NoPE layers (every 4th, and an explicit ``no_rope_layers`` list), tied and untied
embeddings, and the sliding window transformers puts on NoPE layers when asked."""

import pytest
import torch
from transformers import AutoModelForCausalLM, SmolLM3Config, SmolLM3ForCausalLM

from tests.torchtune.models import _family_testing as ft
from torchtune.models import hf_to_tune, model_from_hf_config
from torchtune.models.smollm3 import lora_smollm3_3b, smollm3, smollm3_3b, smollm3_rope_layers

VOCAB = 96
TINY = dict(
    vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=5, num_attention_heads=4,
    num_key_value_heads=2, max_position_embeddings=64, rope_parameters={"rope_type": "default", "rope_theta": 5e4},
    rms_norm_eps=1e-6, pad_token_id=0, bos_token_id=1, eos_token_id=2,
)
VARIANTS = {
    "interval_tied": dict(TINY),
    "list_untied": dict(TINY, no_rope_layers=[1, 0, 1, 0, 1], tie_word_embeddings=False),
    "window_on_nope": dict(TINY, use_sliding_window=True, sliding_window=3),
}


@pytest.fixture(params=sorted(VARIANTS))
def pair(request):
    return ft.make_pair(SmolLM3Config(**VARIANTS[request.param]), SmolLM3ForCausalLM)


def test_nope_layers():
    _, ours, _ = ft.make_pair(SmolLM3Config(**VARIANTS["interval_tied"]), SmolLM3ForCausalLM)
    assert [layer.attn.pos_embeddings is not None for layer in ours.layers] == [True, True, True, False, True]
    _, ours, _ = ft.make_pair(SmolLM3Config(**VARIANTS["window_on_nope"]), SmolLM3ForCausalLM)
    assert [layer.attn.sliding_window for layer in ours.layers] == [None, None, None, 3, None]
    assert smollm3_rope_layers(8, 4) == [True, True, True, False] * 2


def test_padded_logits_match_transformers(pair):
    hf, ours, _ = pair
    ft.check_padded_logits(hf, ours, VOCAB)


def test_builder_matches_transformers():
    hf, _, config = ft.make_pair(SmolLM3Config(**VARIANTS["interval_tied"]), SmolLM3ForCausalLM)
    ours = smollm3(vocab_size=VOCAB, num_layers=5, num_heads=4, num_kv_heads=2, embed_dim=32, intermediate_dim=48,
                   max_seq_len=64, rope_base=5e4).eval()
    ours.load_state_dict(hf_to_tune(hf.state_dict(), config))
    ft.check_padded_logits(hf, ours, VOCAB)


def test_gradients_match_transformers(pair):
    hf, ours, config = pair
    ft.check_gradients(hf, ours, config, VOCAB)


def test_padding_free_rows_match_each_document_alone(pair):
    hf, ours, _ = pair
    ft.check_padding_free(hf, ours, VOCAB)


def test_kv_cache_decoding_matches_transformers(pair):
    hf, ours, _ = pair
    ft.check_kv_cache(hf, ours, VOCAB)


def test_greedy_generation_matches_transformers(pair):
    hf, ours, _ = pair
    ft.check_greedy_generation(hf, ours)


def test_round_trip(pair):
    hf, _, config = pair
    ft.check_round_trip(hf, config)


# HuggingFaceTB/SmolLM3-3B config.json sizes; the model card's 3.08B parameters (tied embeddings)
PUBLISHED_3B = dict(vocab_size=128_256, hidden_size=2048, intermediate_size=11_008, num_hidden_layers=36,
                    num_attention_heads=16, num_key_value_heads=4, max_position_embeddings=65_536,
                    tie_word_embeddings=True)


def test_preset_matches_published_config():
    with torch.device("meta"):
        ours = smollm3_3b()
        reference = AutoModelForCausalLM.from_config(SmolLM3Config(**PUBLISHED_3B))
        from_config = model_from_hf_config(reference.config.to_dict())
    n = sum(p.numel() for p in ours.parameters())
    assert n == sum(p.numel() for p in reference.parameters()) == 3_075_098_624
    assert round(n / 1e9, 2) == 3.08
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in from_config.state_dict().items()}
    assert [layer.attn.pos_embeddings is None for layer in ours.layers] == [(i + 1) % 4 == 0 for i in range(36)]


def test_lora_preset():
    with torch.device("meta"):
        model = lora_smollm3_3b(["q_proj", "v_proj"], apply_lora_to_mlp=True, lora_rank=4)
    names = {k for k in model.state_dict() if "lora_a" in k}
    assert "layers.3.attn.q_proj.lora_a.weight" in names and "layers.0.mlp.w1.lora_a.weight" in names
    assert not any(".k_proj." in k for k in names)


def test_bad_arguments():
    with pytest.raises(ValueError, match="no_rope_layer_interval=0 must be a positive integer"):
        smollm3_rope_layers(4, 0)
    with pytest.raises(ValueError, match="no_rope_layers has 2 entries but num_hidden_layers=5"):
        model_from_hf_config(dict(TINY, model_type="smollm3", no_rope_layers=[1, 0]))
