"""GGUFCheckpointer end to end: a tiny GGUF written as llama.cpp would imports into our model
with logits equal to transformers' on the same weights; save writes a GGUF that re-imports."""

import numpy as np
import pytest
import torch

gguf = pytest.importorskip("gguf")
transformers = pytest.importorskip("transformers")

from tests.torchtune.gguf._gguf_testing import bpe_tokenizer_kv, tiny_model, train_byte_level_bpe, write_tiny_gguf  # noqa: E402

from torchtune.modules.peft import get_adapter_specs  # noqa: E402
from torchtune.training.checkpointing import GGUFCheckpointer, atomic_directory  # noqa: E402


def _round_like_gguf(model, out_type: str) -> None:
    """Give the reference model the weights a GGUF of ``out_type`` holds (rounding by gguf.quants)."""
    from gguf.quants import dequantize, quantize

    if out_type == "F32":
        return
    qtype = gguf.GGMLQuantizationType[out_type]
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.copy_(torch.from_numpy(dequantize(quantize(p.numpy(), qtype), qtype).astype(np.float32)))


def _logits(model, hf: bool):
    tokens = torch.tensor([[5, 9, 17, 3, 42, 7, 7, 60], [1, 2, 3, 4, 5, 6, 7, 8]])
    with torch.no_grad():
        out = model(tokens)
    return out.logits if hf else out


@pytest.mark.parametrize(
    "arch,out_type,tie",
    [("llama", "F32", False), ("llama", "F16", True), ("llama", "Q8_0", False), ("qwen2", "Q8_0", True),
     ("qwen3", "F32", False), ("gemma2", "F16", True)],
)
def test_import_logits_match_transformers(tmp_path, arch, out_type, tie):
    source = tiny_model(arch, seed=11, tie=tie)
    path = write_tiny_gguf(source, tmp_path / "m.gguf", out_type=out_type)
    ckpt = GGUFCheckpointer(path, tmp_path / "out")
    model = ckpt.build_model().eval()
    model.load_state_dict(ckpt.load_checkpoint(), strict=True)
    _round_like_gguf(source, out_type)
    diff = (_logits(model, hf=False) - _logits(source, hf=True)).abs().max().item()
    assert diff < 2e-5


def test_save_checkpoint_round_trip_and_tokenizer(tmp_path):
    source = tiny_model("llama", seed=12)
    tok = train_byte_level_bpe("gpt2", vocab_size=300)
    kv = bpe_tokenizer_kv(tok, "gpt2", chat_template="{{ messages[0]['content'] }}")
    path = write_tiny_gguf(source, tmp_path / "m.gguf", out_type="F32", tokenizer_kv=kv)
    ckpt = GGUFCheckpointer(path, tmp_path / "out", out_type="F16")
    state_dict = {k: v + 0.01 for k, v in ckpt.load_checkpoint().items()}  # "fine-tuned"

    directory = tmp_path / "out" / "epoch_3"
    with atomic_directory(directory) as tmp:
        ckpt.write_checkpoint(tmp, state_dict)
    assert sorted(p.name for p in directory.iterdir()) == ["CHECKPOINT_COMPLETE", "model-F16.gguf"]
    again = GGUFCheckpointer(directory / "model-F16.gguf", tmp_path / "out2")
    back = again.load_checkpoint()
    assert set(back) == set(state_dict)
    resumed = ckpt.load_checkpoint(directory)  # a written checkpoint reads back through the same checkpointer
    assert all(torch.equal(resumed[k], back[k]) for k in back)
    for name, value in state_dict.items():
        expected = value if value.dim() == 1 else value.to(torch.float16).to(torch.float32)
        assert torch.equal(back[name], expected), name
    for key in ("tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.chat_template"):
        assert again.metadata[key] == ckpt.metadata[key]
    text = "Hello wörld 123"
    assert again.tokenizer().encode(text, add_bos=False, add_eos=False) == tok.encode(text).ids


def test_lora_checkpoint_is_merged_and_adapter_kept(tmp_path):
    path = write_tiny_gguf(tiny_model("qwen2", seed=13), tmp_path / "m.gguf")
    ckpt = GGUFCheckpointer(path, tmp_path / "out", out_type="F32")
    model = ckpt.build_model(lora_attn_modules=["q_proj", "v_proj"], lora_rank=4, lora_alpha=8.0)
    model.load_state_dict(ckpt.load_checkpoint(), strict=False)
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_b" in name:
                p.normal_()
    state_dict = dict(model.state_dict())
    directory = tmp_path / "out" / "final"
    with atomic_directory(directory) as tmp:
        ckpt.write_checkpoint(tmp, state_dict, adapter_specs=get_adapter_specs(model))
    merged = GGUFCheckpointer(directory / "model-F32.gguf", tmp_path / "x").load_checkpoint()
    a, b = state_dict["layers.1.attn.q_proj.lora_a.weight"], state_dict["layers.1.attn.q_proj.lora_b.weight"]
    expected = state_dict["layers.1.attn.q_proj.weight"] + (8.0 / 4) * b @ a  # W + alpha / r * B A
    torch.testing.assert_close(merged["layers.1.attn.q_proj.weight"], expected, rtol=0, atol=1e-6)
    assert not any("lora" in k for k in merged)
    adapter = ckpt.load_adapter(directory)
    assert set(adapter) == {k for k in state_dict if "lora" in k}
    assert torch.equal(adapter["layers.1.attn.q_proj.lora_b.weight"], b)
    with pytest.raises(ValueError, match="no alpha for the adapter of 'layers.0.attn.q_proj'"):
        ckpt.write_checkpoint(tmp_path, state_dict)
    with pytest.raises(ValueError, match="adapter_only=True but the state dict holds no adapter weights"):
        ckpt.write_checkpoint(tmp_path, merged, adapter_only=True)


def test_bad_out_type(tmp_path):
    path = write_tiny_gguf(tiny_model("llama"), tmp_path / "m.gguf")
    with pytest.raises(ValueError, match="out_type='Q4_0' is not supported"):
        GGUFCheckpointer(path, tmp_path, out_type="Q4_0")


def test_export_rejects_unmerged_adapters(tmp_path):
    from torchtune.training.checkpointing import export_gguf

    path = write_tiny_gguf(tiny_model("llama"), tmp_path / "m.gguf")
    ckpt = GGUFCheckpointer(path, tmp_path)
    state_dict = ckpt.load_checkpoint()
    state_dict["layers.0.attn.q_proj.lora_a.weight"] = torch.zeros(2, 64)
    with pytest.raises(ValueError, match=r"adapter weights \(layers\.0\.attn\.q_proj\.lora_a\.weight, \.\.\.\).*get_merged_lora_ckpt"):
        export_gguf(state_dict, ckpt.config, tmp_path / "out.gguf")
    assert not (tmp_path / "out.gguf").exists()


def test_llama3_rope_scaled_import_matches_transformers(tmp_path):
    rope = {"rope_type": "llama3", "factor": 4.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 64}
    source = tiny_model("llama", seed=14, rope_scaling=rope)
    ckpt = GGUFCheckpointer(write_tiny_gguf(source, tmp_path / "m.gguf"), tmp_path / "out")
    model = ckpt.build_model().eval()
    model.load_state_dict(ckpt.load_checkpoint(), strict=True)
    tokens = torch.arange(3, 99).reshape(1, 96) % 96  # past the "original" context of 64
    with torch.no_grad():
        torch.testing.assert_close(model(tokens), source(tokens).logits, rtol=1e-4, atol=2e-5)
