"""`tune run` with torchrun options: a real 2-process gloo launch and torchrun's errors."""

import json

import pytest

ALL_REDUCE_SCRIPT = """\
import json, os, sys
import torch
import torch.distributed as dist

def main(argv):
    out_dir = dict(a.split("=", 1) for a in argv if "=" in a)["out_dir"]
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    value = torch.tensor([float(rank + 1)])
    dist.all_reduce(value)
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump({"world": dist.get_world_size(), "sum": value.item(), "argv": argv}, f)
    dist.destroy_process_group()

if __name__ == "__main__":
    main(sys.argv[1:])
"""

# torchrun needs a free port on loopback; keep workers to one thread on the shared CPU.
ENV = {"OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "all_reduce.py"
    path.write_text(ALL_REDUCE_SCRIPT)
    (tmp_path / "cfg.yaml").write_text("x: 1\n")
    return path


def test_two_process_gloo_all_reduce(script, tmp_path, tune_subprocess):
    proc = tune_subprocess(
        ["run", "--standalone", "--nproc_per_node", "2", str(script),
         "--config", str(tmp_path / "cfg.yaml"), f"out_dir={tmp_path}"],
        cwd=tmp_path,
        env=ENV,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    for rank in (0, 1):
        result = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert result["world"] == 2 and result["sum"] == 3.0
        assert result["argv"] == ["--config", str(tmp_path / "cfg.yaml"), f"out_dir={tmp_path}"]


def test_wrong_torchrun_flag_gives_torchrun_message(script, tmp_path, tune_subprocess):
    proc = tune_subprocess(
        ["run", "--nproc-per-nodes", "2", str(script), "--config", "cfg.yaml"], cwd=tmp_path
    )
    assert proc.returncode == 2
    assert "tune run: error: unrecognized arguments: --nproc-per-nodes" in proc.stderr
    assert "--nproc-per-node NPROC_PER_NODE" in proc.stderr  # torchrun's own usage
    assert "Traceback" not in proc.stderr


def test_failing_worker_gives_one_line_error(tmp_path, tune, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    script = tmp_path / "fails.py"
    script.write_text("raise SystemExit(3)\n")
    code, _, err = tune(["run", "--standalone", "--nproc_per_node", "1", str(script)])
    assert code == 1
    assert err.splitlines()[-1] == (
        "tune: error: fails.py failed on 1 process(es); first: local rank 0 (global 0) "
        "exit code 3; its output above has the details"
    )


def test_registered_distributed_recipe_through_torchrun(recipes_root, tmp_path, tune, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    code, _, _ = tune(
        ["run", "--standalone", "--nproc_per_node=1", "lora_finetune_distributed",
         "--config", "tiny/lora_distributed", "epochs=1"]
    )
    assert code == 0
    result = json.loads((tmp_path / "recipe_out.json").read_text())
    assert result["file"] == str(recipes_root / "lora_finetune_distributed.py")
    config = str(recipes_root / "configs/tiny/lora_distributed.yaml")
    assert result["argv"] == ["--config", config, "epochs=1"]
