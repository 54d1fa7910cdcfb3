"""The GPU-path options of the fine-tuning recipes, as packaged, on CPU.

`pad_to_multiple_of` pads padding-free rows with an unlabelled document, so the losses do not
change; `enable_activation_offloading` is a no-op on CPU; `fp32_master_weights` keeps fp32
weights under bf16 compute; a missing compiler for `compile: true`, `device: cuda` without CUDA
and an unknown `reduce_dtype` stop before any work with one message naming the key and the fix.
"""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from recipe_tests._installed import InstalledTorchtune

COMMON = ("max_steps_per_epoch=5", "epochs=1", "log_every_n_steps=1", "dataset_val=null")


@pytest.fixture(scope="module")
def tt(tmp_path_factory) -> InstalledTorchtune:
    return InstalledTorchtune(tmp_path_factory.mktemp("venv") / "venv", extras=("recipes",))


def losses(output_dir: Path) -> list[float]:
    rows = [json.loads(line) for line in (output_dir / "logs" / "metrics.jsonl").read_text().splitlines()]
    return [row["loss"] for row in rows if "loss" in row]


def _full(tt, out: Path, *overrides: str) -> list[float]:
    tt.run("tune", "run", "full_finetune_single_device", "--config", "tiny/full_single_device",
           f"output_dir={out}", *COMMON, *overrides, cwd=out.parent)
    return losses(out)


def test_padding_to_a_multiple_and_offloading_keep_the_losses(tt, tmp_path):
    plain = _full(tt, tmp_path / "plain", "dtype=fp32")
    padded = _full(tt, tmp_path / "padded", "dtype=fp32", "pad_to_multiple_of=64", "enable_activation_offloading=true")
    assert len(plain) == len(padded) == 5
    assert padded == pytest.approx(plain, rel=1e-5, abs=1e-6)


def test_fp32_master_weights_train_in_bf16_and_save_fp32(tt, tmp_path):
    fp32 = _full(tt, tmp_path / "fp32", "dtype=fp32")
    master = _full(tt, tmp_path / "master", "dtype=bf16", "fp32_master_weights=true")
    assert master == pytest.approx(fp32, rel=3e-2)  # bf16 products on the same fp32 weights
    assert master != pytest.approx(fp32, rel=1e-6, abs=1e-7)  # they did run in bf16
    weights = load_file(next((tmp_path / "master" / "step_5").glob("*.safetensors")))
    assert {t.dtype for t in weights.values()} == {torch.float32}


@pytest.mark.parametrize("overrides,env,message", [
    (("compile=true",), {"CXX": "/nonexistent/g++"},
     "compile=true on CPU needs a C++ compiler (g++ or clang++) and none was found"),
    (("device=cuda",), {}, "device='cuda' but this machine has no usable CUDA GPU; use device=auto or device=cpu"),
])
def test_bad_gpu_options_stop_before_any_work(tt, tmp_path, overrides, env, message):
    if "device=cuda" in overrides and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    proc = tt.run("tune", "run", "lora_finetune_single_device", "--config", "tiny/lora_single_device",
                  f"output_dir={tmp_path / 'out'}", *overrides, cwd=tmp_path, check=False, env=env)
    assert proc.returncode == 1
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert "Model:" not in proc.stdout and not (tmp_path / "out" / "logs").exists()


def test_unknown_reduce_dtype_names_the_key(tt, tmp_path):
    proc = tt.run("tune", "run", "--nproc_per_node", "2", "full_finetune_distributed", "--config",
                  "tiny/full_distributed", f"output_dir={tmp_path / 'out'}", "reduce_dtype=fp16", cwd=tmp_path,
                  check=False)
    assert proc.returncode != 0
    assert "reduce_dtype='fp16' is not supported; use fp32, bf16 or leave it out (null)" in proc.stderr
