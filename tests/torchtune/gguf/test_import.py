"""GGUF import at the Hugging Face level: a tiny transformers model written as llama.cpp would
write it reads back into the same weights, config and logits (the reference is transformers)."""

import numpy as np
import pytest
import torch

gguf = pytest.importorskip("gguf")
transformers = pytest.importorskip("transformers")

from tests.torchtune.gguf._gguf_testing import llama_cpp_rope_factors, tiny_model, write_tiny_gguf  # noqa: E402

from torchtune.gguf import permute_qk, unpermute_qk  # noqa: E402
from torchtune.gguf import load_gguf  # noqa: E402

# (architecture, GGUF weight type, max |logit difference| allowed against the source model
# whose 2-D weights went through the same rounding, done by gguf.quants)
CASES = [
    ("llama", "F32", 0.0),
    ("llama", "F16", 0.0),
    ("llama", "Q8_0", 0.0),
    ("qwen2", "Q8_0", 0.0),
    ("qwen2", "F32", 0.0),
    ("qwen3", "F32", 0.0),
    ("gemma2", "F32", 1e-5),  # the +1 norm offset is undone in float32
    ("smollm3", "F32", 0.0),
    ("smollm3", "Q8_0", 0.0),
    ("gemma3_text", "F32", 1e-5),  # the +1 norm offset (q/k norms too) is undone in float32
    ("qwen3_moe", "F32", 0.0),
    ("qwen3_moe", "Q8_0", 0.0),
]


def _rounded_like_gguf(model, out_type: str) -> None:
    """Round the source model's 2-D weights as storing them as ``out_type`` does (reference: gguf)."""
    from gguf.quants import dequantize, quantize

    if out_type == "F32":
        return
    qtype = gguf.GGMLQuantizationType[out_type]
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:  # matrices and stacked experts
                rounded = dequantize(quantize(p.numpy(), qtype), qtype)
                p.copy_(torch.from_numpy(rounded.astype(np.float32)))


def _logits(model, state_dict=None):
    if state_dict is not None:
        model.load_state_dict(state_dict, strict=True)
    tokens = torch.arange(3, 19).reshape(2, 8) % model.config.vocab_size
    with torch.no_grad():
        return model(tokens).logits


@pytest.mark.parametrize("arch,out_type,tol", CASES)
def test_import_matches_transformers(tmp_path, arch, out_type, tol):
    from transformers import AutoModelForCausalLM

    source = tiny_model(arch, seed=1)
    path = write_tiny_gguf(source, tmp_path / f"{arch}.gguf", out_type=out_type)
    hf_sd, config, _ = load_gguf(path)

    assert set(hf_sd) == set(source.state_dict())
    # token ids the file lacks stay unset (SmolLM3Config's defaults lie outside the tiny vocabulary)
    ids = {"pad_token_id": None, "bos_token_id": None, "eos_token_id": None}
    rebuilt_config = type(source.config)(**ids, **{k: v for k, v in config.items() if k not in ("architectures", *ids)},
                                         **{k: config[k] for k in ids if k in config})
    rebuilt_config._attn_implementation = "eager"
    rebuilt = AutoModelForCausalLM.from_config(rebuilt_config).eval()
    _rounded_like_gguf(source, out_type)
    if tol == 0.0:
        for name, value in source.state_dict().items():
            assert torch.equal(hf_sd[name], value), name
    expected, actual = _logits(source), _logits(rebuilt, hf_sd)
    assert (actual - expected).abs().max().item() <= tol


def test_config_from_metadata(tmp_path):
    source = tiny_model("qwen3", seed=2, tie=True)
    _, config, metadata = load_gguf(write_tiny_gguf(source, tmp_path / "m.gguf"))
    cfg = source.config
    assert config["model_type"] == "qwen3" and config["architectures"] == ["Qwen3ForCausalLM"]
    for key in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "head_dim", "max_position_embeddings"):
        assert config[key] == getattr(cfg, key), key
    assert config["rope_theta"] == cfg.rope_parameters["rope_theta"]
    assert config["rms_norm_eps"] == pytest.approx(cfg.rms_norm_eps)
    assert config["tie_word_embeddings"] is True
    assert metadata["general.name"] == "tiny"


def test_tied_embeddings_have_no_lm_head(tmp_path):
    source = tiny_model("llama", seed=3, tie=True)
    hf_sd, config, _ = load_gguf(write_tiny_gguf(source, tmp_path / "m.gguf"))
    assert config["tie_word_embeddings"] is True and "lm_head.weight" not in hf_sd


def test_bf16_dtype(tmp_path):
    source = tiny_model("llama", seed=4)
    hf_sd, _, _ = load_gguf(write_tiny_gguf(source, tmp_path / "m.gguf"), dtype=torch.bfloat16)
    assert {t.dtype for t in hf_sd.values()} == {torch.bfloat16}
    ref = source.state_dict()["model.layers.0.self_attn.q_proj.weight"].to(torch.bfloat16)
    assert torch.equal(hf_sd["model.layers.0.self_attn.q_proj.weight"], ref)


def test_permute_matches_llama_cpp_and_inverts():
    w = torch.arange(8 * 3 * 4, dtype=torch.float32).reshape(8 * 3, 4)  # 3 heads of h_d 8
    reference = w.numpy().reshape(3, 2, 4, 4).swapaxes(1, 2).reshape(24, 4)  # llama.cpp's permute
    assert np.array_equal(permute_qk(w, 3).numpy(), reference)
    assert torch.equal(unpermute_qk(permute_qk(w, 3), 3), w)
    bias = torch.arange(24.0)
    assert torch.equal(unpermute_qk(permute_qk(bias, 3), 3), bias)


def test_unsupported_architecture(tmp_path):
    source = tiny_model("llama", seed=5)
    path = write_tiny_gguf(source, tmp_path / "m.gguf", arch="falcon")
    with pytest.raises(ValueError, match="GGUF architecture 'falcon' is not supported; supported architectures: llama"):
        load_gguf(path)


def test_unsupported_quant_type_names_tensor(tmp_path):
    source = tiny_model("llama", seed=6)
    path = write_tiny_gguf(source, tmp_path / "m.gguf", out_type="Q8_1")
    with pytest.raises(ValueError, match=r"tensor 'token_embd\.weight' has GGML type Q8_1, which is not supported"):
        load_gguf(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_gguf(tmp_path / "absent.gguf")


def _llama_metadata(**extra):
    base = {
        "general.architecture": "llama", "llama.block_count": 2, "llama.embedding_length": 64,
        "llama.feed_forward_length": 96, "llama.attention.head_count": 4, "llama.context_length": 128,
        "llama.attention.layer_norm_rms_epsilon": 1e-5, "tokenizer.ggml.tokens": ["a"] * 90,
    }
    return {**base, **extra}


def test_config_vocab_size_sources():
    from torchtune.gguf import hf_config_from_metadata

    shapes = {"token_embd.weight": (96, 64), "output.weight": (96, 64)}
    assert hf_config_from_metadata(_llama_metadata(), shapes)["vocab_size"] == 96  # embedding rows win
    assert hf_config_from_metadata(_llama_metadata(), {})["vocab_size"] == 90  # else the token list
    config = hf_config_from_metadata(_llama_metadata(), shapes)
    assert config["num_key_value_heads"] == 4 and config["rope_theta"] == 10000.0  # GGUF defaults
    assert config["head_dim"] == 16 and config["tie_word_embeddings"] is False


def test_config_errors():
    from torchtune.gguf import hf_config_from_metadata

    metadata = _llama_metadata()
    del metadata["llama.feed_forward_length"]
    with pytest.raises(ValueError, match="GGUF metadata lacks required key 'llama.feed_forward_length'"):
        hf_config_from_metadata(metadata, {})
    with pytest.raises(ValueError, match="GGUF rope scaling 'yarn' .* is not supported"):
        hf_config_from_metadata(_llama_metadata(**{"llama.rope.scaling.type": "yarn"}), {})
    with pytest.raises(ValueError, match="rope_freqs tensor not passed in"):
        hf_config_from_metadata(_llama_metadata(), {"rope_freqs.weight": (8,)})


def test_unknown_tensor_name():
    from torchtune.gguf import gguf_to_hf_name

    with pytest.raises(ValueError, match=r"GGUF tensor 'blk\.0\.ffn_gate_exps\.weight' of architecture 'llama' has no known mapping"):
        gguf_to_hf_name("blk.0.ffn_gate_exps.weight", "llama")


LLAMA3_ROPE = {"rope_type": "llama3", "factor": 4.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 64}


def test_llama3_rope_scaling_from_rope_freqs(tmp_path):
    """The rope_freqs divisors llama.cpp writes turn back into transformers' llama3 scaling."""
    from transformers import AutoModelForCausalLM

    source = tiny_model("llama", seed=8, rope_scaling=LLAMA3_ROPE)
    factors = llama_cpp_rope_factors(source.config)
    assert ((factors > 1) & (factors < 4)).sum() >= 2  # the interpolated band is exercised
    hf_sd, config, _ = load_gguf(write_tiny_gguf(source, tmp_path / "m.gguf"))
    scaling = dict(config["rope_scaling"])
    assert scaling.pop("rope_type") == "llama3"
    assert scaling == pytest.approx({k: v for k, v in LLAMA3_ROPE.items() if k != "rope_type"}, rel=1e-5)
    # token ids the file lacks stay unset (SmolLM3Config's defaults lie outside the tiny vocabulary)
    ids = {"pad_token_id": None, "bos_token_id": None, "eos_token_id": None}
    rebuilt_config = type(source.config)(**ids, **{k: v for k, v in config.items() if k not in ("architectures", *ids)},
                                         **{k: config[k] for k in ids if k in config})
    rebuilt = AutoModelForCausalLM.from_config(rebuilt_config).eval()
    tokens = torch.arange(3, 67).reshape(1, 64) % 96  # long enough for the scaled frequencies to matter
    rebuilt.load_state_dict(hf_sd)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(tokens).logits, source(tokens).logits, rtol=1e-5, atol=1e-5)


def test_llama3_rope_export_writes_llama_cpp_divisors(tmp_path):
    from torchtune.gguf import write_gguf

    source = tiny_model("llama", seed=9, rope_scaling=LLAMA3_ROPE)
    hf_sd, config, _ = load_gguf(write_tiny_gguf(source, tmp_path / "m.gguf"))
    out = write_gguf(hf_sd, config, tmp_path / "out.gguf")
    tensors = {t.name: t for t in gguf.GGUFReader(out).tensors}
    np.testing.assert_allclose(tensors["rope_freqs.weight"].data, llama_cpp_rope_factors(source.config), rtol=1e-6)
    with pytest.raises(ValueError, match="rope_type='yarn' cannot be written to GGUF"):
        write_gguf(hf_sd, dict(config, rope_scaling={"rope_type": "yarn", "factor": 2.0}), tmp_path / "x.gguf")


def test_rope_freqs_that_are_not_llama3():
    from torchtune.gguf import rope_scaling_from_divisors

    with pytest.raises(ValueError, match="is not Llama 3.x RoPE scaling"):
        rope_scaling_from_divisors(torch.tensor([1.0, 3.0, 1.5, 4.0]), 5000.0, 8)
    with pytest.raises(ValueError, match=r"rope_freqs has shape \(3,\), expected \(4,\)"):
        rope_scaling_from_divisors(torch.ones(3), 5000.0, 8)


def test_smollm3_nope_layers_and_our_model(tmp_path):
    """The GGUF's SmolLM3 builds our model with NoPE on layer 3, whose logits equal transformers'."""
    from torchtune.models import hf_to_tune, model_from_hf_config

    source = tiny_model("smollm3", seed=2)
    hf_sd, config, _ = load_gguf(write_tiny_gguf(source, tmp_path / "s.gguf"))
    assert config["no_rope_layers"] == [1, 1, 1, 0]
    ours = model_from_hf_config(config).eval()
    ours.load_state_dict(hf_to_tune(hf_sd, config))
    assert [layer.attn.pos_embeddings is None for layer in ours.layers] == [False, False, False, True]
    tokens = torch.arange(3, 19).reshape(2, 8) % config["vocab_size"]
    with torch.no_grad():
        torch.testing.assert_close(ours(tokens), source(tokens).logits, atol=1e-5, rtol=1e-5)


def test_smollm3_other_nope_layout_is_not_written(tmp_path):
    from torchtune.gguf import write_gguf

    source = tiny_model("smollm3", seed=2)
    hf_sd, config, _ = load_gguf(write_tiny_gguf(source, tmp_path / "s.gguf"))
    config = dict(config, no_rope_layers=[1, 0, 1, 0])
    with pytest.raises(ValueError, match=r"no_rope_layers=\[1, 0, 1, 0\] cannot be written to GGUF: llama\.cpp's "
                                         r"smollm3 puts NoPE on every 4th layer \(\[1, 1, 1, 0\]\)"):
        write_gguf(hf_sd, config, tmp_path / "out.gguf")


def test_qwen3_moe_experts_build_our_model(tmp_path):
    """qwen3moe's stacked expert tensors become our MoE layers; logits equal transformers'."""
    from torchtune.models import hf_to_tune, model_from_hf_config

    source = tiny_model("qwen3_moe", seed=3)
    hf_sd, config, _ = load_gguf(write_tiny_gguf(source, tmp_path / "m.gguf"))
    assert (config["model_type"], config["num_experts"], config["moe_intermediate_size"]) == ("qwen3_moe", 4, 768)
    ours = model_from_hf_config(config).eval()
    ours.load_state_dict(hf_to_tune(hf_sd, config))
    tokens = torch.arange(3, 19).reshape(2, 8) % config["vocab_size"]
    with torch.no_grad():
        torch.testing.assert_close(ours(tokens), source(tokens).logits, atol=1e-5, rtol=1e-5)


def test_qwen3_moe_export_needs_renormalised_routing(tmp_path):
    from torchtune.gguf import write_gguf

    source = tiny_model("qwen3_moe", seed=3)
    hf_sd, config, _ = load_gguf(write_tiny_gguf(source, tmp_path / "m.gguf"))
    with pytest.raises(ValueError, match="norm_topk_prob=False cannot be written to GGUF"):
        write_gguf(hf_sd, dict(config, norm_topk_prob=False), tmp_path / "out.gguf")


@pytest.mark.parametrize("rope_scaling", [None, {"rope_type": "linear", "factor": 4.0}])
def test_gemma3_builds_our_model(tmp_path, rope_scaling):
    """llama.cpp's gemma3 layout (global layer 5, local theta 10000, linear scaling of the global
    layers) builds our Gemma 3, whose logits equal transformers'."""
    from torchtune.models import hf_to_tune, model_from_hf_config

    source = tiny_model("gemma3_text", seed=4, tie=True, rope_scaling=rope_scaling)
    hf_sd, config, _ = load_gguf(write_tiny_gguf(source, tmp_path / "g.gguf"))
    ours = model_from_hf_config(config).eval()
    ours.load_state_dict(hf_to_tune(hf_sd, config))
    assert [layer.attn.sliding_window for layer in ours.layers] == [4, 4, 4, 4, 4, None]
    assert ours.layers[5].attn.pos_embeddings.scaling == rope_scaling and ours.layers[0].attn.pos_embeddings.base == 1e4
    tokens = torch.arange(3, 19).reshape(2, 8) % config["vocab_size"]
    with torch.no_grad():  # 2e-5: the norms went through w + 1 - 1 in float32
        torch.testing.assert_close(ours(tokens), source(tokens).logits, atol=2e-5, rtol=1e-5)
