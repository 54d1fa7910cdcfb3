"""Gemma 3 (text) against transformers' Gemma3ForCausalLM on a tiny random checkpoint made with
Gemma3TextConfig: local windows shorter than the test sequences, a global layer, separate local
and global RoPE thetas with linear scaling on the global layer, q/k norms and (1 + w) norms."""

import pytest
import torch
from transformers import (
    AutoModelForCausalLM,
    Gemma3Config,
    Gemma3ForCausalLM,
    Gemma3ForConditionalGeneration,
    Gemma3TextConfig,
    SiglipVisionConfig,
)

from tests.torchtune.models import _family_testing as ft
from torchtune.models import hf_to_tune, model_from_hf_config, tune_to_hf
from torchtune.models.gemma3 import (
    gemma3,
    gemma3_12b,
    gemma3_1b,
    gemma3_27b,
    gemma3_4b,
    gemma3_sliding_windows,
    lora_gemma3,
    lora_gemma3_1b,
)

VOCAB = 96
TINY = dict(
    vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=7, num_attention_heads=4,
    num_key_value_heads=2, head_dim=16, max_position_embeddings=64, query_pre_attn_scalar=24, sliding_window=3,
    final_logit_softcapping=3.0, rms_norm_eps=1e-6, pad_token_id=0,
    rope_parameters={"full_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1000.0},
                     "sliding_attention": {"rope_type": "default", "rope_theta": 50.0}},
)


@pytest.fixture
def pair():
    return ft.make_pair(Gemma3TextConfig(**TINY), Gemma3ForCausalLM)


def test_layer_layout_of_the_tiny_model(pair):
    _, ours, _ = pair
    assert [layer.attn.sliding_window for layer in ours.layers] == [3, 3, 3, 3, 3, None, 3]
    ropes = [layer.attn.pos_embeddings for layer in ours.layers]
    assert [r.base for r in ropes] == [50.0] * 5 + [1000.0, 50.0]
    assert ropes[5].scaling == {"rope_type": "linear", "factor": 2.0} and ropes[0].scaling is None


def test_padded_logits_match_transformers(pair):
    hf, ours, _ = pair
    ft.check_padded_logits(hf, ours, VOCAB)


def test_builder_matches_transformers():
    hf, _, config = ft.make_pair(Gemma3TextConfig(**TINY), Gemma3ForCausalLM)
    ours = gemma3(vocab_size=VOCAB, num_layers=7, num_heads=4, head_dim=16, num_kv_heads=2, embed_dim=32,
                  intermediate_dim=48, max_seq_len=64, sliding_window=3, rope_base=1000.0, local_rope_base=50.0,
                  rope_scaling_factor=2.0, query_pre_attn_scalar=24, final_logit_softcapping=3.0).eval()
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


def test_transformers_4_config_layout_builds_the_same_model():
    """config.json as transformers 4.x wrote it: rope_theta, rope_local_base_freq, rope_scaling and
    sliding_window_pattern instead of rope_parameters and layer_types."""
    hf, ours, _ = ft.make_pair(Gemma3TextConfig(**TINY), Gemma3ForCausalLM)
    v4 = {k: v for k, v in TINY.items() if k != "rope_parameters"}
    v4.update(model_type="gemma3_text", rope_theta=1000.0, rope_local_base_freq=50.0, sliding_window_pattern=6,
              rope_scaling={"rope_type": "linear", "factor": 2.0}, hidden_activation="gelu_pytorch_tanh")
    old = model_from_hf_config(v4).eval()
    old.load_state_dict(ours.state_dict())
    ft.check_padded_logits(hf, old, VOCAB)


def _multimodal():
    torch.manual_seed(0)
    vision = SiglipVisionConfig(hidden_size=16, intermediate_size=24, num_hidden_layers=1, num_attention_heads=2,
                                image_size=28, patch_size=14)
    # no final soft-cap: Gemma3ForConditionalGeneration does not apply it (the published configs have none)
    text = Gemma3TextConfig(**dict(TINY, final_logit_softcapping=None))
    config = Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=1)
    config._attn_implementation = "eager"
    hf = Gemma3ForConditionalGeneration(config).eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.normal_(0.0, 0.2)
    return hf, config.to_dict()


def test_multimodal_checkpoint_gives_its_text_decoder():
    hf, config = _multimodal()
    ours = model_from_hf_config(config).eval()
    ours.load_state_dict(hf_to_tune(hf.state_dict(), config), strict=True)
    tokens = torch.randint(1, VOCAB, (2, 10), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        torch.testing.assert_close(ours(tokens), hf(input_ids=tokens).logits, atol=1e-5, rtol=1e-5)
    # written back under the language model's names of transformers 5
    back = tune_to_hf(ours.state_dict(), config)
    text = {k: v for k, v in hf.state_dict().items() if k.startswith("model.language_model.")}
    assert back.keys() == text.keys() and all(torch.equal(back[k], text[k]) for k in text)


def test_transformers_4_multimodal_key_layout():
    hf, config = _multimodal()
    old = {k.replace("model.language_model.", "language_model.model."): v for k, v in hf.state_dict().items()}
    assert hf_to_tune(old, config).keys() == hf_to_tune(hf.state_dict(), config).keys()


# Published parameter counts of google/gemma-3-*-it (the whole checkpoint; 4B-27B include the
# SigLIP vision tower and projector, which are not built here), with the published text_config.
PUBLISHED = {
    gemma3_1b: (dict(vocab_size=262_144, hidden_size=1152, intermediate_size=6912, num_hidden_layers=26,
                     num_attention_heads=4, num_key_value_heads=1, head_dim=256, sliding_window=512), 999_885_952),
    gemma3_4b: (dict(hidden_size=2560, intermediate_size=10_240, num_hidden_layers=34, num_attention_heads=8,
                     num_key_value_heads=4, sliding_window=1024), 4_300_079_472),
    gemma3_12b: (dict(hidden_size=3840, intermediate_size=15_360, num_hidden_layers=48, num_attention_heads=16,
                      num_key_value_heads=8, sliding_window=1024), 12_187_325_040),
    gemma3_27b: (dict(hidden_size=5376, intermediate_size=21_504, num_hidden_layers=62, num_attention_heads=32,
                      num_key_value_heads=16, head_dim=128, query_pre_attn_scalar=168, sliding_window=1024),
                 27_432_406_640),
}
_SIGLIP_SO400M = dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16,
                      image_size=896, patch_size=14, vision_use_head=False)


@pytest.mark.parametrize("preset", list(PUBLISHED), ids=lambda f: f.__name__)
def test_preset_matches_published_count(preset):
    text, count = PUBLISHED[preset]
    with torch.device("meta"):
        ours = preset()
        if preset is gemma3_1b:  # a text-only checkpoint
            reference = AutoModelForCausalLM.from_config(Gemma3TextConfig(**text))
            from_config = model_from_hf_config(reference.config.to_dict())
        else:
            reference = Gemma3ForConditionalGeneration(Gemma3Config(
                text_config=text, vision_config=_SIGLIP_SO400M, mm_tokens_per_image=256))
            from_config = model_from_hf_config(reference.config.to_dict())
    n = sum(p.numel() for p in ours.parameters())
    assert sum(p.numel() for p in reference.parameters()) == count
    text_params = sum(p.numel() for name, p in reference.named_parameters()
                      if "vision_tower" not in name and "multi_modal_projector" not in name)
    assert n == text_params
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in from_config.state_dict().items()}


def test_lora_preset_and_tied_output():
    with torch.device("meta"):
        model = lora_gemma3_1b(["q_proj", "v_proj"], apply_lora_to_mlp=True, lora_rank=4)
    names = {k for k in model.state_dict() if "lora_a" in k}
    assert "layers.0.attn.q_proj.lora_a.weight" in names and "layers.5.mlp.w2.lora_a.weight" in names
    assert not any(".k_proj." in k for k in names)
    with pytest.raises(ValueError, match="apply_lora_to_output=True is not supported"):
        lora_gemma3(["q_proj"], apply_lora_to_output=True, vocab_size=16, num_layers=1, num_heads=2, head_dim=4,
                    num_kv_heads=1, embed_dim=8, intermediate_dim=8, max_seq_len=8, sliding_window=2)


def test_bad_arguments():
    with pytest.raises(ValueError, match="sliding_window_pattern=0 must be a positive integer"):
        gemma3_sliding_windows(4, 2, 0)
    with pytest.raises(ValueError, match="use_bidirectional_attention=True"):
        model_from_hf_config(dict(TINY, model_type="gemma3_text", use_bidirectional_attention=True))
