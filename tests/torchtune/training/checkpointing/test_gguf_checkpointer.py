"""GGUFCheckpointer end to end: a tiny GGUF written as llama.cpp would imports into our model
with logits equal to transformers' on the same weights; save writes a GGUF that re-imports."""

import numpy as np
import pytest
import torch

gguf = pytest.importorskip("gguf")
transformers = pytest.importorskip("transformers")

from _gguf_testing import bpe_tokenizer_kv, tiny_model, train_byte_level_bpe, write_tiny_gguf  # noqa: E402

from torchtune.training.checkpointing import GGUFCheckpointer  # noqa: E402


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
    model.load_state_dict(ckpt.load_checkpoint()["model"], strict=True)
    _round_like_gguf(source, out_type)
    diff = (_logits(model, hf=False) - _logits(source, hf=True)).abs().max().item()
    assert diff < 2e-5


def test_save_checkpoint_round_trip_and_tokenizer(tmp_path):
    source = tiny_model("llama", seed=12)
    tok = train_byte_level_bpe("gpt2", vocab_size=300)
    kv = bpe_tokenizer_kv(tok, "gpt2", chat_template="{{ messages[0]['content'] }}")
    path = write_tiny_gguf(source, tmp_path / "m.gguf", out_type="F32", tokenizer_kv=kv)
    ckpt = GGUFCheckpointer(path, tmp_path / "out", out_type="F16")
    state_dict = ckpt.load_checkpoint()["model"]
    state_dict = {k: v + 0.01 for k, v in state_dict.items()}  # "fine-tuned"

    written = ckpt.save_checkpoint({"model": state_dict, "optimizer": {}}, epoch=3)
    assert written == tmp_path / "out" / "epoch_3" / "model-F16.gguf"
    again = GGUFCheckpointer(written, tmp_path / "out2")
    back = again.load_checkpoint()["model"]
    assert set(back) == set(state_dict)
    for name, value in state_dict.items():
        expected = value if value.dim() == 1 else value.to(torch.float16).to(torch.float32)
        assert torch.equal(back[name], expected), name
    for key in ("tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.chat_template"):
        assert again.metadata[key] == ckpt.metadata[key]
    text = "Hello wörld 123"
    assert again.tokenizer().encode(text, add_bos=False, add_eos=False) == tok.encode(text).ids


def test_bad_out_type(tmp_path):
    path = write_tiny_gguf(tiny_model("llama"), tmp_path / "m.gguf")
    with pytest.raises(ValueError, match="out_type='Q4_0' is not supported"):
        GGUFCheckpointer(path, tmp_path, out_type="Q4_0")


def test_export_rejects_unmerged_adapters(tmp_path):
    from torchtune.training.checkpointing import export_gguf

    path = write_tiny_gguf(tiny_model("llama"), tmp_path / "m.gguf")
    ckpt = GGUFCheckpointer(path, tmp_path)
    state_dict = ckpt.load_checkpoint()["model"]
    state_dict["layers.0.attn.q_proj.lora_a.weight"] = torch.zeros(2, 64)
    with pytest.raises(ValueError, match=r"adapter weights \(layers\.0\.attn\.q_proj\.lora_a\.weight, \.\.\.\).*get_merged_lora_ckpt"):
        export_gguf(state_dict, ckpt.config, tmp_path / "out.gguf")
    assert not (tmp_path / "out.gguf").exists()
