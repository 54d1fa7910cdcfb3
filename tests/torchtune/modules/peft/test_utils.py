import pytest
import torch
from torch import nn

from torchtune.modules.peft import (
    AdapterSpec,
    DoRALinear,
    LoRALinear,
    disable_adapter,
    get_adapter_params,
    get_adapter_specs,
    get_adapter_state_dict,
    get_merged_lora_ckpt,
    initialize_dora_magnitudes,
    set_trainable_params,
    validate_missing_and_unexpected_for_lora,
)

RANK, ALPHA = 2, 4.0


class _Net(nn.Module):
    def __init__(self, dora=False):
        super().__init__()
        cls = DoRALinear if dora else LoRALinear
        self.a = cls(6, 8, RANK, ALPHA)
        self.mid = nn.Linear(8, 8)
        self.b = cls(8, 5, RANK, ALPHA, use_bias=True)

    def forward(self, x):
        return self.b(torch.relu(self.mid(self.a(x))))


class _Base(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(6, 8, bias=False)
        self.mid = nn.Linear(8, 8)
        self.b = nn.Linear(8, 5)

    def forward(self, x):
        return self.b(torch.relu(self.mid(self.a(x))))


def _trained(dora):
    torch.manual_seed(0)
    net = _Net(dora)
    with torch.no_grad():
        for name, p in get_adapter_params(net).items():
            p.normal_() if "lora_b" in name else p.mul_(1.5)
    return net.eval()


def test_adapter_params_and_trainable():
    net = _Net(dora=True)
    params = get_adapter_params(net)
    assert sorted(params) == sorted(
        f"{m}.{p}" for m in "ab" for p in ("lora_a.weight", "lora_b.weight", "magnitude")
    )
    set_trainable_params(net, params)
    trainable = {n for n, p in net.named_parameters() if p.requires_grad}
    assert trainable == set(params)
    assert set(get_adapter_state_dict(net.state_dict())) == set(params)


@pytest.mark.parametrize("dora", [False, True])
def test_merged_checkpoint_matches_unmerged(dora):
    net = _trained(dora)
    base = _Base()
    missing, unexpected = base.load_state_dict(get_merged_lora_ckpt(net.state_dict(), RANK, ALPHA), strict=True)
    x = torch.randn(4, 6)
    torch.testing.assert_close(base(x), net(x), atol=1e-5, rtol=1e-5)


def test_disable_adapter_gives_base_output():
    net = _trained(False)
    base = _Base()
    sd = {k: v for k, v in net.state_dict().items() if "lora" not in k}
    base.load_state_dict(sd)
    x = torch.randn(3, 6)
    with disable_adapter(net):
        torch.testing.assert_close(net(x), base(x))
    assert not torch.allclose(net(x), base(x))


def test_initialize_dora_magnitudes():
    net = _Net(dora=True)
    with torch.no_grad():
        net.a.weight.mul_(3)
    initialize_dora_magnitudes(net)
    torch.testing.assert_close(net.a.magnitude, net.a.weight.norm(dim=1))


def test_validate_missing_and_unexpected():
    net = _Net()
    base_sd = {k: v for k, v in net.state_dict().items() if "lora" not in k}
    missing, unexpected = net.load_state_dict(base_sd, strict=False)
    validate_missing_and_unexpected_for_lora(net, base_missing=missing, base_unexpected=unexpected)
    with pytest.raises(ValueError, match=r"base weights are missing non-adapter keys: \['mid.bias'\]"):
        validate_missing_and_unexpected_for_lora(net, base_missing=[*missing, "mid.bias"])
    with pytest.raises(ValueError, match=r"adapter weights are missing adapter keys: \['a.lora_a.weight'\]"):
        validate_missing_and_unexpected_for_lora(net, lora_missing=["a.lora_a.weight", "mid.bias"])
    with pytest.raises(ValueError, match=r"unexpected keys in the loaded state dict: \['x.y'\]"):
        validate_missing_and_unexpected_for_lora(net, lora_unexpected=["x.y"])


def test_merge_bad_rank():
    with pytest.raises(ValueError, match="rank=0 must be a positive integer"):
        get_merged_lora_ckpt({}, 0, 1.0)


def test_merge_infers_each_adapters_rank_and_needs_alpha():
    torch.manual_seed(0)
    sd = {"p.weight": torch.randn(4, 3), "p.lora_a.weight": torch.randn(2, 3), "p.lora_b.weight": torch.randn(4, 2)}
    expected = sd["p.weight"] + (8.0 / 2) * sd["p.lora_b.weight"] @ sd["p.lora_a.weight"]
    merged = get_merged_lora_ckpt(sd, alpha=8.0)
    assert merged.keys() == {"p.weight"}
    torch.testing.assert_close(merged["p.weight"], expected)
    with pytest.raises(ValueError, match="no alpha for the adapter of 'p': pass adapter_specs="):
        get_merged_lora_ckpt(sd)
    specs = {"p": AdapterSpec(rank=2, alpha=8.0)}
    torch.testing.assert_close(get_merged_lora_ckpt(sd, adapter_specs=specs)["p.weight"], expected)


def test_adapter_specs_are_read_off_the_modules():
    model = nn.Sequential(LoRALinear(3, 4, rank=2, alpha=5.0, dropout=0.1), nn.ReLU(), DoRALinear(4, 4, rank=3, alpha=6.0))
    assert get_adapter_specs(model) == {
        "0": AdapterSpec(rank=2, alpha=5.0, dropout=0.1, use_dora=False),
        "2": AdapterSpec(rank=3, alpha=6.0, dropout=0.0, use_dora=True),
    }
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_b" in name:
                p.normal_()
    merged = get_merged_lora_ckpt(model.state_dict(), adapter_specs=get_adapter_specs(model))
    # each adapter merged with its own scale: the merged layers reproduce the adapted ones
    x = torch.randn(5, 3)
    plain = nn.Sequential(nn.Linear(3, 4, bias=False), nn.ReLU(), nn.Linear(4, 4, bias=False))
    plain.load_state_dict(merged)
    model.eval()
    torch.testing.assert_close(plain(x), model(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dora", [False, True])
def test_lazy_merge_is_computed_when_read_and_matches_the_unmerged_net(dora):
    from torchtune.utils import LazyStateDict

    net = _trained(dora)
    reads = []

    class _Counting(dict):
        def __getitem__(self, key):
            reads.append(key)
            return super().__getitem__(key)

    lazy = get_merged_lora_ckpt(_Counting(net.state_dict()), RANK, ALPHA, lazy=True)
    assert isinstance(lazy, LazyStateDict)
    assert not [k for k in reads if "lora_" in k]  # nothing merged yet (the base weights give the shapes)
    reads.clear()
    assert list(lazy) == ["a.weight", "mid.weight", "mid.bias", "b.weight", "b.bias"]
    assert lazy.meta("a.weight").shape == (8, 6) and lazy.meta("a.weight").device.type == "meta"
    lazy["b.weight"]
    assert set(reads) <= {"b.weight", "b.lora_a.weight", "b.lora_b.weight", "b.magnitude"}
    base = _Base()
    base.load_state_dict(dict(lazy), strict=True)
    x = torch.randn(4, 6)
    torch.testing.assert_close(base(x), net(x), atol=1e-5, rtol=1e-5)
