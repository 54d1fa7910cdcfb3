import pytest
import torch
from peft import LoraConfig, get_peft_model
from torch import nn

from torchtune.modules.peft import DoRALinear, LoRALinear, set_adapter_dtype

IN, OUT, RANK, ALPHA = 12, 10, 4, 8.0


class _Wrapper(nn.Module):
    def __init__(self, bias):
        super().__init__()
        self.proj = nn.Linear(IN, OUT, bias=bias)

    def forward(self, x):
        return self.proj(x)


def _peft_layer(bias, use_dora):
    torch.manual_seed(0)
    model = get_peft_model(
        _Wrapper(bias), LoraConfig(r=RANK, lora_alpha=ALPHA, target_modules=["proj"], use_dora=use_dora)
    )
    layer = model.base_model.model.proj
    with torch.no_grad():
        layer.lora_B["default"].weight.normal_()  # move away from the zero init
        if use_dora:
            layer.lora_magnitude_vector["default"].weight.uniform_(0.5, 2.0)
    return model.eval(), layer


def _copy_into(ours, layer, bias, use_dora):
    with torch.no_grad():
        ours.weight.copy_(layer.base_layer.weight)
        if bias:
            ours.bias.copy_(layer.base_layer.bias)
        ours.lora_a.weight.copy_(layer.lora_A["default"].weight)
        ours.lora_b.weight.copy_(layer.lora_B["default"].weight)
        if use_dora:
            ours.magnitude.copy_(layer.lora_magnitude_vector["default"].weight)
    return ours.eval()


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("cls,use_dora", [(LoRALinear, False), (DoRALinear, True)])
def test_matches_peft(cls, use_dora, bias):
    model, layer = _peft_layer(bias, use_dora)
    ours = _copy_into(cls(IN, OUT, RANK, ALPHA, use_bias=bias), layer, bias, use_dora)
    x = torch.randn(3, 5, IN)
    torch.testing.assert_close(ours(x), model(x), atol=1e-5, rtol=1e-5)


def test_lora_formula():
    torch.manual_seed(0)
    lora = LoRALinear(IN, OUT, RANK, ALPHA)
    nn.init.normal_(lora.lora_b.weight)
    x = torch.randn(4, IN)
    expected = x @ lora.weight.T + (ALPHA / RANK) * (x @ lora.lora_a.weight.T @ lora.lora_b.weight.T)
    torch.testing.assert_close(lora(x), expected)


def test_starts_equal_to_base_and_base_is_frozen():
    torch.manual_seed(0)
    for cls in (LoRALinear, DoRALinear):
        layer = cls(IN, OUT, RANK, ALPHA, use_bias=True)
        x = torch.randn(2, IN)
        torch.testing.assert_close(layer(x), x @ layer.weight.T + layer.bias, atol=1e-5, rtol=1e-5)
        assert not layer.weight.requires_grad and not layer.bias.requires_grad
        assert torch.count_nonzero(layer.lora_b.weight) == 0


def test_dora_magnitude_init_from_loaded_weight():
    layer = DoRALinear(IN, OUT, RANK, ALPHA)
    with torch.no_grad():
        layer.weight.normal_()
    layer.initialize_dora_magnitude()
    torch.testing.assert_close(layer.magnitude, layer.weight.norm(dim=1))


def test_dora_norm_is_detached_like_peft():
    model, layer = _peft_layer(False, True)
    ours = _copy_into(DoRALinear(IN, OUT, RANK, ALPHA), layer, False, True)
    x = torch.randn(3, IN)
    model(x).sum().backward()
    ours(x).sum().backward()
    torch.testing.assert_close(ours.magnitude.grad, layer.lora_magnitude_vector["default"].weight.grad)
    torch.testing.assert_close(ours.lora_a.weight.grad, layer.lora_A["default"].weight.grad)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"rank": 0}, "rank=0 must be a positive integer"),
        ({"dropout": 1.0}, r"dropout=1.0 must be in \[0, 1\)"),
        ({"in_dim": 0}, "in_dim=0 and out_dim=10 must be positive"),
    ],
)
def test_bad_args(kwargs, message):
    args = {"in_dim": IN, "out_dim": OUT, "rank": RANK, "alpha": ALPHA, **kwargs}
    with pytest.raises(ValueError, match=message):
        LoRALinear(**args)



@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("cls,use_dora", [(LoRALinear, False), (DoRALinear, True)])
def test_fp32_adapters_on_a_bf16_layer_match_peft(cls, use_dora, bias):
    """bf16 base with fp32 adapters (set_adapter_dtype): output in bf16 close to peft's in fp32 on
    the same bf16-rounded base, and the adapters' gradients in fp32."""
    model, layer = _peft_layer(bias, use_dora)
    with torch.no_grad():  # the reference sees exactly the bf16 base weights ours holds
        layer.base_layer.weight.copy_(layer.base_layer.weight.to(torch.bfloat16).float())
        if bias:
            layer.base_layer.bias.copy_(layer.base_layer.bias.to(torch.bfloat16).float())
    ours = _copy_into(cls(IN, OUT, RANK, ALPHA, use_bias=bias), layer, bias, use_dora)
    holder = nn.Module()
    holder.proj = ours.to(torch.bfloat16)
    set_adapter_dtype(holder, torch.float32)
    assert ours.weight.dtype == torch.bfloat16
    assert all(dict(ours.named_parameters())[n].dtype == torch.float32 for n in ours.adapter_params())
    x = torch.randn(3, 5, IN).to(torch.bfloat16)
    out = ours(x)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), model(x.float()), atol=0.05, rtol=0.02)
    out.float().sum().backward()
    for name in ours.adapter_params():
        assert dict(ours.named_parameters())[name].grad.dtype == torch.float32
