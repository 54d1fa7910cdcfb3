import json

import pytest
import torch
from transformers import AutoModelForCausalLM, Phi3Config

from torchtune.models import hf_to_tune, model_from_hf_config, tune_to_hf, tune_to_hf_module_name


def _phi3():
    torch.manual_seed(0)
    cfg = Phi3Config(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                     pad_token_id=0, bos_token_id=1, eos_token_id=2)
    hf = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager").eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.normal_(0, 0.2)
    return hf, json.loads(cfg.to_json_string())


def test_phi3_fused_projections_split_and_fuse():
    hf, config = _phi3()
    sd = hf.state_dict()
    tune_sd = hf_to_tune(sd, config)
    qkv = sd["model.layers.1.self_attn.qkv_proj.weight"]  # [(4 + 2 + 2) * 8, 32]
    torch.testing.assert_close(tune_sd["layers.1.attn.q_proj.weight"], qkv[:32])
    torch.testing.assert_close(tune_sd["layers.1.attn.k_proj.weight"], qkv[32:48])
    torch.testing.assert_close(tune_sd["layers.1.attn.v_proj.weight"], qkv[48:])
    gate_up = sd["model.layers.0.mlp.gate_up_proj.weight"]  # [2 * 48, 32]
    torch.testing.assert_close(tune_sd["layers.0.mlp.w1.weight"], gate_up[:48])
    torch.testing.assert_close(tune_sd["layers.0.mlp.w3.weight"], gate_up[48:])
    back = tune_to_hf(tune_sd, config)
    assert back.keys() == sd.keys()
    assert all(torch.equal(back[k], sd[k]) for k in sd)


def test_phi3_logits_match_transformers():
    hf, config = _phi3()
    ours = model_from_hf_config(config).eval()
    ours.load_state_dict(hf_to_tune(hf.state_dict(), config), strict=True)
    tokens = torch.randint(0, 64, (2, 7))
    with torch.no_grad():
        torch.testing.assert_close(ours(tokens), hf(input_ids=tokens).logits, atol=1e-5, rtol=1e-5)


def test_module_names():
    llama = {"model_type": "llama"}
    assert tune_to_hf_module_name("layers.3.attn.output_proj", llama) == "model.layers.3.self_attn.o_proj"
    assert tune_to_hf_module_name("layers.10.mlp.w1", llama) == "model.layers.10.mlp.gate_proj"
    assert tune_to_hf_module_name("output", llama) == "lm_head"
    gemma2 = {"model_type": "gemma2"}
    assert tune_to_hf_module_name("layers.0.sa_scale", gemma2) == "model.layers.0.post_attention_layernorm"
    assert tune_to_hf_module_name("layers.0.mlp_norm", gemma2) == "model.layers.0.pre_feedforward_layernorm"


def test_errors():
    with pytest.raises(ValueError, match=r"model_type='gpt2' is not supported; supported: \[.*'llama'"):
        hf_to_tune({}, {"model_type": "gpt2"})
    with pytest.raises(ValueError, match=r"no mapping for module 'layers.0.attn.q_proj'"):
        tune_to_hf_module_name("layers.0.attn.q_proj", {"model_type": "phi3"})
    with pytest.raises(ValueError, match=r"no mapping for module 'model.layers.0.foo'"):
        hf_to_tune({"model.layers.0.foo.weight": torch.zeros(1)}, {"model_type": "llama"})
    config = {"model_type": "phi3", "num_attention_heads": 4, "hidden_size": 32, "intermediate_size": 48}
    with pytest.raises(ValueError, match=r"cannot fuse model.layers.0.self_attn.qkv_proj.weight"):
        tune_to_hf({"layers.0.attn.q_proj.weight": torch.zeros(32, 32)}, config)


@pytest.mark.parametrize("arch", ["phi3", "qwen3_moe", "gemma3_text"])
def test_lazy_tune_to_hf_gives_transformers_state_dict_layer_by_layer(arch):
    """A LazyStateDict converts to the Hugging Face names, order and values of transformers' own
    state dict, each tensor computed from its layer alone."""
    from tests.torchtune.gguf._gguf_testing import tiny_config
    from torchtune.utils import LazyStateDict, tensor_meta

    if arch == "phi3":
        hf, config = _phi3()
    else:
        torch.manual_seed(0)
        cfg = tiny_config(arch)
        hf = AutoModelForCausalLM.from_config(cfg).eval()
        config = json.loads(cfg.to_json_string())
    tied = bool(config.get("tie_word_embeddings"))
    expected = {k: v for k, v in hf.state_dict().items() if k != "lm_head.weight" or not tied}
    tune_sd = hf_to_tune(hf.state_dict(), config)
    reads = []

    def compute(key):
        reads.append(key)
        return tune_sd[key]

    lazy = tune_to_hf(LazyStateDict({k: tensor_meta(tune_sd, k) for k in tune_sd}, compute), config)
    assert isinstance(lazy, LazyStateDict) and not reads
    eager = tune_to_hf(tune_sd, config)
    assert list(lazy) == list(eager)
    for key in lazy:
        reads.clear()
        value = lazy[key]
        assert torch.equal(value, eager[key]), key
        layers = {k.split(".")[1] for k in reads if k.startswith("layers.")}
        assert len(layers) <= 1 and (layers or len(reads) <= 1), (key, reads)
    if arch != "qwen3_moe":  # transformers 5 holds the experts stacked; the files (and we) write one per expert
        assert set(lazy) == set(expected)
        assert all(torch.equal(lazy[k], expected[k]) for k in expected)
