"""FSDP2 training on 2 gloo ranks (run by test_distributed.py through torch.distributed.run).

Usage: python -m torch.distributed.run --standalone --nproc_per_node 2 _distributed_script.py OUT

Rank 0 writes OUT/result.json (losses), OUT/full.safetensors (gathered weights) and
OUT/full_optim (full optimizer state, via save_recipe_state); OUT/step_2 is a DCP checkpoint.
"""

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import save_file
from torch.distributed.tensor import DTensor

from torchtune.training._distributed import (
    dcp_load,
    dcp_save,
    gather_full_optimizer_state_dict,
    gather_full_state_dict,
    get_world_size_and_rank,
    init_distributed,
    load_full_state_dict,
    shard_model,
)
from torchtune.training.checkpointing import save_recipe_state

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
    losses += train(model, optim, range(2, STEPS), world, rank)
    full = gather_full_state_dict(model)
    full_optim = gather_full_optimizer_state_dict(model, optim)

    resumed = sharded_model(seed=200 + rank)
    resumed_optim = make_optimizer(resumed)
    dcp_load(out / "step_2", resumed, resumed_optim)
    resumed_losses = train(resumed, resumed_optim, range(2, STEPS), world, rank)
    resumed_full = gather_full_state_dict(resumed)

    if rank == 0:
        save_file(full, out / "full.safetensors")
        (out / "full_optim").mkdir()
        save_recipe_state(out / "full_optim", step=STEPS, epoch=0, optimizer=full_optim)
        same = all(torch.equal(full[k], resumed_full[k]) for k in full)
        result = {"world": world, "losses": losses, "resumed_losses": resumed_losses, "resumed_equal": same}
        (out / "result.json").write_text(json.dumps(result))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
