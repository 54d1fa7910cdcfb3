import copy
import json

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoConfig, AutoModelForCausalLM

from torchtune.models import hf_to_tune, model_from_hf_config, tune_to_hf, tune_to_hf_module_name
from torchtune.modules.peft import get_adapter_state_dict, validate_missing_and_unexpected_for_lora

_TINY = dict(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=64)
CONFIGS = {
    "llama3_scaled": dict(_TINY, model_type="llama", rms_norm_eps=1e-5, rope_theta=500000.0, rope_scaling={
        "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 16}),
    "llama2_mha_bias": dict(_TINY, model_type="llama", num_key_value_heads=4, attention_bias=True),
    "llama3_2_tied": dict(_TINY, model_type="llama", tie_word_embeddings=True, rope_theta=500000.0),
    "mistral_window": dict(_TINY, model_type="mistral", sliding_window=4),
    "qwen2_tied": dict(_TINY, model_type="qwen2", tie_word_embeddings=True, rope_theta=1e6),
    "qwen3_head_dim": dict(_TINY, model_type="qwen3", head_dim=16, tie_word_embeddings=False),
    # Qwen's long-context setting: YaRN with its ramp inside the rotated dims, and mscale terms
    "qwen2_yarn": dict(_TINY, model_type="qwen2", rope_theta=1e4, rope_scaling={
        "rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16, "beta_fast": 8.0,
        "mscale": 1.2, "mscale_all_dim": 0.8}),
    "llama_yarn_attention_factor": dict(_TINY, model_type="llama", rope_scaling={
        "rope_type": "yarn", "factor": 8.0, "original_max_position_embeddings": 8, "attention_factor": 1.3}),
}


def _hf_pair(name):
    torch.manual_seed(0)
    hf_config = AutoConfig.for_model(**copy.deepcopy(CONFIGS[name]))  # transformers edits it
    hf = AutoModelForCausalLM.from_config(hf_config, attn_implementation="eager").eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.normal_(0, 0.2)  # random norms and biases too
    config = json.loads(hf_config.to_json_string())  # what config.json would hold
    return hf, config


def _batch(left_pad=True):
    torch.manual_seed(1)
    tokens = torch.randint(0, 64, (2, 9))
    keep = torch.ones(2, 9, dtype=torch.bool)
    if left_pad:
        keep[1, :3] = False
    else:
        keep[1, 6:] = False
    pos = (keep.long().cumsum(-1) - 1).clamp(min=0)
    mask = torch.tril(torch.ones(9, 9, dtype=torch.bool))[None] & keep[:, None, :]
    return tokens, keep, pos, mask


@pytest.mark.parametrize("left_pad", [True, False])
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_logits_match_transformers(name, left_pad):
    hf, config = _hf_pair(name)
    ours = model_from_hf_config(config).eval()
    ours.load_state_dict(hf_to_tune(hf.state_dict(), config), strict=True)
    tokens, keep, pos, mask = _batch(left_pad)
    with torch.no_grad():
        expected = hf(input_ids=tokens, attention_mask=keep.long(), position_ids=pos).logits
        got = ours(tokens, mask=mask, input_pos=pos)
    torch.testing.assert_close(got[keep], expected[keep], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_kv_cache_decoding_matches_full_forward(name):
    hf, config = _hf_pair(name)
    ours = model_from_hf_config(config).eval()
    ours.load_state_dict(hf_to_tune(hf.state_dict(), config))
    tokens, keep, pos, mask = _batch(left_pad=True)
    with torch.no_grad():
        full = ours(tokens, mask=mask, input_pos=pos)
        ours.setup_caches(2, torch.float32, decoder_max_seq_len=16)
        cache_mask = torch.nn.functional.pad(mask, (0, 7))  # [b, s, 16]
        steps = [ours(tokens[:, :5], mask=cache_mask[:, :5], input_pos=pos[:, :5])]
        steps += [ours(tokens[:, t : t + 1], mask=cache_mask[:, t : t + 1], input_pos=pos[:, t : t + 1])
                  for t in range(5, 9)]
    torch.testing.assert_close(torch.cat(steps, dim=1)[keep], full[keep], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_round_trip(name):
    hf, config = _hf_pair(name)
    sd = hf.state_dict()
    back = tune_to_hf(hf_to_tune(sd, config), config)
    if config["tie_word_embeddings"]:
        sd = {k: v for k, v in sd.items() if k != "lm_head.weight"}
    assert back.keys() == sd.keys()
    for k in sd:
        assert torch.equal(back[k], sd[k])


@pytest.mark.parametrize("use_dora", [False, True])
def test_lora_matches_peft(use_dora):
    hf, config = _hf_pair("llama3_scaled")
    ours = model_from_hf_config(config, lora_attn_modules=["q_proj", "v_proj", "output_proj"],
                                apply_lora_to_mlp=True, lora_rank=4, lora_alpha=8, use_dora=use_dora).eval()
    missing, unexpected = ours.load_state_dict(hf_to_tune(hf.state_dict(), config), strict=False)
    validate_missing_and_unexpected_for_lora(ours, base_missing=missing, base_unexpected=unexpected)
    targets = ["q_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    peft_model = get_peft_model(hf, LoraConfig(r=4, lora_alpha=8, target_modules=targets, use_dora=use_dora)).eval()
    peft_params = dict(peft_model.named_parameters())
    torch.manual_seed(3)
    with torch.no_grad():
        for key, value in get_adapter_state_dict(ours.state_dict()).items():
            module, _, leaf = key.rpartition(".weight")[0].rpartition(".") if key.endswith(".weight") else (
                key.rpartition(".")[0], ".", key.rpartition(".")[2])
            hf_module = tune_to_hf_module_name(module, config)
            peft_leaf = {"lora_a": "lora_A.default.weight", "lora_b": "lora_B.default.weight",
                         "magnitude": "lora_magnitude_vector.default.weight"}[leaf]
            new = torch.randn_like(value) * 0.3 + (1.0 if leaf == "magnitude" else 0.0)
            dict(ours.named_parameters())[key].copy_(new)
            peft_params[f"base_model.model.{hf_module}.{peft_leaf}"].copy_(new)
    tokens, keep, pos, mask = _batch()
    with torch.no_grad():
        expected = peft_model(input_ids=tokens, attention_mask=keep.long(), position_ids=pos).logits
        got = ours(tokens, mask=mask, input_pos=pos)
    torch.testing.assert_close(got[keep], expected[keep], atol=1e-5, rtol=1e-5)


def test_hidden_states_match_transformers():
    hf, config = _hf_pair("qwen3_head_dim")
    ours = model_from_hf_config(config).eval()
    ours.load_state_dict(hf_to_tune(hf.state_dict(), config))
    ours.output_hidden_states = [0, 1]
    tokens = torch.randint(0, 64, (1, 6))
    with torch.no_grad():
        h0, h1, _ = ours(tokens)
        ref = hf(input_ids=tokens, output_hidden_states=True).hidden_states
    torch.testing.assert_close(h0, ref[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(h1, ref[1], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "config,message",
    [
        ({"model_type": "gpt2"}, r"model_type='gpt2' is not supported; supported: \[.*'llama', 'mistral'.*'qwen2', 'qwen3', 'qwen3_moe', 'smollm3'\]"),
        (dict(CONFIGS["llama2_mha_bias"], hidden_act="gelu"), r"hidden_act='gelu' is not supported"),
        (dict(CONFIGS["llama2_mha_bias"], rope_scaling={"rope_type": "longrope", "factor": 2.0}),
         r"rope_type='longrope' is not supported; supported: \['default', 'linear', 'llama3', 'yarn'\]"),
        (dict(CONFIGS["llama2_mha_bias"], rope_scaling={"rope_type": "yarn", "factor": 2.0}),
         r"yarn RoPE scaling=.* is missing keys \['original_max_position_embeddings'\]"),
    ],
)
def test_unsupported_configs(config, message):
    with pytest.raises(ValueError, match=message):
        model_from_hf_config(config)


def test_v4_and_v5_rope_layouts_agree():
    v4 = CONFIGS["llama3_scaled"]  # rope_theta + rope_scaling, as transformers 4.x wrote config.json
    _, v5 = _hf_pair("llama3_scaled")  # rope_parameters, as transformers 5.x writes it
    assert "rope_parameters" in v5 and "rope_scaling" not in v5
    ropes = [model_from_hf_config(c).layers[0].attn.pos_embeddings for c in (v4, v5)]
    assert ropes[0].base == ropes[1].base == 500000.0
    expected = {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 16}
    assert ropes[0].scaling == ropes[1].scaling == expected
    torch.testing.assert_close(ropes[0].cos_cache, ropes[1].cos_cache)
