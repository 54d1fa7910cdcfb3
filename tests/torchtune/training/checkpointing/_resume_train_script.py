"""A tiny fp32 training loop that checkpoints with torchtune's helpers (run by test_resume.py).

Usage: python _resume_train_script.py BASE_DIR OUT_DIR TOTAL_STEPS [--kill-at STEP] [--save-every N]

It fine-tunes a tiny torchtune decoder loaded from the Hugging Face directory BASE_DIR, with
random label masking (NumPy), random token corruption (torch), a random label shift (Python),
a per-epoch shuffled sampler, gradient accumulation, AdamW and a LambdaLR schedule. It
checkpoints (Hugging Face weights + recipe state) every ``--save-every`` steps keeping the last
two; resumes from the latest whole checkpoint; SIGKILLs itself right after the checkpoint of
step ``--kill-at`` is whole; writes ``OUT_DIR/final`` at the end.
"""

import argparse
import os
import random
import signal
from pathlib import Path

import numpy as np
import torch

from torchtune.models import model_from_hf_config
from torchtune.training import set_rng_state
from torchtune.training.checkpointing import (
    CheckpointManager,
    HuggingFaceCheckpointer,
    atomic_directory,
    load_recipe_state,
    save_recipe_state,
)

N_SAMPLES, SEQ, BATCH, ACCUM, SEED = 24, 8, 4, 2, 7


def micro_batch_loss(model: torch.nn.Module, tokens: torch.Tensor, vocab: int) -> torch.Tensor:
    """Cross-entropy on randomly corrupted inputs and randomly masked labels."""
    labels = torch.cat([tokens[:, 1:], torch.full_like(tokens[:, :1], -100)], dim=1)  # [b, s]
    drop = torch.from_numpy(np.random.rand(*labels.shape) < 0.2)
    labels = labels.masked_fill(drop, -100)
    if random.random() < 0.5:
        labels[:, 0] = -100
    corrupt = torch.rand(tokens.shape) < 0.1
    tokens = torch.where(corrupt, torch.randint(0, vocab, tokens.shape), tokens)
    logits = model(tokens)  # [b, s, v]
    return torch.nn.functional.cross_entropy(logits.reshape(-1, vocab), labels.reshape(-1), ignore_index=-100)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("base_dir")
    parser.add_argument("out_dir")
    parser.add_argument("total_steps", type=int)
    parser.add_argument("--kill-at", type=int, default=-1)
    parser.add_argument("--save-every", type=int, default=2)
    parser.add_argument("--skip-rng", action="store_true", help="resume without the RNG states")
    args = parser.parse_args()
    torch.set_num_threads(1)

    random.seed(SEED)
    np.random.seed(SEED)
    torch.manual_seed(SEED)
    base = HuggingFaceCheckpointer(args.base_dir, args.out_dir)
    vocab = base.config["vocab_size"]
    tokens = torch.randint(0, vocab, (N_SAMPLES, SEQ), generator=torch.Generator().manual_seed(123))
    model = model_from_hf_config(base.config)
    model.load_state_dict(base.load_checkpoint())
    optim = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(optim, lambda s: min(1.0, (s + 1) / 4))
    manager = CheckpointManager(args.out_dir, save_every_n_steps=args.save_every, keep_last_n=2)
    manager.clean_temp()

    step, epoch, samples_seen, losses = 0, 0, 0, []
    resume_dir = manager.resolve_resume("auto")
    if resume_dir is not None:
        model.load_state_dict(base.load_checkpoint(resume_dir))  # resume through the configured checkpointer
        state = load_recipe_state(resume_dir)
        optim.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["lr_scheduler"])
        if not args.skip_rng:
            set_rng_state(state["rng"])
        step, epoch, samples_seen = state["step"], state["epoch"], state["samples_seen"]
        losses = state["loss_history"]

    def write_state(directory) -> None:
        save_recipe_state(
            directory, step=step, epoch=epoch, seed=SEED, samples_seen=samples_seen,
            optimizer=optim, lr_scheduler=sched, loss_history=losses,
        )

    def write(directory) -> None:
        base.write_checkpoint(directory, model.state_dict())
        write_state(directory)

    while step < args.total_steps:
        order = torch.randperm(N_SAMPLES, generator=torch.Generator().manual_seed(SEED + epoch))
        while samples_seen < N_SAMPLES and step < args.total_steps:
            total = 0.0
            for _ in range(ACCUM):
                idx = order[samples_seen : samples_seen + BATCH]
                samples_seen += BATCH
                loss = micro_batch_loss(model, tokens[idx], vocab) / ACCUM
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

    with atomic_directory(Path(args.out_dir) / "final", overwrite=True) as tmp:
        write(tmp)


if __name__ == "__main__":
    main()
