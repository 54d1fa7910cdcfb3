"""gpt-oss in GGUF (llama.cpp's ``gpt-oss`` architecture) against references: a tiny random
transformers ``GptOssForCausalLM``, gguf-py's tensor-name tables, writer, reader and (MXFP4, F16,
BF16) quantisers. The expected file layout is derived here from transformers' tensors the way
llama.cpp's converter (``GptOssModel`` in convert_hf_to_gguf) lays them out, independently of our
code: gate_up_proj ``[E, d, 2h]`` is transposed and split into its even (gate) and odd (up) rows,
down_proj ``[E, h, d]`` transposed, the sinks and biases renamed, and every name mapped by gguf-py's
``TensorNameMap`` for ``MODEL_ARCH.GPT_OSS``."""

import json

import numpy as np
import pytest
import torch

gguf = pytest.importorskip("gguf")
transformers = pytest.importorskip("transformers")

from gguf.quants import dequantize as gguf_dequantize  # noqa: E402
from gguf.quants import quantize as gguf_quantize  # noqa: E402
from transformers import GptOssConfig, GptOssForCausalLM  # noqa: E402

from torchtune.gguf import load_gguf, write_gguf  # noqa: E402
from torchtune.models import hf_to_tune, model_from_hf_config  # noqa: E402
from torchtune.training.checkpointing import GGUFCheckpointer  # noqa: E402
from torchtune.training.checkpointing._gguf_checkpointer import export_gguf  # noqa: E402

ARCH = gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.GPT_OSS]  # "gpt-oss"
QT = gguf.GGMLQuantizationType
LAYERS = 4
# MXFP4 blocks hold 32 values: the rows of gate/up (hidden_size) and down (intermediate_size) are whole blocks.
# A window of 4 inside the 12-token rows; YaRN with its ramp inside the rotated dims.
TINY = dict(
    vocab_size=96, hidden_size=32, intermediate_size=32, num_hidden_layers=LAYERS, num_attention_heads=4,
    num_key_value_heads=2, head_dim=8, num_local_experts=4, num_experts_per_tok=2, max_position_embeddings=64,
    rms_norm_eps=1e-5, sliding_window=4,
    rope_parameters=dict(rope_type="yarn", factor=4.0, beta_fast=8.0, beta_slow=1.0, truncate=False,
                         original_max_position_embeddings=16, rope_theta=150.0),
)
TOKENS = torch.randint(0, 96, (2, 12), generator=torch.Generator().manual_seed(5))


def _transformers_model(seed: int = 0) -> GptOssForCausalLM:
    torch.manual_seed(seed)
    config = GptOssConfig(**TINY)
    config._attn_implementation = "eager"
    model = GptOssForCausalLM(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.3)
    return model


def _config_json(model) -> dict:
    return json.loads(model.config.to_json_string())


def _llama_cpp_tensors(model) -> dict[str, np.ndarray]:
    """GGUF name -> float32 array (torch order) as llama.cpp's converter writes a dense gpt-oss."""
    renamed = {}
    for name, p in model.state_dict().items():
        w = p.detach().float()
        if name.endswith(".self_attn.sinks"):
            renamed[name + ".weight"] = w
        elif name.endswith(".mlp.experts.gate_up_proj"):
            rows = w.transpose(-1, -2)  # [E, 2h, d]
            renamed[name.replace("gate_up_proj", "gate_proj.weight")] = rows[:, ::2]
            renamed[name.replace("gate_up_proj", "up_proj.weight")] = rows[:, 1::2]
        elif name.endswith(".mlp.experts.gate_up_proj_bias"):
            renamed[name.replace("gate_up_proj_bias", "gate_proj.bias")] = w[..., ::2]
            renamed[name.replace("gate_up_proj_bias", "up_proj.bias")] = w[..., 1::2]
        elif name.endswith(".mlp.experts.down_proj"):
            renamed[name + ".weight"] = w.transpose(-1, -2)  # [E, d, h]
        elif name.endswith(".mlp.experts.down_proj_bias"):
            renamed[name.replace("down_proj_bias", "down_proj.bias")] = w
        else:
            renamed[name] = w
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.GPT_OSS, model.config.num_hidden_layers)
    return {names.get_name(k, try_suffixes=(".weight", ".bias")): v.contiguous().numpy() for k, v in renamed.items()}


def _transformers_state_from_llama_cpp(tensors: dict[str, np.ndarray], like) -> dict[str, torch.Tensor]:
    """The inverse of :func:`_llama_cpp_tensors`, onto the names of ``like``'s state dict."""
    t = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in tensors.items()}
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.GPT_OSS, like.config.num_hidden_layers)
    out = {}
    for name in like.state_dict():
        if ".mlp.experts." in name:
            blk = f"blk.{name.split('.')[2]}"
            leaf = name.rsplit(".", 1)[1]
            if leaf == "gate_up_proj":
                gate, up = t[f"{blk}.ffn_gate_exps.weight"], t[f"{blk}.ffn_up_exps.weight"]  # [E, h, d]
                out[name] = torch.stack([gate, up], dim=2).flatten(1, 2).transpose(1, 2)  # [E, d, 2h]
            elif leaf == "gate_up_proj_bias":
                gate, up = t[f"{blk}.ffn_gate_exps.bias"], t[f"{blk}.ffn_up_exps.bias"]
                out[name] = torch.stack([gate, up], dim=2).flatten(1, 2)
            elif leaf == "down_proj":
                out[name] = t[f"{blk}.ffn_down_exps.weight"].transpose(1, 2)
            else:
                out[name] = t[f"{blk}.ffn_down_exps.bias"]
        elif name.endswith(".self_attn.sinks"):
            out[name] = t[names.get_name(name + ".weight", try_suffixes=(".weight",))]
        else:
            out[name] = t[names.get_name(name, try_suffixes=(".weight", ".bias"))]
    return out


def _expected_metadata(cfg) -> dict:
    """The ``gpt-oss.*`` keys and values llama.cpp's converter writes for this config."""
    K = gguf.Keys
    rope = cfg.rope_parameters
    keys = {
        K.LLM.BLOCK_COUNT: cfg.num_hidden_layers, K.LLM.CONTEXT_LENGTH: cfg.max_position_embeddings,
        K.LLM.EMBEDDING_LENGTH: cfg.hidden_size, K.LLM.FEED_FORWARD_LENGTH: cfg.intermediate_size,
        K.Attention.HEAD_COUNT: cfg.num_attention_heads, K.Attention.HEAD_COUNT_KV: cfg.num_key_value_heads,
        K.Rope.FREQ_BASE: rope["rope_theta"], K.Attention.LAYERNORM_RMS_EPS: cfg.rms_norm_eps,
        K.LLM.EXPERT_COUNT: cfg.num_local_experts, K.LLM.EXPERT_USED_COUNT: cfg.num_experts_per_tok,
        K.Attention.KEY_LENGTH: cfg.head_dim, K.Attention.VALUE_LENGTH: cfg.head_dim,
        K.Attention.SLIDING_WINDOW: cfg.sliding_window, K.LLM.EXPERT_FEED_FORWARD_LENGTH: cfg.intermediate_size,
        K.Rope.SCALING_TYPE: "yarn", K.Rope.SCALING_FACTOR: rope["factor"],
        K.Rope.SCALING_ORIG_CTX_LEN: rope["original_max_position_embeddings"],
        K.Rope.SCALING_YARN_BETA_FAST: rope["beta_fast"], K.Rope.SCALING_YARN_BETA_SLOW: rope["beta_slow"],
    }
    return {k.format(arch=ARCH): v for k, v in keys.items()}


def _write_like_llama_cpp(cfg, tensors: dict[str, np.ndarray], types: dict[str, "QT"], path):
    """A GGUF file written with gguf-py's writer directly: the converter's metadata, each tensor
    quantised by gguf-py to its type in ``types`` (F32 when absent)."""
    w = gguf.GGUFWriter(str(path), ARCH)
    w.add_name("tiny-gpt-oss")
    for key, value in _expected_metadata(cfg).items():
        if isinstance(value, str):
            w.add_string(key, value)
        elif isinstance(value, float):
            w.add_float32(key, value)
        else:
            w.add_uint32(key, value)
    for name, arr in tensors.items():
        qtype = types.get(name, QT.F32)
        if qtype == QT.F32:
            w.add_tensor(name, arr)
        else:
            w.add_tensor(name, gguf_quantize(arr, qtype), raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def _ours(config: dict, tune_sd: dict):
    model = model_from_hf_config(config).eval()
    model.load_state_dict(tune_sd, strict=True)
    return model


@pytest.mark.parametrize("out_type", ["F32", "F16"])
def test_export_has_llama_cpp_layout_and_reads_back(tmp_path, out_type):
    """transformers -> our model -> GGUF written by us: llama.cpp's names, shapes, values and
    metadata; read back by the GGUF checkpointer, the logits are transformers'."""
    hf = _transformers_model(seed=1)
    config = _config_json(hf)
    ours = _ours(config, hf_to_tune(hf.state_dict(), config))
    path = export_gguf(ours.state_dict(), config, tmp_path / "m.gguf", out_type=out_type)

    expected = _llama_cpp_tensors(hf)
    reader = gguf.GGUFReader(path)
    tensors = {t.name: t for t in reader.tensors}
    assert set(tensors) == set(expected)
    for name, value in expected.items():
        t = tensors[name]
        assert tuple(int(s) for s in reversed(t.shape.tolist())) == value.shape, name
        stored_type = QT.F32 if value.ndim == 1 or out_type == "F32" else QT.F16
        assert t.tensor_type == stored_type, name
        assert np.array_equal(np.asarray(t.data, dtype=np.float32).reshape(value.shape),
                              value.astype(np.float16).astype(np.float32) if stored_type == QT.F16 else value), name
    # dims as llama-model.cpp creates them for gpt-oss, innermost first: {n_embd, n_ff_exp, n_expert}, ...
    e, h, d = 4, 32, 32
    assert tensors["blk.0.ffn_gate_exps.weight"].shape.tolist() == [d, h, e]
    assert tensors["blk.0.ffn_down_exps.weight"].shape.tolist() == [h, d, e]
    assert tensors["blk.0.ffn_up_exps.bias"].shape.tolist() == [h, e]
    assert tensors["blk.0.ffn_gate_inp.weight"].shape.tolist() == [d, e]
    assert tensors["blk.0.attn_sinks.weight"].shape.tolist() == [4]

    fields = {k: f.contents() for k, f in reader.fields.items()}
    assert fields[gguf.Keys.General.ARCHITECTURE] == ARCH
    for key, value in _expected_metadata(hf.config).items():
        assert fields[key] == pytest.approx(value) if isinstance(value, float) else fields[key] == value, key

    ckpt = GGUFCheckpointer(path, tmp_path / "out")
    back = ckpt.build_model().eval()
    back.load_state_dict(ckpt.load_checkpoint(), strict=True)
    assert [layer.attn.sliding_window for layer in back.layers] == [4, None, 4, None]
    if out_type == "F16":  # the reference gets the same rounding of its matrices and expert stacks
        with torch.no_grad():
            for p in hf.parameters():
                if p.dim() >= 2:
                    p.copy_(p.half().float())
    with torch.no_grad():
        torch.testing.assert_close(back(TOKENS), hf(TOKENS).logits, atol=1e-5, rtol=1e-5)


def test_llama_cpp_file_with_mxfp4_experts_gives_transformers_logits(tmp_path):
    """A file written by gguf-py in llama.cpp's layout (MXFP4 experts, F16 and BF16 matrices) reads
    as the values gguf-py decodes, and our model on them computes transformers' logits."""
    hf = _transformers_model(seed=2)
    tensors = _llama_cpp_tensors(hf)
    types = {}
    for name, arr in tensors.items():
        if name.endswith("_exps.weight"):
            types[name] = QT.MXFP4
        elif name.startswith("blk.") and arr.ndim == 2:
            types[name] = QT.BF16 if ".attn_" in name else QT.F16
    types["token_embd.weight"] = QT.BF16
    assert QT.MXFP4 in types.values()
    rounded = {n: gguf_dequantize(gguf_quantize(a, types[n]), types[n]).astype(np.float32) if n in types else a
               for n, a in tensors.items()}
    assert not np.array_equal(rounded["blk.0.ffn_gate_exps.weight"], tensors["blk.0.ffn_gate_exps.weight"])
    hf.load_state_dict(_transformers_state_from_llama_cpp(rounded, hf))  # the reference: gguf-py's decoded values

    path = _write_like_llama_cpp(hf.config, tensors, types, tmp_path / "m.gguf")
    assert {t.name: t.tensor_type for t in gguf.GGUFReader(path).tensors}["blk.1.ffn_down_exps.weight"] == QT.MXFP4
    hf_sd, config, metadata = load_gguf(path)
    assert hf_sd.keys() == hf.state_dict().keys()
    for name, value in hf.state_dict().items():
        assert torch.equal(hf_sd[name], value), name
    assert config["model_type"] == "gpt_oss" and config["layer_types"] == hf.config.layer_types
    assert config["rope_parameters"] == pytest.approx(dict(hf.config.rope_parameters))
    ours = _ours(config, hf_to_tune(hf_sd, config))
    with torch.no_grad():
        torch.testing.assert_close(ours(TOKENS), hf(TOKENS).logits, atol=1e-5, rtol=1e-5)
    rebuilt = GptOssForCausalLM(GptOssConfig(**{k: v for k, v in config.items() if k != "architectures"})).eval()
    rebuilt.load_state_dict(hf_sd, strict=True)  # transformers' own model from the config we read
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(TOKENS).logits, hf(TOKENS).logits, atol=1e-5, rtol=1e-5)


def test_expert_count_disagreeing_with_metadata_names_the_tensor(tmp_path):
    hf = _transformers_model(seed=3)
    tensors = _llama_cpp_tensors(hf)
    tensors["blk.1.ffn_up_exps.weight"] = tensors["blk.1.ffn_up_exps.weight"][:3]  # 3 experts, metadata says 4
    path = _write_like_llama_cpp(hf.config, tensors, {}, tmp_path / "bad.gguf")
    with pytest.raises(ValueError, match=r"GGUF tensor 'blk\.1\.ffn_up_exps\.weight' has shape \[3, 32, 32\] but the "
                                         r"metadata \(gpt-oss\.expert_count=4, .*\) implies \[4, 32, 32\]"):
        load_gguf(path)
    with pytest.raises(ValueError, match=r"blk\.1\.ffn_up_exps\.weight' has shape \[3, 32, 32\]"):
        GGUFCheckpointer(path, tmp_path / "out")


@pytest.mark.parametrize(
    "change,message",
    [
        ({"layer_types": ["full_attention", "sliding_attention"] * 2},
         r"cannot be written to GGUF: llama\.cpp's gpt-oss slides the window on every other layer"),
        ({"swiglu_limit": 0.5}, r"swiglu_limit=0\.5 cannot be written to GGUF: llama\.cpp's gpt-oss clamps at 7\.0"),
        ({"rope_parameters": {"rope_type": "linear", "factor": 2.0, "rope_theta": 150.0}},
         r"rope_type='linear' cannot be written to a gpt-oss GGUF"),
    ],
)
def test_settings_llama_cpp_cannot_run_are_refused(tmp_path, change, message):
    hf = _transformers_model(seed=4)
    with pytest.raises(ValueError, match=message):
        write_gguf(hf.state_dict(), {**_config_json(hf), **change}, tmp_path / "x.gguf")
    assert not (tmp_path / "x.gguf").exists()


def test_tied_embeddings_are_written_as_the_output_llama_cpp_requires(tmp_path):
    hf = _transformers_model(seed=5)
    config = {**_config_json(hf), "tie_word_embeddings": True}
    hf_sd = {k: v for k, v in hf.state_dict().items() if k != "lm_head.weight"}
    hf.lm_head.weight = hf.model.embed_tokens.weight  # the tied reference
    path = write_gguf(hf_sd, config, tmp_path / "tied.gguf", out_type="F32")
    tensors = {t.name: np.asarray(t.data) for t in gguf.GGUFReader(path).tensors}
    assert np.array_equal(tensors["output.weight"], tensors["token_embd.weight"])
    back, back_config, _ = load_gguf(path)
    ours = _ours(back_config, hf_to_tune(back, back_config))
    with torch.no_grad():
        torch.testing.assert_close(ours(TOKENS), hf(TOKENS).logits, atol=1e-5, rtol=1e-5)
