"""LoRA on a quantised GGUF base kept as blocks (GGUFCheckpointer(keep_quantized=True)) against the
same LoRA on the base dequantised at load (the default): same weights, so the same losses."""

import logging

import numpy as np
import pytest
import torch

gguf = pytest.importorskip("gguf")
pytest.importorskip("transformers")

from tests.torchtune.gguf._gguf_testing import tiny_model, write_tiny_gguf  # noqa: E402

from torchtune.gguf import GGUFQuantizedTensor  # noqa: E402
from torchtune.modules.peft import get_adapter_params, get_merged_lora_ckpt, get_adapter_specs, set_trainable_params  # noqa: E402
from torchtune.training.checkpointing import GGUFCheckpointer  # noqa: E402

LORA = dict(lora_attn_modules=["q_proj", "k_proj", "v_proj", "output_proj"], apply_lora_to_mlp=True, lora_rank=4,
            lora_alpha=8)
# K-quants need rows of 256 values
SIZES = dict(hidden_size=256, intermediate_size=512, num_attention_heads=4, num_key_value_heads=2)


def _model(path, tmp_path, keep_quantized):
    ckpt = GGUFCheckpointer(path, tmp_path / "out", keep_quantized=keep_quantized)
    torch.manual_seed(0)  # same adapter initialisation in both runs
    model = ckpt.build_model(**LORA)
    missing, unexpected = model.load_state_dict(ckpt.load_checkpoint(), strict=False)
    assert not unexpected and all("lora_" in k for k in missing)
    set_trainable_params(model, get_adapter_params(model))
    return model


def _train(model, steps=4):
    torch.manual_seed(1)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(steps):
        tokens = torch.randint(0, 96, (2, 12))
        logits = model(tokens[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("out_type", ["Q4_0", "Q4_1", "Q8_0", "Q4_K"])
def test_quantised_base_gives_the_dequantised_runs_losses(tmp_path, out_type):
    path = write_tiny_gguf(tiny_model("llama", seed=3, **SIZES), tmp_path / "m.gguf", out_type=out_type)
    dense, quant = _model(path, tmp_path, False), _model(path, tmp_path, True)
    q_proj = quant.layers[0].attn.q_proj.weight  # q/k rows un-permuted on the blocks
    assert isinstance(q_proj, GGUFQuantizedTensor) and q_proj.type_name == out_type
    for name, p in quant.named_parameters():
        if name.endswith("proj.weight") or name.split(".")[-2] in ("w1", "w2", "w3"):
            assert isinstance(p, GGUFQuantizedTensor), name
    # the same weights: the kept blocks dequantise to what the default path decodes
    dense_sd, quant_sd = dense.state_dict(), quant.state_dict()
    for key, value in dense_sd.items():
        assert type(quant_sd[key]) is torch.Tensor
        torch.testing.assert_close(quant_sd[key], value, rtol=0, atol=0)
    assert _train(quant) == pytest.approx(_train(dense), abs=1e-4)
    # after training the merged weights agree too (what the checkpointer writes)
    merged_q = get_merged_lora_ckpt(quant.state_dict(), adapter_specs=get_adapter_specs(quant))
    merged_d = get_merged_lora_ckpt(dense.state_dict(), adapter_specs=get_adapter_specs(dense))
    for key in merged_d:
        torch.testing.assert_close(merged_q[key], merged_d[key], rtol=1e-5, atol=1e-6)


def test_quantised_base_memory_and_dtype(tmp_path):
    path = write_tiny_gguf(tiny_model("llama", seed=3, **SIZES), tmp_path / "m.gguf", out_type="Q4_1")
    model = _model(path, tmp_path, True)
    w = model.layers[0].mlp.w2.weight
    assert w.blocks.numel() == 256 * 512 // 32 * 20  # 20 bytes per 32 values, nothing else held
    blocks = w.blocks
    model.to(torch.bfloat16)  # the blocks stay; the state dict follows the model's dtype
    assert model.layers[0].mlp.w2.weight.blocks is blocks
    assert model.state_dict()["layers.0.mlp.w2.weight"].dtype == torch.bfloat16
    tokens = torch.randint(0, 96, (1, 6))
    assert model(tokens).dtype == torch.bfloat16


def test_tensors_that_cannot_stay_quantised_are_dequantised_with_a_note(tmp_path, caplog):
    path = write_tiny_gguf(tiny_model("llama", seed=3, **SIZES), tmp_path / "m.gguf", out_type="Q8_0")
    ckpt = GGUFCheckpointer(path, tmp_path / "out", keep_quantized=True)
    with caplog.at_level(logging.INFO, logger="torchtune.gguf._io"):
        state_dict = ckpt.load_checkpoint()
    assert type(state_dict["tok_embeddings.weight"]) is torch.Tensor
    assert "token_embd.weight (Q8_0)" in caplog.text and "dequantised" in caplog.text


def test_gguf_tensor_falls_back_to_dequantised_values():
    from gguf.quants import dequantize, quantize

    rng = np.random.default_rng(0)
    values = rng.standard_normal((8, 64)).astype(np.float32)
    raw = quantize(values, gguf.GGMLQuantizationType.Q4_1)
    w = GGUFQuantizedTensor(torch.from_numpy(raw.copy()), "Q4_1", (8, 64))
    reference = torch.from_numpy(dequantize(raw, gguf.GGMLQuantizationType.Q4_1).astype(np.float32))
    torch.testing.assert_close(w.dequantized(), reference, rtol=0, atol=0)
    torch.testing.assert_close(w * 2, reference * 2, rtol=0, atol=0)  # any other op sees the values
    x = torch.randn(3, 64, requires_grad=True)
    y = torch.nn.functional.linear(x, w)
    y.sum().backward()
    torch.testing.assert_close(y, x.detach() @ reference.T, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(x.grad, torch.ones(3, 8) @ reference, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match=r"Q4_1 weight of shape \(8, 48\) needs uint8 blocks"):
        GGUFQuantizedTensor(torch.from_numpy(raw.copy()), "Q4_1", (8, 48))


def test_in_place_writes_are_refused_and_float_weights_replace_blocks(tmp_path):
    path = write_tiny_gguf(tiny_model("llama", seed=3, **SIZES), tmp_path / "m.gguf", out_type="Q8_0")
    model = _model(path, tmp_path, True)
    layer = model.layers[0].attn.v_proj
    with pytest.raises(NotImplementedError, match="frozen weight"):
        layer.weight.copy_(torch.zeros(layer.weight.shape))
    plain = torch.randn(layer.weight.shape)
    layer.load_state_dict({"weight": plain}, strict=False)  # a float base over the blocks replaces them
    assert type(layer.weight) is torch.nn.Parameter and torch.equal(layer.weight.data, plain)
