"""GRPO (group relative policy optimisation with verifiable rewards) on several processes with
FSDP2 (GPUs with nccl, or CPU with gloo): LoRA / DoRA adapters, or every weight.

Launch it through torchrun, via the ``tune`` command or directly::

    tune run --nproc_per_node 2 grpo_distributed --config tiny/grpo_distributed
    torchrun --nproc_per_node 8 grpo_distributed.py --config my.yaml model_dir=/m output_dir=/o

The same steps as ``grpo_single_device.py``, with these differences: the model's decoder layers
and root are sharded with FSDP2; each process takes its own slice of every epoch's prompt order
(a prompt's whole group stays on one process, so advantages need no communication) and samples
for all ``max_new_tokens`` steps (every forward is a collective, so no process may stop early);
the model returns the logits of the completion positions (the output weight is sharded); and
losses and rewards are summed over processes, so the gradient is the mean over every completion
of the global batch. Because each completion samples from its own generator seeded by (seed,
epoch, row, sample), a run on N processes with ``batch_size`` B / N samples what one process with
B samples. Checkpoints are gathered to process 0, which writes them (merged weights, plus the
peft adapter for LoRA). Copy it with ``tune cp grpo_distributed .`` and edit freely.

In order, as on one device: check the config, build the tokenizer and the prompts with their
reference answers (``torchtune.datasets.prompt_dataset``), the reward functions (``rewards:``, a
list of components such as ``torchtune.training.ExactAnswerReward``, or your own, allowed with
``allowed_component_roots``), the model (base weights from the configured checkpointer; adapters
on top when ``model`` holds LoRA options, else every weight trains), the loss
(``torchtune.modules.GRPOLoss``), the optimizer and the schedule, then train.
Each step takes ``batch_size`` prompts and samples ``group_size`` completions of each with the
policy and its KV cache (temperature / top-k / top-p). Completion ``k`` of dataset row ``i`` in
epoch ``e`` draws from its own generator seeded by ``(seed, e, i, k)``, so what a row samples does
not depend on the rest of its batch, on the number of processes, or on where a run was resumed.
Every reward function scores every completion; their sum, normalised within each prompt's group,
is the completion's advantage. The loss is the clipped policy-ratio objective plus ``beta`` times
a KL estimate to the reference model: for LoRA the same weights with the adapters switched off,
so no second copy exists; for full training a frozen, sharded copy of the source weights (none
is built when ``loss.beta`` is 0). With ``ppo_epochs > 1`` the samples are reused for that many optimizer
updates, the ratio taken against the sampling policy. It logs the loss, each reward's mean, the
KL, the share of clipped tokens and the completion length. Every ``save_every_n_steps`` steps and
at the end it writes ``<output_dir>/step_<N>`` (the weights in the checkpointer's format, merged
with the adapters, the peft adapter for LoRA, and the state needed to resume).
"""

import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

import torchtune
from torchtune import config, training
from torchtune.data import epoch_sample_order
from torchtune.datasets import PromptDataset, check_local_data_files
from torchtune.generation import generate, generation_masks, left_pad_prompts
from torchtune.models import model_from_hf_config
from torchtune.modules import TransformerSelfAttentionLayer, group_advantages, token_log_probs
from torchtune.modules.peft import (
    disable_adapter,
    get_adapter_params,
    get_adapter_specs,
    initialize_dora_magnitudes,
    set_adapter_dtype,
    set_trainable_params,
    validate_missing_and_unexpected_for_lora,
)
from torchtune.training import RewardError, reward_name, score_completions
from torchtune.training.checkpointing import (
    CheckpointManager,
    Checkpointer,
    check_save_mappings,
    check_weights_fit,
    restore_training_state,
    save_recipe_state,
)

# Every top-level key this recipe reads; anything else in the config is reported as unknown.
KNOWN_KEYS = (
    "model_dir", "output_dir", "model", "tokenizer", "checkpointer", "dataset", "rewards", "seed", "shuffle",
    "batch_size", "group_size", "max_new_tokens", "temperature", "top_k", "top_p", "scale_rewards", "ppo_epochs",
    "forward_batch_size", "epochs", "max_steps_per_epoch", "optimizer", "lr_scheduler", "loss", "clip_grad_norm",
    "device", "dtype", "num_threads", "enable_activation_checkpointing", "compile", "metric_logger",
    "log_every_n_steps", "save_every_n_steps", "keep_last_n_checkpoints", "save_adapter_weights_only", "resume",
    "allowed_component_roots", "backend",
)


def check_config(cfg: config.DictConfig) -> None:
    """Stop before any work when the config cannot run: unknown keys, bad component arguments,
    missing dataset files, too small groups."""
    config.validate(cfg, known_keys=KNOWN_KEYS)
    check_local_data_files(cfg, keys=("dataset",))  # and the datasets extra for Hub data
    training.check_metric_loggers(cfg.get("metric_logger"))
    if cfg.group_size < 2:
        raise config.ConfigError(f"group_size={cfg.group_size} must be >= 2: advantages compare a prompt's completions")
    if not cfg.get("rewards"):
        raise config.ConfigError("rewards is empty; list at least one reward component, e.g. "
                                 "torchtune.training.ExactAnswerReward")


def build_model(cfg: config.DictConfig, checkpointer: Checkpointer, device: torch.device, dtype: torch.dtype,
                resume_dir: Path | None, *, trainable: bool = True) -> torch.nn.Module:
    """The sharded model with its weights loaded.

    ``model`` names a builder (``_component_``), or holds LoRA options, or is empty, in which
    case the architecture is read from the checkpoint's config. With adapters, the base weights
    come from the source and the adapters from ``resume_dir`` when resuming, and only the
    adapters train; without, every weight trains and all of them come from ``resume_dir`` (or
    the source). ``trainable=False`` gives a frozen model in eval mode (the full-training
    reference, from the source weights).
    """
    node = cfg.get("model")
    if node is not None and "_component_" in node:
        model = config.instantiate(node)
    else:
        model = model_from_hf_config(checkpointer.config, **(node.to_dict() if node is not None else {}))
    lora = bool(get_adapter_params(model))
    # every process reads the files, then keeps its shard
    state_dict = checkpointer.load_checkpoint(None if lora else resume_dir)
    check_weights_fit(model, state_dict, builder=node.get("_component_") if node is not None else None)
    missing, unexpected = model.load_state_dict(state_dict, strict=False)
    validate_missing_and_unexpected_for_lora(model, base_missing=missing, base_unexpected=unexpected)
    model.to(device=device, dtype=dtype)
    if lora:
        set_adapter_dtype(model, torch.float32)  # fp32 master weights for the adapters; they compute in dtype
        initialize_dora_magnitudes(model)  # DoRA: magnitudes from the loaded base weights
        if resume_dir is not None:
            adapter = checkpointer.load_adapter(resume_dir)
            missing, unexpected = model.load_state_dict(adapter, strict=False)
            validate_missing_and_unexpected_for_lora(model, lora_missing=missing, lora_unexpected=unexpected)
        set_trainable_params(model, get_adapter_params(model))
    if not trainable:
        model.requires_grad_(False)
        model.eval()
    elif cfg.enable_activation_checkpointing:
        training.apply_activation_checkpointing(model, auto_wrap_policy={TransformerSelfAttentionLayer})
    training.shard_model(model)  # FSDP2: one unit per decoder layer, plus the root
    if cfg.compile:
        model.compile()
    return model


def build_prompts(cfg: config.DictConfig, tokenizer: Any) -> PromptDataset:
    """The prompts of the config's ``dataset`` node; a bad row stops the run with one message
    naming the file, the row and the field."""
    try:
        ds = config.instantiate(cfg.dataset, tokenizer)
    except ValueError as e:
        raise config.ConfigError(f"dataset: {e}") from e
    if not isinstance(ds, PromptDataset):
        raise config.ConfigError(f"dataset {cfg.dataset.get('_component_')!r} gives a {type(ds).__name__}, not "
                                 "prompts; use torchtune.datasets.prompt_dataset")
    return ds


def epoch_prompts(n: int, cfg: config.DictConfig, epoch: int, skip: int, world_size: int,
                  rank: int) -> Iterator[list[int]]:
    """Dataset indices of this process's batches of prompts of one epoch, skipping the first
    ``skip`` of its prompts.

    The epoch's order depends only on the seed and the epoch (so a resumed run sees the same
    batches); process ``rank`` takes every ``world_size``-th prompt of it.
    """
    order = epoch_sample_order(n, seed=cfg.seed, epoch=epoch, shuffle=cfg.shuffle, world_size=world_size,
                               rank=rank)[skip:]
    for start in range(0, len(order) - cfg.batch_size + 1, cfg.batch_size):
        yield [int(i) for i in order[start : start + cfg.batch_size]]


def row_seed(seed: int, epoch: int, index: int, sample: int) -> int:
    """The seed of completion ``sample`` of dataset row ``index`` in ``epoch``."""
    return ((seed * 1_000_003 + epoch) * 1_000_003 + index) * 1_009 + sample


def rollout(model: torch.nn.Module, ds: PromptDataset, indices: list[int], cfg: config.DictConfig, epoch: int,
            tokenizer: Any, device: torch.device) -> dict[str, Any]:
    """``group_size`` sampled completions of each prompt (group by group), as one batch.

    Returns ``tokens [R, s + n]`` (left-padded prompts, then completions), ``is_real [R, s]``
    (False on prompt padding), ``mask [R, n]`` (True on each completion's tokens up to and
    including its stop token) and the decoded completion texts.
    """
    g = cfg.group_size
    prompts = [ds[i]["tokens"].tolist() for i in indices for _ in range(g)]
    generators = [torch.Generator(device=device).manual_seed(row_seed(cfg.seed, epoch, i, k))
                  for i in indices for k in range(g)]
    pad_id = tokenizer.pad_id if tokenizer.pad_id is not None else 0
    model.eval()
    tokens, _ = generate(model, prompts, cfg.max_new_tokens, pad_id=pad_id, temperature=cfg.temperature,
                         top_k=cfg.get("top_k"), top_p=cfg.get("top_p"), stop_tokens=tokenizer.stop_tokens,
                         rng=generators, stop_early=False)  # every process runs every step: forwards are collectives
    model.delete_caches()
    model.train()
    _, is_real = left_pad_prompts(prompts, pad_id)
    s = is_real.shape[1]
    completion = tokens[:, s:]  # [R, n]
    is_stop = torch.isin(completion, torch.as_tensor(list(tokenizer.stop_tokens), device=completion.device))
    mask = torch.cumsum(is_stop.long(), dim=1) - is_stop.long() == 0  # up to and including the first stop
    texts = [tokenizer.decode([t for t, keep, stop in zip(row, m, st) if keep and not stop])
             for row, m, st in zip(completion.tolist(), mask.tolist(), is_stop.tolist())]
    return {"tokens": tokens, "is_real": is_real.to(tokens.device), "mask": mask, "texts": texts}


def completion_log_probs(model: torch.nn.Module, tokens: torch.Tensor, is_real: torch.Tensor,
                         mask: torch.Tensor) -> torch.Tensor:
    """``[R, n]`` log-probabilities of the completion tokens (0 on padding).

    The rows are attended as during sampling (prompt padding masked, positions from each
    prompt's first token); only the positions that predict a completion token come out of the
    model (``output_index``): its last layer and output projection skip the others.
    """
    r, t = tokens.shape
    n = mask.shape[1]
    s = t - n
    attn, input_pos = generation_masks(is_real, n)  # [R, t, t], [R, t]
    rows, cols = torch.nonzero(mask, as_tuple=True)  # row-major: ascending flat indices
    keep = rows * t + (s - 1) + cols  # [k], position s - 1 + j predicts completion token j
    logits = model(tokens, mask=attn, input_pos=input_pos, output_index=keep, output="logits")  # [1, k, v]
    logp = token_log_probs(logits, tokens[rows, s + cols][None])  # [k]
    return torch.zeros(r, n, device=logp.device, dtype=logp.dtype).masked_scatter(mask, logp)


def reference_log_probs(model: torch.nn.Module, reference: torch.nn.Module | None, tokens: torch.Tensor,
                        is_real: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``[R, n]`` the reference model's log-probabilities of the completions: the frozen copy
    when there is one (full training), else the policy with its adapters switched off."""
    if reference is not None:
        return completion_log_probs(reference, tokens, is_real, mask)
    with disable_adapter(model):
        return completion_log_probs(model, tokens, is_real, mask)


def score(reward_fns: list[Any], ds: PromptDataset, indices: list[int], texts: list[str], g: int) -> torch.Tensor:
    """``[R, F]`` rewards; a reward function that fails stops the run naming it and the row."""
    rows = [i for i in indices for _ in range(g)]
    try:
        return score_completions(reward_fns, texts, answers=[ds[i]["answer"] for i in rows],
                                 prompts=[ds[i]["prompt"] for i in rows],
                                 locations=[f"{ds.locations[i]}, sample {k}" for i in indices for k in range(g)])
    except RewardError as e:
        raise config.ConfigError(f"rewards: {e}") from e


def main(argv: Sequence[str] | None = None) -> Path:
    """Parse ``--config PATH key=value ...``, train, and return the final checkpoint directory."""
    cfg = config.parse_args(argv, variables={"recipes_root": str(torchtune.recipes_root())})
    check_config(cfg)
    training.init_distributed(cfg.get("backend"))  # gloo on CPU, nccl on GPUs (None: pick)
    world_size, rank = training.get_world_size_and_rank()
    say = print if rank == 0 else (lambda *args, **kwargs: None)  # only process 0 talks
    seed = training.set_seed(cfg.seed, rank)
    if cfg.get("num_threads"):
        torch.set_num_threads(cfg.num_threads)  # CPU intra-op threads per process
    device = training.get_device(cfg.device, distributed=True)
    dtype, dtype_reason = training.get_dtype(cfg.dtype, device)
    say(f"Device {device} x {world_size} processes, {dtype_reason}")
    output_dir = Path(cfg.output_dir)
    manager = CheckpointManager(output_dir, save_every_n_steps=cfg.save_every_n_steps, keep_last_n=cfg.keep_last_n_checkpoints)
    resume_dir = manager.resolve_resume(cfg.resume)
    dist.barrier()  # every process has seen the checkpoints before process 0 may write new ones

    # ----- checkpointer, tokenizer, prompts, rewards, model, loss ----------------------------------
    checkpointer: Checkpointer = config.instantiate(cfg.checkpointer)  # reads the model's config only
    tokenizer = config.instantiate(cfg.tokenizer)
    ds = build_prompts(cfg, tokenizer)
    reward_fns = [config.instantiate(node) for node in cfg.rewards]
    names = [reward_name(fn) for fn in reward_fns]
    training.set_seed(cfg.seed)  # the same adapter initialisation on every process ...
    model = build_model(cfg, checkpointer, device, dtype, resume_dir)
    lora = bool(get_adapter_params(model))  # else every weight trains
    check_save_mappings(model.state_dict(), checkpointer.config, adapter_specs=get_adapter_specs(model))  # fail now
    seed = training.set_seed(cfg.seed, rank)  # ... then one random stream per process (dropout)
    trainable = [p for p in model.parameters() if p.requires_grad]
    say(f"Model: {sum(p.numel() for p in model.parameters()):,} parameters, {sum(p.numel() for p in trainable):,} "
        f"trainable ({'adapters' if lora else 'every weight'}), sharded over {world_size} processes")
    loss_fn = config.instantiate(cfg.loss)
    reference = None
    if not lora and not loss_fn.reference_free:
        reference = build_model(cfg, checkpointer, device, dtype, None, trainable=False)
        reference.set_num_output_chunks(0)
    model.set_num_output_chunks(0)  # one logits tensor of the completion positions
    say(f"{len(ds)} prompts, {cfg.group_size} completions each; rewards: {', '.join(names)}; loss: "
        f"{type(loss_fn).__name__}" + (" (no KL term)" if loss_fn.reference_free else
                                       ", reference = the base model (adapters off)" if lora else
                                       ", reference = a frozen copy of the source weights"))

    # ----- optimizer and schedule -----------------------------------------------------------------
    steps_per_epoch = training.steps_per_epoch(len(ds), batch_size=cfg.batch_size, gradient_accumulation_steps=1,
                                               world_size=world_size, max_steps_per_epoch=cfg.max_steps_per_epoch)
    total_steps = steps_per_epoch * cfg.epochs
    optimizer = config.instantiate(cfg.optimizer, trainable)
    # one scheduler step per optimizer update: ppo_epochs updates per step
    lr_scheduler = config.instantiate(cfg.lr_scheduler, optimizer, num_training_steps=total_steps * cfg.ppo_epochs)

    # ----- resume -----------------------------------------------------------------------------------
    step, epoch, samples_seen = 0, 0, 0
    if resume_dir is not None:  # the weights (or adapters) were loaded by build_model
        step, epoch, samples_seen = restore_training_state(resume_dir, optimizer, lr_scheduler, sharded_model=model,
                                                           rank=rank)  # rank 0 restores its RNG streams
        say(f"Resumed from {resume_dir} at step {step} (epoch {epoch})")
    if rank == 0:
        manager.clean_temp()
    run_log = training.RunLog(cfg.metric_logger, total_steps=total_steps, initial_step=step, desc="grpo", rank=rank)
    adapter_specs = get_adapter_specs(model)  # each adapter's rank and alpha, for merging and the peft config

    def save(at: int) -> Path:
        state_dict = training.gather_full_state_dict(model)  # every process takes part; process 0 gets it
        optimizer_state = training.gather_full_optimizer_state_dict(model, optimizer)

        def write(directory: Path) -> None:
            adapter_only = lora and bool(cfg.save_adapter_weights_only) and at < total_steps
            checkpointer.write_checkpoint(directory, state_dict, adapter_specs=adapter_specs, adapter_only=adapter_only)
            # the torch RNG streams are saved too; sampling needs none: each row's generator is
            # seeded from (seed, epoch, row, sample), all of which this state restores
            save_recipe_state(directory, step=at, epoch=epoch, seed=cfg.seed, samples_seen=samples_seen,
                              optimizer=optimizer_state, lr_scheduler=lr_scheduler,
                              extra={"sampling": "per-row generators seeded by (seed, epoch, row, sample)"})

        if rank == 0:
            manager.save(at, write)
        dist.barrier()
        return manager.step_dir(at)

    # ----- train ------------------------------------------------------------------------------------
    model.train()
    meter = training.TokensPerSecond(pad_id=tokenizer.pad_id)
    g, chunk = cfg.group_size, cfg.get("forward_batch_size") or cfg.batch_size * cfg.group_size
    last_saved = resume_dir if resume_dir is not None and step == total_steps else None
    start, first_step = time.perf_counter(), step
    while epoch < cfg.epochs:
        batches = epoch_prompts(len(ds), cfg, epoch, samples_seen, world_size, rank)
        while samples_seen < steps_per_epoch * cfg.batch_size:
            indices = next(batches)
            # 1. sample, score, compare within groups
            with torch.no_grad():
                roll = rollout(model, ds, indices, cfg, epoch, tokenizer, device)
            tokens, is_real, mask = roll["tokens"], roll["is_real"], roll["mask"]
            rewards = score(reward_fns, ds, indices, roll["texts"], g)  # [R, F]
            advantages = group_advantages(rewards.sum(dim=1), g, scale=cfg.scale_rewards).to(device)
            # 2. the reference's and (for several updates) the sampling policy's log-probabilities
            with torch.no_grad():
                ref = None if loss_fn.reference_free else reference_log_probs(model, reference, tokens, is_real, mask)
                old = completion_log_probs(model, tokens, is_real, mask) if cfg.ppo_epochs > 1 else None
            # 3. ppo_epochs updates on these samples; FSDP averages the gradients over processes, so
            # each process divides by its own completions: the gradient is the mean over all of them
            r = tokens.shape[0]
            for _ in range(cfg.ppo_epochs):
                totals = torch.zeros(4, device=device)  # summed loss, kl, clipped share, ratio
                for lo in range(0, r, chunk):
                    part = slice(lo, lo + chunk)
                    logp = completion_log_probs(model, tokens[part], is_real[part], mask[part])
                    out = loss_fn(logp, advantages[part], mask[part], None if old is None else old[part],
                                  None if ref is None else ref[part])
                    (out.losses.sum() / r).backward()
                    totals += torch.stack([out.losses.detach().sum(), out.kl.sum(), out.clipped.sum(), out.ratio.sum()])
                dist.all_reduce(totals)  # sums over processes
                loss = totals[0] / (r * world_size)
                training.check_finite(loss, step + 1)  # stop before a NaN reaches the weights
                grad_norm = training.clip_grad_norm(trainable, cfg.clip_grad_norm)
                grad_norm = grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                lr_scheduler.step()
            samples_seen += cfg.batch_size
            step += 1
            run_log.step(loss.item())
            # summed rewards per function, completion tokens and prompt tokens, over processes
            sums = torch.cat([rewards.sum(dim=0), torch.tensor([float(mask.sum()), float(is_real.sum())])]).to(device)
            dist.all_reduce(sums)
            meter.update(int(sums[-1] + sums[-2]))
            if step % cfg.log_every_n_steps == 0 or step == total_steps:
                n_all = r * world_size
                means = sums[:-2] / n_all
                run_log.log({"loss": loss.item(), "reward": float(means.sum()),
                             **{f"rewards/{n}": float(v) for n, v in zip(names, means)},
                             "kl": float(totals[1] / n_all), "clip_fraction": float(totals[2] / n_all),
                             "ratio": float(totals[3] / n_all), "completion_tokens": float(sums[-2] / n_all),
                             "lr": optimizer.param_groups[0]["lr"], "grad_norm": float(grad_norm),
                             "tokens_per_second": meter.rate(), **training.peak_memory_stats(device)}, step)
                meter.reset()
            if step == total_steps:
                epoch, samples_seen = cfg.epochs, 0  # the saved state says: finished
                last_saved = save(step)
                break
            if manager.should_save(step):
                last_saved = save(step)
        else:
            epoch, samples_seen = epoch + 1, 0

    # ----- finish: close the loggers, leave the process group, report -------------------------------
    final = Path(last_saved if last_saved is not None else manager.latest()).resolve()
    say(training.finish_run(run_log, final, output_dir=output_dir, started=start, steps=total_steps - first_step,
                            what="model (merged weights and peft adapter)" if lora else "model"))
    return final


if __name__ == "__main__":
    try:
        main()
    except (config.ConfigError, training.TrainingDivergedError) as e:
        sys.exit(f"error: {e}")
    # Everything is saved and the process group is destroyed. Leave without the interpreter's
    # teardown: with gloo on CPU it sometimes aborts there ("terminate called without an
    # active exception"), turning a finished run into a failed one.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
