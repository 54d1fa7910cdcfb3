"""LoRA / DoRA preference optimisation (DPO, IPO or SimPO) on several processes with FSDP2 (GPUs
with nccl, or CPU with gloo).

Launch it through torchrun, via the ``tune`` command or directly::

    tune run --nproc_per_node 2 lora_dpo_distributed --config tiny/lora_dpo_distributed
    torchrun --nproc_per_node 8 lora_dpo_distributed.py --config my.yaml model_dir=/m output_dir=/o

The same steps as ``lora_dpo_single_device.py``, with these differences: the model's decoder
layers and root are sharded with FSDP2; each process reads its own slice of every epoch's pair
order and of the validation pairs; the model returns the logits of the answer positions (the
output weight is sharded, so it is not applied outside the forward); and losses and rewards are
summed over processes, so the gradient is the mean over every pair of the global batch. The
reference model is the policy with its adapters switched off, as on one device. Checkpoints are
gathered to process 0, which writes them with the configured checkpointer (peft adapter plus
merged weights). Copy it with ``tune cp lora_dpo_distributed .`` and edit freely.
"""

import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

import torchtune
from torchtune import config, training
from torchtune.data import CROSS_ENTROPY_IGNORE_IDX, epoch_sample_order
from torchtune.datasets import build_preference_data, check_local_data_files
from torchtune.models import model_from_hf_config
from torchtune.modules import SequenceLogProbs, TransformerSelfAttentionLayer, reward_metrics, reward_sums, sequence_log_probs
from torchtune.modules.peft import (
    disable_adapter,
    get_adapter_params,
    get_adapter_specs,
    initialize_dora_magnitudes,
    set_adapter_dtype,
    set_trainable_params,
    validate_missing_and_unexpected_for_lora,
)
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
    "model_dir", "output_dir", "model", "tokenizer", "checkpointer", "dataset", "dataset_val",
    "seed", "shuffle", "padding_free", "batch_size", "epochs", "max_steps_per_epoch",
    "gradient_accumulation_steps", "optimizer", "lr_scheduler", "loss", "clip_grad_norm", "device", "dtype",
    "num_threads", "enable_activation_checkpointing", "compile", "metric_logger", "log_every_n_steps",
    "run_val_every_n_steps", "max_val_batches", "save_every_n_steps", "keep_last_n_checkpoints",
    "save_adapter_weights_only", "resume", "backend",
)


def check_config(cfg: config.DictConfig) -> None:
    """Stop before any work when the config cannot run: unknown keys, bad component arguments,
    missing dataset files."""
    config.validate(cfg, known_keys=KNOWN_KEYS)
    check_local_data_files(cfg)  # and the datasets extra for Hub data
    training.check_metric_loggers(cfg.get("metric_logger"))


def build_data(node: Any, tokenizer: Any, padding_free: bool, key: str) -> tuple[Any, Any]:
    """The preference pairs of the config's ``key`` node and their collate function; a bad row
    stops the run with one message naming the node, the file, the row and the field."""
    try:
        return build_preference_data(node, tokenizer, padding_free=padding_free)
    except ValueError as e:
        raise config.ConfigError(f"{key}: {e}") from e


def build_model(cfg: config.DictConfig, checkpointer: Checkpointer, device: torch.device, dtype: torch.dtype,
                resume_dir: Path | None) -> torch.nn.Module:
    """The sharded model with adapters, base weights loaded (and adapters from ``resume_dir``
    when resuming); only adapter parameters train."""
    if "_component_" in cfg.model:
        model = config.instantiate(cfg.model)
    else:
        model = model_from_hf_config(checkpointer.config, **cfg.model.to_dict())
    # every process reads the files, then keeps its shard
    state_dict = checkpointer.load_checkpoint()
    check_weights_fit(model, state_dict, builder=cfg.model.get("_component_"))
    missing, unexpected = model.load_state_dict(state_dict, strict=False)
    validate_missing_and_unexpected_for_lora(model, base_missing=missing, base_unexpected=unexpected)
    del state_dict
    training.release_freed_memory()  # the replaced initial weights (and, with quantize_base, their fp32 form)
    model.to(device=device, dtype=dtype)
    set_adapter_dtype(model, torch.float32)  # fp32 master weights for the adapters; they compute in dtype
    initialize_dora_magnitudes(model)  # DoRA: magnitudes from the loaded base weights
    if resume_dir is not None:
        adapter = checkpointer.load_adapter(resume_dir)
        missing, unexpected = model.load_state_dict(adapter, strict=False)
        validate_missing_and_unexpected_for_lora(model, lora_missing=missing, lora_unexpected=unexpected)
    set_trainable_params(model, get_adapter_params(model))
    if cfg.enable_activation_checkpointing:
        training.apply_activation_checkpointing(model, auto_wrap_policy={TransformerSelfAttentionLayer})
    training.shard_model(model)  # FSDP2: one unit per decoder layer, plus the root
    if cfg.compile:
        model.compile()
    return model


def epoch_batches(ds: Any, collate: Any, cfg: config.DictConfig, epoch: int, skip: int,
                  world_size: int, rank: int) -> Iterator[dict[str, Any]]:
    """This process's batches of pairs of one epoch, skipping the first ``skip`` of its pairs.

    The epoch's order depends only on the seed and the epoch (so a resumed run sees the same
    batches); process ``rank`` takes every ``world_size``-th pair of it.
    """
    order = epoch_sample_order(len(ds), seed=cfg.seed, epoch=epoch, shuffle=cfg.shuffle, world_size=world_size, rank=rank)
    yield from DataLoader(ds, batch_size=cfg.batch_size, sampler=order[skip:], collate_fn=collate, drop_last=True)


def log_probs(model: torch.nn.Module, batch: dict[str, Any], num_pairs: int) -> SequenceLogProbs:
    """Summed log-probabilities of the chosen and rejected answers of a batch of pairs.

    Only the answer positions (those with a label) come out of the model (``output_index``):
    its last layer and output projection skip the others.
    """
    labels = batch["labels"].reshape(1, -1)  # [1, N * s] or [1, T], already shifted
    keep = torch.nonzero(labels[0] != CROSS_ENTROPY_IGNORE_IDX).squeeze(1)  # [n]
    logits = model(batch["tokens"], mask=batch.get("mask"), input_pos=batch.get("input_pos"), output_index=keep,
                   output="logits")  # [1, n, v]
    sequence_ids = batch["sequence_ids"].reshape(1, -1)[:, keep]  # [1, n]
    sums, counts = sequence_log_probs(logits, labels[:, keep], sequence_ids, 2 * num_pairs)
    return SequenceLogProbs.from_sequences(sums, counts)


def forward_loss(model: torch.nn.Module, loss_fn: Any, batch: dict[str, Any], num_pairs: int,
                 device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed loss of a batch of pairs and the :func:`~torchtune.modules.reward_sums` of its rewards.

    The reference model is the policy with its adapters switched off, run without gradients.
    """
    batch = {k: v.to(device) for k, v in batch.items()}
    reference = None
    if not loss_fn.reference_free:
        with torch.no_grad(), disable_adapter(model):
            reference = log_probs(model, batch, num_pairs)
    out = loss_fn(log_probs(model, batch, num_pairs), reference)
    return out.losses.sum(), reward_sums(out)


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

    # ----- checkpointer, tokenizer, data, model, loss --------------------------------------------
    checkpointer: Checkpointer = config.instantiate(cfg.checkpointer)  # reads the model's config only
    tokenizer = config.instantiate(cfg.tokenizer)
    padding_free = cfg.get("padding_free", True)  # the sequences of a batch end to end in one row
    ds, collate = build_data(cfg.dataset, tokenizer, padding_free, "dataset")
    val_loader = None
    if cfg.get("dataset_val") is not None:  # a share of the pairs for each process, in dataset order
        val_ds, val_collate = build_data(cfg.dataset_val, tokenizer, padding_free, "dataset_val")
        order = epoch_sample_order(len(val_ds), seed=0, epoch=0, shuffle=False, world_size=world_size, rank=rank)
        val_loader = DataLoader(val_ds, batch_size=cfg.batch_size, sampler=order, collate_fn=val_collate, drop_last=True)
    training.set_seed(cfg.seed)  # the same adapter initialisation on every process ...
    model = build_model(cfg, checkpointer, device, dtype, resume_dir)
    check_save_mappings(model.state_dict(), checkpointer.config, adapter_specs=get_adapter_specs(model))  # fail now
    seed = training.set_seed(cfg.seed, rank)  # ... then one random stream per process (dropout)
    trainable = [p for p in model.parameters() if p.requires_grad]
    say(f"Model: {sum(p.numel() for p in model.parameters()):,} parameters, {sum(p.numel() for p in trainable):,} "
        f"trainable (adapters), sharded over {world_size} processes")
    loss_fn = config.instantiate(cfg.loss)
    say(f"Loss: {type(loss_fn).__name__}" + (" (reference free)" if loss_fn.reference_free else
                                             ", reference = the base model (adapters off)"))
    model.set_num_output_chunks(0)  # one logits tensor of the answer positions

    # ----- optimizer and schedule -----------------------------------------------------------------
    accum = cfg.gradient_accumulation_steps
    steps_per_epoch = training.steps_per_epoch(len(ds), batch_size=cfg.batch_size, gradient_accumulation_steps=accum,
                                               world_size=world_size, max_steps_per_epoch=cfg.max_steps_per_epoch)
    total_steps = steps_per_epoch * cfg.epochs
    optimizer = config.instantiate(cfg.optimizer, trainable)
    lr_scheduler = config.instantiate(cfg.lr_scheduler, optimizer, num_training_steps=total_steps)

    # ----- resume -----------------------------------------------------------------------------------
    step, epoch, samples_seen = 0, 0, 0
    if resume_dir is not None:  # the adapters were loaded by build_model
        step, epoch, samples_seen = restore_training_state(resume_dir, optimizer, lr_scheduler, sharded_model=model,
                                                           rank=rank)  # rank 0 restores its RNG streams
        say(f"Resumed from {resume_dir} at step {step} (epoch {epoch})")
    if rank == 0:
        manager.clean_temp()
    run_log = training.RunLog(cfg.metric_logger, total_steps=total_steps, initial_step=step, desc="lora dpo", rank=rank)
    adapter_specs = get_adapter_specs(model)  # each adapter's rank and alpha, for merging and the peft config

    def save(at: int) -> Path:
        state_dict = training.gather_full_state_dict(model)  # every process takes part; process 0 gets it
        optimizer_state = training.gather_full_optimizer_state_dict(model, optimizer)

        def write(directory: Path) -> None:
            adapter_only = bool(cfg.save_adapter_weights_only) and at < total_steps
            checkpointer.write_checkpoint(directory, state_dict, adapter_specs=adapter_specs, adapter_only=adapter_only)
            save_recipe_state(directory, step=at, epoch=epoch, seed=cfg.seed, samples_seen=samples_seen,
                              optimizer=optimizer_state, lr_scheduler=lr_scheduler)

        if rank == 0:
            manager.save(at, write)
        dist.barrier()
        return manager.step_dir(at)

    def validate() -> dict[str, float]:
        totals = torch.zeros(5, device=device)  # summed loss, then the reward sums
        model.eval()
        with torch.no_grad():
            for i, batch in enumerate(val_loader):
                if cfg.max_val_batches is not None and i >= cfg.max_val_batches:
                    break
                loss_sum, rewards = forward_loss(model, loss_fn, batch, cfg.batch_size, device)
                totals += torch.cat([loss_sum[None], rewards])
        dist.all_reduce(totals)  # sums over processes
        model.train()
        return {"val_loss": float(totals[0] / totals[4].clamp(min=1)),
                **{f"val_{k}": v for k, v in reward_metrics(totals[1:]).items()}}

    # ----- train ------------------------------------------------------------------------------------
    model.train()
    meter = training.TokensPerSecond(pad_id=tokenizer.pad_id)
    pairs_per_step = cfg.batch_size * accum  # per process
    last_saved = resume_dir if resume_dir is not None and step == total_steps else None
    start, first_step = time.perf_counter(), step
    while epoch < cfg.epochs:
        batches = epoch_batches(ds, collate, cfg, epoch, samples_seen, world_size, rank)
        while samples_seen < steps_per_epoch * pairs_per_step:
            totals = torch.zeros(6, device=device)  # summed loss, the 4 reward sums, real tokens
            for _ in range(accum):
                batch = next(batches)
                real = training.count_tokens(batch["tokens"], tokenizer.pad_id)
                micro_loss, micro_rewards = forward_loss(model, loss_fn, batch, cfg.batch_size, device)
                # FSDP averages the gradients over processes: the step's gradient is the mean over its global pairs
                (micro_loss / pairs_per_step).backward()
                totals += torch.cat([micro_loss.detach()[None], micro_rewards,
                                     torch.tensor([float(real)], device=device)])
                samples_seen += cfg.batch_size
            dist.all_reduce(totals)  # sums over processes
            meter.update(int(totals[5]))
            loss = totals[0] / (pairs_per_step * world_size)
            training.check_finite(loss, step + 1)  # stop before a NaN reaches the weights
            grad_norm = training.clip_grad_norm(trainable, cfg.clip_grad_norm)
            grad_norm = grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            lr_scheduler.step()
            step += 1
            run_log.step(loss.item())
            if step % cfg.log_every_n_steps == 0 or step == total_steps:
                run_log.log({"loss": loss.item(), **reward_metrics(totals[1:5]), "lr": optimizer.param_groups[0]["lr"],
                             "grad_norm": float(grad_norm), "tokens_per_second": meter.rate(),
                             **training.peak_memory_stats(device)}, step)
                meter.reset()
            if val_loader is not None and cfg.run_val_every_n_steps and step % cfg.run_val_every_n_steps == 0:
                run_log.log(validate(), step)
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
                            what="model (merged weights and peft adapter)"))
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
