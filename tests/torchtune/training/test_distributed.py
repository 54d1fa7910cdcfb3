"""FSDP2 on 2 CPU (gloo) ranks matches single-process training; full and DCP state round trips."""

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from torchtune.training._distributed import get_world_size_and_rank, init_distributed, shard_model
from torchtune.training.checkpointing import is_complete_checkpoint, load_recipe_state

sys.path.insert(0, str(Path(__file__).parent))
import _distributed_script as script  # noqa: E402

SCRIPT = Path(__file__).with_name("_distributed_script.py")
REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def two_rank_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fsdp")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT), *sys.path]), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(SCRIPT), str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def _single_process_reference():
    torch.manual_seed(0)
    model = script.TinyNet()
    optim = script.make_optimizer(model)
    xs, ys = script.data()
    losses = []
    for step in range(script.STEPS):
        loss = torch.nn.functional.mse_loss(model(xs[step]), ys[step])
        loss.backward()
        optim.step()
        optim.zero_grad()
        losses.append(loss.item())
    return model, optim, losses


def test_two_ranks_match_single_process(two_rank_run):
    result = json.loads((two_rank_run / "result.json").read_text())
    model, optim, losses = _single_process_reference()
    assert result["world"] == 2
    torch.testing.assert_close(torch.tensor(result["losses"]), torch.tensor(losses), rtol=1e-5, atol=1e-5)
    full = load_file(two_rank_run / "full.safetensors")
    expected = model.state_dict()
    assert full.keys() == expected.keys()
    for key in expected:
        torch.testing.assert_close(full[key], expected[key], rtol=1e-5, atol=1e-5)
    # the gathered optimizer state is keyed by parameter name
    full_optim = load_recipe_state(two_rank_run / "full_optim")["optimizer"]
    for (name, _), slots in zip(model.named_parameters(), optim.state_dict()["state"].values()):
        for slot in ("exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(full_optim["state"][name][slot], slots[slot], rtol=1e-5, atol=1e-6)
        assert float(full_optim["state"][name]["step"]) == script.STEPS


def test_dcp_checkpoint_is_atomic_and_resumes_exactly(two_rank_run):
    result = json.loads((two_rank_run / "result.json").read_text())
    step_dir = two_rank_run / "step_2"
    assert is_complete_checkpoint(step_dir)
    assert (step_dir / "note.txt").read_text() == "rank0"
    assert not [p for p in two_rank_run.iterdir() if p.name.startswith(".tmp-")]
    # safetensors shards and JSON only: nothing that loading would unpickle
    names = sorted(p.name for p in step_dir.iterdir())
    assert all(n.endswith((".safetensors", ".json", ".txt")) or n == "CHECKPOINT_COMPLETE" for n in names), names
    assert "optimizer_param_groups.json" in names
    assert result["resumed_losses"] == result["losses"][2:]
    assert result["resumed_equal"] is True


def test_full_state_dict_resume_matches(two_rank_run):
    result = json.loads((two_rank_run / "result.json").read_text())
    assert result["full_resumed_losses"] == result["losses"][2:]


def test_mixed_precision_and_layer_type_units(two_rank_run):
    result = json.loads((two_rank_run / "result.json").read_text())
    assert result["fsdp_units"] == ["", "layers.0", "layers.1"]
    assert result["mixed_ok"] is True
    torch.manual_seed(0)
    reference = script.TinyNet().to(torch.bfloat16)
    expected = reference(script.data()[0][0, :2].to(torch.bfloat16)).float()
    torch.testing.assert_close(torch.tensor(result["mixed_out"]), expected, rtol=0, atol=0)


def test_fp32_master_weights_with_bf16_compute_and_fp32_reduce_match_a_direct_computation(two_rank_run):
    """Each step: every rank's half batch through a bf16 copy of the fp32 weights, the bf16
    gradients averaged in fp32, one AdamW step on the fp32 weights (the policy, written out)."""
    result = json.loads((two_rank_run / "result.json").read_text())
    torch.manual_seed(0)
    master = script.TinyNet()
    optim = script.make_optimizer(master)
    xs, ys = script.data()
    world, per_rank = 2, script.GLOBAL_BATCH // 2
    losses = []
    for step in range(script.STEPS):
        grads, step_losses = None, []
        for rank in range(world):
            compute = copy.deepcopy(master).to(torch.bfloat16)
            rows = slice(rank * per_rank, (rank + 1) * per_rank)
            loss = torch.nn.functional.mse_loss(compute(xs[step, rows].to(torch.bfloat16)), ys[step, rows])
            loss.backward()
            rank_grads = [p.grad.float() for p in compute.parameters()]
            grads = rank_grads if grads is None else [a + b for a, b in zip(grads, rank_grads)]
            step_losses.append(loss.item())
        for p, g in zip(master.parameters(), grads):
            p.grad = g / world
        optim.step()
        optim.zero_grad()
        losses.append(sum(step_losses) / world)
    torch.testing.assert_close(torch.tensor(result["planned_losses"]), torch.tensor(losses), rtol=1e-5, atol=1e-5)
    planned = load_file(two_rank_run / "planned.safetensors")
    for key, value in master.state_dict().items():
        assert planned[key].dtype == torch.float32
        torch.testing.assert_close(planned[key], value, rtol=1e-5, atol=1e-5)


def test_single_process_helpers_and_errors(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert init_distributed() is False
    assert get_world_size_and_rank() == (1, 0)
    with pytest.raises(ValueError, match="backend='mpi' must be 'gloo', 'nccl' or None"):
        init_distributed(backend="mpi")
    with pytest.raises(RuntimeError, match="shard_model needs an initialized process group"):
        shard_model(torch.nn.Linear(2, 2))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="cpu_offload=True needs a CUDA device"):
            shard_model(torch.nn.Linear(2, 2), cpu_offload=True)
