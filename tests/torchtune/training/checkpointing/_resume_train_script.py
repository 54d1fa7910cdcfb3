"""A tiny fp32 training loop that checkpoints with torchtune's helpers (run by test_resume.py).

Usage: python _resume_train_script.py OUT_DIR TOTAL_STEPS [--kill-at STEP] [--save-every N]

It trains a small MLP with dropout, NumPy input noise, a per-epoch shuffled sampler, gradient
accumulation, AdamW and a LambdaLR schedule; checkpoints every ``--save-every`` steps keeping the
last two; resumes from the latest whole checkpoint; SIGKILLs itself right after the checkpoint of
step ``--kill-at`` is whole; writes ``OUT_DIR/final`` at the end.
"""

import argparse
import os
import random
import signal

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from torchtune.training.checkpointing import (
    CheckpointManager,
    atomic_directory,
    load_recipe_state,
    save_recipe_state,
    set_rng_state,
)

N_SAMPLES, BATCH, ACCUM, SEED = 24, 4, 2, 7


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out_dir")
    parser.add_argument("total_steps", type=int)
    parser.add_argument("--kill-at", type=int, default=-1)
    parser.add_argument("--save-every", type=int, default=2)
    parser.add_argument("--skip-rng", action="store_true", help="resume without the RNG states")
    args = parser.parse_args()
    torch.set_num_threads(1)

    data_gen = torch.Generator().manual_seed(123)
    xs = torch.randn(N_SAMPLES, 8, generator=data_gen)
    ys = torch.randn(N_SAMPLES, 1, generator=data_gen)

    random.seed(SEED)
    np.random.seed(SEED)
    torch.manual_seed(SEED)
    model = torch.nn.Sequential(
        torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Dropout(0.2), torch.nn.Linear(16, 1)
    )
    optim = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(optim, lambda s: min(1.0, (s + 1) / 4))
    manager = CheckpointManager(args.out_dir, save_every_n_steps=args.save_every, keep_last_n=2)
    manager.clean_temp()

    step, epoch, samples_seen, losses = 0, 0, 0, []
    resume_dir = manager.resolve_resume("auto")
    if resume_dir is not None:
        model.load_state_dict(load_file(resume_dir / "model.safetensors"))
        state = load_recipe_state(resume_dir)
        optim.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["lr_scheduler"])
        if not args.skip_rng:
            set_rng_state(state["rng"])
        step, epoch, samples_seen = state["step"], state["epoch"], state["samples_seen"]
        losses = state["loss_history"]

    def write(directory) -> None:
        save_file(model.state_dict(), directory / "model.safetensors")
        save_recipe_state(
            directory, step=step, epoch=epoch, seed=SEED, samples_seen=samples_seen,
            optimizer=optim, lr_scheduler=sched, loss_history=losses,
        )

    while step < args.total_steps:
        order = torch.randperm(N_SAMPLES, generator=torch.Generator().manual_seed(SEED + epoch))
        while samples_seen < N_SAMPLES and step < args.total_steps:
            total = 0.0
            for _ in range(ACCUM):
                idx = order[samples_seen : samples_seen + BATCH]
                samples_seen += BATCH
                noise = torch.from_numpy(np.random.normal(size=(len(idx), 8)).astype(np.float32))
                x = xs[idx] + 0.01 * noise + 0.01 * random.random()
                loss = torch.nn.functional.mse_loss(model(x), ys[idx]) / ACCUM
                loss.backward()
                total += loss.item()
            optim.step()
            sched.step()
            optim.zero_grad(set_to_none=True)
            step += 1
            losses.append(total)
            if manager.should_save(step):
                manager.save(step, write)
                if step == args.kill_at:
                    os.kill(os.getpid(), signal.SIGKILL)
        if samples_seen >= N_SAMPLES:
            epoch, samples_seen = epoch + 1, 0

    with atomic_directory(os.path.join(args.out_dir, "final"), overwrite=True) as tmp:
        write(tmp)


if __name__ == "__main__":
    main()
