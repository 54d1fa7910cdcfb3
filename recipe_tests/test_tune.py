"""Recipes as packaged: `pip install 'torchtune[recipes]'` from the wheel, then only `tune`.

One venv (outside Bazel's) serves every test of this file. The tiny shipped model and data make
each run take seconds; outputs are checked with the reference libraries (transformers, peft).
"""

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from recipe_tests._installed import InstalledTorchtune, clean_env

TINY = ("max_steps_per_epoch=12", "epochs=1", "log_every_n_steps=1", "save_every_n_steps=6")


@pytest.fixture(scope="module")
def tt(tmp_path_factory) -> InstalledTorchtune:
    return InstalledTorchtune(tmp_path_factory.mktemp("venv") / "venv", extras=("recipes",))


@pytest.fixture
def work(tmp_path) -> Path:
    return tmp_path


def losses(output_dir: Path, key: str = "loss") -> list[float]:
    rows = [json.loads(line) for line in (output_dir / "logs" / "metrics.jsonl").read_text().splitlines()]
    return [row[key] for row in rows if key in row]


def final_dir(output_dir: Path) -> Path:
    steps = sorted(output_dir.glob("step_*"), key=lambda p: int(p.name.split("_")[1]))
    assert steps, f"no checkpoint in {output_dir}"
    return steps[-1]


def test_version_and_ls(tt, work):
    assert tt.run("tune", "--version", cwd=work).stdout.strip().endswith("0.1.0")
    listing = tt.run("tune", "ls", cwd=work).stdout
    for recipe in ("full_finetune_single_device", "full_finetune_distributed",
                   "lora_finetune_single_device", "lora_finetune_distributed", "generate",
                   "eleuther_eval"):
        assert recipe in listing
    assert "tiny/lora_single_device" in listing


def test_recipes_are_not_importable(tt, work):
    proc = tt.run("python", "-c", "import torchtune._recipes", cwd=work, check=False)
    assert proc.returncode != 0 and "tune cp" in proc.stderr


def test_cp_then_run_the_copy(tt, work):
    tt.run("tune", "cp", "lora_finetune_single_device", "mine/my_lora.py", "--make-parents", cwd=work)
    tt.run("tune", "cp", "tiny/lora_single_device", "mine/my_lora.yaml", cwd=work)
    refused = tt.run("tune", "cp", "tiny/lora_single_device", "mine/my_lora.yaml", cwd=work, check=False)
    assert refused.returncode == 1 and "--force" in refused.stderr
    diff = ("tune", "diff", "mine/my_lora.py")  # as the user guide says: the copy names its source
    assert "@@" not in tt.run(*diff, cwd=work).stdout
    script = work / "mine" / "my_lora.py"
    script.write_text(script.read_text().replace('desc="lora"', 'desc="my lora"'))
    changed = tt.run(*diff, cwd=work).stdout
    assert re.search(r'^-.*desc="lora"', changed, re.M) and re.search(r'^\+.*desc="my lora"', changed, re.M)
    out = work / "copy_out"
    tt.run("tune", "run", "mine/my_lora.py", "--config", "mine/my_lora.yaml", f"output_dir={out}",
           "max_steps_per_epoch=3", "epochs=1", cwd=work)
    assert (final_dir(out) / "model.safetensors").exists()


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_lora_run_learns_saves_peft_and_generates(tt, work, dtype):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out = work / "lora"
    proc = tt.run("tune", "run", "lora_finetune_single_device", "--config", "tiny/lora_single_device",
                  f"output_dir={out}", "max_steps_per_epoch=30", "epochs=1", "log_every_n_steps=1",
                  f"dtype={dtype}", cwd=work)
    curve = losses(out)
    assert len(curve) == 30 and sum(curve[-5:]) / 5 < 0.8 * sum(curve[:5]) / 5, curve
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    final = final_dir(out)
    assert f"checkpoint_dir={final}" in proc.stdout

    # The merged model loads in transformers; the adapter in peft on the shipped base; both agree.
    merged = AutoModelForCausalLM.from_pretrained(final, torch_dtype=torch.float32).eval()
    base_dir = Path(json.loads((final / "adapter" / "adapter_config.json").read_text())["base_model_name_or_path"])
    base = AutoModelForCausalLM.from_pretrained(base_dir, torch_dtype=torch.float32)
    peft_model = PeftModel.from_pretrained(base, final / "adapter").eval()
    tokens = torch.randint(0, merged.config.vocab_size, (2, 24), generator=torch.Generator().manual_seed(0))
    # bf16: the merged weights are rounded to bf16 once (the adapters trained in fp32)
    tol = 1e-4 if dtype == "fp32" else 2e-2
    with torch.no_grad():
        torch.testing.assert_close(peft_model(tokens).logits, merged(tokens).logits, atol=tol, rtol=tol)

    gen = tt.run("tune", "run", "generate", "--config", "tiny/generate", f"checkpoint_dir={final}", cwd=work)
    assert "tokens/s" in gen.stdout or "tok/s" in gen.stdout, gen.stdout
    # a prompt on the command line wins over the config's preset instruction (docs/recipes.md example)
    joke = tt.run("tune", "run", "generate", "--config", "tiny/generate", f"checkpoint_dir={final}",
                  "prompt=Tell me a joke.", cwd=work)
    assert "Prompt: Tell me a joke." in joke.stdout and "Reverse the letters" not in joke.stdout, joke.stdout


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_full_run_learns_and_loads_in_transformers(tt, work, dtype):
    from transformers import AutoModelForCausalLM

    out = work / "full"
    tt.run("tune", "run", "full_finetune_single_device", "--config", "tiny/full_single_device",
           f"output_dir={out}", "max_steps_per_epoch=30", "epochs=1", "log_every_n_steps=1", f"dtype={dtype}",
           cwd=work)
    curve = losses(out)
    assert sum(curve[-5:]) / 5 < 0.8 * sum(curve[:5]) / 5, curve
    model = AutoModelForCausalLM.from_pretrained(final_dir(out), torch_dtype=torch.float32)
    assert sum(p.numel() for p in model.parameters()) > 0


def _run_until_checkpoint(tt, work, out, args) -> None:
    """Starts a run and SIGKILLs it as soon as its first checkpoint is whole."""
    proc = subprocess.Popen([str(tt.bin / "tune"), *args], cwd=work, env=clean_env(OMP_NUM_THREADS="1"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if list(out.glob("step_*/CHECKPOINT_COMPLETE")):
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait()
    assert list(out.glob("step_*/CHECKPOINT_COMPLETE")), "the run never wrote a checkpoint"


def test_killed_run_resumes_to_the_same_weights(tt, work):
    from safetensors.torch import load_file

    args = ["run", "lora_finetune_single_device", "--config", "tiny/lora_single_device", *TINY]
    whole, broken = work / "whole", work / "broken"
    tt.run("tune", *args, f"output_dir={whole}", cwd=work)
    _run_until_checkpoint(tt, work, broken, [*args, f"output_dir={broken}"])
    tt.run("tune", *args, f"output_dir={broken}", "resume=auto", cwd=work)
    a = load_file(final_dir(whole) / "model.safetensors")
    b = load_file(final_dir(broken) / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("kind", ["lora", "full"])
def test_distributed_matches_single_device(tt, work, kind):
    single, dist = work / f"{kind}_single", work / f"{kind}_dist"
    common = ("max_steps_per_epoch=6", "epochs=1", "log_every_n_steps=1", "dtype=fp32")  # equal up to fp32 sums
    tt.run("tune", "run", f"{kind}_finetune_single_device", "--config", f"tiny/{kind}_single_device",
           f"output_dir={single}", *common, cwd=work)
    tt.run("tune", "run", "--nproc_per_node", "2", f"{kind}_finetune_distributed", "--config",
           f"tiny/{kind}_distributed", f"output_dir={dist}", *common, cwd=work)
    a, b = losses(single), losses(dist)
    assert len(a) == len(b) == 6
    assert a == pytest.approx(b, rel=1e-4, abs=1e-5)


def test_padding_free_batches_give_the_padded_losses(tt, work):
    free, padded = work / "free", work / "padded"
    common = ("max_steps_per_epoch=6", "epochs=1", "log_every_n_steps=1", "dataset_val=null", "dtype=fp32")
    for out, flag in ((free, "true"), (padded, "false")):
        tt.run("tune", "run", "lora_finetune_single_device", "--config", "tiny/lora_single_device",
               f"output_dir={out}", f"padding_free={flag}", *common, cwd=work)
    a, b = losses(free), losses(padded)
    assert len(a) == len(b) == 6
    assert a == pytest.approx(b, rel=1e-4, abs=1e-5)


def test_wrong_torchrun_flag_gives_torchrun_message(tt, work):
    proc = tt.run("tune", "run", "--nproc_per_node", "2", "--no_such_flag", "1", "lora_finetune_distributed",
                  "--config", "tiny/lora_distributed", cwd=work, check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr


def test_bad_input_stops_before_training(tt, work):
    missing = tt.run("tune", "run", "lora_finetune_single_device", "--config", "tiny/lora_single_device",
                     f"model_dir={work / 'nowhere'}", cwd=work, check=False)
    assert missing.returncode != 0 and "nowhere" in missing.stderr + missing.stdout
    unknown = tt.run("tune", "run", "lora_finetune_single_device", "--config", "tiny/lora_single_device",
                     "bach_size=3", cwd=work, check=False)
    assert unknown.returncode != 0 and "batch_size" in unknown.stderr + unknown.stdout
    close = tt.run("tune", "run", "lora_finetune_singel_device", "--config", "tiny/lora_single_device",
                   cwd=work, check=False)
    assert close.returncode == 1 and "lora_finetune_single_device" in close.stderr
    # a builder of another size than the model directory: one message with both shapes and the fix
    builder = ("model._component_=torchtune.models.llama3_1.lora_llama3_1", "model.vocab_size=2048",
               "model.num_layers=4", "model.num_heads=4", "model.num_kv_heads=2", "model.embed_dim=256",
               "model.intermediate_dim=384", "model.max_seq_len=512")
    other = tt.run("tune", "run", "lora_finetune_single_device", "--config", "tiny/lora_single_device", *builder,
                   cwd=work, check=False)
    assert other.returncode != 0 and "size mismatch" not in other.stderr and "Traceback" not in other.stderr
    assert "is [2048, 128] in the checkpoint but [2048, 256] in the model" in other.stderr
    assert "~model._component_" in other.stderr


def test_every_shipped_config_validates(tt, work):
    proc = tt.run("tune", "validate", "--all", cwd=work, check=False, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_eval_without_its_extra_names_it(tt, work):
    proc = tt.run("tune", "run", "eleuther_eval", "--config", "tiny/eval", cwd=work, check=False)
    assert proc.returncode == 1
    assert "pip install 'torchtune[eval]'" in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


def test_unsaveable_lora_target_stops_before_training(tt, work):
    """Adapters the checkpoint's layout cannot hold (DoRA on q_proj and v_proj of Phi-3's fused
    qkv_proj: its magnitude is per row of the whole fused weight) are refused before the first
    step, in one line, instead of crashing at the final save."""
    from transformers import Phi3Config, Phi3ForCausalLM

    tiny = tt.run("python", "-c", "import torchtune; print(torchtune.recipes_root())", cwd=work).stdout.strip()
    tiny = Path(tiny) / "assets" / "tiny"
    model_dir = work / "phi3"
    torch.manual_seed(0)
    config = Phi3Config(vocab_size=2048, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512, pad_token_id=0)
    Phi3ForCausalLM(config).save_pretrained(model_dir)
    out = work / "out"
    proc = tt.run("tune", "run", "lora_finetune_single_device", "--config", "tiny/lora_single_device",
                  f"model_dir={model_dir}", f"output_dir={out}", "dataset_val=null",
                  f"tokenizer.tokenizer_json_path={tiny}/tokenizer.json",
                  f"tokenizer.tokenizer_config_json_path={tiny}/tokenizer_config.json",
                  f"dataset.data_files={tiny}/instructions.jsonl", "model.use_dora=true",
                  "model.lora_attn_modules=[q_proj,v_proj]", cwd=work, check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "DoRA on 'model.layers.0.self_attn.qkv_proj'" in proc.stderr
    assert "model.lora_attn_modules" in proc.stderr
    assert not list(out.glob("step_*")) and not (out / "logs").exists()


def test_hub_dataset_without_its_extra_is_one_line_before_the_model_loads(tt, work):
    """A family config's Hub dataset with only torchtune[recipes] installed: one line naming the
    extra, no traceback, before any model file is read (model_dir does not even exist)."""
    proc = tt.run("tune", "run", "lora_finetune_single_device", "--config", "llama3_2/1B_lora_single_device",
                  f"model_dir={work / 'no_model_yet'}", cwd=work, check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "pip install 'torchtune[datasets]'" in proc.stderr and "no_model_yet" not in proc.stderr
    assert [line for line in proc.stderr.splitlines() if line.strip()][-1].startswith("error: dataset.source="), proc.stderr


def _documented_runs() -> list[tuple[str, list[str]]]:
    """Every `tune run <recipe> --config <name> ...` command in docs/recipes.md and docs/user_guide.md."""
    import shlex

    from recipe_tests._installed import runfile

    runs = []
    for doc in ("docs/recipes.md", "docs/user_guide.md"):
        lines = runfile(doc).read_text().splitlines()
        i = 0
        while i < len(lines):
            line = lines[i].strip()
            while line.endswith("\\") and i + 1 < len(lines):
                i += 1
                line = line[:-1] + " " + lines[i].strip()
            i += 1
            if not line.startswith("tune run "):
                continue
            words = shlex.split(line, comments=True)[2:]
            while words and words[0].startswith("--"):  # torchrun options and their values
                words = words[2:]
            recipe, rest = words[0], words[1:]
            if recipe.endswith(".py"):
                continue  # a user's own copy (test_cp_then_run_the_copy runs one)
            assert rest[0] == "--config", line
            runs.append((line, [recipe, rest[1], *rest[2:]]))
    return runs


def test_documented_run_commands_are_valid(tt, work):
    """Each documented `tune run` passes `tune validate` with the same recipe, config and overrides
    (Hub data needs the 'datasets' extra, which this venv lacks on purpose: that is the only
    failure allowed, and it must say so)."""
    import shutil

    runs = _documented_runs()
    assert len(runs) >= 10, runs
    # the generate/eval examples read the first example's output: a model directory like the tiny one
    tiny = tt.run("python", "-c", "import torchtune; print(torchtune.recipes_root())", cwd=work).stdout.strip()
    shutil.copytree(Path(tiny) / "assets" / "tiny", work / "torchtune_output/tiny/lora_single_device/step_150")
    for line, (recipe, config, *overrides) in runs:
        proc = tt.run("tune", "validate", config, "--recipe", recipe, *overrides, cwd=work, check=False)
        if proc.returncode != 0:
            assert "pip install 'torchtune[datasets]'" in proc.stderr, (line, proc.stderr)
        else:
            assert "is well-formed" in proc.stdout, (line, proc.stdout)
