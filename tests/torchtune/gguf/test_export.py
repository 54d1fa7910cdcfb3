"""GGUF export: round trips through our reader, bit-exactness against gguf.quants rounding,
llama.cpp-compatible layout (read back by transformers' own GGUF loader), atomic writes."""

import gc
import json
import os

import numpy as np
import pytest
import torch

gguf = pytest.importorskip("gguf")
transformers = pytest.importorskip("transformers")

from tests.torchtune.gguf._gguf_testing import bpe_tokenizer_kv, tiny_model, train_byte_level_bpe, write_tiny_gguf  # noqa: E402

from torchtune.gguf import hf_to_gguf_name, load_gguf, write_gguf  # noqa: E402


def _hf_state_and_config(tmp_path, arch="llama", tie=False):
    source = tiny_model(arch, seed=7, tie=tie)
    hf_sd, config, metadata = load_gguf(write_tiny_gguf(source, tmp_path / "src.gguf"))
    return source, hf_sd, config, metadata


def _gguf_round(x: torch.Tensor, out_type: str) -> torch.Tensor:
    from gguf.quants import dequantize, quantize

    qtype = gguf.GGMLQuantizationType[out_type]
    return torch.from_numpy(dequantize(quantize(x.numpy(), qtype), qtype).astype(np.float32))


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gemma2", "gemma3_text", "smollm3", "qwen3_moe"])
@pytest.mark.parametrize("out_type", ["F16", "Q8_0"])
def test_round_trip_is_exact_to_the_type(tmp_path, arch, out_type):
    _, hf_sd, config, _ = _hf_state_and_config(tmp_path, arch)
    out = write_gguf(hf_sd, config, tmp_path / "out.gguf", out_type=out_type)
    back, back_config, _ = load_gguf(out)
    assert back_config == config
    for name, value in hf_sd.items():
        if value.dim() == 1:  # norms and biases stay F32
            expected = value if arch not in ("gemma2", "gemma3_text") else (value + 1) - 1
        else:
            expected = _gguf_round(value, out_type)
        assert torch.equal(back[name], expected), name
        if out_type == "Q8_0" and value.dim() == 2:
            # step d = max|x| / 127 per block of 32, stored in float16 (relative error 2**-11):
            # |error| <= d / 2 + 127 * d * 2**-11
            blocks = value.reshape(-1, 32)
            step = blocks.abs().amax(-1, keepdim=True) / 127
            bound = step * (0.5 + 127 * 2**-11) + 1e-7
            assert ((back[name].reshape(-1, 32) - blocks).abs() <= bound).all(), name


# qwen3 is left out: transformers' GGUF config reading ignores qwen3.attention.key_length.
# gemma2 is tied, as every Gemma 2 is: transformers' GGUF reading ties it regardless.
# qwen3_moe: from the checkpoint-file layout (one tensor per expert), as the checkpointer passes it.
@pytest.mark.parametrize("arch,tie", [("llama", False), ("qwen2", True), ("gemma2", True), ("gemma3_text", True),
                                      ("qwen3_moe", False)])
def test_export_reads_back_in_transformers_gguf_loader(tmp_path, arch, tie):
    """transformers applies llama.cpp's conventions (q/k permutation, gemma's norm offset)
    independently of us."""
    from transformers import AutoModelForCausalLM

    source, hf_sd, config, _ = _hf_state_and_config(tmp_path, arch, tie=tie)
    tok = train_byte_level_bpe("gpt2", vocab_size=config["vocab_size"] + 200)
    kv = bpe_tokenizer_kv(tok, "gpt2")
    metadata = {k: v for k, (v, _, _) in kv.items()}
    if arch == "qwen3_moe":
        from torchtune.models import hf_to_tune, tune_to_hf

        hf_sd = tune_to_hf(hf_to_tune(hf_sd, config), config)
        assert "model.layers.0.mlp.experts.3.down_proj.weight" in hf_sd
    write_gguf(hf_sd, config, tmp_path / "hf" / "m.gguf", tokenizer_metadata=metadata, out_type="F32")
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "hf", gguf_file="m.gguf").eval()
    for name, value in source.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], value, rtol=0, atol=1e-6, msg=name)


def test_tokenizer_metadata_is_written(tmp_path):
    _, hf_sd, config, _ = _hf_state_and_config(tmp_path)
    tok = train_byte_level_bpe("qwen2")
    kv = bpe_tokenizer_kv(tok, "qwen2", chat_template="{{ messages[0]['content'] }}")
    metadata = {k: v for k, (v, _, _) in kv.items()}
    _, _, back = load_gguf(write_gguf(hf_sd, config, tmp_path / "out.gguf", tokenizer_metadata=metadata))
    for key, value in metadata.items():
        assert back[key] == value, key


def test_write_is_atomic_on_failure(tmp_path):
    _, hf_sd, config, _ = _hf_state_and_config(tmp_path)
    target = tmp_path / "dst" / "out.gguf"
    target.parent.mkdir()
    target.write_bytes(b"previous")
    bad = dict(hf_sd, **{"model.layers.0.mystery.weight": torch.zeros(4, 4)})
    with pytest.raises(ValueError, match="parameter 'model.layers.0.mystery.weight' of architecture 'llama' has no GGUF"):
        write_gguf(bad, config, target)
    assert target.read_bytes() == b"previous"
    assert os.listdir(target.parent) == ["out.gguf"]


def test_bad_out_type(tmp_path):
    _, hf_sd, config, _ = _hf_state_and_config(tmp_path)
    with pytest.raises(ValueError, match="out_type='Q4_K' is not supported; choose one of F32, F16, Q8_0"):
        write_gguf(hf_sd, config, tmp_path / "x.gguf", out_type="Q4_K")


def test_unsupported_architecture_on_export(tmp_path):
    _, hf_sd, config, _ = _hf_state_and_config(tmp_path)
    with pytest.raises(ValueError, match="GGUF architecture 'mamba' is not supported"):
        write_gguf(hf_sd, dict(config, model_type="mamba"), tmp_path / "x.gguf")


def test_metadata_value_types_round_trip(tmp_path):
    _, hf_sd, config, _ = _hf_state_and_config(tmp_path)
    extra = {"tokenizer.ggml.scores": [0.5, -1.0], "tokenizer.x.neg": -3, "tokenizer.x.flag": True,
             "tokenizer.x.f": 0.25, "tokenizer.x.ids": [3, 1, 2], "tokenizer.x.s": "ünï"}
    _, _, back = load_gguf(write_gguf(hf_sd, config, tmp_path / "out.gguf", tokenizer_metadata=extra))
    for key, value in extra.items():
        assert back[key] == value and type(back[key]) is type(value), key
    assert back["general.quantization_version"] == gguf.GGML_QUANT_VERSION
    with pytest.raises(ValueError, match="metadata key 'tokenizer.bad' has a value of type dict, which GGUF cannot store"):
        write_gguf(hf_sd, config, tmp_path / "bad.gguf", tokenizer_metadata={"tokenizer.bad": {"a": 1}})


@pytest.mark.parametrize(
    "change,message",
    [
        ({"query_pre_attn_scalar": 24}, r"query_pre_attn_scalar=24 cannot be written to GGUF: llama\.cpp's gemma3 uses 32"),
        ({"layer_types": ["full_attention"] * 6}, r"cannot be written to GGUF: llama\.cpp's gemma3 makes every 6th layer global"),
        ({"rope_parameters": {"full_attention": {"rope_type": "default", "rope_theta": 5000.0},
                              "sliding_attention": {"rope_type": "default", "rope_theta": 50.0}}},
         r"local RoPE theta 50\.0 cannot be written to GGUF"),
    ],
)
def test_gemma3_settings_llama_cpp_cannot_run_are_refused(tmp_path, change, message):
    _, hf_sd, config, _ = _hf_state_and_config(tmp_path, "gemma3_text", tie=True)
    with pytest.raises(ValueError, match=message):
        write_gguf(hf_sd, {**config, **change}, tmp_path / "out.gguf")


def _rewritten_by_gguf_py(path, out):
    """The same keys, values and tensors written by gguf-py's own writer, which holds every tensor
    until it writes the file."""
    reader = gguf.GGUFReader(path)
    writer = gguf.GGUFWriter(out, reader.fields["general.architecture"].contents())
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":  # the writer adds these itself
            continue
        vtype = field.types[0]
        writer.add_key_value(key, field.contents(), vtype,
                             sub_type=field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None)
    for t in reader.tensors:
        plain = t.tensor_type in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16)
        writer.add_tensor(t.name, np.array(t.data), raw_dtype=None if plain else t.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


@pytest.mark.parametrize("out_type", ["F32", "F16", "Q8_0"])
def test_streamed_write_equals_gguf_py_buffered_writer_and_holds_one_tensor(tmp_path, out_type):
    from torch.multiprocessing.reductions import StorageWeakRef

    from torchtune.utils import LazyStateDict, tensor_meta

    scaling = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 64}  # adds the rope_freqs tensor
    source = tiny_model("llama", seed=3, rope_scaling=scaling, intermediate_size=80)  # 80: Q8_0 falls back to F16
    hf_sd = {k: v.detach() for k, v in source.state_dict().items()}
    config = json.loads(source.config.to_json_string())
    tok = train_byte_level_bpe("gpt2", vocab_size=config["vocab_size"] + 200)
    metadata = {k: v for k, (v, _, _) in bpe_tokenizer_kv(tok, "gpt2").items()}
    alive = []

    def compute(key):
        gc.collect()
        assert all(ref.expired() for ref in alive), f"a tensor's memory was still held when {key} was read"
        value = hf_sd[key].clone()
        alive.append(StorageWeakRef(value.untyped_storage()))
        return value

    lazy = LazyStateDict({k: tensor_meta(hf_sd, k) for k in hf_sd}, compute)
    ours = write_gguf(lazy, config, tmp_path / "lazy.gguf", tokenizer_metadata=metadata, out_type=out_type, name="t")
    assert len(alive) == len(hf_sd)
    eager = write_gguf(hf_sd, config, tmp_path / "eager.gguf", tokenizer_metadata=metadata, out_type=out_type, name="t")
    reference = _rewritten_by_gguf_py(ours, tmp_path / "gguf_py.gguf")
    assert ours.read_bytes() == reference.read_bytes() == eager.read_bytes()
    assert "rope_freqs.weight" in [t.name for t in gguf.GGUFReader(ours).tensors]


def test_bfloat16_weights_round_to_float16_as_numpy_does(tmp_path):
    """Every bfloat16 bit pattern but NaN, spread over the 2-D weights, is written as numpy's float16
    of its float32 value (q/k rows are permuted in the file: compared as sorted values per tensor)."""
    _, hf_sd, config, _ = _hf_state_and_config(tmp_path)
    patterns = torch.arange(-32768, 32768, dtype=torch.int32).to(torch.int16)
    patterns = patterns[~patterns.view(torch.bfloat16).isnan()]  # NaN payloads are not rounded alike
    sd, start = {}, 0
    for name, value in hf_sd.items():
        if value.dim() == 2:
            idx = torch.arange(start, start + value.numel()) % patterns.numel()
            value = patterns[idx].view(torch.bfloat16).reshape(value.shape)
            start += value.numel()
        sd[name] = value.to(torch.bfloat16)
    assert start >= patterns.numel()
    path = write_gguf(sd, config, tmp_path / "bf16.gguf", out_type="F16")
    names = {gguf_name: hf_name for hf_name, gguf_name in ((n, hf_to_gguf_name(n, "llama")) for n in sd)}
    for tensor in gguf.GGUFReader(path).tensors:
        value = sd[names[tensor.name]]
        if value.dim() != 2:
            continue
        expected = np.sort(value.float().numpy().astype(np.float16).view(np.uint16).ravel())
        assert np.array_equal(np.sort(np.asarray(tensor.data).view(np.uint16).ravel()), expected), tensor.name
