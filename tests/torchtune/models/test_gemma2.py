"""Gemma 2 against transformers: logits of a padded batch, KV-cache decoding, preset sizes."""

import pytest
import torch
from transformers import AutoModelForCausalLM, Gemma2Config

from torchtune.generation import generate, generation_masks
from torchtune.models import hf_to_tune, model_from_hf_config
from torchtune.models.gemma2 import (
    gemma2,
    gemma2_27b,
    gemma2_2b,
    gemma2_9b,
    lora_gemma2,
    lora_gemma2_2b,
)

TINY = dict(
    vocab_size=96, hidden_size=32, intermediate_size=48, num_hidden_layers=3, num_attention_heads=4,
    num_key_value_heads=2, head_dim=16, max_position_embeddings=64, query_pre_attn_scalar=24,
    sliding_window=3, attn_logit_softcapping=2.0, final_logit_softcapping=3.0, rms_norm_eps=1e-6,
)


def _builder(config: dict) -> torch.nn.Module:
    return gemma2(
        vocab_size=config["vocab_size"], num_layers=config["num_hidden_layers"],
        num_heads=config["num_attention_heads"], head_dim=config["head_dim"],
        num_kv_heads=config["num_key_value_heads"], embed_dim=config["hidden_size"],
        intermediate_dim=config["intermediate_size"], max_seq_len=config["max_position_embeddings"],
        norm_eps=config["rms_norm_eps"], attn_softcapping=config["attn_logit_softcapping"],
        final_logit_softcapping=config["final_logit_softcapping"],
        sliding_window=config["sliding_window"], query_pre_attn_scalar=config["query_pre_attn_scalar"],
    )


def _pair(use_builder: bool = False, **overrides) -> tuple[torch.nn.Module, torch.nn.Module]:
    """transformers' model and ours (from config.json, or from :func:`gemma2`) on equal weights."""
    torch.manual_seed(0)
    hf = AutoModelForCausalLM.from_config(Gemma2Config(**{**TINY, **overrides}), attn_implementation="eager")
    with torch.no_grad():
        for name, param in hf.named_parameters():
            if "norm" in name:  # Gemma norms start at 0; make the (1 + w) offset matter
                param.normal_(0.0, 0.3)
    config = hf.config.to_dict()
    ours = _builder(config) if use_builder else model_from_hf_config(config)
    ours.load_state_dict(hf_to_tune(hf.state_dict(), config))
    return hf.eval(), ours.eval()


def _padded_batch() -> tuple[torch.Tensor, torch.Tensor]:
    tokens = torch.randint(1, TINY["vocab_size"], (3, 9), generator=torch.Generator().manual_seed(1))
    is_real = torch.ones_like(tokens, dtype=torch.bool)
    is_real[1, :4] = False
    is_real[2, :7] = False
    return tokens.masked_fill(~is_real, 0), is_real


def _hf_logits(hf: torch.nn.Module, tokens: torch.Tensor, is_real: torch.Tensor) -> torch.Tensor:
    position_ids = (is_real.long().cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        return hf(input_ids=tokens, attention_mask=is_real.long(), position_ids=position_ids).logits


@pytest.mark.parametrize("use_builder", [False, True], ids=["from_hf_config", "builder"])
def test_padded_batch_logits_match_transformers(use_builder: bool) -> None:
    hf, ours = _pair(use_builder)
    tokens, is_real = _padded_batch()
    mask, input_pos = generation_masks(is_real, 0)
    with torch.no_grad():
        logits = ours(tokens, mask=mask, input_pos=input_pos)
    expected = _hf_logits(hf, tokens, is_real)
    torch.testing.assert_close(logits[is_real], expected[is_real], atol=1e-5, rtol=1e-5)


def test_unpadded_causal_default_matches_transformers() -> None:
    hf, ours = _pair(sliding_window=4)
    tokens = torch.randint(0, TINY["vocab_size"], (2, 10), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(ours(tokens), hf(input_ids=tokens).logits, atol=1e-5, rtol=1e-5)


def test_kv_cache_decoding_matches_full_forward() -> None:
    hf, ours = _pair()
    tokens, is_real = _padded_batch()
    b, s = tokens.shape
    mask, input_pos = generation_masks(is_real, 0)
    ours.setup_caches(b, torch.float32, decoder_max_seq_len=s)
    steps = [ours(tokens[:, :4], mask=mask[:, :4], input_pos=input_pos[:, :4])]
    with torch.no_grad():
        for t in range(4, s):
            steps.append(ours(tokens[:, t : t + 1], mask=mask[:, t : t + 1], input_pos=input_pos[:, t : t + 1]))
    incremental = torch.cat(steps, dim=1)
    expected = _hf_logits(hf, tokens, is_real)
    torch.testing.assert_close(incremental[is_real], expected[is_real], atol=1e-5, rtol=1e-5)


def test_greedy_generation_matches_transformers() -> None:
    hf, ours = _pair(sliding_window=5)
    prompts = [[5, 17, 3, 44, 9, 21], [70, 2, 11]]
    out, _ = generate(ours, prompts, max_new_tokens=6, pad_id=0, temperature=0.0)
    tokens = torch.tensor([prompts[0], [0, 0, 0] + prompts[1]])
    attention_mask = (torch.arange(6)[None] >= torch.tensor([[0], [3]])).long()
    expected = hf.generate(
        input_ids=tokens, attention_mask=attention_mask, max_new_tokens=6, do_sample=False,
        pad_token_id=0, eos_token_id=None,
    )
    assert torch.equal(out, expected)


def test_sliding_window_alternates_from_layer_zero() -> None:
    model = gemma2(vocab_size=64, num_layers=4, num_heads=2, head_dim=8, num_kv_heads=1, embed_dim=16,
                   intermediate_dim=24, max_seq_len=32, sliding_window=7)
    assert [layer.attn.sliding_window for layer in model.layers] == [7, None, 7, None]


PUBLISHED = {  # sizes from the published config.json files and published parameter counts
    gemma2_2b: (dict(hidden_size=2304, intermediate_size=9216, num_hidden_layers=26, num_attention_heads=8,
                     num_key_value_heads=4, head_dim=256, query_pre_attn_scalar=256), 2_614_341_888),
    gemma2_9b: (dict(hidden_size=3584, intermediate_size=14336, num_hidden_layers=42, num_attention_heads=16,
                     num_key_value_heads=8, head_dim=256, query_pre_attn_scalar=256), 9_241_705_984),
    gemma2_27b: (dict(hidden_size=4608, intermediate_size=36864, num_hidden_layers=46, num_attention_heads=32,
                      num_key_value_heads=16, head_dim=128, query_pre_attn_scalar=144), 27_227_128_320),
}


@pytest.mark.parametrize("preset", list(PUBLISHED), ids=lambda f: f.__name__)
def test_preset_matches_published_config(preset) -> None:
    sizes, count = PUBLISHED[preset]
    hf_config = Gemma2Config(vocab_size=256000, max_position_embeddings=8192, **sizes)
    with torch.device("meta"):
        model = preset()
        hf = AutoModelForCausalLM.from_config(hf_config)
        from_config = model_from_hf_config(hf_config.to_dict())
    n = sum(p.numel() for p in model.parameters())
    assert n == count == sum(p.numel() for p in hf.parameters())
    assert {k: v.shape for k, v in model.state_dict().items()} == {
        k: v.shape for k, v in from_config.state_dict().items()
    }
    layer = model.layers[0].attn
    assert layer.scale == sizes["query_pre_attn_scalar"] ** -0.5
    assert (layer.softcapping, model.final_logit_softcapping, layer.sliding_window) == (50.0, 30.0, 4096)


def test_lora_preset_adds_adapters_only_where_asked() -> None:
    with torch.device("meta"):
        model = lora_gemma2_2b(["q_proj", "v_proj"], apply_lora_to_mlp=True, lora_rank=4)
    names = {k for k in model.state_dict() if "lora_a" in k}
    assert "layers.0.attn.q_proj.lora_a.weight" in names and "layers.0.mlp.w2.lora_a.weight" in names
    assert not any(".k_proj." in k or ".output_proj." in k for k in names)


def test_lora_on_tied_output_is_refused() -> None:
    with pytest.raises(ValueError, match="apply_lora_to_output=True is not supported"):
        lora_gemma2(["q_proj"], apply_lora_to_output=True, vocab_size=16, num_layers=1, num_heads=2,
                    head_dim=4, num_kv_heads=1, embed_dim=8, intermediate_dim=8, max_seq_len=8)


def test_bad_query_pre_attn_scalar() -> None:
    with pytest.raises(ValueError, match="query_pre_attn_scalar=0 must be positive"):
        gemma2(vocab_size=16, num_layers=1, num_heads=2, head_dim=4, num_kv_heads=1, embed_dim=8,
               intermediate_dim=8, max_seq_len=8, query_pre_attn_scalar=0)


def _state(model: torch.nn.Module) -> dict:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_old_positional_and_renamed_arguments_still_build_the_same_model() -> None:
    """Deprecated for one release: positional arguments and the names hidden_capping_value,
    final_capping_value and sliding_window_size."""
    torch.manual_seed(0)
    new = gemma2(vocab_size=64, num_layers=2, num_heads=2, head_dim=8, num_kv_heads=1, embed_dim=16,
                 intermediate_dim=24, max_seq_len=32, attn_softcapping=5.0, final_logit_softcapping=6.0,
                 sliding_window=7)
    torch.manual_seed(0)
    with pytest.warns(DeprecationWarning) as caught:
        old = gemma2(64, 2, 2, 8, 1, 16, 24, 32, hidden_capping_value=5.0, final_capping_value=6.0,
                     sliding_window_size=7)
    messages = [str(w.message) for w in caught]
    assert any("takes keyword arguments only" in m and "vocab_size=..." in m for m in messages)
    assert any("hidden_capping_value=...) is deprecated" in m and "use attn_softcapping=" in m for m in messages)
    assert any("use final_logit_softcapping=" in m for m in messages)
    assert any("use sliding_window=" in m for m in messages)
    assert str(old) == str(new)
    assert all(torch.equal(a, b) for a, b in zip(_state(old).values(), _state(new).values()))
    attn = old.layers[0].attn
    assert (attn.softcapping, old.final_logit_softcapping, attn.sliding_window) == (5.0, 6.0, 7)
    assert old.layers[1].attn.sliding_window is None


def test_old_positional_names_follow_the_renames() -> None:
    with pytest.warns(DeprecationWarning, match=r"call gemma2\(.*attn_softcapping=\.\.\., "
                                                 r"final_logit_softcapping=\.\.\., sliding_window=\.\.\."):
        model = gemma2(16, 2, 2, 4, 1, 8, 8, 8, 0.0, 1e-6, 10_000, 4.0, None, 3)
    assert model.layers[0].attn.softcapping == 4.0 and model.final_logit_softcapping is None
    assert [layer.attn.sliding_window for layer in model.layers] == [3, None]


def test_old_and_new_name_together_is_an_error() -> None:
    with pytest.raises(TypeError, match=r"got both hidden_capping_value= \(deprecated\) and attn_softcapping="):
        gemma2(vocab_size=16, num_layers=1, num_heads=2, head_dim=4, num_kv_heads=1, embed_dim=8,
               intermediate_dim=8, max_seq_len=8, hidden_capping_value=1.0, attn_softcapping=2.0)
    with pytest.raises(TypeError, match=r"got multiple values for argument 'vocab_size'"):
        gemma2(16, vocab_size=16, num_layers=1, num_heads=2, head_dim=4, num_kv_heads=1, embed_dim=8,
               intermediate_dim=8, max_seq_len=8)
    with pytest.raises(TypeError, match=r"takes keyword arguments only; got 17 positional arguments"):
        gemma2(*range(17))


def test_signature_is_keyword_only_with_the_shared_names() -> None:
    import inspect

    params = inspect.signature(gemma2).parameters
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params.values())
    assert {"attn_softcapping", "final_logit_softcapping", "sliding_window"} <= set(params)
    assert not {"hidden_capping_value", "final_capping_value", "sliding_window_size"} & set(params)


def test_config_json_without_the_optional_keys_takes_transformers_defaults() -> None:
    """A config.json without query_pre_attn_scalar, the soft caps, sliding_window or layer_types
    builds what transformers builds from it: Gemma2Config's defaults (256, 50, 30, 4096 on even
    layers), not head_dim or "no cap"."""
    optional = ("query_pre_attn_scalar", "attn_logit_softcapping", "final_logit_softcapping", "sliding_window")
    sparse = {k: v for k, v in TINY.items() if k not in optional}
    reference = Gemma2Config()
    torch.manual_seed(0)
    hf = AutoModelForCausalLM.from_config(Gemma2Config(**sparse), attn_implementation="eager").eval()
    ours = model_from_hf_config({"model_type": "gemma2", **sparse}).eval()
    ours.load_state_dict(hf_to_tune(hf.state_dict(), hf.config.to_dict()))
    attn = ours.layers[0].attn
    assert attn.scale == reference.query_pre_attn_scalar ** -0.5 != sparse["head_dim"] ** -0.5
    assert attn.softcapping == reference.attn_logit_softcapping
    assert ours.final_logit_softcapping == reference.final_logit_softcapping
    assert [layer.attn.sliding_window for layer in ours.layers] == [reference.sliding_window, None,
                                                                    reference.sliding_window]
    tokens, is_real = _padded_batch()
    mask, input_pos = generation_masks(is_real, 0)
    with torch.no_grad():
        logits = ours(tokens, mask=mask, input_pos=input_pos)
    torch.testing.assert_close(logits[is_real], _hf_logits(hf, tokens, is_real)[is_real], atol=1e-5, rtol=1e-5)


def test_explicit_null_soft_caps_and_window_disable_them() -> None:
    config = {"model_type": "gemma2", **TINY, "attn_logit_softcapping": None, "final_logit_softcapping": None,
              "sliding_window": None}
    with torch.device("meta"):
        ours = model_from_hf_config(config)
    assert ours.layers[0].attn.softcapping is None and ours.final_logit_softcapping is None
    assert all(layer.attn.sliding_window is None for layer in ours.layers)
