"""The DPO recipes as packaged: `pip install 'torchtune[recipes]'` from the wheel, then only `tune`.

The tiny shipped model and preference pairs make each run take seconds. Outputs are checked with
the reference libraries: the merged model in transformers, the adapter in peft on the shipped
base, and the two against each other.
"""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from recipe_tests._installed import InstalledTorchtune, clean_env

SHORT = ("max_steps_per_epoch=12", "epochs=1", "log_every_n_steps=1", "save_every_n_steps=6")


@pytest.fixture(scope="module")
def tt(tmp_path_factory) -> InstalledTorchtune:
    return InstalledTorchtune(tmp_path_factory.mktemp("venv") / "venv", extras=("recipes",))


def tune_run(tt: InstalledTorchtune, *args: str, **kwargs):
    """`tune run ... dtype=fp32`: these tests compare with transformers, peft and other process
    counts at fp32 tolerances (the configs say dtype: auto; the resume tests keep it)."""
    return tt.run("tune", "run", *args, "dtype=fp32", **kwargs)


def metrics(output_dir: Path, key: str) -> list[float]:
    rows = [json.loads(line) for line in (output_dir / "logs" / "metrics.jsonl").read_text().splitlines()]
    return [row[key] for row in rows if key in row]


def final_dir(output_dir: Path) -> Path:
    steps = sorted(output_dir.glob("step_*"), key=lambda p: int(p.name.split("_")[1]))
    assert steps, f"no checkpoint in {output_dir}"
    return steps[-1]


def mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def test_lora_dpo_learns_the_preferences_and_saves_hf_and_peft(tt, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    assert "tiny/lora_dpo_single_device" in tt.run("tune", "ls", cwd=tmp_path).stdout
    out = tmp_path / "dpo"
    tune_run(tt, "lora_dpo_single_device", "--config", "tiny/lora_dpo_single_device", f"output_dir={out}",
           "log_every_n_steps=1", cwd=tmp_path)
    loss, accuracy, margin = metrics(out, "loss"), metrics(out, "rewards/accuracy"), metrics(out, "rewards/margin")
    assert len(loss) == 50
    assert loss[0] == pytest.approx(0.6931, abs=1e-3)  # policy == reference at the start: log 2
    assert mean(loss[-10:]) < 0.75 * mean(loss[:10]), loss
    assert mean(accuracy[-10:]) > 0.75 and mean(margin[-10:]) > mean(margin[:10]), (accuracy, margin)
    assert metrics(out, "val_rewards/accuracy")[-1] > 0.6
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    final = final_dir(out)
    merged = AutoModelForCausalLM.from_pretrained(final, torch_dtype=torch.float32).eval()
    base_dir = Path(json.loads((final / "adapter" / "adapter_config.json").read_text())["base_model_name_or_path"])
    base = AutoModelForCausalLM.from_pretrained(base_dir, torch_dtype=torch.float32).eval()
    tokens = torch.randint(0, merged.config.vocab_size, (2, 24), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        base_logits = base(tokens).logits
        peft_logits = PeftModel.from_pretrained(base, final / "adapter").eval()(tokens).logits
        merged_logits = merged(tokens).logits
    torch.testing.assert_close(peft_logits, merged_logits, atol=1e-4, rtol=1e-4)
    assert (merged_logits - base_logits).abs().max() > 1e-3  # the adapters learnt something


@pytest.mark.parametrize("loss", [
    ("loss._component_=torchtune.modules.IPOLoss", "~loss.beta", "~loss.label_smoothing", "loss.tau=0.5"),
    ("loss._component_=torchtune.modules.SimPOLoss", "~loss.label_smoothing", "loss.beta=2.0", "loss.gamma=0.5"),
], ids=["ipo", "simpo"])
def test_ipo_and_simpo_run(tt, tmp_path, loss):
    out = tmp_path / "run"
    tune_run(tt, "lora_dpo_single_device", "--config", "tiny/lora_dpo_single_device", f"output_dir={out}",
           *SHORT, "dataset_val=null", *loss, cwd=tmp_path)
    assert len(metrics(out, "rewards/accuracy")) == 12
    assert (final_dir(out) / "adapter" / "adapter_model.safetensors").exists()


def test_padding_free_pairs_give_the_padded_losses(tt, tmp_path):
    free, padded = tmp_path / "free", tmp_path / "padded"
    common = ("max_steps_per_epoch=6", "epochs=1", "log_every_n_steps=1", "dataset_val=null")
    for out, flag in ((free, "true"), (padded, "false")):
        tune_run(tt, "lora_dpo_single_device", "--config", "tiny/lora_dpo_single_device",
               f"output_dir={out}", f"padding_free={flag}", *common, cwd=tmp_path)
    a, b = metrics(free, "loss"), metrics(padded, "loss")
    assert len(a) == len(b) == 6
    assert a == pytest.approx(b, rel=1e-4, abs=1e-5)


def _run_until_checkpoint(tt, cwd: Path, out: Path, args: list[str]) -> None:
    """Starts a run and SIGKILLs it (and any torchrun workers) once its first checkpoint is whole."""
    proc = subprocess.Popen([str(tt.bin / "tune"), *args], cwd=cwd, env=clean_env(OMP_NUM_THREADS="1"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if list(out.glob("step_*/CHECKPOINT_COMPLETE")):
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait()
    assert list(out.glob("step_*/CHECKPOINT_COMPLETE")), "the run never wrote a checkpoint"


def _assert_same_weights(a_dir: Path, b_dir: Path) -> None:
    from safetensors.torch import load_file

    a, b = load_file(a_dir / "model.safetensors"), load_file(b_dir / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_killed_dpo_run_resumes_to_the_same_weights(tt, tmp_path):
    args = ["run", "lora_dpo_single_device", "--config", "tiny/lora_dpo_single_device", *SHORT]
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    tt.run("tune", *args, f"output_dir={whole}", cwd=tmp_path)
    _run_until_checkpoint(tt, tmp_path, broken, [*args, f"output_dir={broken}"])
    tt.run("tune", *args, f"output_dir={broken}", "resume=auto", cwd=tmp_path)
    assert final_dir(whole).name == final_dir(broken).name == "step_12"
    _assert_same_weights(final_dir(whole), final_dir(broken))


def test_bad_preference_row_stops_with_one_message(tt, tmp_path):
    data = tmp_path / "pairs.jsonl"
    data.write_text('{"prompt": "a", "chosen": "b", "rejected": "c"}\n{"prompt": "a", "chosen": "b"}\n')
    proc = tune_run(tt, "lora_dpo_single_device", "--config", "tiny/lora_dpo_single_device",
                  f"dataset.data_files={data}", f"output_dir={tmp_path / 'out'}", cwd=tmp_path, check=False)
    assert proc.returncode != 0
    assert "dataset: pairs.jsonl line 2: missing field 'rejected'" in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


def test_lora_dpo_distributed_matches_single_device(tt, tmp_path):
    single, dist = tmp_path / "single", tmp_path / "dist"
    common = ("max_steps_per_epoch=6", "epochs=1", "log_every_n_steps=1", "run_val_every_n_steps=3")
    tune_run(tt, "lora_dpo_single_device", "--config", "tiny/lora_dpo_single_device",
           f"output_dir={single}", *common, cwd=tmp_path)
    tune_run(tt, "--nproc_per_node", "2", "lora_dpo_distributed", "--config", "tiny/lora_dpo_distributed",
           f"output_dir={dist}", *common, cwd=tmp_path)
    for key in ("loss", "rewards/chosen", "rewards/rejected", "rewards/accuracy", "val_loss", "val_rewards/margin"):
        a, b = metrics(single, key), metrics(dist, key)
        assert len(a) == len(b) == (2 if key.startswith("val_") else 6), key
        # rewards are beta * differences of summed log-probs (~ -30): fp32 sums in another order
        assert a == pytest.approx(b, rel=1e-4, abs=1e-5 if "loss" in key else 5e-4), key


def test_killed_distributed_dpo_run_resumes_to_the_same_weights(tt, tmp_path):
    args = ["run", "--nproc_per_node", "2", "lora_dpo_distributed", "--config", "tiny/lora_dpo_distributed",
            "max_steps_per_epoch=6", "epochs=1", "save_every_n_steps=3"]
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    tt.run("tune", *args, f"output_dir={whole}", cwd=tmp_path)
    _run_until_checkpoint(tt, tmp_path, broken, [*args, f"output_dir={broken}"])
    tt.run("tune", *args, f"output_dir={broken}", "resume=auto", cwd=tmp_path)
    assert final_dir(whole).name == final_dir(broken).name == "step_6"
    _assert_same_weights(final_dir(whole), final_dir(broken))


def test_full_dpo_distributed_loads_in_transformers_and_matches_one_process(tt, tmp_path):
    from transformers import AutoModelForCausalLM

    one, two = tmp_path / "one", tmp_path / "two"
    common = ("max_steps_per_epoch=4", "log_every_n_steps=1", "run_val_every_n_steps=2")
    tune_run(tt, "--nproc_per_node", "1", "full_dpo_distributed", "--config", "tiny/full_dpo_distributed",
           f"output_dir={one}", "batch_size=8", *common, cwd=tmp_path)
    tune_run(tt, "--nproc_per_node", "2", "full_dpo_distributed", "--config", "tiny/full_dpo_distributed",
           f"output_dir={two}", *common, cwd=tmp_path)
    for key in ("loss", "val_loss"):
        a, b = metrics(one, key), metrics(two, key)
        assert len(a) == len(b) == (2 if key == "val_loss" else 4), key
        assert a == pytest.approx(b, rel=1e-4, abs=1e-5), key
    assert metrics(two, "loss")[0] == pytest.approx(0.6931, abs=1e-3)  # the policy starts as the reference

    trained = AutoModelForCausalLM.from_pretrained(final_dir(two), torch_dtype=torch.float32).eval()
    source = AutoModelForCausalLM.from_pretrained(tt.run("python", "-c", "import torchtune; print(torchtune.recipes_root())",
                                                         cwd=tmp_path).stdout.strip() + "/assets/tiny",
                                                  torch_dtype=torch.float32).eval()
    tokens = torch.randint(0, trained.config.vocab_size, (2, 24), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (trained(tokens).logits - source(tokens).logits).abs().max() > 1e-4  # every weight trained


def test_killed_full_dpo_run_resumes_to_the_same_weights(tt, tmp_path):
    args = ["run", "--nproc_per_node", "2", "full_dpo_distributed", "--config", "tiny/full_dpo_distributed",
            "max_steps_per_epoch=6", "save_every_n_steps=3", "dataset_val=null"]
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    tt.run("tune", *args, f"output_dir={whole}", cwd=tmp_path)
    _run_until_checkpoint(tt, tmp_path, broken, [*args, f"output_dir={broken}"])
    tt.run("tune", *args, f"output_dir={broken}", "resume=auto", cwd=tmp_path)
    assert final_dir(whole).name == final_dir(broken).name == "step_6"
    _assert_same_weights(final_dir(whole), final_dir(broken))
