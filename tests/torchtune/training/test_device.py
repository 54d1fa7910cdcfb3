"""get_device / get_dtype / precision_plan: what `device`, `dtype` (auto included) and
`fp32_master_weights` / `reduce_dtype` pick, and their errors."""

from pathlib import Path

import pytest
import torch

from torchtune.config import ConfigError
from torchtune.training import get_device, get_dtype, precision_plan

CPU = torch.device("cpu")


def _cpuinfo_flags() -> set[str]:
    path = Path("/proc/cpuinfo")
    if not path.exists():
        pytest.skip("no /proc/cpuinfo")
    line = next((l for l in path.read_text().splitlines() if l.startswith("flags")), "")
    return set(line.split(":", 1)[-1].split())


def test_auto_picks_bf16_exactly_on_cpus_with_bf16_matrix_units():
    flags = _cpuinfo_flags()  # an independent reading of the CPU's features
    dtype, why = get_dtype("auto", CPU)
    expected = torch.bfloat16 if {"amx_bf16", "avx512_bf16"} & flags else torch.float32
    assert dtype == expected, why
    assert why.startswith(f"dtype=auto chose {'bf16' if expected == torch.bfloat16 else 'fp32'}: ")


@pytest.mark.parametrize("amx,avx512_bf16,expected,reason", [
    (True, False, torch.bfloat16, "the CPU has AMX tiles"),
    (False, True, torch.bfloat16, "the CPU has AVX512-BF16"),
    (False, False, torch.float32, "the CPU has no bf16 matrix units"),
])
def test_auto_on_each_cpu_kind(monkeypatch, amx, avx512_bf16, expected, reason):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    dtype, why = get_dtype("auto", CPU)
    assert dtype == expected and reason in why


def test_explicit_dtypes_and_unknown_name():
    assert get_dtype("fp32", CPU) == (torch.float32, "dtype=fp32")
    assert get_dtype("bf16", CPU)[0] == torch.bfloat16
    with pytest.raises(ConfigError, match=r"dtype='float8' is not supported; use one of \['auto', "):
        get_dtype("float8", CPU)


def test_bf16_on_a_gpu_without_it_names_the_key_and_the_fixes(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "Tesla T4")
    with pytest.raises(ConfigError, match=r"^dtype=bf16 but Tesla T4 has no bf16 support; use dtype=auto or dtype=fp32$"):
        get_dtype("bf16", torch.device("cuda"))
    assert get_dtype("auto", torch.device("cuda"))[0] == torch.float32


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only error")
def test_cuda_without_a_gpu_is_a_config_error():
    with pytest.raises(ConfigError, match=r"device='cuda' but this machine has no usable CUDA GPU; use device=auto or device=cpu"):
        get_device("cuda")
    assert get_device("auto") == CPU and get_device("cpu") == CPU


def test_auto_picks_cuda_when_a_gpu_is_there(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: None)
    assert get_device("auto") == torch.device("cuda")
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert get_device("auto", distributed=True) == torch.device("cuda", 3)


def test_fp32_master_weights_keep_small_updates_that_bf16_weights_lose():
    plan = precision_plan(torch.bfloat16, CPU, fp32_master_weights=True)
    assert (plan.param_dtype, plan.compute_dtype, plan.mp_policy()) == (torch.float32, torch.bfloat16, None)
    torch.manual_seed(0)
    master = torch.nn.Linear(8, 4).to(plan.param_dtype)
    x = torch.randn(3, 8)
    with plan.autocast():
        out = master(x)
    # the product runs in bf16 on bf16 copies of the fp32 weights
    expected = torch.nn.functional.linear(x.bfloat16(), master.weight.bfloat16(), master.bias.bfloat16())
    assert out.dtype == torch.bfloat16 and torch.equal(out, expected)
    # an update of 1e-4 on a weight of 1.0 survives in fp32 and vanishes in bf16 (8-bit mantissa)
    w32, w16 = torch.ones(()), torch.ones((), dtype=torch.bfloat16)
    assert (w32 - 1e-4).item() < 1.0 and (w16 - 1e-4).item() == 1.0
    plain = precision_plan(torch.bfloat16, CPU)
    assert plain.param_dtype == torch.bfloat16
    assert plain.autocast().__class__.__name__ == "nullcontext"


def test_fsdp_mixed_precision_policy():
    sharded = precision_plan(torch.bfloat16, CPU, fp32_master_weights=True, reduce_dtype="fp32", distributed=True)
    policy = sharded.mp_policy()
    assert (policy.param_dtype, policy.reduce_dtype) == (torch.bfloat16, torch.float32)
    assert sharded.autocast().__class__.__name__ == "nullcontext"  # FSDP2 casts, not autocast
    bf16_reduce_fp32 = precision_plan(torch.bfloat16, CPU, reduce_dtype="fp32", distributed=True).mp_policy()
    assert (bf16_reduce_fp32.param_dtype, bf16_reduce_fp32.reduce_dtype) == (None, torch.float32)
    assert precision_plan(torch.float32, CPU, reduce_dtype="fp32", distributed=True).mp_policy() is None
    assert precision_plan(torch.float32, CPU, fp32_master_weights=True, distributed=True).mp_policy() is None


def test_unknown_reduce_dtype_names_the_key():
    with pytest.raises(ConfigError, match=r"reduce_dtype='fp8' is not supported; use fp32, bf16"):
        precision_plan(torch.bfloat16, CPU, reduce_dtype="fp8", distributed=True)
