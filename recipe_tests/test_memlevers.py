"""The full fine-tuning memory levers as packaged: `pip install 'torchtune[recipes,quant]'`, then `tune`.

``optimizer_in_bwd: true`` must give the default run's losses and weights exactly (it is the same
arithmetic, moved into backward), on one device and under FSDP2 (full SFT and full DPO), and
resume exactly.
``optimizer._component_=torchao.optim.AdamW8bit`` must stay close to AdamW, keep 8-bit state in
its checkpoints and resume exactly. Runs are the tiny shipped config in fp32 for 8 steps.
"""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from recipe_tests._installed import InstalledTorchtune

SHORT = ("max_steps_per_epoch=8", "epochs=1", "log_every_n_steps=1", "save_every_n_steps=4", "dtype=fp32")
IN_BWD = ("optimizer_in_bwd=true", "clip_grad_norm=null")
ADAMW8BIT = ("optimizer._component_=torchao.optim.AdamW8bit",)


@pytest.fixture(scope="module")
def tt(tmp_path_factory) -> InstalledTorchtune:
    return InstalledTorchtune(tmp_path_factory.mktemp("venv") / "venv", extras=("recipes", "quant"))


def full(tt: InstalledTorchtune, out: Path, *overrides: str, distributed: bool = False) -> subprocess.CompletedProcess:
    recipe = ("--nproc_per_node", "2", "full_finetune_distributed", "--config", "tiny/full_distributed") if distributed \
        else ("full_finetune_single_device", "--config", "tiny/full_single_device")
    return tt.run("tune", "run", *recipe, f"output_dir={out}", *SHORT, *overrides, cwd=out.parent)


def losses(out: Path) -> list[float]:
    rows = [json.loads(line) for line in (out / "logs" / "metrics.jsonl").read_text().splitlines()]
    return [row["loss"] for row in rows if "loss" in row]


def weights(step_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(step_dir / "model.safetensors")


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key


def resume_from_step_4(tt: InstalledTorchtune, out: Path, *overrides: str, distributed: bool = False) -> None:
    """Drop the run's final checkpoint, resume from step 4 and check the rerun ends on the same weights."""
    whole = out.parent / f"{out.name}_step_8"
    shutil.move(out / "step_8", whole)
    proc = full(tt, out, *overrides, "resume=auto", distributed=distributed)
    assert "Resumed from" in proc.stdout and "at step 4" in proc.stdout, proc.stdout
    assert_same_weights(whole, out / "step_8")


@pytest.mark.parametrize("distributed", [False, True], ids=["single_device", "fsdp2_2proc"])
def test_optimizer_in_bwd_gives_the_default_run_and_resumes_exactly(tt, tmp_path, distributed):
    default, in_bwd = tmp_path / "default", tmp_path / "in_bwd"
    full(tt, default, "clip_grad_norm=null", distributed=distributed)
    full(tt, in_bwd, *IN_BWD, distributed=distributed)
    assert len(losses(default)) == 8
    assert losses(in_bwd) == losses(default)  # bit for bit: the same update of the same gradient
    assert_same_weights(default / "step_8", in_bwd / "step_8")
    resume_from_step_4(tt, in_bwd, *IN_BWD, distributed=distributed)


def test_full_dpo_with_optimizer_in_bwd_gives_the_default_run(tt, tmp_path):
    runs = {}
    for name, overrides in (("default", ()), ("in_bwd", ("optimizer_in_bwd=true",))):
        runs[name] = out = tmp_path / name
        tt.run("tune", "run", "--nproc_per_node", "2", "full_dpo_distributed", "--config", "tiny/full_dpo_distributed",
               f"output_dir={out}", "max_steps_per_epoch=4", "epochs=1", "log_every_n_steps=1", "dtype=fp32",
               "clip_grad_norm=null", *overrides, cwd=tmp_path)
    assert len(losses(runs["default"])) == 4
    assert losses(runs["in_bwd"]) == losses(runs["default"])
    assert_same_weights(runs["default"] / "step_4", runs["in_bwd"] / "step_4")


def test_adamw8bit_stays_close_to_adamw_keeps_8bit_state_and_resumes_exactly(tt, tmp_path):
    # with optimizer_in_bwd too (exact by the test above): both levers at once, one run fewer
    adamw, eight = tmp_path / "adamw", tmp_path / "adamw8bit"
    full(tt, adamw, "clip_grad_norm=null")
    full(tt, eight, *IN_BWD, *ADAMW8BIT)
    a, b = losses(adamw), losses(eight)
    # The tiny model's weight matrices (>= 16384 values, multiples of 256) get 8-bit moments; the
    # per-token losses fall by ~1 over 8 steps and the 8-bit run follows AdamW within 5e-3
    # (measured at most 8e-4: the moments' block-wise quantisation error feeding later steps).
    assert b[0] == a[0]
    assert b != a
    assert b == pytest.approx(a, abs=5e-3)
    assert b[-1] < b[0] - 0.5
    state = (eight / "step_4" / "recipe_state.json").read_text()
    # 2 moments x 30 matrices (7 per layer x 4 layers, the embedding, the output); norms stay fp32
    assert state.count("torchao.optim.subclass_8bit.OptimState8bit") == 2 * 30
    resume_from_step_4(tt, eight, *IN_BWD, *ADAMW8BIT)


def test_adamw8bit_under_fsdp2_trains_saves_and_resumes_exactly(tt, tmp_path):
    out = tmp_path / "fsdp2_8bit"
    full(tt, out, *ADAMW8BIT, distributed=True)
    assert len(losses(out)) == 8 and losses(out)[-1] < losses(out)[0] - 0.5
    # gathered from the shards: still 2 moments x 30 quantised matrices
    assert (out / "step_4" / "recipe_state.json").read_text().count("OptimState8bit") == 2 * 30
    resume_from_step_4(tt, out, *ADAMW8BIT, distributed=True)


def test_in_bwd_with_clipping_or_accumulation_stops_before_training(tt, tmp_path):
    for overrides, key in ((("optimizer_in_bwd=true",), "clip_grad_norm"),
                           (("optimizer_in_bwd=true", "clip_grad_norm=null", "gradient_accumulation_steps=2"),
                            "gradient_accumulation_steps")):
        proc = tt.run("tune", "run", "full_finetune_single_device", "--config", "tiny/full_single_device",
                      f"output_dir={tmp_path / 'bad'}", *overrides, cwd=tmp_path, check=False)
        assert proc.returncode == 1, proc.stderr
        assert f"Set {key}:" in proc.stderr and "optimizer_in_bwd: true" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
        assert not (tmp_path / "bad" / "logs").exists()


def test_adamw8bit_without_torchao_names_the_quant_extra(tt, tmp_path):
    # torchao made unimportable in this interpreter, as after `pip install 'torchtune[recipes]'`
    code = ("import sys; sys.modules['torchao'] = None\n"
            "from torchtune._cli.tune import main\n"
            "sys.exit(main(['run', 'full_finetune_single_device', '--config', 'tiny/full_single_device', "
            f"'output_dir={tmp_path / 'out'}', 'optimizer._component_=torchao.optim.AdamW8bit']))\n")
    proc = tt.run("python", "-c", code, cwd=tmp_path, check=False)
    assert proc.returncode != 0
    assert "pip install 'torchtune[quant]'" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
