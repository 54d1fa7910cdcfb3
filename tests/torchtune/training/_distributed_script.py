"""FSDP2 training on 2 gloo ranks (run by test_distributed.py through torch.distributed.run).

Usage: python -m torch.distributed.run --standalone --nproc_per_node 2 _distributed_script.py OUT

Rank 0 writes OUT/result.json (losses), OUT/full.safetensors (gathered weights) and
OUT/full_optim (full optimizer state, via save_recipe_state); OUT/step_2 is a DCP checkpoint.
"""

import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy
from torch.distributed.tensor import DTensor

from torchtune.training.checkpointing import dcp_load, dcp_save
from torchtune.training import (
    gather_full_optimizer_state_dict,
    gather_full_state_dict,
    get_world_size_and_rank,
    init_distributed,
    load_full_optimizer_state_dict,
    load_full_state_dict,
    precision_plan,
    shard_model,
)
from torchtune.training.checkpointing import load_recipe_state, save_recipe_state

STEPS, GLOBAL_BATCH = 4, 8


class TinyNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inp = torch.nn.Linear(8, 16)
        self.layers = torch.nn.ModuleList([torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.Tanh()) for _ in range(2)])
        self.out = torch.nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.inp(x)
        for layer in self.layers:
            x = layer(x)
        return self.out(x)


def data() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return torch.randn(STEPS, GLOBAL_BATCH, 8, generator=gen), torch.randn(STEPS, GLOBAL_BATCH, 4, generator=gen)


def make_optimizer(model: torch.nn.Module) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=0.05, weight_decay=0.1)


def train(model, optim, steps: range, world: int, rank: int) -> list[float]:
    xs, ys = data()
    per_rank = GLOBAL_BATCH // world
    losses = []
    for step in steps:
        x = xs[step, rank * per_rank : (rank + 1) * per_rank]
        y = ys[step, rank * per_rank : (rank + 1) * per_rank]
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        optim.step()
        optim.zero_grad()
        reported = loss.detach().clone()
        dist.all_reduce(reported, op=dist.ReduceOp.AVG)
        losses.append(reported.item())
    return losses


def sharded_model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return shard_model(TinyNet())


def main() -> None:
    out = Path(sys.argv[1])
    torch.set_num_threads(1)
    assert init_distributed()
    world, rank = get_world_size_and_rank()
    torch.manual_seed(0)
    init_sd = TinyNet().state_dict() if rank == 0 else {}

    model = sharded_model(seed=100 + rank)  # wrong init on purpose: the full state dict fixes it
    load_full_state_dict(model, init_sd)
    for param in model.parameters():  # every parameter is sharded on dim 0 across the ranks
        assert isinstance(param, DTensor) and param.to_local().shape[0] == param.shape[0] // world
    optim = make_optimizer(model)
    losses = train(model, optim, range(2), world, rank)
    dcp_save(out / "step_2", model, optim, write_extra=lambda d: (d / "note.txt").write_text("rank0"))
    full_2, full_optim_2 = gather_full_state_dict(model), gather_full_optimizer_state_dict(model, optim)
    if rank == 0:  # full (unsharded) step-2 checkpoint through the pickle-free recipe state
        (out / "full_step_2").mkdir()
        save_file(full_2, out / "full_step_2" / "model.safetensors")
        save_recipe_state(out / "full_step_2", step=2, epoch=0, optimizer=full_optim_2)
    dist.barrier()
    losses += train(model, optim, range(2, STEPS), world, rank)
    full = gather_full_state_dict(model)
    full_optim = gather_full_optimizer_state_dict(model, optim)

    resumed = sharded_model(seed=200 + rank)
    resumed_optim = make_optimizer(resumed)
    dcp_load(out / "step_2", resumed, resumed_optim)
    resumed_losses = train(resumed, resumed_optim, range(2, STEPS), world, rank)
    resumed_full = gather_full_state_dict(resumed)

    # resume from the full checkpoint: rank 0 reads it, the others receive it by broadcast
    from_full = sharded_model(seed=300 + rank)
    from_full_optim = make_optimizer(from_full)
    full_dir = out / "full_step_2"
    load_full_state_dict(from_full, load_file(full_dir / "model.safetensors") if rank == 0 else {})
    load_full_optimizer_state_dict(from_full, from_full_optim, load_recipe_state(full_dir)["optimizer"] if rank == 0 else {})
    full_resumed_losses = train(from_full, from_full_optim, range(2, STEPS), world, rank)

    # mixed precision: bf16 compute on fp32 sharded parameters; units chosen by layer type
    torch.manual_seed(0)
    mixed = shard_model(TinyNet(), layer_types=(torch.nn.Sequential,),
                        mp_policy=MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32))
    units = [name for name, m in mixed.named_modules() if isinstance(m, FSDPModule)]
    mixed_out = mixed(data()[0][0, :2])
    mixed_ok = mixed_out.dtype == torch.bfloat16 and all(p.dtype == torch.float32 for p in mixed.parameters())

    # training with the recipes' precision plan: fp32 master shards, bf16 compute, fp32 reduce
    plan = precision_plan(torch.bfloat16, torch.device("cpu"), fp32_master_weights=True, reduce_dtype="fp32",
                          distributed=True)
    torch.manual_seed(0)
    planned = shard_model(TinyNet().to(plan.param_dtype), mp_policy=plan.mp_policy())
    planned_optim = make_optimizer(planned)
    planned_losses = train(planned, planned_optim, range(STEPS), world, rank)
    planned_full = gather_full_state_dict(planned)

    if rank == 0:
        save_file(full, out / "full.safetensors")
        (out / "full_optim").mkdir()
        save_recipe_state(out / "full_optim", step=STEPS, epoch=0, optimizer=full_optim)
        same = all(torch.equal(full[k], resumed_full[k]) for k in full)
        result = {"world": world, "losses": losses, "resumed_losses": resumed_losses, "resumed_equal": same,
                  "full_resumed_losses": full_resumed_losses, "fsdp_units": units, "mixed_ok": mixed_ok,
                  "mixed_out": mixed_out.float().tolist(), "planned_losses": planned_losses}
        save_file(planned_full, out / "planned.safetensors")
        (out / "result.json").write_text(json.dumps(result))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
    # Skip the interpreter's teardown, where gloo on CPU sometimes aborts after a finished run.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
