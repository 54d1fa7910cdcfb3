"""The GRPO recipes as packaged: `pip install 'torchtune[recipes]'` from the wheel, then only `tune`.

The tiny shipped model and prompts make each run take seconds. The reward must rise within the
run; outputs are checked with the reference libraries (the merged model in transformers, the
adapter in peft on the shipped base). Each completion samples from its own generator seeded by
(seed, epoch, row, sample), so two processes with half the prompts each sample exactly the
completions one process samples: their rewards are equal and their losses agree to fp32
rounding. A killed run resumed with resume=auto ends with the same weights, bit for bit.
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

SINGLE = ("grpo_single_device", "--config", "tiny/grpo_single_device")
DIST = ("--nproc_per_node", "2", "grpo_distributed", "--config", "tiny/grpo_distributed")
FULL = ("~model",)  # no adapter options: every weight trains, the reference is a frozen copy


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


def test_grpo_reward_rises_and_the_output_loads_in_transformers_and_peft(tt, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    assert "tiny/grpo_single_device" in tt.run("tune", "ls", cwd=tmp_path).stdout
    out = tmp_path / "grpo"
    tune_run(tt, *SINGLE, f"output_dir={out}", "log_every_n_steps=1", cwd=tmp_path)
    form, reward = metrics(out, "rewards/StartsWithNumber"), metrics(out, "reward")
    assert len(form) == len(reward) == 25
    # the random model starts a completion with a number about 1 time in 10 (130 of its 2048 ids are numbers)
    assert mean(form[:3]) < 0.25 and mean(form[-5:]) > 0.6, form
    assert mean(reward[-5:]) > mean(reward[:3]) + 0.4, reward
    assert all(k >= 0 for k in metrics(out, "kl")) and metrics(out, "kl")[-1] > 0  # it moved from the reference
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    final = final_dir(out)
    merged = AutoModelForCausalLM.from_pretrained(final, dtype=torch.float32).eval()
    base_dir = Path(json.loads((final / "adapter" / "adapter_config.json").read_text())["base_model_name_or_path"])
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32).eval()
    tokens = torch.randint(0, merged.config.vocab_size, (2, 24), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        base_logits = base(tokens).logits
        peft_logits = PeftModel.from_pretrained(base, final / "adapter").eval()(tokens).logits
        merged_logits = merged(tokens).logits
    torch.testing.assert_close(peft_logits, merged_logits, atol=1e-4, rtol=1e-4)
    assert (merged_logits - base_logits).abs().max() > 1e-3  # the adapters learnt something


ROLLOUT = """
import importlib.util, json, sys
import torch, torchtune
from torchtune import config
from torchtune.datasets import prompt_dataset
from torchtune.models import model_from_hf_config
from torchtune.modules.tokenizers import HFModelTokenizer
from torchtune.training.checkpointing import HuggingFaceCheckpointer

root = torchtune.recipes_root()
spec = importlib.util.spec_from_file_location("grpo", root / "grpo_single_device.py")
grpo = importlib.util.module_from_spec(spec)
spec.loader.exec_module(grpo)
tiny = root / "assets" / "tiny"
checkpointer = HuggingFaceCheckpointer(tiny, sys.argv[1])
model = model_from_hf_config(checkpointer.config)
model.load_state_dict(checkpointer.load_checkpoint())
model.to(torch.float32)
tokenizer = HFModelTokenizer(str(tiny / "tokenizer.json"), str(tiny / "tokenizer_config.json"))
ds = prompt_dataset(tokenizer, source="jsonl", data_files=str(tiny / "prompts.jsonl"))
cfg = config.DictConfig({"group_size": 2, "seed": 0, "max_new_tokens": 6, "temperature": 1.0})
rows = [0, 1, 2, 3]
roll = grpo.rollout(model, ds, rows, cfg, 0, tokenizer, torch.device("cpu"))
with torch.no_grad():
    logp = grpo.completion_log_probs(model, roll["tokens"], roll["is_real"], roll["mask"])
print(json.dumps({"tokens": roll["tokens"].tolist(), "is_real": roll["is_real"].tolist(),
                  "mask": roll["mask"].tolist(), "logp": logp.tolist(), "root": str(root)}))
"""


def test_completion_log_probs_of_left_padded_rollouts_equal_transformers_on_each_row_alone(tt, tmp_path):
    """The recipe's batch of sampled completions (left-padded prompts of different lengths, then
    the completions) scored in one forward equals transformers scoring each row unpadded."""
    import torch.nn.functional as F
    from transformers import AutoModelForCausalLM

    out = json.loads(tt.run("python", "-c", ROLLOUT, str(tmp_path), cwd=tmp_path).stdout.strip().splitlines()[-1])
    tokens, is_real, mask, logp = (torch.tensor(out[k]) for k in ("tokens", "is_real", "mask", "logp"))
    s = is_real.shape[1]
    assert len(set(is_real.sum(dim=1).tolist())) > 1  # prompts of different lengths: left padding is exercised
    hf = AutoModelForCausalLM.from_pretrained(Path(out["root"]) / "assets" / "tiny", dtype=torch.float32).eval()
    for r in range(tokens.shape[0]):
        prompt, completion = tokens[r, :s][is_real[r]], tokens[r, s:][mask[r]]
        ids = torch.cat([prompt, completion])[None]
        with torch.no_grad():
            logits = hf(ids).logits[0, len(prompt) - 1 : -1]  # the positions that predict the completion
        want = F.log_softmax(logits.float(), dim=-1).gather(1, completion[:, None]).squeeze(1)
        torch.testing.assert_close(logp[r][mask[r]], want, atol=1e-4, rtol=1e-4)
        assert bool((logp[r][~mask[r]] == 0).all())


def test_grpo_distributed_samples_and_scores_what_one_device_does(tt, tmp_path):
    single, dist = tmp_path / "single", tmp_path / "dist"
    common = ("max_steps_per_epoch=5", "epochs=1", "log_every_n_steps=1")
    tune_run(tt, *SINGLE, f"output_dir={single}", *common, cwd=tmp_path)
    tune_run(tt, *DIST, f"output_dir={dist}", *common, cwd=tmp_path)
    for key in ("reward", "rewards/StartsWithNumber", "rewards/RightAnswer", "completion_tokens"):
        a, b = metrics(single, key), metrics(dist, key)
        assert len(a) == len(b) == 5 and a == b, key  # the same completions, so the same rewards
    for key in ("loss", "kl"):
        a, b = metrics(single, key), metrics(dist, key)
        assert a == pytest.approx(b, rel=1e-4, abs=1e-6), key
    assert metrics(dist, "kl")[0] == 0.0  # the first step's policy is the reference


def test_full_grpo_distributed_matches_one_device_and_loads_in_transformers(tt, tmp_path):
    from transformers import AutoModelForCausalLM

    single, dist = tmp_path / "single", tmp_path / "dist"
    common = (*FULL, "max_steps_per_epoch=4", "epochs=1", "log_every_n_steps=1")
    tune_run(tt, *SINGLE, f"output_dir={single}", *common, cwd=tmp_path)
    tune_run(tt, *DIST, f"output_dir={dist}", *common, cwd=tmp_path)
    assert metrics(single, "reward") == metrics(dist, "reward") and len(metrics(dist, "reward")) == 4
    for key in ("loss", "kl"):
        assert metrics(single, key) == pytest.approx(metrics(dist, key), rel=1e-4, abs=1e-6), key
    assert metrics(dist, "kl")[-1] > 0  # the reference stayed where the policy started
    final = final_dir(dist)
    assert not (final / "adapter").exists()
    trained = AutoModelForCausalLM.from_pretrained(final, dtype=torch.float32).eval()
    root = tt.run("python", "-c", "import torchtune; print(torchtune.recipes_root())", cwd=tmp_path).stdout.strip()
    source = AutoModelForCausalLM.from_pretrained(Path(root) / "assets" / "tiny", dtype=torch.float32).eval()
    tokens = torch.randint(0, trained.config.vocab_size, (2, 24), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (trained(tokens).logits - source(tokens).logits).abs().max() > 1e-4  # the weights trained


def test_several_ppo_epochs_clip_the_ratio(tt, tmp_path):
    out = tmp_path / "ppo"
    tune_run(tt, *SINGLE, f"output_dir={out}", "max_steps_per_epoch=4", "epochs=1", "log_every_n_steps=1",
             "ppo_epochs=3", "forward_batch_size=32", "loss.epsilon=0.05", cwd=tmp_path)
    ratio, clipped = metrics(out, "ratio"), metrics(out, "clip_fraction")
    assert len(ratio) == 4 and any(r != 1.0 for r in ratio)  # the last of 3 updates sees a moved policy
    assert max(clipped) > 0


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


@pytest.mark.parametrize("recipe", [SINGLE, DIST, (*SINGLE, *FULL)], ids=["single_device", "distributed", "full"])
def test_killed_grpo_run_resumes_to_the_same_weights(tt, tmp_path, recipe):
    args = ["run", *recipe, "max_steps_per_epoch=6", "epochs=1", "save_every_n_steps=3"]
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    tt.run("tune", *args, f"output_dir={whole}", cwd=tmp_path)
    _run_until_checkpoint(tt, tmp_path, broken, [*args, f"output_dir={broken}"])
    tt.run("tune", *args, f"output_dir={broken}", "resume=auto", cwd=tmp_path)
    assert final_dir(whole).name == final_dir(broken).name == "step_6"
    _assert_same_weights(final_dir(whole), final_dir(broken))


USER_REWARD = '''
class Picky:
    """Rewards every completion, but knows no rule for the answer 'boom'."""

    def __call__(self, completion, *, answer, prompt):
        if answer == "boom":
            raise KeyError("no rule for this answer")
        return 1.0
'''


def test_a_users_reward_runs_when_allowed_and_its_failure_names_it_and_the_row(tt, tmp_path):
    (tmp_path / "my_rewards.py").write_text(USER_REWARD)
    data = tmp_path / "prompts.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"Say {i}", "answer": str(i)}) + "\n" for i in range(4)))
    common = (*SINGLE, f"dataset.data_files={data}", "rewards=[{_component_: my_rewards.Picky}]", "batch_size=2",
              "log_every_n_steps=1", "epochs=1", f"output_dir={tmp_path / 'out'}")
    env = {"PYTHONPATH": str(tmp_path)}
    refused = tune_run(tt, *common, cwd=tmp_path, check=False, env=env)
    assert refused.returncode != 0, refused.stdout[-2000:]
    assert "allowed_component_roots: [my_rewards.]" in refused.stderr, refused.stderr[-2000:]
    tune_run(tt, *common, "allowed_component_roots=[my_rewards.]", cwd=tmp_path, env=env)
    assert metrics(tmp_path / "out", "rewards/Picky") == [1.0, 1.0]

    data.write_text(data.read_text() + json.dumps({"prompt": "Say it", "answer": "boom"}) + "\n")
    proc = tune_run(tt, *common, "allowed_component_roots=[my_rewards.]", "shuffle=false", "batch_size=5",
                    f"output_dir={tmp_path / 'out2'}", cwd=tmp_path, check=False, env=env)
    assert proc.returncode != 0
    assert ("rewards: reward function 'Picky' raised KeyError: 'no rule for this answer' (on prompts.jsonl line 5, "
            "sample 0") in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


def test_bad_prompt_row_stops_with_one_message(tt, tmp_path):
    data = tmp_path / "prompts.jsonl"
    data.write_text('{"prompt": "a", "answer": "1"}\n{"question": "a", "answer": "2"}\n')
    proc = tune_run(tt, *SINGLE, f"dataset.data_files={data}", f"output_dir={tmp_path / 'out'}", cwd=tmp_path,
                    check=False)
    assert proc.returncode != 0
    assert "dataset: prompts.jsonl line 2: missing field 'prompt'" in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
