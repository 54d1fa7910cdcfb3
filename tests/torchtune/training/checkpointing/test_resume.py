"""Exact resume after SIGKILL: a killed-and-resumed run equals an uninterrupted one bit for bit."""

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from torchtune.training.checkpointing import CheckpointManager, load_recipe_state

SCRIPT = Path(__file__).with_name("_resume_train_script.py")
REPO_ROOT = Path(__file__).resolve().parents[4]
TOTAL = 12  # 6 optimizer steps per epoch of 24 samples (batch 4, accumulation 2)


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory) -> Path:
    """A tiny Hugging Face Llama directory (config.json + model.safetensors)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=16,
                         tie_word_embeddings=False)
    path = tmp_path_factory.mktemp("base")
    LlamaForCausalLM(config).save_pretrained(path)
    return path


def _run(base_dir: Path, out_dir: Path, *extra: str) -> int:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT), *sys.path]), OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(base_dir), str(out_dir), str(TOTAL), *extra],
        env=env, capture_output=True, text=True, timeout=120,
    )
    if proc.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(f"training script failed:\n{proc.stderr}")
    return proc.returncode


def _assert_same(a: Path, b: Path) -> None:
    weights_a, weights_b = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert weights_a.keys() == weights_b.keys()
    for key in weights_a:
        assert torch.equal(weights_a[key], weights_b[key]), key
    state_a, state_b = load_recipe_state(a), load_recipe_state(b)
    assert state_a["loss_history"] == state_b["loss_history"]
    assert len(state_a["loss_history"]) == TOTAL
    opt_a, opt_b = state_a["optimizer"], state_b["optimizer"]
    assert opt_a["param_groups"] == opt_b["param_groups"]
    assert sorted(opt_a["state"]) == list(range(len(weights_a)))  # one AdamW state per parameter
    for pid, slots in opt_a["state"].items():
        assert set(slots) == {"step", "exp_avg", "exp_avg_sq"}
        for name, value in slots.items():
            assert torch.equal(value, opt_b["state"][pid][name]), (pid, name)
    assert state_a["lr_scheduler"] == state_b["lr_scheduler"]
    assert (state_a["step"], state_a["epoch"]) == (state_b["step"], state_b["epoch"])


@pytest.fixture(scope="module")
def reference(base_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference")
    assert _run(base_dir, out) == 0
    return out / "final"


def test_resume_after_sigkill_mid_epoch_is_exact(base_dir, reference, tmp_path):
    run_dir, control_dir = tmp_path / "run", tmp_path / "control"
    # step 8 = epoch 1 after 2 of its 6 steps: resumes mid-epoch in the shuffled order
    assert _run(base_dir, run_dir, "--kill-at", "8") == -signal.SIGKILL
    assert not (run_dir / "final").exists()
    assert [s for s, _ in CheckpointManager(run_dir).list_checkpoints()] == [6, 8]
    shutil.copytree(run_dir, control_dir)
    assert _run(base_dir, run_dir) == 0
    _assert_same(reference, run_dir / "final")
    # keep_last_n=2 pruned the older ones; no temporary directories remain
    assert sorted(p.name for p in run_dir.iterdir()) == ["final", "step_10", "step_12"]
    # negative control: the comparison detects a resume that loses the random states
    assert _run(base_dir, control_dir, "--skip-rng") == 0
    with pytest.raises(AssertionError):
        _assert_same(reference, control_dir / "final")


def test_resume_twice_is_exact(base_dir, reference, tmp_path):
    # first at the epoch boundary (step 6), then mid-epoch (step 10)
    assert _run(base_dir, tmp_path, "--kill-at", "6") == -signal.SIGKILL
    assert _run(base_dir, tmp_path, "--kill-at", "10") == -signal.SIGKILL
    assert CheckpointManager(tmp_path).latest() == tmp_path / "step_10"
    assert _run(base_dir, tmp_path) == 0
    _assert_same(reference, tmp_path / "final")
