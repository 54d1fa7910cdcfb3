"""QLoRA as packaged: `pip install 'torchtune[recipes,quant]'`, then `tune run` with
`model.quantize_base=true` (NF4 base weights through torchao).

The model is a tiny Llama written by transformers in the test, with sizes NF4 can shard over two
processes (every quantised weight a multiple of 2 * 64 * 256 values). Outputs are checked with
the reference libraries: the merged model must be torchao's NF4 rounding of the original base plus
the adapter (computed here directly), load in transformers with the logits of peft on that base,
and the adapter must load with peft on the original, unquantised base.
"""

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from recipe_tests._installed import InstalledTorchtune, clean_env

COMMON = ("model.quantize_base=true", "max_steps_per_epoch=6", "epochs=1", "log_every_n_steps=1", "dtype=fp32")


def losses(output_dir: Path) -> list[float]:
    rows = [json.loads(line) for line in (output_dir / "logs" / "metrics.jsonl").read_text().splitlines()]
    return [row["loss"] for row in rows if "loss" in row]


def final_dir(output_dir: Path) -> Path:
    return max(output_dir.glob("step_*"), key=lambda p: int(p.name.split("_")[1]))


def _run_until_checkpoint(tt, cwd: Path, out: Path, args: list[str]) -> None:
    """Start a run and SIGKILL it once its first checkpoint is complete."""
    proc = subprocess.Popen([str(tt.bin / "tune"), *args], cwd=cwd, env=clean_env(OMP_NUM_THREADS="1"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not list(out.glob("step_*/CHECKPOINT_COMPLETE")):
        time.sleep(0.05)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert list(out.glob("step_*/CHECKPOINT_COMPLETE")), "the run never wrote a checkpoint"


@pytest.fixture(scope="module")
def tt(tmp_path_factory) -> InstalledTorchtune:
    return InstalledTorchtune(tmp_path_factory.mktemp("venv") / "venv", extras=("recipes", "quant"))


@pytest.fixture(scope="module")
def model_dir(tt, tmp_path_factory) -> Path:
    """The shipped tiny assets with a 256-wide model (4 heads, 4 key/value heads) in their place."""
    from transformers import AutoConfig, AutoModelForCausalLM

    out = tmp_path_factory.mktemp("tiny_qlora")
    assets = Path(json.loads(tt.run("python", "-c", "import json, torchtune; print(json.dumps(str(torchtune.recipes_root())))",
                                    cwd=out).stdout.strip().splitlines()[-1])) / "assets" / "tiny"
    for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json", "instructions.jsonl",
                 "instructions_val.jsonl"):
        shutil.copy(assets / name, out / name)
    config = json.loads((assets / "config.json").read_text())
    config.update(hidden_size=256, intermediate_size=512, num_key_value_heads=4, torch_dtype="float32")
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**{k: v for k, v in config.items() if k != "architectures"}))
    model.save_pretrained(out, safe_serialization=True)
    return out


def test_qlora_outputs_match_nf4_base_plus_adapter(tt, tmp_path, model_dir):
    from peft import PeftModel
    from safetensors.torch import load_file
    from torchao.quantization import to_nf4
    from transformers import AutoModelForCausalLM

    out = tmp_path / "qlora"
    tt.run("tune", "run", "lora_finetune_single_device", "--config", "tiny/lora_single_device", f"model_dir={model_dir}",
           f"output_dir={out}", *COMMON, "max_steps_per_epoch=20", cwd=tmp_path)
    curve = losses(out)
    assert len(curve) == 20 and sum(curve[-4:]) / 4 < 0.9 * sum(curve[:4]) / 4, curve
    final = final_dir(out)
    merged = load_file(final / "model.safetensors")
    original = load_file(model_dir / "model.safetensors")
    adapter_config = json.loads((final / "adapter" / "adapter_config.json").read_text())
    adapter = load_file(final / "adapter" / "adapter_model.safetensors")
    scaling = adapter_config["lora_alpha"] / adapter_config["r"]
    adapted = 0
    for key, w in original.items():
        assert merged[key].dtype == torch.float32  # the base dtype of this run
        prefix = "base_model.model." + key.removesuffix(".weight")
        if f"{prefix}.lora_A.weight" not in adapter:
            torch.testing.assert_close(merged[key], w, rtol=0, atol=0)  # not adapted: untouched
            continue
        adapted += 1
        expected = to_nf4(w, 64, 256).get_original_weight() + scaling * (
            adapter[f"{prefix}.lora_B.weight"] @ adapter[f"{prefix}.lora_A.weight"])
        torch.testing.assert_close(merged[key], expected, rtol=1e-5, atol=1e-6)
    assert adapted == 4 * 7 + 1  # q, k, v, o, gate, up, down in 4 layers, and the output projection

    # transformers reads the merged model; peft on the NF4-rounded base gives the same logits
    tokens = torch.randint(0, 2048, (2, 16), generator=torch.Generator().manual_seed(0))
    hf_merged = AutoModelForCausalLM.from_pretrained(final, torch_dtype=torch.float32).eval()
    rounded = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32)
    with torch.no_grad():
        for name, p in rounded.named_parameters():
            if "base_model.model." + name.removesuffix(".weight") + ".lora_A.weight" in adapter:
                p.copy_(to_nf4(p.detach().clone(), 64, 256).get_original_weight())
    on_rounded = PeftModel.from_pretrained(rounded, final / "adapter").eval()
    with torch.no_grad():
        torch.testing.assert_close(on_rounded(tokens).logits, hf_merged(tokens).logits, rtol=1e-4, atol=1e-4)
    # and the adapter loads on the original (unquantised) base it names
    assert Path(adapter_config["base_model_name_or_path"]).resolve() == model_dir.resolve()
    base = AutoModelForCausalLM.from_pretrained(adapter_config["base_model_name_or_path"], torch_dtype=torch.float32)
    on_original = PeftModel.from_pretrained(base, final / "adapter").eval()
    with torch.no_grad():
        assert torch.isfinite(on_original(tokens).logits).all()


def test_killed_qlora_run_resumes_to_the_same_weights(tt, tmp_path, model_dir):
    from safetensors.torch import load_file

    args = ["run", "lora_finetune_single_device", "--config", "tiny/lora_single_device", f"model_dir={model_dir}",
            *COMMON, "save_every_n_steps=3"]
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    tt.run("tune", *args, f"output_dir={whole}", cwd=tmp_path)
    _run_until_checkpoint(tt, tmp_path, broken, [*args, f"output_dir={broken}"])
    tt.run("tune", *args, f"output_dir={broken}", "resume=auto", cwd=tmp_path)
    assert losses(broken)[-1] == losses(whole)[-1]
    a, b = load_file(final_dir(whole) / "model.safetensors"), load_file(final_dir(broken) / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_distributed_qlora_matches_single_device(tt, tmp_path, model_dir):
    from safetensors.torch import load_file

    single, dist = tmp_path / "single", tmp_path / "dist"
    tt.run("tune", "run", "lora_finetune_single_device", "--config", "tiny/lora_single_device",
           f"model_dir={model_dir}", f"output_dir={single}", *COMMON, cwd=tmp_path)
    tt.run("tune", "run", "--nproc_per_node", "2", "lora_finetune_distributed", "--config", "tiny/lora_distributed",
           f"model_dir={model_dir}", f"output_dir={dist}", *COMMON, cwd=tmp_path)
    a, b = losses(single), losses(dist)
    assert len(a) == len(b) == 6
    assert a == pytest.approx(b, rel=1e-4, abs=1e-5)
    ma, mb = load_file(final_dir(single) / "model.safetensors"), load_file(final_dir(dist) / "model.safetensors")
    for key in ma:
        torch.testing.assert_close(ma[key], mb[key], rtol=1e-4, atol=1e-5)
