"""QLoRA: NF4 base weights (torchao) against bitsandbytes' NF4, and LoRA/DoRA layers on them."""

import sys

import bitsandbytes.functional as bnb
import pytest
import torch
import torch.nn.functional as F

from torchtune.modules.peft import DoRALinear, LoRALinear

SHAPES = [(128, 128), (256, 192), (512, 64)]


def _nf4(w):
    from torchao.quantization import to_nf4

    return to_nf4(w, 64, 256)


def _codes_torchao(n):
    packed = n.quantized_data  # two 4-bit codes per byte, the first in the high nibble
    return torch.stack([packed >> 4, packed & 15], dim=-1).reshape(-1).long()


def _codes_bnb(packed):
    packed = packed.reshape(-1)
    return torch.stack([packed >> 4, packed & 15], dim=-1).reshape(-1).long()


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("seed", [0, 1])
def test_nf4_codes_match_bitsandbytes(shape, seed):
    # Both formats scale each block of 64 values by its absmax and pick the nearest of the same 16
    # NormalFloat levels; torchao stores the levels rounded to 4 decimals (bitsandbytes to float32
    # precision), so a value within 1e-4 of the midpoint of two levels may round either way.
    torch.manual_seed(seed)
    w = torch.randn(shape) * torch.rand(shape[0], 1) * 0.1  # rows of different scales
    packed, state = bnb.quantize_4bit(w, blocksize=64, quant_type="nf4")
    ours, ref = _codes_torchao(_nf4(w)), _codes_bnb(packed)
    blocks = w.reshape(-1, 64)
    scaled = (blocks / blocks.abs().amax(dim=1, keepdim=True)).reshape(-1)  # in [-1, 1]
    levels = state.code[:16].float()
    mids = (levels[1:] + levels[:-1]) / 2
    near_mid = (scaled[:, None] - mids[None]).abs().min(dim=1).values < 1e-4
    assert torch.all((ours == ref) | near_mid)
    assert near_mid.float().mean() < 1e-2
    # and the codes are the nearest level of the exact table
    nearest = (scaled[:, None] - levels[None]).abs().argmin(dim=1)
    assert torch.all((ref == nearest) | near_mid)


@pytest.mark.parametrize("shape", SHAPES)
def test_nf4_dequantised_values_within_double_quantisation_bound(shape):
    # bitsandbytes keeps each block's absmax in float32 here; torchao double-quantises them: the
    # absmaxes minus their mean, 256 at a time, as int8 with the scale 128 / max|absmax - mean|,
    # so each dequantised absmax is within max|absmax - mean| / 128 of the exact one (rounding is
    # 1/256 of it, the clamp of the largest one to 127 at most 1/128).
    torch.manual_seed(3)
    w = torch.randn(shape)
    packed, state = bnb.quantize_4bit(w, blocksize=64, quant_type="nf4")
    ref = bnb.dequantize_4bit(packed, state).reshape(-1)
    n = _nf4(w)
    ours = n.get_original_weight().reshape(-1)
    absmax = w.reshape(-1, 64).abs().amax(dim=1)
    torch.testing.assert_close(state.absmax, absmax, rtol=0, atol=0)
    centred = (absmax - absmax.mean()).reshape(-1, 256)
    bound = (centred.abs().amax(dim=1, keepdim=True) / 128).expand(-1, 256).reshape(-1)  # per block
    ours_absmax = n.dequantize_scalers(n.quantized_scalers, n.quantization_factor, n.scaler_block_size)
    assert torch.all((ours_absmax - absmax).abs() <= bound + 1e-6)
    same = _codes_torchao(n) == _codes_bnb(packed)
    level = state.code[:16].float()[_codes_bnb(packed)]
    per_value = (level.abs() * bound.repeat_interleave(64) + 1e-4 * absmax.repeat_interleave(64) + 1e-6)
    assert torch.all((ours - ref).abs()[same] <= per_value[same])


@pytest.mark.parametrize("cls", [LoRALinear, DoRALinear])
def test_qlora_layer_equals_lora_on_the_dequantised_weight(cls):
    torch.manual_seed(0)
    layer = cls(128, 256, rank=4, alpha=8.0, quantize_base=True)
    with torch.no_grad():
        layer.lora_b.weight.normal_()
    assert type(layer.weight).__name__ == "NF4Tensor"
    dense = cls(128, 256, rank=4, alpha=8.0)
    dense.load_state_dict(layer.state_dict())  # the state dict holds the dequantised base
    torch.testing.assert_close(dense.weight, layer.weight.get_original_weight(), rtol=0, atol=0)
    x = torch.randn(3, 5, 128, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    out, ref = layer(x), dense(x_ref)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    grad = torch.randn_like(out)
    out.backward(grad)
    ref.backward(grad)
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(layer.lora_a.weight.grad, dense.lora_a.weight.grad, rtol=1e-5, atol=1e-5)
    # the base's input gradient: the LoRA update's part plus W^T grad, W dequantised
    if cls is LoRALinear:
        w = layer.weight.get_original_weight()
        expected = grad @ w + layer.scaling * (grad @ layer.lora_b.weight) @ layer.lora_a.weight
        torch.testing.assert_close(x.grad, expected, rtol=1e-5, atol=1e-5)


def test_to_dtype_keeps_nf4_and_state_dict_follows():
    torch.manual_seed(0)
    layer = LoRALinear(128, 128, rank=4, alpha=8.0, quantize_base=True)
    packed = layer.weight.quantized_data.clone()
    layer.to(torch.bfloat16)
    assert type(layer.weight).__name__ == "NF4Tensor" and not layer.weight.requires_grad
    assert torch.equal(layer.weight.quantized_data, packed)
    assert layer.lora_a.weight.dtype == torch.bfloat16
    sd = layer.state_dict()
    assert type(sd["weight"]) is torch.Tensor and sd["weight"].dtype == torch.bfloat16
    torch.testing.assert_close(sd["weight"], layer.weight.get_original_weight().bfloat16(), rtol=0, atol=0)
    # 4 bits per value, plus one int8 scale per 64 values
    nbytes = layer.weight.quantized_data.numel() + layer.weight.quantized_scalers.numel()
    assert nbytes == 128 * 128 // 2 + 128 * 128 // 64


def test_loading_float_weights_quantises_them():
    torch.manual_seed(0)
    w = torch.randn(128, 128)
    layer = LoRALinear(128, 128, rank=4, alpha=8.0, quantize_base=True)
    layer.load_state_dict({"weight": w}, strict=False)
    assert type(layer.weight).__name__ == "NF4Tensor"
    torch.testing.assert_close(layer.weight.get_original_weight(), _nf4(w).get_original_weight(), rtol=0, atol=0)


def test_bad_sizes_and_missing_torchao(monkeypatch):
    with pytest.raises(ValueError, match=r"multiple of 16384.*shape \(64, 128\)"):
        LoRALinear(128, 64, rank=4, alpha=8.0, quantize_base=True)
    monkeypatch.setitem(sys.modules, "torchao.quantization", None)
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'torchtune\[quant\]'"):
        LoRALinear(128, 128, rank=4, alpha=8.0, quantize_base=True)


def test_builders_quantise_every_adapted_linear():
    from inspect import signature

    from torchtune.models.llama3_2 import lora_llama3_2_1b, qlora_llama3_2_1b
    from torchtune.models.llama3_1 import lora_llama3_1

    assert signature(qlora_llama3_2_1b).parameters["quantize_base"].default is True
    assert signature(lora_llama3_2_1b).parameters["quantize_base"].default is False
    model = lora_llama3_1(["q_proj", "v_proj"], apply_lora_to_mlp=True, quantize_base=True, vocab_size=256,
                          num_layers=2, num_heads=4, num_kv_heads=4, embed_dim=128, intermediate_dim=256,
                          max_seq_len=64)
    kinds = {name: type(p).__name__ for name, p in model.named_parameters() if name.endswith(".weight")}
    for name, kind in kinds.items():
        adapted = any(f".{m}.weight" in name for m in ("q_proj", "v_proj", "w1", "w2", "w3")) and "lora_" not in name
        assert (kind == "NF4Tensor") == adapted, name
    tokens = torch.randint(0, 256, (2, 8))
    assert model(tokens).shape == (2, 8, 256)
