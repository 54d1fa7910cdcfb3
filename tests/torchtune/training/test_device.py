"""get_device / get_dtype: what `device` and `dtype` (auto included) pick, and their errors."""

from pathlib import Path

import pytest
import torch

from torchtune.config import ConfigError
from torchtune.training import get_device, get_dtype

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
